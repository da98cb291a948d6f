"""The node's TOML configuration (paths are relative to the config file).

Example::

    [node]
    id = "tso"                      # the organisation this node is (its registry id)
    key = "keys/tso.key"            # from `mlg-node keygen`
    genesis = "genesis.mlg"         # from `mlg-node genesis` (the same file on every node)
    db = "state/tso.sqlite"         # the embedded store (SQLite), and beside it its files
    # database = "postgresql://mlg@db.tso.example/tso"  # or its tables on a PostgreSQL
                                    # server (credentials in ~/.pgpass, not here)
    max_message_bytes = 65536       # checked before anything is parsed
    late_after_s = 21600            # readings accepted until this long after their slot
    checkpoint_every_s = 10         # real seconds between checkpoints (when there is news)
    sync_every_s = 10               # real seconds between anti-entropy rounds per peer

    [mqtt]
    host = "127.0.0.1"
    port = 1883

    [api]
    listen = "127.0.0.1:8470"       # screens and JSON API; "" turns them off; loopback
                                    # unless set here; port 0: any free port, written to
                                    # <db>.api when up
    hosts = ["ledger.tso.example"]  # names besides this address the Host header may carry
                                    # (requests naming any other host are refused)
    session_hours = 12              # an operator's login lasts this long

    [metrics]
    listen = "127.0.0.1:9470"       # Prometheus metrics at /metrics ("" or absent: off)

The node keeps beside its database `<db>.token` (its API token, mode 0600, made at first
start; the CLI's authoring commands send it) and `<db>.web` (operators, sessions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ledger_node.ledger.store import is_postgres
from ledger_node.shared.config import Section, load_toml, parse_listen
from ledger_node.shared.errors import ConfigError
from ledger_node.shared.ids import ID_PATTERN
from ledger_node.shared.mqtt import MqttSettings
from ledger_node.wire import MAX_ENVELOPE_BYTES

DEFAULT_API = "127.0.0.1:8470"
PACKET_SLACK_BYTES = 4096
"""Room for the topic and properties above the envelope limit."""


def max_packet_bytes(max_message_bytes: int) -> int:
    """The largest MQTT packet a node takes, bytes, and so what a broker for it should
    allow: four times its envelope limit, plus room for the topic and properties."""
    return 4 * max_message_bytes + PACKET_SLACK_BYTES


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    key_path: Path
    genesis_path: Path
    db_path: Path
    max_message_bytes: int
    late_after_s: int
    checkpoint_every_s: float
    sync_every_s: float
    mqtt: MqttSettings
    api: tuple[str, int] | None
    hosts: tuple[str, ...] = ()
    """Host names besides the listening address that requests may name."""
    session_hours: float = 12.0
    metrics: tuple[str, int] | None = None
    """Where to serve Prometheus metrics (None: not served)."""
    database: str | None = None
    """A `postgresql://` URL: the node's tables on that server instead of in `db_path`
    (which then only names where the node's local files go: its API address and token)."""

    @property
    def store(self) -> str | Path:
        """Where the node's tables are: the PostgreSQL URL, else the SQLite file."""
        return self.database or self.db_path

    @property
    def api_addr_path(self) -> Path:
        """Where the running node writes the address its API listens on ("host:port")."""
        return api_addr_path(self.db_path)

    @property
    def token_path(self) -> Path:
        """The node's API token (mode 0600), for the CLI's authoring commands."""
        return token_path(self.db_path)

    @property
    def web_db_path(self) -> Path:
        """Operators and their sessions (SQLite)."""
        return self.db_path.with_name(self.db_path.name + ".web")


def api_addr_path(db_path: Path) -> Path:
    """The file beside a node's database naming the address its API listens on."""
    return db_path.with_name(db_path.name + ".api")


def token_path(db_path: Path) -> Path:
    """The file beside a node's database holding its API token (mode 0600)."""
    return db_path.with_name(db_path.name + ".token")


def load_config(path: Path) -> NodeConfig:
    root = Section(load_toml(path), "", path.parent)
    node = root.section("node")
    node_id = node.get("id", str)
    if not ID_PATTERN.fullmatch(node_id):
        raise ConfigError(f"node.id = {node_id!r} must match {ID_PATTERN.pattern}")
    key_path = node.path("key")
    genesis_path = node.path("genesis")
    db_path = node.path("db", "state/node.sqlite")
    database = node.get("database", str, "") or None
    if database is not None and not is_postgres(database):
        raise ConfigError(
            "node.database must be a postgresql:// URL (leave it out for the SQLite file `db`)"
        )
    max_bytes = node.get("max_message_bytes", int, MAX_ENVELOPE_BYTES)
    if not 4096 <= max_bytes <= 16 * 1024 * 1024:
        raise ConfigError("node.max_message_bytes must be 4 KiB..16 MiB")
    late_after_s = node.get("late_after_s", int, 6 * 3600)
    if not 0 <= late_after_s <= 30 * 86_400:
        raise ConfigError("node.late_after_s must be 0..2592000 (30 days)")
    checkpoint_every_s = node.get("checkpoint_every_s", float, 10.0)
    sync_every_s = node.get("sync_every_s", float, 10.0)
    for key, value in (("checkpoint_every_s", checkpoint_every_s), ("sync_every_s", sync_every_s)):
        if not 0.1 <= value <= 3600:
            raise ConfigError(f"node.{key} must be 0.1..3600 seconds")
    node.check_unknown()
    mqtt = MqttSettings.from_section(root.section("mqtt", required=False), f"node-{node_id}")
    api_section = root.section("api", required=False)
    api = parse_listen(api_section.get("listen", str, DEFAULT_API), "api.listen")
    hosts = api_section.get("hosts", list, [])
    if not all(isinstance(h, str) and h and "/" not in h for h in hosts):
        raise ConfigError("api.hosts must be a list of host names")
    session_hours = api_section.get("session_hours", float, 12.0)
    if not 0.1 <= session_hours <= 24 * 30:
        raise ConfigError("api.session_hours must be 0.1..720")
    api_section.check_unknown()
    metrics_section = root.section("metrics", required=False)
    metrics = parse_listen(metrics_section.get("listen", str, ""), "metrics.listen")
    metrics_section.check_unknown()
    root.check_unknown()
    return NodeConfig(
        node_id=node_id,
        key_path=key_path,
        genesis_path=genesis_path,
        db_path=db_path,
        max_message_bytes=max_bytes,
        late_after_s=late_after_s,
        checkpoint_every_s=checkpoint_every_s,
        sync_every_s=sync_every_s,
        mqtt=mqtt,
        api=api,
        hosts=tuple(hosts),
        session_hours=session_hours,
        metrics=metrics,
        database=database,
    )

"""`mlg-node broker-config`: from an inventory (TOML), a production Mosquitto set-up.

Example inventory::

    [broker]
    out = "broker"                      # where the files go (relative to this file)
    names = ["broker.example.net"]      # the server certificate's DNS names / IP addresses
    listen = "0.0.0.0:8883"             # TLS only; the default is loopback
    genesis = "genesis.mlg"             # the network's organisations and their roles
    max_message_bytes = 65536           # the nodes' [node] max_message_bytes
    slot_seconds = 1800                 # the gateways' slot: sizes the queues
    backlog_days = 1.0                  # a client away this long loses nothing queued
    persistence_dir = "/var/lib/mosquitto/"
    cert_days = 825                     # validity of the server and client certificates
    topic_prefix = "mlg/v1"
    monitors = ["monitor"]

    [[org]]                             # organisations added after the genesis
    id = "ra4"
    role = "ra"

    [[gateway]]
    id = "gw-site1"
    site = "site1"
    ras = ["ra1"]                       # declarations it follows (default: every RA)

It writes into `out`: ``ca/ca.pem`` and ``ca/ca.key`` (the project CA, made once: keep
the key offline), ``server.pem``/``server.key``, ``clients/ID.pem``/``clients/ID.key``
per identity (made once each), ``acl`` and ``mosquitto.conf`` (both rewritten every
run). Keys have mode 0600.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ledger_node.interfaces.broker.pki import Authority
from ledger_node.interfaces.broker.plan import Gateway, Plan, acl_text
from ledger_node.network.config import max_packet_bytes
from ledger_node.network.genesis import load_genesis
from ledger_node.shared.config import Section, load_toml, parse_listen
from ledger_node.shared.errors import ConfigError
from ledger_node.shared.ids import ID_PATTERN
from ledger_node.shared.mqtt import DEFAULT_PREFIX
from ledger_node.wire import MAX_ENVELOPE_BYTES
from ledger_node.wire.registry import ROLES
from ledger_node.wire.topics import Topics

QUEUE_MARGIN = 1.5
"""Queued messages per client beyond a day's batches: marks, facts, status, resends."""
MIN_QUEUED = 1000


@dataclass(frozen=True)
class Inventory:
    out: Path
    names: tuple[str, ...]
    listen: tuple[str, int]
    network: str
    plan: Plan
    max_message_bytes: int
    slot_seconds: int
    backlog_days: float
    persistence_dir: str
    cert_days: int

    @property
    def max_queued_messages(self) -> int:
        """A node away for `backlog_days` gets every gateway's batches of those days
        (Mosquitto drops silently beyond this)."""
        per_day = max(1, len(self.plan.gateways)) * 86_400 / self.slot_seconds
        return max(MIN_QUEUED, math.ceil(per_day * self.backlog_days * QUEUE_MARGIN))


def _id(value: str, where: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise ConfigError(f"{where} = {value!r} must match {ID_PATTERN.pattern}")
    return value


def load_inventory(path: Path) -> Inventory:
    root = Section(load_toml(path), "", path.parent)
    b = root.section("broker")
    orgs: dict[str, str] = {}
    network = "meterledger"
    genesis_path = b.optional_path("genesis")
    if genesis_path is not None:
        _, genesis = load_genesis(genesis_path)
        network = genesis.network
        orgs.update({o.id: o.role for o in genesis.orgs})
    for i, o in enumerate(root.sections("org")):
        org_id = _id(o.get("id", str), f"org[{i}].id")
        role = o.get("role", str)
        if role not in ROLES:
            raise ConfigError(f"org[{i}].role must be one of {sorted(ROLES)}")
        orgs[org_id] = role
        o.check_unknown()
    if [r for r in orgs.values() if r == "tso"] != ["tso"]:
        raise ConfigError("the inventory needs exactly one TSO: give broker.genesis or an [[org]]")
    gateways = []
    for i, g in enumerate(root.sections("gateway")):
        ras = tuple(_id(r, f"gateway[{i}].ras") for r in g.get("ras", list, []))
        unknown = [r for r in ras if orgs.get(r) != "ra"]
        if unknown:
            raise ConfigError(f"gateway[{i}].ras: {unknown[0]!r} is no RA of the inventory")
        gateways.append(
            Gateway(_id(g.get("id", str), f"gateway[{i}].id"), _id(g.get("site", str), "site"), ras)
        )
        g.check_unknown()
    monitors = tuple(_id(m, "broker.monitors") for m in b.get("monitors", list, ["monitor"]))
    names = tuple(b.get("names", list, ["localhost", "127.0.0.1"]))
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError("broker.names must list the broker's host names or addresses")
    listen = parse_listen(b.get("listen", str, "127.0.0.1:8883"), "broker.listen")
    if listen is None:
        raise ConfigError("broker.listen must be host:port")
    ids = [*orgs, *(g.id for g in gateways), *monitors]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise ConfigError(f"identity {twice[0]!r} is named twice in the inventory")
    slot_seconds = b.get("slot_seconds", int, 1800)
    if not 1 <= slot_seconds <= 86_400:
        raise ConfigError("broker.slot_seconds must be 1..86400")
    plan = Plan(Topics(b.get("topic_prefix", str, DEFAULT_PREFIX)), orgs, tuple(gateways), monitors)
    inventory = Inventory(
        out=b.path("out", "broker"),
        names=names,
        listen=listen,
        network=network,
        plan=plan,
        max_message_bytes=b.get("max_message_bytes", int, MAX_ENVELOPE_BYTES),
        slot_seconds=slot_seconds,
        backlog_days=b.get("backlog_days", float, 1.0),
        persistence_dir=b.get("persistence_dir", str, "/var/lib/mosquitto/"),
        cert_days=b.get("cert_days", int, 825),
    )
    b.check_unknown()
    root.check_unknown()
    return inventory


def mosquitto_conf(inv: Inventory) -> str:
    """The broker's configuration: TLS with client certificates only, MQTT 5, the ACL,
    the nodes' packet limit, persistence and queues sized for `backlog_days`."""
    out = inv.out.resolve()
    host, port = inv.listen
    persistence = inv.persistence_dir.rstrip("/") + "/"
    return "\n".join(
        [
            "# meterledger broker: written by `mlg-node broker-config` (edit the inventory).",
            "per_listener_settings false",
            "allow_anonymous false",
            f"acl_file {out / 'acl'}",
            "",
            "# TLS only, a client certificate from the project CA required; its common name",
            "# is the ACL's user name.",
            f"listener {port} {host}",
            "protocol mqtt",
            f"cafile {out / 'ca' / 'ca.pem'}",
            f"certfile {out / 'server.pem'}",
            f"keyfile {out / 'server.key'}",
            "require_certificate true",
            "use_identity_as_username true",
            "tls_version tlsv1.2",
            "",
            "# MQTT 5 clients check PUBACK reason codes (0x87: not authorised). A packet above",
            "# the nodes' limit is refused here, before it can become a poison message.",
            f"max_packet_size {max_packet_bytes(inv.max_message_bytes)}",
            "",
            "# Sessions and queues survive a broker restart; a client away for",
            f"# {inv.backlog_days:g} day(s) finds up to {inv.max_queued_messages} messages",
            "# queued (beyond that Mosquitto drops silently).",
            "persistence true",
            f"persistence_location {persistence}",
            "autosave_interval 60",
            "autosave_on_changes false",
            "persistent_client_expiration 8d",
            f"max_queued_messages {inv.max_queued_messages}",
            "max_queued_bytes 0",
            "max_inflight_messages 100",
            "set_tcp_nodelay true",
            "",
            "# $SYS counters every 10 s for mlg-monitor",
            "sys_interval 10",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages true",
            "",
        ]
    )


def write_all(inv: Inventory) -> list[str]:
    """Write the CA (once), certificates (those missing), ACL and config; what was done."""
    out = inv.out
    (out / "clients").mkdir(parents=True, exist_ok=True)
    done = []
    ca = Authority(out / "ca", inv.network)
    if ca.new:
        done.append(f"made the project CA {ca.cert_path} (keep {ca.key_path} offline)")
    server = ca.issue(
        out / "server.pem", out / "server.key", inv.names[0], inv.cert_days, inv.names
    )
    if server.new:
        done.append(f"issued the broker's certificate for {', '.join(inv.names)}")
    for ident in inv.plan.identities():
        issued = ca.issue(
            out / "clients" / f"{ident}.pem", out / "clients" / f"{ident}.key", ident, inv.cert_days
        )
        if issued.new:
            done.append(f"issued a client certificate for {ident}")
    (out / "acl").write_text(acl_text(inv.plan))
    (out / "mosquitto.conf").write_text(mosquitto_conf(inv))
    done.append(f"wrote {out / 'acl'} and {out / 'mosquitto.conf'}")
    return done


def add_parser(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """`mlg-node broker-config` (`cmd` makes a sub-command's parser)."""
    p = cmd(
        "broker-config",
        "write a production Mosquitto set-up (CA, certificates, ACL, config) from an inventory",
        _main,
        False,
    )
    p.add_argument("-c", "--config", type=Path, required=True, help="the inventory (TOML)")


def _main(args: argparse.Namespace) -> int:
    inv = load_inventory(args.config)
    for line in write_all(inv):
        print(line, file=sys.stderr)
    print(inv.out / "mosquitto.conf")
    return 0

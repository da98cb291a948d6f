"""The node's TOML configuration.

Example::

    [node]
    id = "tso"
    key = "keys/tso.key"            # from `mlg-node keygen`
    db = "state/tso.sqlite"
    max_message_bytes = 65536       # checked before anything is parsed

    [mqtt]
    host = "127.0.0.1"
    port = 1883

    [[gateway]]                     # registered gateways (the registry facts come later)
    public_key = "keys/gw-site1.key.pub"
    site = "site1"

    [[group_key]]                   # data keys of the privacy groups this node belongs to
    file = "keys/site1.group"
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ledger_node.config_util import Section, load_toml
from ledger_node.errors import ConfigError
from ledger_node.keys import GroupKey, PublicIdentity, load_public
from ledger_node.mqtt import MqttSettings
from ledger_node.wire import MAX_ENVELOPE_BYTES
from ledger_node.wire.schema import ID_PATTERN


@dataclass(frozen=True)
class RegisteredGateway:
    identity: PublicIdentity
    site: str


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    key_path: Path
    db_path: Path
    max_message_bytes: int
    mqtt: MqttSettings
    gateways: tuple[RegisteredGateway, ...]
    group_keys: tuple[GroupKey, ...]


def load_config(path: Path) -> NodeConfig:
    root = Section(load_toml(path), "", path.parent)
    node = root.section("node")
    node_id = node.get("id", str)
    if not ID_PATTERN.fullmatch(node_id):
        raise ConfigError(f"node.id = {node_id!r} must match {ID_PATTERN.pattern}")
    key_path = node.path("key")
    db_path = node.path("db", "state/node.sqlite")
    max_bytes = node.get("max_message_bytes", int, MAX_ENVELOPE_BYTES)
    if not 1024 <= max_bytes <= 16 * 1024 * 1024:
        raise ConfigError("node.max_message_bytes must be 1 KiB..16 MiB")
    node.check_unknown()
    mqtt = MqttSettings.from_section(root.section("mqtt", required=False), f"node-{node_id}")
    gateways = []
    for g in root.sections("gateway"):
        site = g.get("site", str)
        if not ID_PATTERN.fullmatch(site):
            raise ConfigError(f"{g.where}.site = {site!r} must match {ID_PATTERN.pattern}")
        gateways.append(RegisteredGateway(load_public(g.path("public_key")), site))
        g.check_unknown()
    if len({gw.identity.name for gw in gateways}) != len(gateways):
        raise ConfigError("a gateway is registered twice")
    group_keys = []
    for k in root.sections("group_key"):
        group_keys.append(GroupKey.load(k.path("file")))
        k.check_unknown()
    root.check_unknown()
    return NodeConfig(
        node_id, key_path, db_path, max_bytes, mqtt, tuple(gateways), tuple(group_keys)
    )

"""The gateway's TOML configuration, validated with errors that name the key.

Example::

    [gateway]
    id = "gw-site1"
    site = "site1"
    key = "keys/gw-site1.key"          # from `mlg-gateway keygen`
    state_dir = "state"                # outbox.sqlite lives here
    slot_seconds = 60

    [seal]
    group_key = "keys/site1.group"     # the site group's data key (epoch facts come later)

    [mqtt]
    host = "127.0.0.1"
    port = 1883

    [[bus]]
    name = "rs485-0"
    port = "/dev/ttyUSB0"
    baud = 9600

    [[meter]]
    id = "m1"
    bus = "rs485-0"
    unit = 1
    model = "sdm120"
    poll_seconds = 1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError
from gateway.meters import MeterModel, load_model
from ledger_node.config_util import Section, load_toml
from ledger_node.mqtt import MqttSettings
from ledger_node.wire.schema import ID_PATTERN

PARITIES = ("N", "E", "O")


@dataclass(frozen=True)
class BusConfig:
    """A serial RS-485 line: port, framing and the per-transaction timeout (s)."""

    name: str
    port: str
    baud: int = 9600
    parity: str = "N"
    stopbits: int = 1
    timeout_s: float = 0.5
    retries: int = 1


@dataclass(frozen=True)
class MeterConfig:
    """One meter: its id in readings, its bus and unit id, its model, its poll period (s)."""

    id: str
    bus: str
    unit: int
    model: MeterModel
    poll_seconds: float


@dataclass(frozen=True)
class GatewayConfig:
    gateway_id: str
    site: str
    key_path: Path
    state_dir: Path
    slot_seconds: int
    group_key_path: Path
    mqtt: MqttSettings
    buses: tuple[BusConfig, ...]
    meters: tuple[MeterConfig, ...]

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / "outbox.sqlite"


def _id(s: Section, key: str) -> str:
    value = s.get(key, str)
    if not ID_PATTERN.fullmatch(value):
        raise ConfigError(f"{s.where}.{key} = {value!r} must match {ID_PATTERN.pattern}")
    return value


def load_config(path: Path) -> GatewayConfig:
    """Read and validate a gateway config file."""
    root = Section(load_toml(path), "", path.parent)
    gw = root.section("gateway")
    gateway_id = _id(gw, "id")
    site = _id(gw, "site")
    key_path = gw.path("key")
    state_dir = gw.path("state_dir", "state")
    slot_seconds = gw.get("slot_seconds", int, 60)
    if not 1 <= slot_seconds <= 86_400 or 86_400 % slot_seconds:
        raise ConfigError("gateway.slot_seconds must divide a day (1..86400)")
    gw.check_unknown()

    seal = root.section("seal")
    group_key_path = seal.path("group_key")
    seal.check_unknown()

    mqtt = MqttSettings.from_section(root.section("mqtt", required=False), gateway_id)

    buses = []
    for b in root.sections("bus"):
        parity = b.get("parity", str, "N")
        if parity not in PARITIES:
            raise ConfigError(f"{b.where}.parity must be one of {PARITIES}")
        bus = BusConfig(
            name=_id(b, "name"),
            port=b.get("port", str),
            baud=b.get("baud", int, 9600),
            parity=parity,
            stopbits=b.get("stopbits", int, 1),
            timeout_s=b.get("timeout_s", float, 0.5),
            retries=b.get("retries", int, 1),
        )
        if bus.stopbits not in (1, 2):
            raise ConfigError(f"{b.where}.stopbits must be 1 or 2")
        if not 0 < bus.timeout_s <= 10:
            raise ConfigError(f"{b.where}.timeout_s must be in (0, 10] seconds")
        b.check_unknown()
        buses.append(bus)
    if not buses:
        raise ConfigError("at least one [[bus]] is required")
    bus_names = {b.name for b in buses}
    if len(bus_names) != len(buses):
        raise ConfigError("two [[bus]] tables have the same name")

    meters = []
    for m in root.sections("meter"):
        meter = MeterConfig(
            id=_id(m, "id"),
            bus=m.get("bus", str),
            unit=m.get("unit", int),
            model=load_model(m.get("model", str)),
            poll_seconds=m.get("poll_seconds", float, 1.0),
        )
        if meter.bus not in bus_names:
            raise ConfigError(f"{m.where}.bus = {meter.bus!r} names no [[bus]]")
        if not 1 <= meter.unit <= 247:
            raise ConfigError(f"{m.where}.unit must be 1..247")
        if not 0 < meter.poll_seconds <= slot_seconds:
            raise ConfigError(f"{m.where}.poll_seconds must be in (0, slot_seconds]")
        m.check_unknown()
        meters.append(meter)
    if not meters:
        raise ConfigError("at least one [[meter]] is required")
    if len({m.id for m in meters}) != len(meters):
        raise ConfigError("two [[meter]] tables have the same id")
    root.check_unknown()
    return GatewayConfig(
        gateway_id=gateway_id,
        site=site,
        key_path=key_path,
        state_dir=state_dir,
        slot_seconds=slot_seconds,
        group_key_path=group_key_path,
        mqtt=mqtt,
        buses=tuple(buses),
        meters=tuple(meters),
    )

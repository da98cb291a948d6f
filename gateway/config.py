"""The gateway's TOML configuration, validated with errors that name the key.

Paths are relative to the config file's folder. Every option, with its default or an
example value, is in `config.example.toml` beside this module (a test loads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config_plain import PlainConfig, plain_from_section
from gateway.config_wisun import WISUN_LINE_DEFAULTS, WisunOptions, wisun_from_section
from gateway.errors import ConfigError
from gateway.meters import MeterModel, broute_model, load_model
from ledger_node.shared.config import Section, load_toml, parse_listen
from ledger_node.shared.errors import KeyFileError
from ledger_node.shared.ids import ID_PATTERN
from ledger_node.shared.keys import PublicIdentity, load_public
from ledger_node.shared.mqtt import MqttSettings
from ledger_node.wire import DEFAULT_SLOT_S, MAX_ENVELOPE_BYTES
from ledger_node.wire.readings import MAX_METERS_PER_BATCH

PARITIES = ("N", "E", "O")
BUS_KINDS = ("modbus", "wisun")
BROUTE = "broute"
"""The model name of a B-route smart meter (only on a Wi-SUN bus)."""
ENERGY_REGISTER = "import_energy"
"""The cumulative register every model needs: slot energies are its differences."""


@dataclass(frozen=True)
class BusConfig:
    """A Modbus line: a serial RS-485 `port` (device path) or a TCP `host` and `tcp_port`;
    framing; the per-transaction timeout (s); retries per poll within `retry_budget`
    retries per meter and slot; a pause when switching unit ids (s). Or a Wi-SUN
    dongle on `port` (115200 baud, `timeout_s` per command, `retries` more sends of a
    lost request) with its `wisun` options."""

    name: str
    port: str = ""
    host: str | None = None
    tcp_port: int = 502
    baud: int = 9600
    parity: str = "N"
    stopbits: int = 1
    timeout_s: float = 0.5
    retries: int = 1
    retry_budget: int = 10
    unit_pause_s: float = 0.0
    reopen_after: int = 20
    wisun: WisunOptions | None = None
    """A Wi-SUN dongle's settings: the bus is then `kind` "wisun" (see `config_wisun`)."""

    @property
    def kind(self) -> str:
        return "modbus" if self.wisun is None else "wisun"

    @classmethod
    def for_wisun(cls, name: str, port: str, wisun: WisunOptions, **options: Any) -> BusConfig:
        """A Wi-SUN dongle's bus with its defaults (115200 baud, 5 s per command, two more
        sends of a lost request); `options` override them."""
        return cls(**{"name": name, "port": port, "wisun": wisun, **WISUN_LINE_DEFAULTS, **options})


@dataclass(frozen=True)
class MeterConfig:
    """One meter: its id in readings, its bus and unit id, its model, its poll period (s)."""

    id: str
    bus: str
    unit: int
    model: MeterModel
    poll_seconds: float
    max_power_w: float | None = None
    """The plausibility limit (W) when it is not the model's: a meter behind current
    transformers carries more than the model's direct connection."""

    @property
    def plausible_w(self) -> float:
        """The power (W) beyond which an energy step is a `jump`."""
        return self.model.max_power_w if self.max_power_w is None else self.max_power_w


@dataclass(frozen=True)
class ControlConfig:
    """DR control: a coil (FC 05) or a holding register (FC 06, `on`/`off` values) of a
    configured meter's device."""

    meter: str
    coil: int | None
    register: int | None
    on: int = 1
    off: int = 0


@dataclass(frozen=True)
class GatewayConfig:
    gateway_id: str
    site: str
    key_path: Path
    state_dir: Path
    slot_seconds: int
    group_key_path: Path | None
    mqtt: MqttSettings
    buses: tuple[BusConfig, ...]
    meters: tuple[MeterConfig, ...]
    tso: PublicIdentity | None = None
    ras: tuple[PublicIdentity, ...] = ()
    confirm_nodes: tuple[PublicIdentity, ...] = ()
    quorum: int = 1
    outbox_max_bytes: int = 64 * 1024 * 1024
    retry_s: float = 30.0
    max_message_bytes: int = MAX_ENVELOPE_BYTES
    unconfirmed_alarm_s: float = 3600.0
    max_clock_skew_s: float = 5.0
    clock_wait_s: float = 60.0
    """At start, how long (s) polls wait for a node's signed time before the system clock
    is trusted unchecked (alarm `clock_unverified`)."""
    control: ControlConfig | None = None
    plain: PlainConfig | None = None
    """The local plain view (unsigned, unencrypted), when enabled."""
    metrics: tuple[str, int] | None = None
    """Where to serve Prometheus metrics (None: not served)."""
    enrol_code_path: Path | None = None
    """The one-time enrolment code's file: while it exists the gateway asks to be enrolled."""

    db_file: Path | None = None

    @property
    def db_path(self) -> Path:
        """The state database: outbox, meter state, epoch keys, DR facts."""
        return self.db_file if self.db_file is not None else self.state_dir / "state.sqlite"

    @property
    def status_path(self) -> Path:
        return self.state_dir / "status.json"

    def meter(self, meter_id: str) -> MeterConfig:
        return next(m for m in self.meters if m.id == meter_id)

    def bus(self, name: str) -> BusConfig:
        return next(b for b in self.buses if b.name == name)


def _id(s: Section, key: str) -> str:
    value = s.get(key, str)
    if not ID_PATTERN.fullmatch(value):
        raise ConfigError(f"{s.where}.{key} = {value!r} must match {ID_PATTERN.pattern}")
    return value


def _public(s: Section, key: str, path: Path) -> PublicIdentity:
    try:
        return load_public(path)
    except KeyFileError as exc:
        raise ConfigError(f"{s.where}.{key}: {exc}") from None


def load_config(path: Path) -> GatewayConfig:
    """Read and validate a gateway config file."""
    return config_from(load_toml(path), path.parent)


def config_from(data: dict[str, Any], base: Path) -> GatewayConfig:
    """Validate a gateway config's TOML data; relative paths are relative to `base`."""
    root = Section(data, "", base)
    gw = root.section("gateway")
    gateway_id = _id(gw, "id")
    site = _id(gw, "site")
    key_path = gw.path("key")
    state_dir = gw.path("state_dir", "state")
    slot_seconds = gw.get("slot_seconds", int, DEFAULT_SLOT_S)
    if not 1 <= slot_seconds <= 86_400 or 86_400 % slot_seconds:
        raise ConfigError("gateway.slot_seconds must divide a day (1..86400)")
    max_skew_s = gw.get("max_clock_skew_s", float, 5.0)
    if not 1 <= max_skew_s <= 3600:
        raise ConfigError("gateway.max_clock_skew_s must be 1..3600 seconds")
    clock_wait_s = gw.get("clock_wait_s", float, 60.0)
    if not 0 <= clock_wait_s <= 3600:
        raise ConfigError("gateway.clock_wait_s must be 0..3600 seconds")
    gw.check_unknown()

    tso, ras, group_key_path = _trust_seal(root)
    nodes, quorum = _confirm(root.section("confirm", required=False))
    outbox = root.section("outbox", required=False)
    db_file = outbox.optional_path("path")
    max_bytes, retry_s, max_message, unconfirmed_alarm_s = _outbox(outbox)
    mqtt = MqttSettings.from_section(root.section("mqtt", required=False), gateway_id)

    buses = [_bus(b) for b in root.sections("bus")]
    if not buses:
        raise ConfigError("at least one [[bus]] is required")
    if len({b.name for b in buses}) != len(buses):
        raise ConfigError("two [[bus]] tables have the same name")
    models = _models(root)
    meters = [
        _meter(m, models, {b.name: b for b in buses}, slot_seconds) for m in root.sections("meter")
    ]
    if not meters:
        raise ConfigError("at least one [[meter]] is required")
    if len(meters) > MAX_METERS_PER_BATCH:
        raise ConfigError(f"at most {MAX_METERS_PER_BATCH} [[meter]]s: one batch holds them all")
    if len({m.id for m in meters}) != len(meters):
        raise ConfigError("two [[meter]] tables have the same id")
    if len({(m.bus, m.unit) for m in meters}) != len(meters):
        raise ConfigError("two [[meter]] tables have the same bus and unit")
    for b in buses:
        if b.kind == "wisun" and sum(m.bus == b.name for m in meters) != 1:
            raise ConfigError(f"bus {b.name}: a Wi-SUN bus reads exactly one [[meter]]")

    control = _control(root.section("control", required=False), {m.id: m for m in meters})
    if control is not None and (tso is None or not ras):
        raise ConfigError(
            "[control] needs trust.tso (who sends DR commands) and trust.ras (whose "
            "declarations name this site): without them it would never switch"
        )
    plain = plain_from_section(
        root.section("plain", required=False), gateway_id, mqtt, [m.model for m in meters]
    )
    metrics_listen, enrol_code_path = _metrics_enrol(root)
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
        tso=tso,
        ras=ras,
        confirm_nodes=nodes,
        quorum=quorum,
        outbox_max_bytes=max_bytes,
        db_file=db_file,
        retry_s=retry_s,
        max_message_bytes=max_message,
        unconfirmed_alarm_s=unconfirmed_alarm_s,
        control=control,
        max_clock_skew_s=max_skew_s,
        clock_wait_s=clock_wait_s,
        plain=plain,
        metrics=metrics_listen,
        enrol_code_path=enrol_code_path,
    )


def _trust_seal(
    root: Section,
) -> tuple[PublicIdentity | None, tuple[PublicIdentity, ...], Path | None]:
    """[trust] tso and ras, [seal] group_key: who sends keys and facts, or a fixed key."""
    trust = root.section("trust", required=False)
    tso_path = trust.optional_path("tso")
    tso = None if tso_path is None else _public(trust, "tso", tso_path)
    ras = tuple(
        _public(trust, f"ras[{i}]", trust.base / p)
        for i, p in enumerate(trust.get("ras", list, []))
    )
    trust.check_unknown()

    seal = root.section("seal", required=False)
    group_key_path = seal.optional_path("group_key")
    seal.check_unknown()
    if group_key_path is None and tso is None:
        raise ConfigError("seal.group_key is required unless [trust] tso sends epoch keys")
    if group_key_path is not None and tso is not None:
        raise ConfigError(
            "seal.group_key cannot be used with [trust] tso: the ledger's nodes read only "
            "batches sealed with the TSO's epoch keys (the gateway holds its slots until the "
            "first key arrives); remove [seal]"
        )
    return tso, ras, group_key_path


def _metrics_enrol(root: Section) -> tuple[tuple[str, int] | None, Path | None]:
    """[metrics] listen and [enrol] code_file."""
    metrics = root.section("metrics", required=False)
    listen = parse_listen(metrics.get("listen", str, ""), "metrics.listen")
    metrics.check_unknown()
    enrol = root.section("enrol", required=False)
    code_path = enrol.optional_path("code_file")
    enrol.check_unknown()
    return listen, code_path


def _confirm(confirm: Section) -> tuple[tuple[PublicIdentity, ...], int]:
    nodes = []
    for n in confirm.sections("node"):
        nodes.append(_public(n, "public_key", n.path("public_key")))
        n.check_unknown()
    quorum = confirm.get("quorum", int, 1)
    confirm.check_unknown()
    if nodes and not 1 <= quorum <= len(nodes):
        raise ConfigError(f"confirm.quorum must be 1..{len(nodes)} (the [[confirm.node]] count)")
    if len({n.name for n in nodes}) != len(nodes):
        raise ConfigError("two [[confirm.node]] keys have the same id")
    return tuple(nodes), quorum


def _outbox(outbox: Section) -> tuple[int, float, int, float]:
    max_bytes = outbox.get("max_bytes", int, 64 * 1024 * 1024)
    retry_s = outbox.get("retry_s", float, 30.0)
    max_message = outbox.get("max_message_bytes", int, MAX_ENVELOPE_BYTES)
    unconfirmed_alarm_s = outbox.get("unconfirmed_alarm_s", float, 3600.0)
    outbox.check_unknown()
    if unconfirmed_alarm_s <= 0:
        raise ConfigError("outbox.unconfirmed_alarm_s must be positive (seconds)")
    if max_bytes < 4096:
        raise ConfigError("outbox.max_bytes must be at least 4096")
    if not 0 < retry_s <= 86_400:
        raise ConfigError("outbox.retry_s must be in (0, 86400] seconds")
    if not 1024 <= max_message <= MAX_ENVELOPE_BYTES:
        raise ConfigError(f"outbox.max_message_bytes must be 1024..{MAX_ENVELOPE_BYTES}")
    return max_bytes, retry_s, max_message, unconfirmed_alarm_s


def _models(root: Section) -> dict[str, MeterModel]:
    """Meter models defined in the config (`[[model]]`), by name."""
    models: dict[str, MeterModel] = {}
    for i, m in enumerate(root.get("model", list, [])):
        if not isinstance(m, dict):
            raise ConfigError(f"model[{i}] must be a table ([[model]])")
        model = MeterModel.from_mapping(m, f"model[{i}]")
        if model.name in models:
            raise ConfigError(f"model[{i}].model = {model.name!r} is defined twice")
        models[model.name] = model
    return models


def _meter(
    m: Section, models: dict[str, MeterModel], buses: dict[str, BusConfig], slot_seconds: int
) -> MeterConfig:
    bus = buses.get(m.get("bus", str))
    wisun = bus is not None and bus.kind == "wisun"
    try:
        name = m.get("model", str, BROUTE if wisun else "")
        if (name == BROUTE) != wisun:
            raise ConfigError(f"model {BROUTE} is the one model of a Wi-SUN bus, and only there")
        model = broute_model() if wisun else load_model(name, models)
        model.register(ENERGY_REGISTER)
    except KeyError as exc:
        raise ConfigError(f"{m.where}.model: {exc.args[0]}") from None
    except ConfigError as exc:
        raise ConfigError(f"{m.where}.model: {exc}") from None
    # B-route: one 0xEA reading per 30-minute slot, else 0xE0 every 10 s at most.
    default_poll = float(slot_seconds if slot_seconds == 1800 else min(slot_seconds, 10))
    default_poll = default_poll if wisun else 1.0
    meter = MeterConfig(
        id=_id(m, "id"),
        bus=m.get("bus", str),
        unit=m.get("unit", int, 1) if wisun else m.get("unit", int),
        model=model,
        poll_seconds=m.get("poll_seconds", float, default_poll),
        max_power_w=m.optional("max_power_w", float),
    )
    if meter.max_power_w is not None and meter.max_power_w <= 0:
        raise ConfigError(f"{m.where}.max_power_w must be positive")
    if bus is None:
        raise ConfigError(f"{m.where}.bus = {meter.bus!r} names no [[bus]]")
    if not 1 <= meter.unit <= 247:
        raise ConfigError(f"{m.where}.unit must be 1..247")
    if not 0 < meter.poll_seconds <= slot_seconds:
        raise ConfigError(f"{m.where}.poll_seconds must be in (0, slot_seconds]")
    m.check_unknown()
    return meter


def _bus(b: Section) -> BusConfig:
    kind = b.get("kind", str, "modbus")
    if kind not in BUS_KINDS:
        raise ConfigError(f"{b.where}.kind must be one of {BUS_KINDS}")
    if kind == "wisun":
        return _wisun_bus(b)
    host = b.optional("host", str)
    parity = b.get("parity", str, "N")
    if parity not in PARITIES:
        raise ConfigError(f"{b.where}.parity must be one of {PARITIES}")
    bus = BusConfig(
        name=_id(b, "name"),
        port="" if host is not None else b.get("port", str),
        host=host,
        tcp_port=b.get("port", int, 502) if host is not None else 502,
        baud=b.get("baud", int, 9600),
        parity=parity,
        stopbits=b.get("stopbits", int, 1),
        timeout_s=b.get("timeout_s", float, 0.5),
        retries=b.get("retries", int, 1),
        retry_budget=b.get("retry_budget", int, 10),
        unit_pause_s=b.get("unit_pause_ms", int, 0) / 1000.0,
        reopen_after=b.get("reopen_after", int, 20),
    )
    _check_line(b, bus)
    if not 0 <= bus.unit_pause_s <= 1:
        raise ConfigError(f"{b.where}.unit_pause_ms must be 0..1000")
    if bus.reopen_after < 1:
        raise ConfigError(f"{b.where}.reopen_after must be at least 1")
    if not 1 <= bus.tcp_port <= 65535:
        raise ConfigError(f"{b.where}.port must be 1..65535")
    b.check_unknown()
    return bus


def _check_line(b: Section, bus: BusConfig) -> None:
    if bus.stopbits not in (1, 2):
        raise ConfigError(f"{b.where}.stopbits must be 1 or 2")
    if bus.baud not in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200):
        raise ConfigError(f"{b.where}.baud must be a standard rate (1200..115200)")
    if not 0 < bus.timeout_s <= 10:
        raise ConfigError(f"{b.where}.timeout_s must be in (0, 10] seconds")
    if not 0 <= bus.retries <= 5:
        raise ConfigError(f"{b.where}.retries must be 0..5")
    if bus.retry_budget < 0:
        raise ConfigError(f"{b.where}.retry_budget must not be negative")


def _wisun_bus(b: Section) -> BusConfig:
    """A Wi-SUN dongle: its port and line, and its `config_wisun` options."""
    d = WISUN_LINE_DEFAULTS
    bus = BusConfig.for_wisun(
        _id(b, "name"),
        b.get("port", str),
        wisun_from_section(b),
        baud=b.get("baud", int, d["baud"]),
        timeout_s=b.get("timeout_s", float, d["timeout_s"]),
        retries=b.get("retries", int, d["retries"]),
    )
    _check_line(b, bus)
    b.check_unknown()
    return bus


def _control(c: Section, meters: dict[str, MeterConfig]) -> ControlConfig | None:
    if not c.data:
        return None
    meter_id = c.get("meter", str)
    if meter_id not in meters:
        raise ConfigError(f"{c.where}.meter = {meter_id!r} names no [[meter]]")
    if meters[meter_id].model.name == BROUTE:
        raise ConfigError(f"{c.where}.meter: a B-route smart meter has no DR relay to switch")
    coil = c.optional("coil", int)
    register = c.optional("register", int)
    if coil is None and register is None:
        coil = meters[meter_id].model.dr_coil
        if coil is None:
            raise ConfigError(
                f"{c.where}: model {meters[meter_id].model.name} has no dr_coil; "
                "set control.coil or control.register"
            )
    if coil is not None and register is not None:
        raise ConfigError(f"{c.where}: set coil or register, not both")
    control = ControlConfig(
        meter=meter_id,
        coil=coil,
        register=register,
        on=c.get("on", int, 1),
        off=c.get("off", int, 0),
    )
    for key, value in (
        ("coil", coil),
        ("register", register),
        ("on", control.on),
        ("off", control.off),
    ):
        if value is not None and not 0 <= value <= 0xFFFF:
            raise ConfigError(f"{c.where}.{key} must be 0..65535")
    c.check_unknown()
    return control

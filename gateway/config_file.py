"""Writing a gateway's config file from typed values: the TOML that `gateway.config` reads,
for the local networks and the tests.

A key is written only when it is given (or, for `[mqtt]` and `[[bus]]`, when it differs
from `MqttSettings` and `BusConfig` defaults); the gateway takes its default for the
rest. Strings and paths are TOML basic strings, escaped; a relative path stays relative
to the config file's folder, as the gateway reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.config import BusConfig, ControlConfig
from gateway.config_wisun import WISUN_LINE_DEFAULTS, WisunOptions
from ledger_node.shared.mqtt import MqttSettings

Value = str | Path | int | float | Sequence[Path]


@dataclass(frozen=True)
class MeterEntry:
    """A `[[meter]]`: its id, unit id, model (built in or a `[[model]]`), bus, poll
    period (s) and, when not the model's, its plausibility limit (W)."""

    id: str
    unit: int
    model: str = "sdm120"
    bus: str = "rs485-0"
    poll_seconds: float = 1.0
    max_power_w: float | None = None


def write_config(
    path: Path,
    *,
    gateway_id: str,
    site: str,
    key_path: Path,
    state_dir: Path,
    slot_seconds: int,
    mqtt: MqttSettings,
    buses: Sequence[BusConfig],
    meters: Sequence[MeterEntry],
    group_key_path: Path | None = None,
    tso: Path | None = None,
    ras: Sequence[Path] = (),
    confirm_nodes: Sequence[Path] = (),
    quorum: int | None = None,
    outbox_max_bytes: int | None = None,
    retry_s: float | None = None,
    unconfirmed_alarm_s: float | None = None,
    control: ControlConfig | None = None,
    metrics: tuple[str, int] | None = None,
    enrol_code_file: Path | None = None,
) -> Path:
    """Write the gateway's config to `path` and return `path`.

    `tso`, `ras` and `confirm_nodes` are public key files; `quorum` is written when given.
    """
    gateway: dict[str, Value | None] = {
        "id": gateway_id,
        "site": site,
        "key": key_path,
        "state_dir": state_dir,
        "slot_seconds": slot_seconds,
    }
    tables = [
        _table("[gateway]", gateway),
        _table("[seal]", {"group_key": group_key_path}),
        _table("[trust]", {"tso": tso, "ras": tuple(ras) or None}),
        _table("[confirm]", {"quorum": quorum}),
        *(_table("[[confirm.node]]", {"public_key": node}) for node in confirm_nodes),
        _table(
            "[outbox]",
            {
                "max_bytes": outbox_max_bytes,
                "retry_s": retry_s,
                "unconfirmed_alarm_s": unconfirmed_alarm_s,
            },
        ),
        _table("[mqtt]", _mqtt(mqtt)),
        *(_table("[[bus]]", _bus(bus)) for bus in buses),
        *(_table("[[meter]]", asdict(meter)) for meter in meters),
    ]
    if control is not None:
        tables.append(_table("[control]", _control(control)))
    if metrics is not None:
        tables.append(_table("[metrics]", {"listen": f"{metrics[0]}:{metrics[1]}"}))
    tables.append(_table("[enrol]", {"code_file": enrol_code_file}))
    path.write_text("\n".join(t for t in tables if t))
    return path


def _table(header: str, keys: Mapping[str, Value | None]) -> str:
    """The table's text; empty when it has no key to write and is not an array's."""
    lines = [f"{key} = {_value(value)}" for key, value in keys.items() if value is not None]
    if not lines and not header.startswith("[["):
        return ""
    return "\n".join([header, *lines]) + "\n"


def _mqtt(settings: MqttSettings) -> dict[str, Value | None]:
    d = MqttSettings()
    return {
        "host": settings.host,
        "port": settings.port,
        **_besides_defaults(
            ("client_id", settings.client_id, d.client_id),
            ("topic_prefix", settings.prefix, d.prefix),
            ("keepalive_s", settings.keepalive_s, d.keepalive_s),
            ("protocol", settings.protocol, d.protocol),
            ("ca_file", settings.ca_file, d.ca_file),
            ("cert_file", settings.cert_file, d.cert_file),
            ("key_file", settings.key_file, d.key_file),
            ("username", settings.username, d.username),
            ("password", settings.password, d.password),
        ),
    }


def _bus(bus: BusConfig) -> dict[str, Value | None]:
    if bus.kind == "wisun":
        return _wisun_bus(bus)
    d = BusConfig(bus.name)
    tcp = bus.host is not None
    return {
        "name": bus.name,
        "host": bus.host,
        "port": bus.tcp_port if tcp else bus.port,
        **_besides_defaults(
            ("baud", bus.baud, d.baud),
            ("parity", bus.parity, d.parity),
            ("stopbits", bus.stopbits, d.stopbits),
            ("timeout_s", bus.timeout_s, d.timeout_s),
            ("retries", bus.retries, d.retries),
            ("retry_budget", bus.retry_budget, d.retry_budget),
            ("unit_pause_ms", round(bus.unit_pause_s * 1000), round(d.unit_pause_s * 1000)),
            ("reopen_after", bus.reopen_after, d.reopen_after),
        ),
    }


def _wisun_bus(bus: BusConfig) -> dict[str, Value | None]:
    """A Wi-SUN dongle's `[[bus]]`: its keys where they differ from the defaults."""
    assert bus.wisun is not None
    w, dw = bus.wisun, WisunOptions(Path())
    d = WISUN_LINE_DEFAULTS
    return {
        "name": bus.name,
        "kind": "wisun",
        "port": bus.port,
        "dongle": w.dongle,
        "credentials": w.credentials,
        **_besides_defaults(
            ("baud", bus.baud, d["baud"]),
            ("timeout_s", bus.timeout_s, d["timeout_s"]),
            ("retries", bus.retries, d["retries"]),
            ("answer_timeout_s", w.answer_timeout_s, dw.answer_timeout_s),
            ("refused_retry_s", w.refused_retry_s, dw.refused_retry_s),
            ("scan_duration", w.scan_duration, dw.scan_duration),
        ),
    }


def _besides_defaults(*rows: tuple[str, Value | None, Value | None]) -> dict[str, Value | None]:
    """Each (key, value, default) row's key and value, where the value is not the default."""
    return {key: value for key, value, default in rows if value != default}


def _control(control: ControlConfig) -> dict[str, Value | None]:
    """`coil` and `register` when set (neither: the model's DR coil); `on`, `off` when
    they are not 1 and 0."""
    return {
        "meter": control.meter,
        "coil": control.coil,
        "register": control.register,
        "on": None if control.on == 1 else control.on,
        "off": None if control.off == 0 else control.off,
    }


def _value(value: Value) -> str:
    """`value` in TOML."""
    if isinstance(value, str | Path):
        return _string(str(value))
    if isinstance(value, int | float):
        return repr(value)
    return "[" + ", ".join(_string(str(v)) for v in value) + "]"


def _string(text: str) -> str:
    """`text` as a TOML basic string: quote, backslash and control characters escaped."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c < " " or c == "\x7f":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'

"""What the emulator serves: lines, their meters, profiles, DR and faults, from a TOML
file or from the command line's flags (validated; errors name the key or flag)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from firmware.emulator.dr import Window, parse_window
from firmware.emulator.faults import KINDS, VALUE_KINDS, FaultRates
from firmware.emulator.line import Framing
from firmware.emulator.profiles import parse_profile
from firmware.emulator.wisun.dongle import FAULT_KINDS as WISUN_FAULTS
from firmware.emulator.wisun.dongle import WisunFaults
from firmware.emulator.wisun.station import WisunSpec
from gateway.meters import builtin_models
from ledger_node.shared.config import Section, load_toml
from ledger_node.shared.errors import ConfigError
from ledger_node.wire import DEFAULT_SLOT_S

BROUTE = "broute"
"""The B-route smart meter: served behind a Wi-SUN dongle, never on a Modbus line."""
MODELS = tuple(sorted([*builtin_models(), BROUTE]))
"""The gateway's built-in register tables (the Eastron models and the adapter) and the
B-route smart meter."""
DEFAULT_START_KWH = 1000.0


@dataclass(frozen=True)
class MeterSpec:
    """One emulated meter. `pulses_per_kwh` is the S0 pulse value (model `adapter`)."""

    unit: int
    model: str = "sdm120"
    profile: str = "constant:1000"
    energy_start_wh: float = DEFAULT_START_KWH * 1000
    dr_drop: float = 0.0
    dr_windows: tuple[Window, ...] = ()
    faults: FaultRates = field(default_factory=FaultRates)
    pulses_per_kwh: int = 1000

    def check(self, where: str, slot_s: int, utc_offset_h: float) -> None:
        if not 1 <= self.unit <= 247:
            raise ConfigError(f"{where}: unit id must be 1..247, not {self.unit}")
        if self.model not in MODELS:
            raise ConfigError(f"{where}: model must be one of {', '.join(MODELS)}")
        try:
            parse_profile(self.profile, slot_s, utc_offset_h)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not math.isfinite(self.energy_start_wh) or self.energy_start_wh < 0:
            raise ConfigError(f"{where}: the start energy must be >= 0")
        if not 0 <= self.dr_drop <= 1:
            raise ConfigError(f"{where}: dr_drop must be between 0 and 1")
        if self.model == "adapter":
            values = [k for k in VALUE_KINDS if self.faults.rates.get(k)]
            if values:
                raise ConfigError(
                    f"{where}: the adapter's registers are the firmware's own: no {values[0]}"
                    " faults"
                )
            if not 1 <= self.pulses_per_kwh <= 50000:
                raise ConfigError(f"{where}: pulses_per_kwh must be 1..50000")


@dataclass(frozen=True)
class LineSpec:
    """A line: a pseudo-terminal (with an optional stable `link`) or a TCP `host:port`;
    with `wisun`, a Wi-SUN dongle on the pseudo-terminal and one B-route meter."""

    name: str
    meters: tuple[MeterSpec, ...]
    framing: Framing = field(default_factory=Framing)
    link: Path | None = None
    tcp: tuple[str, int] | None = None
    wisun: WisunSpec | None = None


@dataclass(frozen=True)
class EmulatorSpec:
    lines: tuple[LineSpec, ...]
    slot_s: int = DEFAULT_SLOT_S
    truth: Path | None = None
    seed: int | None = None
    utc_offset_h: float = 9.0
    state_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.slot_s < 1 or 86_400 % self.slot_s:
            raise ConfigError("slot seconds must divide a day")
        if not self.lines:
            raise ConfigError("no lines to serve")
        names = [line.name for line in self.lines]
        if len(set(names)) != len(names):
            raise ConfigError("a line name appears twice")
        for line in self.lines:
            if not line.meters:
                raise ConfigError(f"line {line.name}: no meters")
            brs = [m for m in line.meters if m.model == BROUTE]
            if (line.wisun is not None) != bool(brs) or (brs and len(line.meters) != 1):
                raise ConfigError(
                    f"line {line.name}: a B-route meter is served alone behind a Wi-SUN dongle"
                )
            if line.wisun is not None and (line.tcp is not None or brs[0].faults.any):
                raise ConfigError(
                    f"line {line.name}: a Wi-SUN line is a pseudo-terminal, its faults the"
                    " dongle's (wisun_faults)"
                )
            units = [m.unit for m in line.meters]
            if len(set(units)) != len(units):
                raise ConfigError(f"line {line.name}: a unit id appears twice")
            for m in line.meters:
                m.check(f"line {line.name} unit {m.unit}", self.slot_s, self.utc_offset_h)


def parse_tcp(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `PORT` (loopback)."""
    host, sep, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"bad TCP address {text!r}: want HOST:PORT") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"bad TCP port in {text!r}")
    return (host if sep and host else "127.0.0.1"), number


def parse_fault(text: str, kinds: tuple[str, ...] = KINDS) -> tuple[str, float]:
    """`KIND=RATE`, KIND one of `kinds`."""
    kind, sep, rate = text.partition("=")
    if not sep or kind not in kinds:
        raise ConfigError(f"bad fault {text!r}: want KIND=RATE, KIND one of {', '.join(kinds)}")
    try:
        return kind, float(rate)
    except ValueError:
        raise ConfigError(f"bad fault rate in {text!r}") from None


def split_meter(text: str) -> tuple[int, str, str]:
    """`UNIT:MODEL[:PROFILE]` as (unit, model, profile); the profile may hold colons."""
    unit, _, rest = text.partition(":")
    model, _, profile = rest.partition(":")
    try:
        return int(unit), model or "sdm120", profile or "constant:1000"
    except ValueError:
        raise ConfigError(f"--meter {text}: want UNIT:MODEL[:PROFILE]") from None


def _faults(sec: Section) -> FaultRates:
    rates = {kind: sec.get(kind, float, 0.0) for kind in KINDS}
    defaults = FaultRates()
    try:
        rates_out = FaultRates(
            rates={k: v for k, v in rates.items() if v},
            exception_code=sec.get("exception_code", int, defaults.exception_code),
            slow_s=sec.get("slow_s", float, defaults.slow_s),
            jump_wh=sec.get("jump_wh", float, defaults.jump_wh),
            garbage_bytes=sec.get("garbage_bytes", int, defaults.garbage_bytes),
        )
    except ValueError as exc:
        raise ConfigError(f"{sec.where}: {exc}") from None
    sec.check_unknown()
    return rates_out


def _meter(sec: Section, utc_offset_h: float) -> MeterSpec:
    texts = sec.get("dr_windows", list, [])
    if not all(isinstance(w, str) for w in texts):
        raise ConfigError(f"{sec.where}.dr_windows: want a list of strings")
    try:
        windows = tuple(parse_window(w) for w in texts)
    except ValueError as exc:
        raise ConfigError(f"{sec.where}.dr_windows: {exc}") from None
    spec = MeterSpec(
        unit=sec.get("unit", int),
        model=sec.get("model", str, "sdm120"),
        profile=sec.get("profile", str, "constant:1000"),
        energy_start_wh=sec.get("energy_start_kwh", float, DEFAULT_START_KWH) * 1000,
        dr_drop=sec.get("dr_drop", float, 0.0),
        dr_windows=windows,
        faults=_faults(sec.section("faults", required=False)),
        pulses_per_kwh=sec.get("pulses_per_kwh", int, 1000),
    )
    sec.check_unknown()
    return spec


def _line(sec: Section, index: int, utc_offset_h: float) -> LineSpec:
    try:
        framing = Framing(
            baud=sec.get("baud", int, 9600),
            parity=sec.get("parity", str, "N"),
            stopbits=sec.get("stopbits", int, 1),
            turnaround_s=sec.get("turnaround_ms", float, 0.0) / 1000.0,
        )
    except ValueError as exc:
        raise ConfigError(f"{sec.where}: {exc}") from None
    wisun = _wisun(sec)
    tcp = sec.optional("tcp", str)
    link = sec.optional_path("link")
    if tcp is not None and link is not None:
        raise ConfigError(f"{sec.where}: a line is a pseudo-terminal (link) or tcp, not both")
    meters = tuple(_meter(m, utc_offset_h) for m in sec.sections("meter"))
    spec = LineSpec(
        name=sec.get("name", str, f"line{index}"),
        meters=meters,
        framing=framing,
        link=link,
        tcp=parse_tcp(tcp) if tcp is not None else None,
        wisun=wisun,
    )
    sec.check_unknown()
    return spec


def _wisun(sec: Section) -> WisunSpec | None:
    """A line's Wi-SUN dongle (`dongle = "bp35c0"`…), or None for a Modbus line."""
    dialect = sec.optional("dongle", str)
    if dialect is None:
        return None
    f = sec.section("wisun_faults", required=False)
    try:
        faults = WisunFaults(
            rates={k: v for k in WISUN_FAULTS if (v := f.get(k, float, 0.0))},
            session_lifetime_s=f.get("session_lifetime_s", float, 0.0),
            scan_s=f.get("scan_s", float, 0.2),
            latency_s=f.get("latency_ms", float, 20.0) / 1000.0,
        )
        f.check_unknown()
        defaults = WisunSpec()
        return WisunSpec(
            dialect=dialect,
            baud=sec.get("baud", int, 115200),
            rbid=sec.get("broute_id", str, defaults.rbid),
            password=sec.get("broute_password", str, defaults.password),
            unit_code=sec.get("unit_code", int, defaults.unit_code),
            coefficient=sec.get("coefficient", int, defaults.coefficient),
            digits=sec.get("digits", int, defaults.digits),
            faults=faults,
        )
    except ValueError as exc:
        raise ConfigError(f"{sec.where}: {exc}") from None


def load_config(path: Path) -> EmulatorSpec:
    """An emulator config file (TOML); relative paths are relative to its folder."""
    root = Section(load_toml(path), "", path.resolve().parent)
    emu = root.section("emulator", required=False)
    utc_offset_h = emu.get("utc_offset_h", float, 9.0)
    spec = EmulatorSpec(
        lines=tuple(_line(s, i, utc_offset_h) for i, s in enumerate(root.sections("line"))),
        slot_s=emu.get("slot_seconds", int, DEFAULT_SLOT_S),
        truth=emu.optional_path("truth"),
        seed=emu.optional("seed", int),
        utc_offset_h=utc_offset_h,
        state_dir=emu.optional_path("state_dir"),
    )
    emu.check_unknown()
    root.check_unknown()
    return spec

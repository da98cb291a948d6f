"""Meter models as data: each model is a TOML register table shipped in this package.

One row per quantity (table, address, words, type, scale, unit, plausible range, and for a
setting its factory default); one generic driver reads them all. A row's `table` is the
model's unless it says otherwise, so one model holds its input registers (the
measurements) and its holding registers (the settings). A new model costs one TOML file
(or a `[[model]]` table in the gateway config).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from gateway.errors import ConfigError
from gateway.meters.decode import DECODERS

TABLES = ("input", "holding")
"""Modbus tables a model can be read from: function code 04 or 03."""

MODEL_KEYS = frozenset(
    {"model", "description", "table", "word_order", "max_block", "max_power_w", "dr_coil"}
    | {"registers"}
)
ROW_KEYS = frozenset(
    {"name", "table", "address", "words", "type", "scale", "unit", "min", "max", "default"}
)


@dataclass(frozen=True, slots=True)
class Register:
    """One quantity: `words` registers at `address` of `table` (input: function code 04,
    holding: 03); value = decoded number × `scale`.

    `min` and `max` bound the plausible values (in `unit`) where the datasheet gives them;
    `default` is a setting's factory value (in `unit`), where the datasheet gives one.
    """

    name: str
    address: int
    words: int
    type: str
    scale: float
    unit: str
    min: float | None = None
    max: float | None = None
    table: str = "input"
    default: float | None = None

    def __post_init__(self) -> None:
        if self.table not in TABLES:
            raise ConfigError(f"register {self.name}: table must be one of {TABLES}")
        if self.type not in DECODERS:
            raise ConfigError(f"register {self.name}: unknown type {self.type!r}")
        if DECODERS[self.type][0] != self.words:
            raise ConfigError(
                f"register {self.name}: type {self.type} has {DECODERS[self.type][0]} words,"
                f" not {self.words}"
            )
        if not 0 <= self.address <= 0xFFFF - self.words + 1:
            raise ConfigError(f"register {self.name}: address {self.address} out of range")
        if not math.isfinite(self.scale) or self.scale == 0:
            raise ConfigError(f"register {self.name}: scale must be a non-zero number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"register {self.name}: min {self.min} is above max {self.max}")
        if self.default is not None and not self.in_range(self.default):
            raise ConfigError(f"register {self.name}: default {self.default} is out of its range")

    @property
    def end(self) -> int:
        """The address after this register's last word."""
        return self.address + self.words

    def decode(self, words: Sequence[int], big_word_first: bool) -> float:
        return DECODERS[self.type][1](words, big_word_first) * self.scale

    def in_range(self, value: float) -> bool:
        """False when `value` is outside [min, max] (NaN is judged elsewhere)."""
        return not (
            (self.min is not None and value < self.min)
            or (self.max is not None and value > self.max)
        )


@dataclass(frozen=True, slots=True)
class MeterModel:
    """A meter model: its register table and what its firmware allows."""

    name: str
    description: str
    table: str
    """The table rows are in unless they say otherwise."""
    big_word_first: bool
    max_block: int
    max_power_w: float
    registers: tuple[Register, ...]
    dr_coil: int | None = None
    """The coil that switches the DR relay, when the device has one (firmware adapter)."""

    def register(self, name: str) -> Register:
        for reg in self.registers:
            if reg.name == name:
                return reg
        raise KeyError(f"model {self.name} has no register {name!r}")

    @classmethod
    def from_mapping(cls, obj: Mapping[str, Any], where: str) -> MeterModel:
        """Build a model from a parsed TOML table; `where` names it in error messages."""
        unknown = set(obj) - MODEL_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        try:
            table = obj.get("table", "input")
            if table not in TABLES:
                raise ConfigError(f"{where}: table must be one of {TABLES}, not {table!r}")
            word_order = obj.get("word_order", "big")
            if word_order not in ("big", "little"):
                raise ConfigError(f"{where}: word_order must be 'big' or 'little'")
            rows = obj["registers"]
            for i, row in enumerate(rows):
                extra = set(row) - ROW_KEYS
                if extra:
                    raise ConfigError(f"{where}: registers[{i}]: unknown key {sorted(extra)[0]!r}")
            registers = tuple(
                Register(
                    name=str(r["name"]),
                    address=int(r["address"]),
                    words=int(r["words"]),
                    type=str(r["type"]),
                    scale=float(r.get("scale", 1)),
                    unit=str(r.get("unit", "")),
                    min=_optional_float(r, "min"),
                    max=_optional_float(r, "max"),
                    table=str(r.get("table", table)),
                    default=_optional_float(r, "default"),
                )
                for r in rows
            )
            model = cls(
                name=str(obj["model"]),
                description=str(obj.get("description", "")),
                table=table,
                big_word_first=word_order == "big",
                max_block=int(obj.get("max_block", 125)),
                max_power_w=float(obj["max_power_w"]),
                registers=registers,
                dr_coil=None if obj.get("dr_coil") is None else int(obj["dr_coil"]),
            )
        except KeyError as exc:
            raise ConfigError(f"{where}: missing key {exc}") from None
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if not 1 <= model.max_block <= 125:
            raise ConfigError(f"{where}: max_block must be 1..125")
        names = [r.name for r in registers]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: a register name appears twice")
        _check_no_overlap(registers, where)
        if not registers:
            raise ConfigError(f"{where}: registers must not be empty")
        return model


def _check_no_overlap(registers: Sequence[Register], where: str) -> None:
    """Two rows of one table may not share a register."""
    last: dict[str, Register] = {}
    for reg in sorted(registers, key=lambda r: (r.table, r.address)):
        prev = last.get(reg.table)
        if prev is not None and reg.address < prev.end:
            raise ConfigError(
                f"{where}: {reg.name} at {reg.address:#06x} overlaps {prev.name} ({reg.table})"
            )
        last[reg.table] = reg


def _optional_float(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if value is None:
        return None
    if type(value) not in (int, float):
        raise ConfigError(f"register {row.get('name')!r}: {key} must be a number")
    return float(value)


_BUILTIN: dict[str, MeterModel] = {}


def builtin_models() -> Mapping[str, MeterModel]:
    """The models shipped in this package, by name (read once)."""
    if not _BUILTIN:
        for entry in resources.files(__package__).iterdir():
            if entry.name.endswith(".toml"):
                obj = tomllib.loads(entry.read_text())
                model = MeterModel.from_mapping(obj, f"meter table {entry.name}")
                _BUILTIN[model.name] = model
    return _BUILTIN


def load_model(name: str, extra: Mapping[str, MeterModel] | None = None) -> MeterModel:
    """A model by name: from `extra` (defined in the gateway config) or built in; the
    error lists the known ones."""
    models = {**builtin_models(), **(extra or {})}
    if name not in models:
        raise ConfigError(f"unknown meter model {name!r}; known: {', '.join(sorted(models))}")
    return models[name]


BROUTE_MAX_POWER_W = 60_000.0
"""A low-voltage contract's ceiling (50 kVA) with headroom: the B-route jump check."""


def broute_model() -> MeterModel:
    """The B-route smart meter (ECHONET Lite, not Modbus): only its cumulative forward
    energy, so that slots, plausibility and the plain view treat it as any meter. Its
    'address' is the ECHONET property code (0xE0); `gateway.broute` reads it."""
    return MeterModel(
        name="broute",
        description="low-voltage smart meter, B-route (ECHONET Lite over Wi-SUN)",
        table="input",
        big_word_first=True,
        max_block=2,
        max_power_w=BROUTE_MAX_POWER_W,
        registers=(Register("import_energy", 0xE0, 2, "uint32", 1.0, "Wh", min=0.0),),
    )

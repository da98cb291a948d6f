"""Strict, declarative validation of decoded bodies.

A schema is a tree of `Field`s. `Obj` rejects unknown and missing keys; every string,
byte string and list has a size bound; every integer a range. `check` returns the value
converted to its Python form (base64 text becomes bytes) or raises `SchemaError` naming
the field's path (built on the way out of a failure, so a valid body costs no path text).
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger_node.shared.ids import ID_PATTERN
from ledger_node.wire.errors import SchemaError

MAX_SAFE_INT = 2**53 - 1
"""Largest integer every JSON implementation reads exactly."""


class Field:
    """One value's rule."""

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Int(Field):
    """An integer in [lo, hi] (booleans are not integers here)."""

    lo: int = 0
    hi: int = MAX_SAFE_INT

    def check(self, value: Any, path: str) -> int:
        if type(value) is not int:
            raise SchemaError(path, f"expected an integer, got {type(value).__name__}")
        if not self.lo <= value <= self.hi:
            raise SchemaError(path, f"{value} is outside [{self.lo}, {self.hi}]")
        return value


@dataclass(frozen=True)
class Const(Field):
    """Exactly this value."""

    value: Any

    def check(self, value: Any, path: str) -> Any:
        if type(value) is not type(self.value) or value != self.value:
            raise SchemaError(path, f"expected {self.value!r}, got {value!r}")
        return value


@dataclass(frozen=True)
class Str(Field):
    """A string matching `pattern` (default: any printable ASCII) of at most `max_len`."""

    max_len: int = 63
    pattern: re.Pattern[str] | None = None
    choices: frozenset[str] | None = None

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise SchemaError(path, f"expected a string, got {type(value).__name__}")
        if len(value) > self.max_len:
            raise SchemaError(path, f"string of {len(value)} chars exceeds {self.max_len}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            raise SchemaError(path, f"{value!r} does not match {self.pattern.pattern}")
        if self.choices is not None and value not in self.choices:
            raise SchemaError(path, f"{value!r} is not one of {sorted(self.choices)}")
        return value


def Id() -> Str:
    """An identifier (see `ID_PATTERN`)."""
    return Str(max_len=63, pattern=ID_PATTERN)


@dataclass(frozen=True)
class B64(Field):
    """Standard base64 text (with padding) decoding to `min_len`..`max_len` bytes."""

    min_len: int = 0
    max_len: int = 32

    def check(self, value: Any, path: str) -> bytes:
        if not isinstance(value, str):
            raise SchemaError(path, f"expected base64 text, got {type(value).__name__}")
        if len(value) > 4 * ((self.max_len + 2) // 3):
            raise SchemaError(path, f"base64 of {len(value)} chars exceeds {self.max_len} bytes")
        try:
            data = binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError):
            raise SchemaError(path, "not valid base64") from None
        if binascii.b2a_base64(data, newline=False) != value.encode("ascii"):
            raise SchemaError(path, "base64 is not in canonical form")
        if not self.min_len <= len(data) <= self.max_len:
            raise SchemaError(path, f"{len(data)} bytes, expected {self.min_len}..{self.max_len}")
        return data


@dataclass(frozen=True)
class ListOf(Field):
    """A list of `item`s, `min_len`..`max_len` long."""

    item: Field
    max_len: int
    min_len: int = 0

    def check(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise SchemaError(path, f"expected a list, got {type(value).__name__}")
        if not self.min_len <= len(value) <= self.max_len:
            raise SchemaError(
                path, f"list of {len(value)} items, expected {self.min_len}..{self.max_len}"
            )
        out = []
        check = self.item.check
        i = 0
        try:
            for i, v in enumerate(value):  # noqa: B007 - `i` names the item in an error
                out.append(check(v, ""))
        except SchemaError as exc:
            raise exc.under(f"{path}[{i}]") from None
        return out


@dataclass(frozen=True)
class Obj(Field):
    """An object with exactly the keys of `fields`, except those in `optional`."""

    fields: Mapping[str, Field]
    optional: frozenset[str] = field(default_factory=frozenset)
    _checks: tuple[tuple[str, Callable[[Any, str], Any]], ...] = field(
        init=False, repr=False, compare=False
    )
    _keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Bound once: a body is checked field by field on every message.
        checks = tuple((key, rule.check) for key, rule in self.fields.items())
        object.__setattr__(self, "_checks", checks)
        object.__setattr__(self, "_keys", frozenset(self.fields))

    def check(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise SchemaError(path, f"expected an object, got {type(value).__name__}")
        if not value.keys() <= self._keys:
            unknown = sorted(value.keys() - self._keys)
            raise SchemaError(_join(path, unknown[0]), "unknown field")
        out: dict[str, Any] = {}
        for key, check in self._checks:
            if key in value:
                try:
                    out[key] = check(value[key], "")
                except SchemaError as exc:
                    raise exc.under(_join(path, key)) from None
            elif key not in self.optional:
                raise SchemaError(_join(path, key), "missing field")
        return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key

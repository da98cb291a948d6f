"""Reading TOML configuration with errors that name the key and say what is expected."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from ledger_node.shared.errors import ConfigError

T = TypeVar("T")
_REQUIRED: Any = object()


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


class Section:
    """A TOML table with typed getters; `where` is its dotted name for messages."""

    def __init__(self, data: Mapping[str, Any], where: str, base: Path) -> None:
        self.data = data
        self.where = where
        self.base = base
        self._used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type[T], default: T = _REQUIRED) -> T:
        self._used.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise ConfigError(f"{self._key(key)} is required")
            return default
        value = self.data[key]
        if kind is float and type(value) is int:
            value = float(value)
        if type(value) is not kind:
            raise ConfigError(
                f"{self._key(key)} must be {kind.__name__}, not {type(value).__name__}"
            )
        return value

    def optional(self, key: str, kind: type[T]) -> T | None:
        """The value, or None when the key is absent."""
        return self.get(key, kind, None)

    def path(self, key: str, default: str = _REQUIRED) -> Path:
        """A path, relative to the config file's folder unless absolute."""
        return self.base / self.get(key, str, default)

    def optional_path(self, key: str) -> Path | None:
        value = self.optional(key, str)
        return None if value is None else self.base / value

    def section(self, key: str, required: bool = True) -> Section:
        self._used.add(key)
        value = self.data.get(key)
        if value is None:
            if required:
                raise ConfigError(f"[{self._key(key)}] is required")
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{self._key(key)} must be a table")
        return Section(value, self._key(key), self.base)

    def sections(self, key: str) -> list[Section]:
        """An array of tables (`[[key]]`), possibly empty."""
        self._used.add(key)
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ConfigError(f"{self._key(key)} must be an array of tables ([[{key}]])")
        return [Section(v, f"{self._key(key)}[{i}]", self.base) for i, v in enumerate(value)]

    def check_unknown(self) -> None:
        """Raise on keys nobody asked for: a typo must not pass silently."""
        unknown = set(self.data) - self._used
        if unknown:
            raise ConfigError(f"unknown key {self._key(sorted(unknown)[0])}")


def parse_listen(text: str, where: str) -> tuple[str, int] | None:
    """ "host:port" → (host, port); "" → None (off)."""
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f'{where} = {text!r} must be "host:port" (or "" for off)')
    return host, int(port)

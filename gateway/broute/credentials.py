"""The B-route ID and password, in their own TOML file readable by its owner only.

    id = "0000000000000000000000000000ABCD"   # 32 characters, from the utility
    password = "ABCDEFGHIJKL"                 # 12 characters

The file is refused when its group or others may read it (create it with `umask 077` or
`chmod 600`). Neither value is ever logged or shown: `repr` masks them.
"""

from __future__ import annotations

import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import ConfigError

ID_LENGTH = 32
PASSWORD_LENGTH = 12


@dataclass(frozen=True)
class Credentials:
    rbid: str = field(repr=False)
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return "Credentials(****)"


def _check(value: object, key: str, length: int, path: Path) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{path}: {key} must be a string")
    if len(value) != length or not value.isascii() or not value.isalnum():
        raise ConfigError(
            f"{path}: {key} must be {length} letters and digits, as the utility's B-route"
            f" letter gives it (this one has {len(value)} characters)"
        )
    return value


def load_credentials(path: Path) -> Credentials:
    """Read and check `path`; `ConfigError` says what is wrong (never the values)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"cannot read B-route credentials {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"B-route credentials {path} may be read by group or others (mode"
            f" {stat.S_IMODE(st.st_mode):04o}): chmod 600 {path}"
        )
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable TOML file ({type(exc).__name__})") from None
    unknown = set(data) - {"id", "password"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; want id and password")
    return Credentials(
        _check(data.get("id"), "id", ID_LENGTH, path),
        _check(data.get("password"), "password", PASSWORD_LENGTH, path),
    )


def write_credentials(path: Path, creds: Credentials) -> Path:
    """Write a credentials file with mode 0600 (for set-up tools and tests)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f'id = "{creds.rbid}"\npassword = "{creds.password}"\n')
    os.chmod(path, 0o600)
    return path

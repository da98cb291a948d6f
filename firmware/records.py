"""Small records on flash: one line of comma-separated integers sealed with a CRC-16, and
atomic replacement of a file (write a new file, then rename it over the old one).

A record reads `MAGIC,field,...,crc` with the CRC (4 hex digits) over everything before
its comma, so a torn, truncated or bit-flipped file is detected, never misread.
"""

import os

from .compat import const
from .crc import crc16

_MAX_RECORD = const(128)


def seal(magic: str, fields: list) -> bytes:
    """The record's bytes: `magic`, the integer `fields`, the CRC, a newline."""
    body = magic
    for value in fields:
        body += "," + str(value)
    data = body.encode()
    return data + (",%04x\n" % crc16(data)).encode()


def unseal(data: bytes, magic: str, count: int) -> list | None:
    """The `count` integer fields of a record, or None when it is not a valid record."""
    text = data.strip()
    cut = text.rfind(b",")
    if cut < 0 or len(text) - cut != 5:
        return None
    try:
        crc = int(text[cut + 1 :], 16)
    except ValueError:
        return None
    if crc != crc16(text, cut):
        return None
    parts = text[:cut].split(b",")
    if len(parts) != count + 1 or parts[0] != magic.encode():
        return None
    try:
        return [int(p) for p in parts[1:]]
    except ValueError:
        return None


def read(path: str) -> bytes | None:
    """The file's first bytes (enough for any record), or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read(_MAX_RECORD + 1)
    except OSError:
        # Error numbers differ between filesystems (littlefs, POSIX, Emscripten): ask
        # whether the file is there rather than decode why it could not be opened.
        return b"" if exists(path) else None  # unreadable: an invalid record


def write_atomic(path: str, data: bytes) -> None:
    """Replace `path` by `data` all at once: write `path.new`, then rename it over `path`.
    Raises OSError when the flash refuses; `path` then still holds its old content."""
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
        if hasattr(os, "fsync"):  # CPython; MicroPython's littlefs commits on close
            f.flush()
            os.fsync(f.fileno())
    os.rename(tmp, path)


def exists(path: str) -> bool:
    try:
        os.stat(path)
        return True
    except OSError:
        return False

"""Identifiers and the text form of bytes, as key files, configs and the wire spell them."""

from __future__ import annotations

import base64
import re

ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
"""Identifiers of organisations, sites, gateways and meters: lower-case ASCII, 1-63 chars."""


def b64(data: bytes) -> str:
    """The canonical base64 text of `data` (standard alphabet, padded)."""
    return base64.b64encode(data).decode("ascii")

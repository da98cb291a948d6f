"""The firmware area's helper: what a float32 register holds."""

from __future__ import annotations

import struct


def f32(value: float) -> float:
    """`value` as a float32 register holds it."""
    result: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return result

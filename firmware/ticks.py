"""Wrapping tick arithmetic, as MicroPython's `time.ticks_diff`, for code that runs on both.

MicroPython's `ticks_ms()` and `ticks_us()` wrap at 2**30; the board passes its ticks in,
the host passes `monotonic` time masked to the same period, and the logic only ever
subtracts ticks through `diff`.
"""

from .compat import const

PERIOD = const(1 << 30)
_MASK = const(PERIOD - 1)
_HALF = const(PERIOD >> 1)


def diff(a: int, b: int) -> int:
    """`a - b` in ticks, correct across one wrap; valid while |a - b| < PERIOD / 2."""
    return ((a - b + _HALF) & _MASK) - _HALF


def add(a: int, delta: int) -> int:
    """`a + delta` in ticks (delta may be negative)."""
    return (a + delta) & _MASK


def wrap(value: int) -> int:
    """An unbounded count (milliseconds, microseconds) as ticks."""
    return value & _MASK

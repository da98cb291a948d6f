"""Injectable clocks: every component reads time through one, so slots can run faster.

All times are UTC unix seconds (float). A `ScaledClock` runs `scale` times faster than the
wall clock and agrees across processes that share the same `origin` (a wall-clock instant
at which simulated and real time coincide).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """The current time, UTC unix seconds."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to `seconds` of this clock's time for `event`; True if it was set."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(seconds, 0.0))


class ScaledClock:
    """Wall time sped up by `scale` around `origin`: ``origin + (time() - origin) * scale``."""

    def __init__(self, scale: float, origin: float) -> None:
        if scale <= 0:
            raise ValueError(f"clock scale must be positive, got {scale}")
        self.scale = scale
        self.origin = origin

    def now(self) -> float:
        return self.origin + (time.time() - self.origin) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(seconds, 0.0) / self.scale)


def make_clock(scale: float | None, origin: float | None) -> Clock:
    """The wall clock when `scale` is None or 1, else a `ScaledClock` (origin: now)."""
    if scale is None or scale == 1:
        return SystemClock()
    return ScaledClock(scale, time.time() if origin is None else origin)


class FixedClock:
    """A clock that stands still until `set` (the replay of `verify`, unit tests)."""

    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def set(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(seconds, 0.0)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.t += max(seconds, 0.0)
        return event.is_set()


def utc_text(t: float) -> str:
    """UTC unix seconds as people read them: ``2026-11-26 15:36:00 UTC``."""
    return dt.datetime.fromtimestamp(int(t), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

"""Injectable clocks: every component reads time through one, so slots can run faster.

All times are UTC unix seconds (float). A `ScaledClock` runs `scale` times faster than the
wall clock and agrees across processes that share the same `origin` (a wall-clock instant
at which simulated and real time coincide). Every clock says its `scale`: clock seconds per
real second (0 for a clock that only moves when set).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from pathlib import Path
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

    scale = 1.0

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


class SkewedClock:
    """`base` plus the seconds written in a file, read again at most every `every_s` real
    seconds: fault injection for labs and tests (a clock set wrong, or stepped while the
    process runs). An absent or unreadable file is 0."""

    def __init__(self, base: Clock, path: Path, every_s: float = 0.1) -> None:
        self.base = base
        self.path = path
        self.every_s = every_s
        self.scale: float = getattr(base, "scale", 1.0)
        self._skew = 0.0
        self._read_at = -math.inf

    def now(self) -> float:
        mono = time.monotonic()
        if mono - self._read_at >= self.every_s:
            self._read_at = mono
            try:
                self._skew = float(self.path.read_text().strip() or 0)
            except (OSError, ValueError):
                self._skew = 0.0
        return self.base.now() + self._skew

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return self.base.wait(event, seconds)


def make_clock(scale: float | None, origin: float | None, skew_file: Path | None = None) -> Clock:
    """The wall clock when `scale` is None or 1, else a `ScaledClock` (origin: now); skewed
    by the seconds in `skew_file` when given (fault injection)."""
    base: Clock = (
        SystemClock()
        if scale is None or scale == 1
        else ScaledClock(scale, time.time() if origin is None else origin)
    )
    return base if skew_file is None else SkewedClock(base, skew_file)


class FixedClock:
    """A clock that stands still until `set` (the replay of `verify`, unit tests)."""

    scale = 0.0

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

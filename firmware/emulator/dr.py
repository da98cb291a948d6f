"""Demand response in the emulator: the load drops by a fraction while the DR relay
(coil 0) is on, or during a scheduled window, with the energy still integrated exactly.

Windows are `HH:MM-HH:MM` (every day, local time) or `START-END` (UTC seconds).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from firmware.emulator.profiles import DAY_S, Profile


@dataclass(frozen=True)
class Window:
    """[start, end) in seconds: into the local day when `daily`, else UTC."""

    start: float
    end: float
    daily: bool

    def intervals(self, t0: float, t1: float, utc_offset_s: float) -> list[tuple[float, float]]:
        """The window's occurrences overlapping [t0, t1], clipped to it (UTC seconds)."""
        if not self.daily:
            return _clip([(self.start, self.end)], t0, t1)
        out = []
        first = math.floor((t0 + utc_offset_s) / DAY_S) - 1
        last = math.floor((t1 + utc_offset_s) / DAY_S)
        for day in range(first, last + 1):
            base = day * DAY_S - utc_offset_s
            end = self.end if self.end > self.start else self.end + DAY_S  # past midnight
            out.append((base + self.start, base + end))
        return _clip(out, t0, t1)


def parse_window(text: str) -> Window:
    """`HH:MM-HH:MM` (daily, local time; may run past midnight) or `START-END` (UTC s)."""
    start, sep, end = text.partition("-")
    try:
        if not sep:
            raise ValueError
        if ":" in start:
            a, b = _clock(start), _clock(end)
            if a == b:
                raise ValueError
            return Window(a, b, daily=True)
        a, b = float(start), float(end)
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise ValueError
        return Window(a, b, daily=False)
    except ValueError:
        raise ValueError(
            f"bad DR window {text!r}: use HH:MM-HH:MM (daily, local) or START-END (UTC s)"
        ) from None


def _clock(text: str) -> float:
    hh, _, mm = text.partition(":")
    h, m = int(hh), int(mm)
    if not (0 <= h <= 24 and 0 <= m < 60 and h * 60 + m <= 1440):
        raise ValueError
    return h * 3600.0 + m * 60.0


def _clip(intervals: list[tuple[float, float]], t0: float, t1: float) -> list[tuple[float, float]]:
    return [(max(a, t0), min(b, t1)) for a, b in intervals if a < t1 and b > t0]


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


class ControlledLoad:
    """`base` reduced by `drop` (0..1) while the relay is on or a window is open.

    Relay switchings are recorded with their time, so `energy_wh` over any past span is
    exact. Thread-safe: the relay is switched from the Modbus side, the energy read by
    the ground-truth recorder.
    """

    def __init__(
        self,
        base: Profile,
        drop: float = 0.0,
        windows: tuple[Window, ...] = (),
        utc_offset_s: float = 0.0,
    ) -> None:
        if not 0.0 <= drop <= 1.0:
            raise ValueError(f"DR drop must be between 0 and 1, not {drop}")
        self.base = base
        self.drop = drop
        self.windows = windows
        self.utc_offset_s = utc_offset_s
        self._switched: list[tuple[float, bool]] = []  # (time, relay on), in time order
        self._lock = threading.Lock()

    def set_relay(self, t: float, on: bool) -> None:
        with self._lock:
            if self.relay_on(t) != on:
                self._switched.append((t, on))

    def relay_on(self, t: float) -> bool:
        on = False
        for when, state in self._switched:
            if when > t:
                break
            on = state
        return on

    def reduced(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """The spans within [t0, t1] during which the load is reduced."""
        spans: list[tuple[float, float]] = []
        with self._lock:
            switched = list(self._switched)
        start = None
        for when, on in switched:
            if on and start is None:
                start = when
            elif not on and start is not None:
                spans.append((start, when))
                start = None
        if start is not None:
            spans.append((start, math.inf))
        for window in self.windows:
            spans.extend(window.intervals(t0, t1, self.utc_offset_s))
        return _union(_clip(spans, t0, t1))

    def power_w(self, t: float) -> float:
        power = self.base.power_w(t)
        if self.drop and self.reduced_at(t):
            return power * (1.0 - self.drop)
        return power

    def reduced_at(self, t: float) -> bool:
        if self.relay_on(t):
            return True
        return any(
            a <= t < b
            for w in self.windows
            for a, b in w.intervals(t - 1, t + 1, self.utc_offset_s)
        )

    def energy_wh(self, t0: float, t1: float) -> float:
        if t1 < t0:
            return -self.energy_wh(t1, t0)
        energy = self.base.energy_wh(t0, t1)
        if self.drop:
            energy -= self.drop * sum(self.base.energy_wh(a, b) for a, b in self.reduced(t0, t1))
        return energy

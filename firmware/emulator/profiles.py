"""Load profiles: power (W) as a function of UTC time, with exact energy integrals (Wh).

`constant:W`, `steps:W1,W2,...` (one level per slot, changing mid-slot), `household[:PEAK_W]`
(a daily curve of a Japanese household, linear between hourly points, in local time)
and `csv:PATH` (a day of `seconds,watts` rows in local time, each level held until the
next row). Every profile integrates exactly, so the ground truth per slot is exact.
"""

from __future__ import annotations

import bisect
import csv
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Protocol

DAY_S = 86_400


class Profile(Protocol):
    def power_w(self, t: float) -> float:
        """Active power at time `t` (UTC seconds), W."""
        ...

    def energy_wh(self, t0: float, t1: float) -> float:
        """Energy drawn in [t0, t1], Wh (exact, not sampled)."""
        ...


@dataclass(frozen=True)
class Constant:
    """A constant load."""

    watts: float

    def power_w(self, t: float) -> float:
        return self.watts

    def energy_wh(self, t0: float, t1: float) -> float:
        return self.watts * (t1 - t0) / 3600.0


@dataclass(frozen=True)
class Steps:
    """A load that cycles through `levels` (W), one level per `step_s`, shifted by `offset_s`.

    With `step_s` equal to the slot length and `offset_s` half of it, the load changes in
    the middle of each slot and stays constant around every slot boundary.
    """

    levels: tuple[float, ...]
    step_s: float
    offset_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.levels or self.step_s <= 0:
            raise ValueError("steps need at least one level and a positive step length")

    def _index(self, k: int) -> float:
        return self.levels[k % len(self.levels)]

    def power_w(self, t: float) -> float:
        return self._index(math.floor((t - self.offset_s) / self.step_s))

    def energy_wh(self, t0: float, t1: float) -> float:
        if t1 < t0:
            return -self.energy_wh(t1, t0)
        # Whole cycles at once, then step by step: exact for any span.
        cycle_s = self.step_s * len(self.levels)
        cycle_wh = sum(self.levels) * self.step_s / 3600.0
        cycles = math.floor((t1 - t0) / cycle_s)
        total = cycles * cycle_wh
        t = t0 + cycles * cycle_s
        while t < t1:
            k = math.floor((t - self.offset_s) / self.step_s)
            step_end = min(self.offset_s + (k + 1) * self.step_s, t1)
            total += self._index(k) * (step_end - t) / 3600.0
            t = step_end
        return total


@dataclass(frozen=True)
class Daily:
    """A load repeating every day: points `(seconds into the local day, W)`, joined by
    straight lines (`linear`) or each held until the next point; local time is UTC plus
    `utc_offset_s`. The last point joins the first of the next day."""

    points: tuple[tuple[float, float], ...]
    linear: bool
    utc_offset_s: float = 0.0

    def __post_init__(self) -> None:
        times = [p[0] for p in self.points]
        if not self.points or times[0] != 0 or times != sorted(set(times)):
            raise ValueError("daily points must start at 0 s and increase")
        if times[-1] >= DAY_S:
            raise ValueError(f"daily points must lie within the day (< {DAY_S} s)")
        if any(not math.isfinite(w) or w < 0 for _, w in self.points):
            raise ValueError("power must be a finite number >= 0 W (export is not modelled)")

    def _segment(self, i: int) -> tuple[float, float, float, float]:
        """Segment i: start and end (s into the day), power at its start and its end."""
        t0, w0 = self.points[i]
        t1, w1 = self.points[i + 1] if i + 1 < len(self.points) else (DAY_S, self.points[0][1])
        return t0, t1, w0, (w1 if self.linear else w0)

    @cached_property
    def _starts(self) -> tuple[list[float], list[float]]:
        """Segment start times, and the energy from midnight to each start (Wh)."""
        times: list[float] = []
        cumulative: list[float] = []
        total = 0.0
        for i in range(len(self.points)):
            t0, t1, w0, w1 = self._segment(i)
            times.append(t0)
            cumulative.append(total)
            total += (w0 + w1) / 2 * (t1 - t0) / 3600.0
        return times, cumulative

    def _local(self, t: float) -> tuple[float, float]:
        """(start of the local day as UTC seconds, seconds into it)."""
        local = t + self.utc_offset_s
        day = math.floor(local / DAY_S) * DAY_S
        return day - self.utc_offset_s, local - day

    def _at(self, s: float) -> tuple[float, float]:
        """(power, W; energy since midnight, Wh) at `s` seconds into the day (0..DAY_S)."""
        times, cumulative = self._starts
        i = max(bisect.bisect_right(times, s) - 1, 0)
        t0, t1, w0, w1 = self._segment(i)
        p = w0 + (w1 - w0) * (s - t0) / (t1 - t0)
        return p, cumulative[i] + (w0 + p) / 2 * (s - t0) / 3600.0

    def power_w(self, t: float) -> float:
        return self._at(self._local(t)[1])[0]

    def energy_wh(self, t0: float, t1: float) -> float:
        if t1 < t0:
            return -self.energy_wh(t1, t0)
        day0, s0 = self._local(t0)
        day1, s1 = self._local(t1)
        days = round((day1 - day0) / DAY_S)
        return self._at(s1)[1] - self._at(s0)[1] + days * self._at(DAY_S)[1]


HOUSEHOLD_SHAPE = (
    0.18, 0.15, 0.14, 0.14, 0.15, 0.22, 0.45, 0.70, 0.55, 0.35, 0.30, 0.32,
    0.38, 0.33, 0.30, 0.32, 0.40, 0.60, 0.90, 1.00, 0.92, 0.75, 0.50, 0.28,
)  # fmt: skip
"""Hourly share of the evening peak: night base load, a breakfast peak at 7:00, the
evening peak (cooking, lighting, bath, air conditioning) at 19:00."""


def household(peak_w: float, utc_offset_s: float) -> Daily:
    """The daily household curve scaled to `peak_w` at its evening peak."""
    if not math.isfinite(peak_w) or peak_w <= 0:
        raise ValueError("household peak must be a positive number of W")
    points = tuple((3600.0 * h, peak_w * share) for h, share in enumerate(HOUSEHOLD_SHAPE))
    return Daily(points, linear=True, utc_offset_s=utc_offset_s)


MAX_CSV_ROWS = 100_000


def read_csv(path: Path, utc_offset_s: float) -> Daily:
    """A day of `seconds,watts` rows (a header line is allowed), each held until the next."""
    points: list[tuple[float, float]] = []
    try:
        with path.open(newline="") as f:
            for n, row in enumerate(csv.reader(f), start=1):
                if not row or (n == 1 and not _is_number(row[0])):
                    continue
                if len(row) != 2 or len(points) >= MAX_CSV_ROWS:
                    raise ValueError(f"{path}:{n}: want `seconds,watts` (at most {MAX_CSV_ROWS})")
                try:
                    points.append((float(row[0]), float(row[1])))
                except ValueError:
                    raise ValueError(f"{path}:{n}: not numbers: {row}") from None
    except OSError as exc:
        raise ValueError(f"cannot read profile {path}: {exc.strerror}") from None
    try:
        return Daily(tuple(points), linear=False, utc_offset_s=utc_offset_s)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_profile(spec: str, slot_s: float, utc_offset_h: float = 9.0) -> Profile:
    """`constant:W`, `steps:W1,W2,...`, `household[:PEAK_W]` or `csv:PATH`; local times of
    the daily profiles are UTC + `utc_offset_h` (Japan: 9)."""
    kind, _, arg = spec.partition(":")
    offset_s = utc_offset_h * 3600.0
    try:
        if kind == "constant":
            watts = float(arg)
            if not math.isfinite(watts) or watts < 0:
                raise ValueError("power must be >= 0 W")
            return Constant(watts)
        if kind == "steps":
            levels = tuple(float(x) for x in arg.split(","))
            if any(not math.isfinite(w) or w < 0 for w in levels):
                raise ValueError("levels must be >= 0 W")
            return Steps(levels, slot_s, slot_s / 2)
        if kind == "household":
            return household(float(arg) if arg else 3000.0, offset_s)
        if kind == "csv":
            return read_csv(Path(arg), offset_s)
    except ValueError as exc:
        raise ValueError(f"bad profile {spec!r}: {exc}") from None
    raise ValueError(
        f"unknown profile {spec!r}; use constant:W, steps:W1,W2,..., household[:PEAK_W] or csv:PATH"
    )

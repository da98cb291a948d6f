"""Load profiles: power (W) as a function of UTC time, with exact energy integrals (Wh)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


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


def parse_profile(spec: str, slot_s: float) -> Profile:
    """`constant:W` or `steps:W1,W2,...` (one level per slot, changing mid-slot)."""
    kind, _, arg = spec.partition(":")
    try:
        if kind == "constant":
            return Constant(float(arg))
        if kind == "steps":
            levels = tuple(float(x) for x in arg.split(","))
            return Steps(levels, slot_s, slot_s / 2)
    except ValueError as exc:
        raise ValueError(f"bad profile {spec!r}: {exc}") from None
    raise ValueError(f"unknown profile {spec!r}; use constant:W or steps:W1,W2,...")

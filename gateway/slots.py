"""From polled cumulative-energy samples to each meter's energy per slot, with quality flags.

A meter's slot energy is the difference of its cumulative import register at the slot's
two boundaries, each boundary value interpolated linearly between the polls around it.
Implausible steps (NaN, going backwards, a counter reset, more energy than the meter's
maximum power allows) contribute nothing and flag every slot they touch: a reading is never
dropped silently, and an implausible value never enters a total unflagged.

Integer Wh per slot are differences of the rounded boundary values, so the slot energies
of a meter add up exactly to its register's advance over any run of slots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

RESET_FRACTION = 0.01
"""A cumulative value below this fraction of the previous one counts as a counter reset."""

GAP_POLLS = 2.5
"""Polls this many intervals apart (or more) around a boundary make its value estimated."""

TOLERANCE_WH = 0.5
"""Slack for float32 rounding of the register before a step counts as backwards or a jump."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One poll of a meter: time (UTC s, mid-transaction) and cumulative import, Wh."""

    meter: str
    t: float
    energy_wh: float


@dataclass(frozen=True, slots=True)
class SlotEnergy:
    """A meter's energy in the slot starting at `slot_start` (UTC s), integer Wh."""

    meter: str
    slot_start: int
    wh: int
    quality: frozenset[str]


class MeterSlots:
    """Turns one meter's samples into `SlotEnergy`s as slots end.

    The first slot is reported only if its start boundary was observed: a gateway that
    starts mid-slot does not report the part of the slot it did not see as the whole.
    """

    def __init__(self, meter: str, slot_s: int, poll_s: float, max_power_w: float) -> None:
        self.meter = meter
        self.slot_s = slot_s
        self.poll_s = poll_s
        self.max_power_w = max_power_w
        self._prev: Sample | None = None
        self._valid_wh = 0.0  # first register value plus the energy of plausible steps since
        self._slot = 0  # start of the slot being accumulated
        self._start_wh: int | None = None  # rounded _valid_wh at that slot's start
        self._flags: set[str] = set()

    def add(self, sample: Sample) -> list[SlotEnergy]:
        """Feed the next sample (in time order); return the slots it completes."""
        if not math.isfinite(sample.energy_wh):
            self._flags.add("nan")
            return []
        prev = self._prev
        if prev is None:
            self._prev = sample
            self._valid_wh = sample.energy_wh
            self._slot = self._slot_of(sample.t)
            return []
        if sample.t <= prev.t:
            return []  # out of order or repeated: nothing new
        dt = sample.t - prev.t
        delta = sample.energy_wh - prev.energy_wh
        step_flags = self._judge(prev.energy_wh, sample.energy_wh, delta, dt)
        plausible = not step_flags - {"estimated"}
        gain = delta if plausible else 0.0
        self._flags |= step_flags
        done: list[SlotEnergy] = []
        boundary = self._slot + self.slot_s
        while boundary <= sample.t:
            at_boundary = self._valid_wh + gain * (boundary - prev.t) / dt
            rounded = round(at_boundary)
            if self._start_wh is not None:
                wh = rounded - self._start_wh
                done.append(SlotEnergy(self.meter, self._slot, wh, frozenset(self._flags)))
            self._slot, self._start_wh = boundary, rounded
            # The step that crossed the boundary also belongs to the next slot.
            self._flags = set(step_flags) if sample.t > boundary else set()
            boundary += self.slot_s
        self._valid_wh += gain
        self._prev = sample
        return done

    def _judge(self, before: float, after: float, delta: float, dt: float) -> set[str]:
        flags: set[str] = set()
        if dt > GAP_POLLS * self.poll_s:
            flags.add("estimated")
        if delta < -TOLERANCE_WH:
            flags.add("counter_reset" if after < RESET_FRACTION * before else "backwards")
        elif delta > self.max_power_w * dt / 3600.0 + TOLERANCE_WH:
            flags.add("jump")
        return flags

    def _slot_of(self, t: float) -> int:
        return math.floor(t / self.slot_s) * self.slot_s

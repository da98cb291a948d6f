"""From polled cumulative-energy samples to each meter's energy per slot, with quality flags.

A meter's slot energy is the difference of its cumulative import register at the slot's
two boundaries, each boundary value interpolated linearly between the polls around it.
Implausible steps (NaN, going backwards, a counter reset, more energy than the meter's
maximum power allows) contribute nothing and flag every slot they touch: a reading is never
dropped silently, and an implausible value never enters a total unflagged.

Integer Wh per slot are differences of the rounded boundary values, so the slot energies
of a meter add up exactly to its register's advance over any run of slots.

Each `SlotEnergy` carries the meter's state just after the boundary that ended it
(`resume`). The gateway stores it in the transaction that stores the batch holding that
slot; after a restart, `MeterSlots.restore` continues from there, so the slot the gateway
restarts in is reported (its lost polls are bridged by the cumulative register, flagged
`estimated` where a boundary fell in the gap), and no slot is reported twice.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("mlg.gateway.slots")

RESET_FRACTION = 0.01
"""A cumulative value below this fraction of the previous one counts as a counter reset."""

GAP_POLLS = 2.5
"""Polls this many intervals apart (or more) around a boundary make its value estimated."""

TOLERANCE_WH = 0.5
"""Slack for float32 rounding of the register before a step counts as backwards or a jump."""

METER_TIME = -1
"""A `Sample.clock_gen` saying the time is the meter's own (a B-route 0xEA boundary), not
the gateway's: clock corrections never move it."""

MAX_GAP_S = 86_400
"""A gap in polls longer than this (s) is not bridged by estimated slots: the meter starts
afresh, and the gap's energy is logged and counted, not spread over a day of slots."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One poll of a meter: time (UTC s, mid-transaction) and cumulative import, Wh."""

    meter: str
    t: float
    energy_wh: float
    clock_gen: int = field(default=0, compare=False)
    """The gateway clock's correction `generation` that `t` was read in (`METER_TIME`: the
    meter's clock, not the gateway's)."""


@dataclass(frozen=True, slots=True)
class SlotEnergy:
    """A meter's energy in the slot starting at `slot_start` (UTC s), integer Wh."""

    meter: str
    slot_start: int
    wh: int
    quality: frozenset[str]
    resume: str = field(default="", compare=False, repr=False)
    """The meter's state just after this slot's end boundary (JSON, see `MeterSlots`)."""


class MeterSlots:
    """Turns one meter's samples into `SlotEnergy`s as slots end.

    The first slot is reported only if its start boundary was observed: a gateway that
    starts mid-slot does not report the part of the slot it did not see as the whole.
    """

    def __init__(
        self,
        meter: str,
        slot_s: int,
        poll_s: float,
        max_power_w: float,
        min_wh: float | None = 0.0,
        max_wh: float | None = None,
        on_boundaries: bool = False,
    ) -> None:
        self.meter = meter
        self.on_boundaries = on_boundaries
        """Samples are the meter's own readings at slot boundaries (B-route 0xEA): the
        first one, on a boundary, observes its slot's start."""
        self.slot_s = slot_s
        self.poll_s = poll_s
        self.max_power_w = max_power_w
        self.min_wh = min_wh
        self.max_wh = max_wh
        self.gaps_unreported = 0
        self._prev: Sample | None = None
        self._valid_wh = 0.0  # first register value plus the energy of plausible steps since
        self._slot = 0  # start of the slot being accumulated
        self._start_wh: int | None = None  # rounded _valid_wh at that slot's start
        self._flags: set[str] = set()

    def restore(self, state: str) -> None:
        """Continue from a `SlotEnergy.resume` state stored before a restart."""
        obj: dict[str, Any] = json.loads(state)
        self._prev = Sample(self.meter, float(obj["t"]), float(obj["e"]))
        self._valid_wh = float(obj["valid"])
        self._slot = int(obj["slot"])
        self._start_wh = int(obj["start"])
        self._flags = set()

    @property
    def last(self) -> tuple[float, float] | None:
        """The last sample's time (UTC s) and cumulative energy (Wh), if any."""
        return None if self._prev is None else (self._prev.t, self._prev.energy_wh)

    @property
    def slot(self) -> int | None:
        """Start of the slot being accumulated (None before the first sample)."""
        return None if self._prev is None else self._slot

    def add(self, sample: Sample) -> list[SlotEnergy]:
        """Feed the next sample (in time order); return the slots it completes."""
        if not math.isfinite(sample.energy_wh):
            self._flags.add("nan")
            return []
        if (self.min_wh is not None and sample.energy_wh < self.min_wh) or (
            self.max_wh is not None and sample.energy_wh > self.max_wh
        ):
            self._flags.add("out_of_range")
            return []
        prev = self._prev
        if prev is not None and sample.t - prev.t > MAX_GAP_S:
            self.gaps_unreported += 1
            log.error(
                "meter %s: no poll for %.0f s (register %+.0f Wh); starting afresh, the slots "
                "in the gap are not reported",
                self.meter,
                sample.t - prev.t,
                sample.energy_wh - prev.energy_wh,
            )
            prev = self._prev = None
            self._start_wh = None
        if prev is None:
            self._prev = sample
            self._valid_wh = sample.energy_wh
            self._slot = self._slot_of(sample.t)
            self._flags = set()
            if self.on_boundaries and sample.t == self._slot:
                self._start_wh = round(sample.energy_wh)
            return []
        if sample.t <= prev.t - self.slot_s:
            # Far behind the last poll: that poll's time was wrong (a clock correction it
            # missed). Waiting for time to catch up with it would drop every poll until then.
            self.gaps_unreported += 1
            log.error(
                "meter %s: a poll at %.0f is %.0f s before the last one; starting afresh,"
                " the slot in progress is not reported",
                self.meter,
                sample.t,
                prev.t - sample.t,
            )
            self._prev, self._start_wh = sample, None
            self._valid_wh = sample.energy_wh
            self._slot = self._slot_of(sample.t)
            self._flags = set()
            return []
        if sample.t <= prev.t:
            return []  # out of order or repeated: nothing new
        dt = sample.t - prev.t
        delta = sample.energy_wh - prev.energy_wh
        step_flags = self._judge(prev.energy_wh, sample.energy_wh, delta, dt)
        plausible = not step_flags - {"estimated"}
        # A plausible step is never negative: float32 noise below the tolerance counts as 0.
        gain = max(delta, 0.0) if plausible else 0.0
        self._flags |= step_flags
        done: list[SlotEnergy] = []
        boundary = self._slot + self.slot_s
        while boundary <= sample.t:
            at_boundary = self._valid_wh + gain * (boundary - prev.t) / dt
            rounded = round(at_boundary)
            if self._start_wh is not None:
                wh = rounded - self._start_wh
                resume = json.dumps(
                    {"t": prev.t, "e": prev.energy_wh, "valid": self._valid_wh}
                    | {"slot": boundary, "start": rounded}
                )
                done.append(SlotEnergy(self.meter, self._slot, wh, frozenset(self._flags), resume))
            self._slot, self._start_wh = boundary, rounded
            # The step that crossed the boundary also belongs to the next slot.
            self._flags = set(step_flags) if sample.t > boundary else set()
            boundary += self.slot_s
        self._valid_wh += gain
        self._prev = sample
        return done

    def rebase(self, shift_s: float) -> bool:
        """The gateway's time was corrected by `shift_s` (s): move the last sample with it.
        False when it leaves the slot in progress, which then goes unreported (logged and
        counted in `gaps_unreported`): its start was measured on the wrong time."""
        prev = self._prev
        if prev is None or not shift_s or self.on_boundaries:
            return True  # (the meter's own boundary readings are on the meter's time)
        t = prev.t + shift_s
        self._prev = Sample(self.meter, t, prev.energy_wh)
        if self._slot <= t < self._slot + self.slot_s:
            return True
        self.gaps_unreported += 1
        log.error(
            "meter %s: the clock was corrected by %+.0f s; the slot in progress is not"
            " reported (its start was measured on the wrong time)",
            self.meter,
            shift_s,
        )
        self._slot, self._start_wh, self._flags = self._slot_of(t), None, set()
        return False

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

"""Polls into slots on a time the gateway trusts.

Until the clock is settled (the first fresh signed time of a node, or `wait_s` without
one) polls are kept aside, not cut into slots: a Pi that booted with last week's time
would otherwise cut them at the wrong boundaries. Each poll carries the clock's correction
`generation`; it is moved into the gateway's current time before it is cut, and a later
correction moves each meter's last poll with it (`MeterSlots.rebase`). Times are UTC
seconds on the gateway's clock.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping

from gateway.slots import METER_TIME, MeterSlots, Sample, SlotEnergy
from gateway.timekeeping import DisciplinedClock

log = logging.getLogger("mlg.gateway.time")

MIN_WAIT_REAL_S = 10.0
"""The shortest wait (real seconds) for a node's signed time at start."""
MAX_EARLY = 50_000
"""Polls kept aside at most while the clock is not settled (a few MB); older ones drop."""


class TimeGate:
    """Feeds `slots` with samples once `clock` is settled, moved by its corrections."""

    def __init__(
        self,
        clock: DisciplinedClock,
        slots: Mapping[str, MeterSlots],
        wait_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.slots = slots
        self.wait_s = wait_s
        """Gateway-clock seconds to wait for a node's time before trusting the system's."""
        self.monotonic = monotonic
        self.dropped = 0
        self._early: deque[Sample] = deque(maxlen=MAX_EARLY)
        self._since = monotonic()
        self._gen: int | None = None  # the clock generation the slots are in, once settled

    @property
    def waiting(self) -> bool:
        """True while polls are kept aside for want of a trusted time."""
        return self._gen is None

    def add(self, sample: Sample) -> list[SlotEnergy]:
        """Take one poll; return the slots it (and any polls kept aside) completes."""
        done = self.check()
        if self._gen is None:
            if len(self._early) == self._early.maxlen:
                self.dropped += 1
            self._early.append(sample)
            return done
        return done + self._feed(sample, self._gen)

    def check(self) -> list[SlotEnergy]:
        """Settle (on the system clock after `wait_s`), follow corrections, release polls."""
        if self._gen is None:
            # `wait_s` of the gateway's clock, but never less than MIN_WAIT_REAL_S real
            # seconds: connecting and the first signed time do not speed up with a lab clock.
            wait_real = max(self.wait_s / max(self.clock.rate, 1e-9), MIN_WAIT_REAL_S)
            if not self.clock.settled and self.monotonic() - self._since >= wait_real:
                log.warning(
                    "no fresh signed time from the nodes in %.0f s: slots follow the system clock",
                    self.wait_s,
                )
                self.clock.trust_system()
            if not self.clock.settled:
                return []
            # Nothing of this run is in the slots yet (a restored state is true time).
            gen = self._gen = self.clock.generation
            moved = self.clock.moved(0, gen)
            if moved:
                log.warning("the clock was %+.0f s off at start: polls moved with it", -moved)
            early, self._early = list(self._early), deque()
            done: list[SlotEnergy] = []
            for s in early:
                done += self._feed(s, gen)
            return done
        gen = self.clock.generation
        if gen != self._gen:
            moved = self.clock.moved(self._gen, gen)
            log.warning("the clock was corrected by %+.0f s", moved)
            for meter_slots in self.slots.values():
                meter_slots.rebase(moved)
            self._gen = gen
        return []

    def _feed(self, sample: Sample, gen: int) -> list[SlotEnergy]:
        """Cut `sample` into its meter's slots, its time moved into generation `gen` (unless
        it is on the meter's own clock)."""
        if sample.clock_gen == METER_TIME:
            return self.slots[sample.meter].add(sample)
        t = sample.t + self.clock.moved(sample.clock_gen, gen)
        return self.slots[sample.meter].add(Sample(sample.meter, t, sample.energy_wh, gen))

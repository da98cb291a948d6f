"""The gateway's clock, kept to the nodes' signed time: slots are assigned by it.

A Raspberry Pi has no real-time clock: it may boot with an old time before NTP corrects
it, and NTP (or an operator) may step the clock by minutes or hours. A slot's energy is
only right if its boundaries are, so the gateway does not trust its system clock alone:

- a **step** of the system clock (its change not matched by the monotonic clock) is
  absorbed at once: the gateway's time goes on smoothly, and the step is an alarm;
- the nodes' **signed times** (fresh high-water marks and checkpoints of the nodes it
  trusts) say what time it is, each node's by the least delayed of its recent ones (a
  time held up on the way, by a stalled link or a broker's queue, only makes the system
  clock look ahead, never behind): while one of them agrees (within `max_skew_s`) with the
  system clock, or with the time the gateway keeps, nothing changes; when none agrees and
  `quorum` of them agree with each other (the confirmation quorum: one node's wrong clock
  moves nothing), the gateway takes their time (an offset from its system clock) and
  raises `clock_skew` until the system clock agrees with a node again.

So no slot is invented by a forward jump, none is lost by a backward one, and a wrong
clock at boot is corrected by the first fresh mark: until that mark (or `clock_wait_s`
without one) the clock is not `settled`, and the gateway keeps its polls aside, to move
them by the correction once it is known. Each correction starts a new `generation`: a time
read in an older one is `moved_since` that many seconds off the gateway's time now. All
times are UTC seconds.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Callable

from ledger_node.shared.clock import Clock

STEP_S = 2.0
"""A change of the system clock this much (clock seconds) beyond what the monotonic clock
says has passed is a step, not drift."""
SAMPLE_MAX_AGE_S = 120.0
"""A node's time sample counts for this many real seconds."""
SAMPLES_PER_NODE = 256
"""A node's recent times kept (at most), of which the least delayed counts."""
TRANSIT_S = 2.0
"""Real seconds a signed time may take to arrive (broker, network, a busy node or
gateway); with the whole seconds the nodes sign, added to the slack before a sample says
"skewed". A false correction costs the slots in progress, a clock off by a few seconds
only that much of a slot's energy at its boundaries: the slack errs on the wide side."""


class DisciplinedClock:
    """`base` corrected for steps and for its offset from the nodes' signed times."""

    def __init__(
        self,
        base: Clock,
        max_skew_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        quorum: int = 1,
    ) -> None:
        self.base = base
        self.quorum = quorum
        """Nodes that must agree on a time before the gateway takes it over its own."""
        self.monotonic = monotonic
        self.max_skew_s = max_skew_s
        self.rate = getattr(base, "scale", 1.0)
        """Clock seconds per real second (a `ScaledClock` runs faster)."""
        self.offset = 0.0
        """The system clock minus the gateway's time, seconds."""
        self.steps = 0
        self.last_step = 0.0
        self.verified = False
        """True once a fresh signed time of a node arrived."""
        self.settled = False
        """True once verified, or once the system clock is trusted without (`trust_system`)."""
        self.generation = 0
        """How many times the nodes' time corrected the gateway's."""
        self._moved = [0.0]  # generation → how far (s) the gateway's time moved until then
        # node → its recent (system - node, mono), oldest first
        self._samples: dict[str, deque[tuple[float, float]]] = {}
        self._last: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.stamp()[0]

    def stamp(self) -> tuple[float, int]:
        """The time now and the `generation` it is in, read together."""
        with self._lock:
            t, mono = self.base.now(), self.monotonic()
            if self._last is not None and self.rate > 0:  # a fixed clock is set on purpose
                expected = self._last[0] + (mono - self._last[1]) * self.rate
                step = t - expected
                if abs(step) > STEP_S * max(self.rate, 1.0):
                    self.offset += step
                    self.steps += 1
                    self.last_step = step
                    # The nodes' samples were taken against the system clock before it.
                    self._samples = {
                        n: deque(((d + step, m) for d, m in r), maxlen=SAMPLES_PER_NODE)
                        for n, r in self._samples.items()
                    }
            self._last = (t, mono)
            return t - self.offset, self.generation

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return self.base.wait(event, seconds)

    def observe(self, node: str, node_t: float) -> None:
        """A fresh signed time `node_t` from `node`, just received."""
        self.now()  # absorb any step first
        with self._lock:
            mono = self.monotonic()
            system = self.base.now()
            # Nodes sign whole seconds (truncated): the middle of that second is nearest.
            recent = self._samples.setdefault(node, deque(maxlen=SAMPLES_PER_NODE))
            recent.append((system - (node_t + 0.5), mono))
            while mono - recent[0][1] > SAMPLE_MAX_AGE_S:
                recent.popleft()
            # A delay only adds to system - node: the smallest is the nearest the truth.
            fresh = [
                min(ds)
                for r in self._samples.values()
                if (ds := [d for d, m in r if mono - m <= SAMPLE_MAX_AGE_S])
            ]
            if not fresh:
                return
            slack = self.slack_s
            offset: float | None = self.offset
            if any(abs(d) <= slack for d in fresh):
                offset = 0.0  # a node agrees with the system clock: it is right (again)
            elif not any(abs(d - self.offset) <= slack for d in fresh):
                # None agrees with the gateway's time: take the nodes', once `quorum` of
                # them agree with each other (one node's wrong clock moves nothing).
                middle = statistics.median(fresh)
                near = [d for d in fresh if abs(d - middle) <= slack]
                offset = statistics.median(near) if len(near) >= self.quorum else None
            if offset is None:
                return
            if offset != self.offset:
                self._moved.append(self._moved[-1] + self.offset - offset)
                self.generation += 1
                self.offset = offset
            self.verified = self.settled = True

    def trust_system(self) -> None:
        """Go on with the system clock (no node to ask, or none answered in time)."""
        with self._lock:
            self.settled = True

    def moved(self, since: int, until: int) -> float:
        """Seconds to add to a time of generation `since` to have it in generation `until`."""
        with self._lock:
            return self._moved[until] - self._moved[since]

    @property
    def slack_s(self) -> float:
        """How far (clock seconds) the nodes' signed times may seem off before they count:
        `max_skew_s`, their whole-second resolution and their transit (which a sped-up
        clock multiplies)."""
        return self.max_skew_s + 1.0 + TRANSIT_S * self.rate

    @property
    def skewed(self) -> bool:
        """True while the system clock is off the nodes' time beyond the slack."""
        return abs(self.offset) > self.slack_s

    def describe(self) -> str:
        return (
            f"the system clock is {self.offset:+.0f} s off the nodes' signed time (more than"
            f" {self.slack_s:g} s): slots follow the nodes' time; fix the clock (NTP)"
        )

"""The gateway's clock against steps of its system clock and against the nodes' signed
time, in process with a hand-moved system clock and monotonic clock."""

from __future__ import annotations

import threading

from gateway.timekeeping import DisciplinedClock

T0 = 1_800_000_000.0


class HandClock:
    """A system clock (and the monotonic clock beside it) moved by hand."""

    scale = 1.0

    def __init__(self) -> None:
        self.t = T0
        self.mono = 100.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        self.advance(seconds)
        return event.is_set()

    def advance(self, seconds: float) -> None:
        """Time passes: both clocks move."""
        self.t += seconds
        self.mono += seconds

    def step(self, seconds: float) -> None:
        """The system clock is set (NTP, an operator): only it moves."""
        self.t += seconds


def _clock() -> tuple[HandClock, DisciplinedClock]:
    base = HandClock()
    return base, DisciplinedClock(base, 5.0, monotonic=lambda: base.mono)


def test_a_step_of_the_system_clock_is_absorbed_and_an_alarm() -> None:
    for step in (3600.0, -3600.0):
        base, clock = _clock()
        assert clock.now() == T0
        base.advance(10)
        base.step(step)
        assert clock.now() == T0 + 10  # time goes on as if nothing happened
        base.advance(50)
        assert clock.now() == T0 + 60
        assert (clock.steps, clock.offset, clock.skewed) == (1, step, True)
        assert f"{step:+.0f} s off" in clock.describe()
        # The clock is set right again: a step back, absorbed too; the alarm ends.
        base.step(-step)
        assert clock.now() == T0 + 60 and clock.offset == 0 and not clock.skewed


def test_a_wrong_clock_at_boot_follows_the_nodes_signed_time() -> None:
    base, clock = _clock()
    base.t = T0 - 3600  # booted an hour behind, before NTP
    assert clock.now() == T0 - 3600
    clock.observe("tso", T0)  # a fresh mark: the node's time
    assert abs(clock.now() - T0) < 1e-6 and clock.skewed
    base.advance(30)
    clock.observe("ac1", T0 + 30)
    assert abs(clock.now() - (T0 + 30)) < 1e-6
    # NTP sets the system clock right: absorbed as a step; no alarm once the nodes agree.
    base.step(3600)
    assert abs(clock.now() - (T0 + 30)) < 1e-6
    clock.observe("tso", T0 + 30)
    assert clock.offset == 0 and not clock.skewed


def test_transit_and_whole_seconds_within_the_slack_change_nothing() -> None:
    base, clock = _clock()
    for k, late in enumerate((0.4, 1.9, 3.2, 0.0)):
        base.advance(20)
        clock.observe(f"n{k % 2}", int(base.t - late))  # nodes sign whole seconds
    assert clock.offset == 0 and not clock.skewed
    # One node far off does not move the clock while the others agree (median).
    clock.observe("n2", T0)  # an hour and more behind
    clock.observe("n3", base.t)
    assert clock.offset == 0

"""The gateway's clock against steps of its system clock and against the nodes' signed
time, in process with a hand-moved system clock and monotonic clock; and its bus poller
through a correction, against the emulator."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from gateway.broute.credentials import write_credentials
from gateway.broute.poll import BroutePoller
from gateway.config import BusConfig, MeterConfig
from gateway.config_wisun import WisunOptions
from gateway.meters import broute_model, load_model
from gateway.poll import BusPoller
from gateway.slots import MeterSlots, Sample, SlotEnergy
from gateway.timegate import TimeGate
from gateway.timekeeping import DisciplinedClock
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.clock import SkewedClock, SystemClock
from tests.support.gateway import Emulator
from tests.support.wisun import RIGHT, wisun_line

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


def _poll(clock: DisciplinedClock, wh: float) -> Sample:
    """A poll of m1 now, tagged with the clock's generation as the bus poller tags it."""
    t, gen = clock.stamp()
    return Sample("m1", t, wh, gen)


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
    clock.observe("tso", T0)  # a fresh mark: T0 in whole seconds, so T0 + 0.5 at best
    assert abs(clock.now() - (T0 + 0.5)) < 1e-6 and clock.skewed
    base.advance(30)
    clock.observe("ac1", T0 + 30)
    assert abs(clock.now() - (T0 + 30.5)) < 1e-6
    # NTP sets the system clock right: absorbed as a step; no alarm once the nodes agree.
    base.step(3600)
    assert abs(clock.now() - (T0 + 30.5)) < 1e-6
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


def test_one_node_with_a_wrong_clock_moves_nothing() -> None:
    """Of two confirming nodes (quorum 2) one is an hour behind: whichever speaks first,
    the gateway keeps its system clock (the wrong node raises its own alarm). Were the
    system clock wrong too, the nodes agreeing with the time the gateway keeps hold it."""
    base = HandClock()
    clock = DisciplinedClock(base, 5.0, monotonic=lambda: base.mono, quorum=2)
    for _ in range(3):
        base.advance(10)
        clock.observe("tso", int(base.t) - 3600)
        clock.observe("ac1", int(base.t))
    assert clock.offset == 0 and clock.generation == 0 and clock.verified
    base = HandClock()
    clock = DisciplinedClock(base, 5.0, monotonic=lambda: base.mono, quorum=2)
    base.t = T0 - 3600  # booted an hour behind; both nodes right: corrected
    clock.observe("tso", T0)
    assert not clock.settled  # one node alone does not move it
    clock.observe("ac1", T0)
    assert clock.skewed and clock.generation == 1
    clock.observe("ra1", T0 - 7200)  # a third, wrong, node: the gateway's time stays
    assert clock.generation == 1


def test_polls_wait_for_the_nodes_time_at_boot_and_move_with_it() -> None:
    """A gateway booted an hour behind keeps its polls aside until the first fresh mark,
    then cuts them into slots on the nodes' time: each slot gets its true energy."""
    base, clock = _clock()
    base.t = T0 - 3600
    slots = {"m1": MeterSlots("m1", 60, 1.0, 10_000)}
    gate = TimeGate(clock, slots, wait_s=60, monotonic=lambda: base.mono)
    done: list[SlotEnergy] = []
    for k in range(50):  # 1 Wh a second from T0 - 15 s (true time) on
        done += gate.add(_poll(clock, 1000.0 + k))
        base.advance(1)
    assert gate.waiting and not done
    clock.observe("tso", T0 + 35)  # the node's time: 50 s after T0 - 15 s
    done += gate.check()
    for k in range(50, 200):
        done += gate.add(_poll(clock, 1000.0 + k))
        base.advance(1)
    assert not gate.waiting and clock.generation == 1
    # True time T0 - 15 s .. T0 + 185 s: three full slots from T0 (a slot boundary), 60 Wh
    # each; on the gateway's boot clock they would have been an hour early.
    assert [(e.slot_start - T0, e.wh) for e in done] == [(0, 60), (60, 60), (120, 60)]


def test_without_a_node_time_the_system_clock_is_trusted_after_the_wait() -> None:
    base, clock = _clock()
    slots = {"m1": MeterSlots("m1", 60, 1.0, 10_000)}
    gate = TimeGate(clock, slots, wait_s=30, monotonic=lambda: base.mono)
    done: list[SlotEnergy] = []
    for k in range(200):
        done += gate.add(_poll(clock, float(k)))
        base.advance(1)
    assert not gate.waiting and clock.settled and not clock.verified
    assert [e.wh for e in done][:2] == [60, 60]  # nothing kept aside was lost


def test_a_later_correction_moves_the_last_poll_with_it() -> None:
    base, clock = _clock()
    clock.observe("tso", base.t)
    slots = {"m1": MeterSlots("m1", 60, 1.0, 10_000)}
    gate = TimeGate(clock, slots, wait_s=30, monotonic=lambda: base.mono)
    done: list[SlotEnergy] = []
    k = 0

    def run(seconds: int) -> None:
        nonlocal k, done
        for _ in range(seconds):
            done += gate.add(_poll(clock, float(k)))
            base.advance(1)
            k += 1

    run(130)
    clock.observe("tso", base.t + 19.5)  # the system clock drifted 20 s behind the nodes'
    assert clock.offset == -20
    run(130)
    assert slots["m1"].gaps_unreported == 0
    # Twenty seconds of the gateway's time never happened: the slot holding them has
    # 20 Wh less than a minute's worth; every other full slot has 60 Wh; none lost twice.
    assert sorted(e.wh for e in done) == [40, 60, 60]
    assert sum(e.wh for e in done) == done[-1].slot_start + 60 - done[0].slot_start - 20


def test_signed_times_held_up_on_the_way_do_not_move_the_clock() -> None:
    """A stalled link (or a broker's queue) delivers a burst of the nodes' times a minute
    late: the system clock only looks ahead by that much; each node's least delayed recent
    time says it is right. A clock truly ahead is still corrected by the first time."""
    base, clock = _clock()
    clock.quorum = 2
    for _ in range(5):
        clock.observe("tso", base.t)
        clock.observe("ra1", base.t)
        base.advance(1)
    stalled_at = base.t
    base.advance(60)  # nothing passes; then what was sent meanwhile arrives at once
    for k in range(60):
        clock.observe("tso", stalled_at + k)
        clock.observe("ra1", stalled_at + k)
    assert (clock.offset, clock.generation, clock.skewed) == (0.0, 0, False)
    ahead = HandClock()
    ahead.t += 600  # booted ten minutes ahead
    truly = DisciplinedClock(ahead, 5.0, monotonic=lambda: ahead.mono, quorum=2)
    truly.observe("tso", T0)
    truly.observe("ra1", T0)
    assert truly.skewed and round(truly.offset) == 600


def test_polls_go_on_when_the_clock_is_corrected_an_hour_back(tmp_path: Path) -> None:
    """A Pi booted an hour ahead: once the nodes' time corrects the gateway's, its bus
    poller's grid moves with it (it used to wait an hour for the next poll it had planned).
    The real emulator on a pseudo-terminal, the real poller, the real system clock."""
    skew = tmp_path / "skew"
    skew.write_text("3600")
    link = tmp_path / "rs485-0"
    emulator = Emulator(tmp_path, link, ["1:sdm120:constant:1200"], [], 60)
    clock = DisciplinedClock(SkewedClock(SystemClock(), skew), 5.0)
    samples: list[Sample] = []
    model = load_model("sdm120")
    poller = BusPoller(
        BusConfig("rs485-0", port=str(link), baud=19200, timeout_s=0.3),
        [MeterConfig("m1", "rs485-0", 1, model, 1.0)],
        clock,
        samples.append,
        60,
    )
    poller.start()
    try:
        wait_until(lambda: len(samples) >= 2, 20, "two polls on the skewed clock")
        assert samples[-1].clock_gen == 0
        clock.observe("tso", time.time())  # the nodes' signed time: an hour behind
        assert clock.generation == 1 and round(clock.offset) == 3600
        wait_until(
            lambda: any(s.clock_gen == 1 for s in samples), 5, "a poll on the corrected clock"
        )
        moved = [s for s in samples if s.clock_gen == 1]
        assert abs(moved[0].t - time.time()) < 5  # on the nodes' time
    finally:
        poller.stop()
        poller.join(timeout=5)
        emulator.stop()


def test_a_broute_meters_polls_go_on_when_the_clock_is_corrected_an_hour_back(
    tmp_path: Path,
) -> None:
    """The same for a B-route meter read with 0xE0 on a 1-second grid: the emulated
    Wi-SUN dongle and meter on a pseudo-terminal, the real poller."""
    skew = tmp_path / "skew"
    skew.write_text("3600")
    creds = tmp_path / "broute.toml"
    write_credentials(creds, RIGHT)
    clock = DisciplinedClock(SkewedClock(SystemClock(), skew), 5.0)
    samples: list[Sample] = []
    with wisun_line(SystemClock()) as line:
        options = WisunOptions(creds, "bp35c0", answer_timeout_s=1.0)
        poller = BroutePoller(
            BusConfig.for_wisun("wisun-0", line.pty.device, options, timeout_s=1.0),
            [MeterConfig("m1", "wisun-0", 1, broute_model(), 1.0)],
            clock,
            samples.append,
            60,
            RIGHT,
        )
        poller.start()
        try:
            wait_until(lambda: len(samples) >= 2, 60, "two readings on the skewed clock")
            clock.observe("tso", time.time())  # the nodes' signed time: an hour behind
            assert clock.generation == 1
            wait_until(
                lambda: any(s.clock_gen == 1 for s in samples),
                10,
                "a reading on the corrected clock",
            )
        finally:
            poller.stop()
            poller.join(timeout=10)

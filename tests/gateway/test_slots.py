"""Slot energies from cumulative samples: exact when the data are good, flagged when not."""

from __future__ import annotations

from gateway.slots import MeterSlots, Sample, SlotEnergy

SLOT = 60
MAX_W = 11_000.0


def _feed(slots: MeterSlots, points: list[tuple[float, float]]) -> list[SlotEnergy]:
    out: list[SlotEnergy] = []
    for t, e in points:
        out += slots.add(Sample("m1", t, e))
    return out


def _constant(start: float, end: float, watts: float, e0: float, step: float = 1.0):
    n = int((end - start) / step)
    return [(start + i * step, e0 + watts * (i * step) / 3600) for i in range(n + 1)]


def test_first_partial_slot_is_not_reported_and_the_rest_are_exact() -> None:
    slots = MeterSlots("m1", SLOT, 1.0, MAX_W)
    # 1800 W from t=30.25 with the register at 1000 Wh + 1800 W × 30 s = integer boundaries.
    out = _feed(slots, _constant(30.25, 250, 1800, 1000 + 1800 * 30.25 / 3600))
    assert [e.slot_start for e in out] == [60, 120, 180]
    assert [e.wh for e in out] == [30, 30, 30]
    assert all(not e.quality for e in out)


def test_slot_energies_telescope_to_the_register_advance() -> None:
    slots = MeterSlots("m1", SLOT, 1.0, MAX_W)
    points = [(t, 5000 + 0.37 * t + 0.0001 * t * t) for t in range(0, 900)]
    out = _feed(slots, points)
    advance = round(points[0][1] + (0.37 * 840 + 0.0001 * 840**2)) - round(
        points[0][1] + (0.37 * 60 + 0.0001 * 60**2)
    )
    assert sum(e.wh for e in out) == advance


def test_a_gap_in_polls_makes_the_boundary_estimated() -> None:
    slots = MeterSlots("m1", SLOT, 1.0, MAX_W)
    points = [(float(t), 100 + t / 10) for t in range(0, 50)]
    points += [(float(t), 100 + t / 10) for t in range(70, 200)]  # 20 s without polls
    out = _feed(slots, points)
    by_slot = {e.slot_start: e for e in out}
    assert "estimated" in by_slot[60].quality
    assert by_slot[120].quality == frozenset()
    assert by_slot[60].wh == 6


def test_backwards_and_reset_and_jump_are_flagged_and_add_nothing() -> None:
    slots = MeterSlots("m1", SLOT, 1.0, MAX_W)
    points = [(float(t), 10_000 + t) for t in range(0, 70)]  # 3600 W
    points += [(70.0, 9_000.0)]  # backwards by 1069 Wh
    points += [(float(t), 9_000 + (t - 70)) for t in range(71, 130)]
    points += [(130.0, 5.0)]  # counter reset
    points += [(float(t), 5 + (t - 130)) for t in range(131, 190)]
    points += [(190.0, 50_000.0)]  # +49 kWh in one second: impossible
    points += [(float(t), 50_000 + (t - 190)) for t in range(191, 310)]
    out = {e.slot_start: e for e in _feed(slots, points)}
    assert out[60].quality == {"backwards"}
    assert out[60].wh == 59  # the 69→70 step added nothing, 59 good seconds
    assert out[120].quality == {"counter_reset"}
    assert out[180].quality == {"jump"}
    assert out[240].quality == frozenset()
    assert out[240].wh == 60


def test_nan_is_flagged() -> None:
    slots = MeterSlots("m1", SLOT, 1.0, MAX_W)
    points = [(float(t), float("nan") if t == 100 else 100.0 + t) for t in range(0, 200)]
    out = {e.slot_start: e for e in _feed(slots, points)}
    assert out[60].quality == {"nan"}
    assert out[60].wh == 60
    assert out[120].quality == frozenset()


def test_out_of_range_is_flagged_and_adds_nothing() -> None:
    slots = MeterSlots("m1", SLOT, 1.0, MAX_W, min_wh=0.0, max_wh=1e9)
    points = [(float(t), 100.0 + t) for t in range(0, 200)]
    points[100] = (100.0, -5.0)  # a negative cumulative register
    points[150] = (150.0, 5e12)  # beyond anything the meter can count
    out = {e.slot_start: e for e in _feed(slots, points)}
    assert out[60].quality == {"out_of_range"}
    assert out[120].quality == {"out_of_range"}
    assert out[60].wh == 60 and out[120].wh == 60  # the polls around them carry the energy


def test_resuming_from_a_stored_state_reports_each_slot_once_and_exactly() -> None:
    points = [(t + 0.5, 1000 + 2 * t) for t in range(0, 600)]  # 7200 W, 2 Wh per s
    whole = _feed(MeterSlots("m1", SLOT, 1.0, MAX_W), points)
    first = MeterSlots("m1", SLOT, 1.0, MAX_W)
    before = _feed(first, points[:250])
    stored = before[-1]  # the last slot stored in a batch; the polls after it are lost
    again = MeterSlots("m1", SLOT, 1.0, MAX_W)
    again.restore(stored.resume)
    assert again.slot == stored.slot_start + SLOT
    after = _feed(again, points[330:])  # a restart 80 s later
    slots = [e.slot_start for e in before + after]
    assert slots == sorted(set(slots)) == [e.slot_start for e in whole]
    assert sum(e.wh for e in before + after) == sum(e.wh for e in whole)
    assert {e.slot_start for e in after if "estimated" in e.quality} == {240, 300}
    assert all(not e.quality for e in after if e.slot_start > 300)


def test_a_gap_longer_than_a_day_starts_afresh_and_is_counted() -> None:
    slots = MeterSlots("m1", SLOT, 1.0, MAX_W)
    out = _feed(slots, [(float(t), 100.0 + t) for t in range(0, 130)])
    out += _feed(slots, [(200_000.0 + t, 1e6 + t) for t in range(0, 130)])
    assert slots.gaps_unreported == 1
    starts = [e.slot_start for e in out]
    assert starts == [60, 200_040]  # nothing invented for the day in between


def test_a_meters_own_boundary_readings_report_the_first_slot() -> None:
    """B-route 0xEA readings fall exactly on boundaries: the first one starts a slot."""
    slots = MeterSlots("m1", 1800, 1800.0, MAX_W, on_boundaries=True)
    out = _feed(slots, [(1800.0 * i, 5000.0 + 600 * i) for i in range(4)])
    assert [(e.slot_start, e.wh) for e in out] == [(0, 600), (1800, 600), (3600, 600)]
    plain = MeterSlots("m1", 1800, 1800.0, MAX_W)
    assert [e.slot_start for e in _feed(plain, [(1800.0 * i, 5000.0) for i in range(4)])] == [
        1800,
        3600,
    ]


def test_a_poll_far_behind_the_last_starts_afresh_instead_of_waiting_for_time() -> None:
    """The last poll's time was wrong (an hour ahead, say): a poll a slot or more behind it
    starts the meter afresh (the slot in progress unreported, counted), so the slots after
    it are reported at once; a poll a little behind is only out of order."""
    slots = MeterSlots("m1", SLOT, 1.0, MAX_W)
    ahead = _feed(slots, _constant(3590, 3790, 1800, 1000))
    assert [e.slot_start for e in ahead] == [3600, 3660, 3720]
    assert _feed(slots, [(3780.0, 1094.0)]) == []  # 10 s behind: out of order, dropped
    assert slots.gaps_unreported == 0
    out = _feed(slots, _constant(30, 250, 1800, 1100))
    assert slots.gaps_unreported == 1
    assert [e.slot_start for e in out] == [60, 120, 180]  # 3780's slot went unreported
    assert [e.wh for e in out] == [30, 30, 30]

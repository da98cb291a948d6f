"""The DR contract dr-1: results per RA and AC, the shortfall rule, and Pedersen totals
that fail when a reading is left out or altered."""

from __future__ import annotations

import pytest

from ledger_node.contract.dr1 import (
    Candidate,
    Inputs,
    MeterReading,
    TotalCheckError,
    check_total,
    settle,
)
from ledger_node.wire import DrCommand, DrDeclaration, pedersen

T0 = 1_610_550_000  # 2021-01-14 00:00 JST
CMD = DrCommand("tso", "c1", T0, T0 + 180, 60, T0 - 600, 20, (("ac1", 100),))


def _reading(site: str, meter: str, wh: int, seq: int, slot: int) -> MeterReading:
    txid = f"{site}/{seq}/{slot}".encode().ljust(32, b".")
    return MeterReading(Candidate(txid, seq, site, meter), wh, pedersen.random_blinding(), False)


def _inputs(readings: list[MeterReading], scopes: set[tuple[str, str]]) -> Inputs:
    by_slot: dict[tuple[str, int], list[MeterReading]] = {}
    for r in readings:
        slot = int(r.ref.txid.decode().split("/")[2].rstrip("."))
        by_slot.setdefault((r.ref.site, slot), []).append(r)
    return Inputs(
        command=CMD,
        declarations={
            "ra1": DrDeclaration("ra1", "c1", 1, (("s1", (300,)),)),
            "ra2": DrDeclaration("ra2", "c1", 1, (("s2", (100, 100, 100)),)),
        },
        ra_ac={"ra1": "ac1", "ra2": "ac1"},
        site_meters={"s1": ("a", "b"), "s2": ("c",)},
        readings=by_slot,
        scopes=frozenset(scopes),
    )


ALL = {("ra", "ra1"), ("ra", "ra2"), ("ac", "ac1")}


def test_results_per_ra_and_ac_with_coverage_and_a_missing_reading() -> None:
    readings = [
        _reading("s1", "a", 100, 1, T0),
        _reading("s1", "b", 50, 1, T0),
        _reading("s2", "c", 40, 7, T0),
        _reading("s1", "a", 120, 2, T0 + 60),  # s1 lacks meter b in slot 2
        _reading("s2", "c", 90, 8, T0 + 60),
        _reading("s2", "c", 99, 9, T0 + 60),  # a second reading of c: the lower seq counts
    ]
    results, rewards = settle(_inputs(readings, ALL))
    got = {(r.slot, r.kind, r.scope): r for r in results}
    assert len(got) == 9  # 3 slots x (ra1, ra2, ac1)
    s1 = got[(T0, "ra", "ra1")]
    assert (s1.actual_wh, s1.baseline_wh, s1.delivered_wh, s1.reported, s1.declared) == (
        150,
        300,
        150,
        2,
        2,
    )
    s2 = got[(T0 + 60, "ra", "ra1")]
    assert (s2.actual_wh, s2.delivered_wh, s2.reported) == (120, 0, 1)  # incomplete: 0
    c2 = got[(T0 + 60, "ra", "ra2")]
    assert (c2.actual_wh, c2.delivered_wh) == (90, 10)
    ac = got[(T0 + 60, "ac", "ac1")]
    assert (ac.actual_wh, ac.baseline_wh, ac.delivered_wh, ac.target_wh) == (210, 400, 10, 100)
    assert all(r.contract == "dr-1" for r in results)
    # Shortfall rule: credited min(max(d, 0), target); shortfall beyond target // 10 is
    # charged at the price. Slots: delivered 210 → 100; 10 → 10 (90 short, 80 charged);
    # nothing reported → 0 (100 short, 90 charged).
    (reward,) = rewards
    assert (reward.credited_wh, reward.shortfall_wh, reward.penalised_wh) == (110, 190, 170)
    assert reward.reward_yen == (20 * (110 - 170)) // 1000 == -2


def test_only_the_readable_scopes_are_settled() -> None:
    results, rewards = settle(_inputs([_reading("s1", "a", 1, 1, T0)], {("ra", "ra1")}))
    assert {(r.kind, r.scope) for r in results} == {("ra", "ra1")}
    assert rewards == []


def test_a_total_checks_from_public_commitments_and_fails_when_tampered() -> None:
    readings = [_reading("s1", m, wh, 1, T0) for m, wh in (("a", 100), ("b", 50))]
    readings.append(_reading("s2", "c", 40, 3, T0))
    results, _ = settle(_inputs(readings, ALL))
    ac = next(r for r in results if r.kind == "ac" and r.slot == T0)
    commitments = {(m.ref.txid, m.ref.meter): pedersen.commit(m.wh, m.r) for m in readings}
    check_total(ac.v_wh, ac.r, ac.refs, commitments, ac.refs)
    # One reading left out, with a total that is consistent for what remains: the
    # commitments still add up, but public data says a reading is missing.
    kept = [m for m in readings if m.ref.meter != "b"]
    r_kept = pedersen.add_scalars(m.r for m in kept)
    refs_kept = [(m.ref.txid, m.ref.meter) for m in kept]
    check_total(140, r_kept, refs_kept, commitments)  # the arithmetic alone passes
    with pytest.raises(TotalCheckError, match="leaves out meter b"):
        check_total(140, r_kept, refs_kept, commitments, ac.refs)
    # One reading left out of the list but not out of the total: the equation fails.
    with pytest.raises(TotalCheckError, match="altered"):
        check_total(ac.v_wh, ac.r, ac.refs[1:], commitments)
    # One reading altered (its energy, or the total's): the equation fails.
    altered = dict(commitments)
    altered[ac.refs[0]] = pedersen.commit(101, readings[0].r)
    with pytest.raises(TotalCheckError, match="altered"):
        check_total(ac.v_wh, ac.r, ac.refs, altered)
    with pytest.raises(TotalCheckError, match="altered"):
        check_total(ac.v_wh + 1, ac.r, ac.refs, commitments)
    with pytest.raises(TotalCheckError, match="twice"):
        check_total(ac.v_wh, ac.r, [*ac.refs, ac.refs[0]], commitments)

"""Pedersen totals: anyone checks a total against public commitments alone."""

from __future__ import annotations

from ledger_node.wire import pedersen


def _readings(values: list[int]) -> list[tuple[int, bytes, bytes]]:
    out = []
    for v in values:
        r = pedersen.random_blinding()
        out.append((v, r, pedersen.commit(v, r)))
    return out


def test_total_checks_and_zero_energies_are_fine() -> None:
    rs = _readings([4000, 0, 3000, 5000, 0])
    total = sum(v for v, _, _ in rs)
    blinding = pedersen.add_scalars(r for _, r, _ in rs)
    assert pedersen.check_total([c for _, _, c in rs], total, blinding)


def test_total_with_a_reading_left_out_or_altered_fails() -> None:
    rs = _readings([4000, 3000, 5000])
    commitments = [c for _, _, c in rs]
    blinding = pedersen.add_scalars(r for _, r, _ in rs)
    assert not pedersen.check_total(commitments[:2], 12000, blinding)
    assert not pedersen.check_total(commitments, 12001, blinding)
    altered = [pedersen.commit(4001, rs[0][1]), *commitments[1:]]
    assert not pedersen.check_total(altered, 12000, blinding)


def test_commitments_hide_equal_values() -> None:
    a, b = _readings([42, 42])
    assert a[2] != b[2]

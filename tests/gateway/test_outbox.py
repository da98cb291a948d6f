"""The outbox on a real SQLite file: bounded by bytes, never dropping what it stored, never
reusing a seq; meter states committed with the batch that reports them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.db import Database
from gateway.errors import OutboxFullError
from gateway.outbox import Outbox


def _envelope(seq: int, size: int = 1000) -> bytes:
    return seq.to_bytes(4, "big") * (size // 4)


def test_a_full_outbox_refuses_new_batches_and_keeps_what_it_has(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite")
    outbox = Outbox(db, max_bytes=4500)
    for slot in range(4):
        assert outbox.store(slot, _envelope, 0.0, [("m1", slot + 1, f"s{slot}")]) == slot
    with pytest.raises(OutboxFullError, match="refused"):
        outbox.store(4, _envelope, 0.0, [("m1", 5, "s4")])
    # The refused batch took no seq and moved no meter state.
    assert outbox.meter_states() == {"m1": "s3"}
    stats = outbox.stats()
    assert (stats.depth, stats.depth_bytes, stats.next_seq) == (4, 4000, 4)
    assert [p.envelope for p in outbox.pending()] == [_envelope(s) for s in range(4)]
    assert outbox.confirm([0, 1]) == 2
    assert outbox.store(4, _envelope, 0.0) == 4
    assert outbox.stats().last_confirmed_seq == 1
    db.close()


def test_seqs_survive_reopening_and_are_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    db = Database(path)
    outbox = Outbox(db, 1 << 20)
    for slot in range(3):
        outbox.store(slot, _envelope, 0.0)
    outbox.confirm([0, 1, 2])

    def fail(seq: int) -> bytes:
        raise RuntimeError("crash while building")

    with pytest.raises(RuntimeError):
        outbox.store(3, fail, 0.0)
    db.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # it holds epoch keys
    db = Database(path)
    outbox = Outbox(db, 1 << 20)
    assert outbox.store(3, _envelope, 0.0) == 3  # confirmed and deleted, yet not reused
    assert outbox.advance_seq(10)  # a node has seen seq 9: restored from an old backup
    assert not outbox.advance_seq(5)
    assert outbox.store(4, _envelope, 0.0) == 10
    db.close()


def test_meter_state_only_moves_forward(tmp_path: Path) -> None:
    db = Database(tmp_path / "state.sqlite")
    outbox = Outbox(db, 1 << 20)
    outbox.store(60, _envelope, 0.0, [("m1", 120, "late"), ("m2", 120, "b")])
    outbox.store(0, _envelope, 0.0, [("m1", 60, "earlier")])  # a late reading of an old slot
    assert outbox.meter_states() == {"m1": "late", "m2": "b"}
    db.close()

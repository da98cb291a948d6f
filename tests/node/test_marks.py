"""High-water marks: sent after the commit that changed them, at most once per `every_s`,
and again every `heartbeat_s` unchanged (their signed time keeps gateways' clocks)."""

from __future__ import annotations

import time

from ledger_node.ledger.store import Db, connect
from ledger_node.network.marks import SeqMarks
from tests.support.ledgers import Where


def _commit(db: Db, gateway: str, seq: int) -> None:
    """What the node's readings rule stores of a committed batch."""
    db.execute(
        "INSERT INTO batches VALUES (?, ?, ?, 'site1', 0, 60, 0, 'sealed')", (seq, gateway, seq)
    )


def test_marks_are_sent_when_changed_and_again_as_a_heartbeat(store: Where) -> None:
    db = connect(store("node"))
    marks = SeqMarks(db, "tso", every_s=0.0, heartbeat_s=0.3)
    assert marks.due() == []  # no gateway known yet
    for seq in (0, 1, 3):
        _commit(db, "gw-a", seq)
        marks.add("gw-a", seq)
    assert marks.due() == ["gw-a"]
    mark = marks.mark("gw-a", 1_800_000_000.5)
    assert (mark.next, mark.above, mark.t) == (2, (3,), 1_800_000_000)
    assert marks.due() == []  # unchanged, and sent just now
    time.sleep(0.35)
    assert marks.due() == ["gw-a"]  # the heartbeat: unchanged, sent again
    assert marks.due() == []
    _commit(db, "gw-a", 2)
    marks.add("gw-a", 2)
    assert marks.due() == ["gw-a"]  # changed: at once
    assert marks.mark("gw-a", 0).next == 4
    # A restarted node knows its gateways from its database: their marks go out at once.
    assert SeqMarks(db, "tso", heartbeat_s=30.0).due() == ["gw-a"]
    db.close()


def test_a_registered_gateway_gets_its_heartbeat_before_its_first_batch(store: Where) -> None:
    """Its signed time lets a new gateway check its clock before it seals anything."""
    db = connect(store("node"))
    marks = SeqMarks(db, "tso", every_s=0.0, heartbeat_s=0.3)
    assert marks.due() == []
    db.execute(
        "INSERT INTO sites VALUES ('site1', 'ra1', 'gw-new', ?, ?, 'm1', 0)", (b"e" * 32, b"x" * 32)
    )
    assert marks.due() == ["gw-new"]
    assert marks.mark("gw-new", 1_800_000_000).next == 0  # nothing committed yet
    assert marks.due() == []
    db.close()

"""Retention on both stores: old slots' batches archived out of the log, their leaves, rows,
proofs and `verify` intact; the archive proven against the log; nothing else rewritten."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from ledger_node.interfaces.verify import verify
from ledger_node.ledger import proofs
from ledger_node.ledger.retention import (
    ArchiveError,
    check_archive,
    prunable,
    prune,
    read_archive,
    write_archive,
)
from ledger_node.ledger.store import connect, transaction
from ledger_node.network.witness import Witness, slot_digest
from tests.support.ledgers import T0, Net, Where

SLOTS = 6


@pytest.fixture
def net(tmp_path: Path, store: Where) -> Iterator[Net]:
    """RA(1)'s node with SLOTS slots of site1's batches (opened) and a checkpoint over them."""
    n = Net(tmp_path, ("tso", "ra1"), where=store)
    n.everywhere(n.fig.registrations())
    n.epochs()
    gw = n.fig.gateways["site1"]
    for k in range(SLOTS, 0, -1):
        assert n.admit("ra1", gw.batch(T0 - 60 * k, {"m1": 10 * k, "m2": k})).ok
    n.open("ra1")
    n.clock.set(T0 + 3600)  # every slot closed (late_after_s = 600)
    ra1 = n.ledgers["ra1"]
    with ra1.transaction():
        assert Witness(ra1).checkpoint(n.clock.now()) is not None
    yield n
    n.close()


def test_prune_archives_old_slots_and_keeps_leaves_rows_proofs_and_verify(
    net: Net, tmp_path: Path
) -> None:
    ra1 = net.ledgers["ra1"]
    db = ra1.db
    cutoff = T0 - 60 * 3  # the three oldest slots go
    root = ra1.log.root()
    totals = db.execute("SELECT pos, meter, wh FROM readings ORDER BY pos, meter").fetchall()
    digests = {s: slot_digest(db, s) for s in range(T0 - 60 * SLOTS, T0, 60)}
    entries = prunable(db, cutoff, net.clock.now(), 600)
    assert len(entries) == 3
    assert prunable(db, cutoff, T0 - 60, 600) == []  # not before the slots closed
    archive = tmp_path / "2026.mlgarc"
    write_archive(archive, entries)
    with pytest.raises(ArchiveError, match="exists"):
        write_archive(archive, entries)  # never overwritten
    with transaction(db):
        prune(ra1.log, entries)
    # The envelopes are gone from the log; nothing else changed.
    gone = [pos for pos, _ in entries]
    for pos in gone:
        entry = ra1.log.entry(pos)
        assert entry is not None and entry.envelope is None
    assert ra1.log.root() == root
    assert db.execute("SELECT pos, meter, wh FROM readings ORDER BY pos, meter").fetchall() == (
        totals
    )
    assert {s: slot_digest(db, s) for s in digests} == digests
    assert prunable(db, cutoff, net.clock.now(), 600) == []  # pruned once
    # Proofs of a pruned batch still stand (by its leaf); the archive proves it.
    txid = ra1.log.entry(gone[0]).txid  # type: ignore[union-attr]
    doc = proofs.inclusion(db, "ra1", txid)
    assert doc["envelope"] is None
    proofs.check(doc, ra1.me.public.verify_key)
    with closing(connect(net.where("ra1"), readonly=True)) as ro:
        report = verify(ro, ra1.me)
    assert report.ok, report.problems
    assert report.pruned == 3
    assert check_archive(archive, ra1.log) == 3
    assert [pos for pos, _ in read_archive(archive)] == gone
    # A changed archive is caught.
    raw = bytearray(archive.read_bytes())
    raw[-1] ^= 1
    archive.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match=f"entry {gone[-1]}"):
        check_archive(archive, ra1.log)


def test_after_pruning_a_resent_batch_is_a_replay_and_the_next_one_is_taken(net: Net) -> None:
    ra1 = net.ledgers["ra1"]
    gw = net.fig.gateways["site1"]
    entries = prunable(ra1.db, T0, net.clock.now(), 600)
    first = entries[0][1]
    with transaction(ra1.db):
        prune(ra1.log, entries)
    assert net.admit("ra1", first).status == "replay"
    net.clock.set(T0 + 60)
    assert net.admit("ra1", gw.batch(T0, {"m1": 1, "m2": 2})).ok


def test_an_archived_entry_without_its_batch_row_fails_verify(net: Net) -> None:
    """An archived entry is taken by its leaf and its stored rows: without them it is an
    entry whose envelope is gone for no reason."""
    ra1 = net.ledgers["ra1"]
    entries = prunable(ra1.db, T0, net.clock.now(), 600)
    with transaction(ra1.db):
        prune(ra1.log, entries)
        ra1.db.execute("DELETE FROM batches WHERE pos=?", (entries[0][0],))
    with closing(connect(net.where("ra1"), readonly=True)) as ro:
        report = verify(ro, ra1.me)
    assert not report.ok


def test_pruned_pages_are_free_for_the_next_appends(tmp_path: Path) -> None:
    """On SQLite the archived entries' pages go to the free list; the log's next appends
    take them instead of growing the file (nothing else is rewritten)."""
    n = Net(tmp_path, ("tso",))
    try:
        n.everywhere(n.fig.registrations())
        n.epochs()
        gw = n.fig.gateways["site1"]
        tso = n.ledgers["tso"]

        def feed(first: int, count: int) -> None:
            for k in range(first, first + count):
                n.clock.set(T0 + 60 * k + 60)
                assert n.admit("tso", gw.batch(T0 + 60 * k, {"m1": k, "m2": 1})).ok

        feed(0, 200)
        n.clock.set(T0 + 60 * 200 + 3600)
        with tso.transaction():
            assert Witness(tso).checkpoint(n.clock.now()) is not None
        pages = tso.db.execute("PRAGMA page_count").fetchone()[0]
        entries = prunable(tso.db, T0 + 60 * 150, n.clock.now(), 600)
        assert len(entries) == 150
        with transaction(tso.db):
            prune(tso.log, entries)
        free = tso.db.execute("PRAGMA freelist_count").fetchone()[0]
        page = tso.db.execute("PRAGMA page_size").fetchone()[0]
        assert free >= 0.6 * sum(len(e) for _, e in entries) / page > 3  # most of their pages
        feed(200, 100)
        assert tso.db.execute("PRAGMA page_count").fetchone()[0] <= pages + 2
        assert tso.db.execute("PRAGMA freelist_count").fetchone()[0] < free
    finally:
        n.close()

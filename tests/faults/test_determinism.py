"""Scenario 10: determinism. The same facts reach three replicas of the TSO's node in
three orders (as logged; reversed; shuffled) as a node catching up takes them from its
peers (judged there: no arrival-time rule), the third one crashing again and again:
a burst of messages abandoned in the middle of its transaction, the database closed and
opened again by a new ledger (a restarted node), the unacknowledged messages delivered
again. Each ends with the same results, rewards, readings and slot digests, byte for
byte, and `verify` passes on each. In process, on real SQLite files: the log's order (and
so its root) is each node's own by design; what the facts mean must not be."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from ledger_node.contract.settlement import Settlement
from ledger_node.interfaces.verify import verify
from ledger_node.ledger import Ledger, LedgerSettings, open_sealed
from ledger_node.ledger.store import Db, connect
from ledger_node.network.witness import slot_digest
from ledger_node.shared.clock import FixedClock
from ledger_node.shared.keys import Identity
from tests.faults.rig import sizes
from tests.support.ledgers import T0, Net
from tests.support.sim import Figure7


class Crash(Exception):
    """The process dies in the middle of a burst: its transaction never commits."""


def _facts(tmp: Path, fig: Figure7, slots: int) -> list[bytes]:
    """What the TSO's node would receive over a DR command: registrations, epoch keys,
    the command, two declarations (one revised) and every site's batches, as published."""
    source = Net(tmp / "source", ("tso",), fig)
    source.everywhere(fig.registrations())
    source.epochs()
    start = T0 - 60 * (slots + 2)
    raws = [
        fig.command("c1", start, slots, start, {"ac1": 300, "ac2": 200}),
        fig.declaration("ra1", "c1", {"site1": 900}),
        fig.declaration("ra2", "c1", {"site2": 700}),
        fig.declaration("ra2", "c1", {"site2": 650}, rev=2),
        fig.declaration("ra3", "c1", {"site3": 500}),
    ]
    for k in range(slots + 2):
        for n, gw in enumerate(fig.gateways.values()):
            raws.append(gw.batch(start + 60 * k, {"m1": 100 + 7 * k + n, "m2": 150 - 3 * (k % 40)}))
    ledger = source.ledgers["tso"]
    for raw in raws:  # the gate closed long ago: as fetched from a peer that took them
        assert source.admit("tso", raw, "sync:ra1").ok
    log = [bytes(r[0]) for r in ledger.db.execute("SELECT envelope FROM log ORDER BY pos")]
    ledger.db.close()
    return log[1:]  # after the genesis


class Replica:
    """A node of the TSO's organisation on its own database file."""

    def __init__(self, path: Path, identity: Identity, genesis: bytes) -> None:
        self.path, self.identity, self.genesis = path, identity, genesis
        self.restarts = 0
        self.fetched = 0
        self.ledger = self._open()

    def _open(self) -> Ledger:
        ledger = Ledger(
            connect(self.path), self.identity, FixedClock(T0), LedgerSettings(late_after_s=3600)
        )
        with ledger.transaction():
            ledger.start(self.genesis)
        return ledger

    def burst(self, raws: list[bytes], crash_after: int | None = None) -> None:
        """One transaction for `raws`, or a crash after `crash_after` of them."""
        with self.ledger.transaction():
            for n, raw in enumerate(raws):
                if n == crash_after:
                    raise Crash
                self.ledger.admit(raw, "sync:peer", hold_unknown=True)

    def restart(self) -> None:
        self.ledger.db.close()
        self.ledger = self._open()
        self.restarts += 1

    def finish(self, facts: list[bytes]) -> None:
        """Anti-entropy offers what the node still lacks (facts refused while its held
        pools were full come again); then what a running node does between bursts:
        decrypt, then settle."""
        ledger = self.ledger
        have = {bytes(r[0]) for r in ledger.db.execute("SELECT txid FROM log")}
        lacking = [raw for raw in facts if hashlib.sha256(raw).digest() not in have]
        self.fetched = len(lacking)
        self.burst(lacking)
        with ledger.transaction():
            while open_sealed(ledger):
                pass
        settlement = Settlement(ledger)
        with ledger.transaction():
            settlement.refresh(settlement.dirty())


def _meaning(db: Db) -> dict[str, list[tuple[object, ...]]]:
    """Everything the facts mean, free of each node's own log positions."""
    slots = [r[0] for r in db.execute("SELECT DISTINCT slot FROM batches ORDER BY slot")]
    return {
        "results": db.execute(
            "SELECT * FROM results ORDER BY command, slot, kind, scope"
        ).fetchall(),
        "rewards": db.execute("SELECT * FROM rewards ORDER BY 1, 2").fetchall(),
        "readings": db.execute(
            "SELECT b.gateway, b.seq, b.slot, r.meter, r.wh, r.r, r.quality FROM readings r"
            " JOIN batches b ON b.pos = r.pos ORDER BY b.gateway, b.seq, r.meter"
        ).fetchall(),
        "batches": db.execute(
            "SELECT gateway, seq, site, epoch, slot, slot_s, state FROM batches"
            " ORDER BY gateway, seq"
        ).fetchall(),
        "digests": [(d.slot, d.count, d.digest) for d in (slot_digest(db, s) for s in slots)],
    }


@sizes({"slots": 3, "crash_every": 2}, {"slots": 60, "crash_every": 3})
def test_the_same_facts_after_crashes_mean_the_same_byte_for_byte(
    tmp_path: Path, size: dict[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    fig = Figure7.make()
    facts = _facts(tmp_path, fig, size["slots"])
    rng = random.Random(20261130)
    shuffled = facts[:]
    rng.shuffle(shuffled)
    replicas = {
        name: Replica(tmp_path / f"{name}.sqlite", fig.tso.identity, fig.genesis)
        for name in ("in-order", "reversed", "crashing")
    }
    replicas["in-order"].burst(facts)
    for raw in reversed(facts):
        replicas["reversed"].burst([raw])
    crashing = replicas["crashing"]
    pending = shuffled
    bursts = 0
    while pending:  # bursts of up to 4 messages; every `crash_every`-th dies part-way
        burst, pending = pending[:4], pending[4:]
        bursts += 1
        if bursts % size["crash_every"] == 0:
            with pytest.raises(Crash):
                crashing.burst(burst, crash_after=rng.randrange(len(burst)))
            crashing.restart()
        crashing.burst(burst)  # the broker delivers the unacknowledged messages again
    meanings = {}
    for name, replica in replicas.items():
        replica.finish(facts)
        meanings[name] = _meaning(replica.ledger.db)
        replica.ledger.db.close()
        report = verify(connect(replica.path, readonly=True), replica.identity)
        assert report.ok, (name, report.problems)
    first = meanings["in-order"]
    assert first["results"] and first["rewards"] and first["readings"], first
    for name, meaning in meanings.items():
        for table, rows in meaning.items():
            assert rows == first[table], (name, table)
    with capsys.disabled():
        print(
            f"\n[determinism] {len(facts)} facts in 3 orders, {crashing.restarts} crashes,"
            f" fetched again at the end {[r.fetched for r in replicas.values()]}:"
            f" {len(first['results'])} results, {len(first['rewards'])} rewards,"
            f" {len(first['readings'])} readings, {len(first['digests'])} slot digests"
            " byte-identical; verify OK on each"
        )

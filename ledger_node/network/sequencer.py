"""The sequencer's side of a node past one machine (PostgreSQL).

Verifying front-ends (`frontend`) queue the readings batches that pass their checks; one
sequencer admits them into the log in the order it takes them. The sequencer is elected
through a PostgreSQL session-level advisory lock taken on the very connection it writes
with: a standby waits for the lock, and gets it the moment the sequencer's session ends
(the process killed, its machine gone), so two sequencers never write at once. Every
queued row is deleted in the transaction that admits it: a row is admitted once, and a
batch sent again (a front-end that died before its PUBACK) meets the log's (gateway, seq)
key as a replay.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ledger_node.ledger.store import Db, is_postgres_db
from ledger_node.wire import Verified, WireError, parse

log = logging.getLogger("mlg.node.sequencer")

SEQUENCER_LOCK = 0x6D6C6702
"""The advisory lock key the sequencer holds (one per database: one per node)."""
STANDBY_POLL_S = 0.5
"""How often a standby tries for the lock, real seconds."""


@dataclass(frozen=True, slots=True)
class Queued:
    """A readings batch a front-end checked, waiting in the database's queue."""

    id: int
    payload: bytes
    key: bytes
    """The Ed25519 key its signature was checked with."""
    received_at: float
    """When the front-end received it (clock seconds): lateness is judged on it."""

    def verified(self) -> Verified | bytes:
        """What the ledger admits: the envelope with the key a front-end checked it with
        (its signature is not checked again while that key is still the signer's); the
        bytes if they do not parse (the ledger then says why)."""
        try:
            return Verified(parse(self.payload, max(len(self.payload), 1)), self.key)
        except WireError:
            return self.payload


def elect(db: Db, stop: threading.Event) -> bool:
    """Wait until this process holds the sequencer's lock on `db` (True), or `stop` is set
    (False). Logs once that it waits as a standby."""
    if not is_postgres_db(db):
        raise ValueError("a sequencer needs the node's tables on PostgreSQL")
    waiting = False
    while not stop.is_set():
        if db.execute("SELECT pg_try_advisory_lock(?)", (SEQUENCER_LOCK,)).fetchone()[0]:
            log.info("elected: this process sequences the node's log")
            return True
        if not waiting:
            log.info("standby: another sequencer holds the lock; waiting to take over")
            waiting = True
        stop.wait(STANDBY_POLL_S)
    return False


def take_queued(db: Db, limit: int) -> list[Queued]:
    """Up to `limit` queued batches, oldest first."""
    rows = db.execute(
        "SELECT id, envelope, key, received_at FROM queue ORDER BY id LIMIT ?", (limit,)
    ).fetchall()
    return [Queued(r[0], bytes(r[1]), bytes(r[2]), r[3]) for r in rows]


def done(db: Db, item: Queued) -> None:
    """Drop an admitted (or refused) batch from the queue, in the admitting transaction."""
    db.execute("DELETE FROM queue WHERE id=?", (item.id,))

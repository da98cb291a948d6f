"""The durable outbox: every sealed batch, kept until the ledger confirms it.

The per-gateway `seq` is allocated in the transaction that stores the batch signed with
it, together with the meter states the batch reports (see `slots.SlotEnergy.resume`) and
the control actions it records: a seq is never used for two stored batches, and a crash
either keeps all of it or none. Bounded by bytes: a batch that would take the unconfirmed
backlog over `max_bytes` is refused with `OutboxFullError` (the caller keeps it in memory
and raises the alarm); nothing stored is ever dropped. Confirmed batches are deleted.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gateway.db import Database
from gateway.errors import OutboxFullError

log = logging.getLogger("mlg.gateway.outbox")


@dataclass(frozen=True, slots=True)
class Pending:
    """A stored batch not yet confirmed."""

    seq: int
    envelope: bytes
    published_at: float | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    depth: int
    depth_bytes: int
    max_bytes: int
    next_seq: int
    last_confirmed_seq: int | None
    confirmed: int
    oldest_slot: int | None


class Outbox:
    """Thread-safe: the sealer stores, the MQTT thread confirms."""

    def __init__(self, db: Database, max_bytes: int) -> None:
        self.db = db
        self.max_bytes = max_bytes
        with db.lock:
            self._bytes = int(
                db.conn.execute(
                    "SELECT COALESCE(SUM(LENGTH(envelope)), 0) FROM batches"
                ).fetchone()[0]
            )

    @property
    def depth_bytes(self) -> int:
        return self._bytes

    def store(
        self,
        slot: int,
        build: Callable[[int], bytes],
        now: float,
        meter_states: Iterable[tuple[str, int, str]] = (),
        actions: Sequence[int] = (),
    ) -> int:
        """Allocate the next seq, build the envelope with it, and store it with the meter
        states (meter, slot, state) it reports and the control action ids it records."""
        with self.db.transaction() as db:
            seq = int(db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0])
            envelope = build(seq)
            if self._bytes + len(envelope) > self.max_bytes:
                raise OutboxFullError(
                    f"outbox holds {self._bytes} of {self.max_bytes} bytes unconfirmed; "
                    f"the batch of slot {slot} ({len(envelope)} bytes) is refused"
                )
            db.execute(
                "INSERT INTO batches (seq, slot, envelope, created_at) VALUES (?, ?, ?, ?)",
                (seq, slot, envelope, now),
            )
            db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (seq + 1,))
            for meter, meter_slot, state in meter_states:
                db.execute(
                    "INSERT INTO meter_state VALUES (?, ?, ?) ON CONFLICT (meter) DO UPDATE"
                    " SET slot=excluded.slot, state=excluded.state WHERE excluded.slot > slot",
                    (meter, meter_slot, state),
                )
            db.executemany(
                "UPDATE control_actions SET seq=? WHERE id=?", [(seq, a) for a in actions]
            )
        self._bytes += len(envelope)
        return seq

    def meter_states(self) -> dict[str, str]:
        """The last stored state of each meter (see `slots.MeterSlots.restore`)."""
        with self.db.lock:
            rows = self.db.conn.execute("SELECT meter, state FROM meter_state").fetchall()
        return {meter: state for meter, state in rows}

    def pending(self, limit: int = 1000) -> list[Pending]:
        """Unconfirmed batches, oldest first."""
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT seq, envelope, published_at FROM batches ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [Pending(seq, env, pub) for seq, env, pub in rows]

    def pending_seqs(self) -> list[int]:
        with self.db.lock:
            return [r[0] for r in self.db.conn.execute("SELECT seq FROM batches ORDER BY seq")]

    def mark_published(self, seq: int, now: float) -> None:
        with self.db.lock:
            self.db.conn.execute("UPDATE batches SET published_at=? WHERE seq=?", (now, seq))

    def confirm(self, seqs: Iterable[int]) -> int:
        """Delete confirmed batches; return how many were still stored."""
        wanted = sorted(set(seqs))
        if not wanted:
            return 0
        done = 0
        with self.db.transaction() as db:
            for seq in wanted:
                row = db.execute(
                    "DELETE FROM batches WHERE seq=? RETURNING LENGTH(envelope)", (seq,)
                ).fetchone()
                if row is not None:
                    done += 1
                    self._bytes -= int(row[0])
            if done:
                db.execute(
                    "UPDATE meta SET value=MAX(value, ?) WHERE key='last_confirmed_seq'",
                    (wanted[-1],),
                )
                db.execute("UPDATE meta SET value=value+? WHERE key='confirmed'", (done,))
        return done

    def advance_seq(self, at_least: int) -> bool:
        """Never sign below `at_least` again (a node has seen seqs up to it: this state was
        restored from an older backup). True if the next seq moved."""
        with self.db.transaction() as db:
            cur = db.execute(
                "UPDATE meta SET value=? WHERE key='next_seq' AND value<?", (at_least, at_least)
            )
            return cur.rowcount > 0

    def stats(self) -> OutboxStats:
        with self.db.lock:
            return read_stats(self.db.conn, self.max_bytes)


def read_stats(conn: sqlite3.Connection, max_bytes: int) -> OutboxStats:
    """Outbox figures from a connection (the daemon's, or a read-only one for `status`)."""
    depth, size, oldest = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(envelope)), 0), MIN(slot) FROM batches"
    ).fetchone()
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    last = int(meta.get("last_confirmed_seq", -1))
    return OutboxStats(
        depth=int(depth),
        depth_bytes=int(size),
        max_bytes=max_bytes,
        next_seq=int(meta.get("next_seq", 0)),
        last_confirmed_seq=None if last < 0 else last,
        confirmed=int(meta.get("confirmed", 0)),
        oldest_slot=None if oldest is None else int(oldest),
    )

"""The durable outbox: every sealed batch, kept until the ledger confirms it.

The per-gateway `seq` is allocated in the transaction that stores the batch signed with
it, together with the meter states the batch reports (see `slots.SlotEnergy.resume`) and
the control actions it records: a seq is never used for two stored batches, and a crash
either keeps all of it or none. Bounded by bytes: a batch that would take the unconfirmed
backlog over `max_bytes` is refused with `OutboxFullError` (the caller keeps it in memory
and raises the alarm); nothing stored is ever dropped. Confirmed batches are deleted.

Slots that cannot be sealed yet because the site has no epoch key (a new gateway, before
the TSO's first key reaches it) are *held*: their energies are stored with the meter
states they report (`hold`), and the batch that finally seals a slot deletes its held
rows in the transaction that stores it. A restart in between neither loses nor repeats
them.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from gateway.db import Database
from gateway.errors import OutboxFullError
from gateway.slots import SlotEnergy

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
    waiting_for_key: int = 0
    """Slots stored unsealed until the site's first epoch key arrives (`hold`)."""


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
        states (meter, slot, state) it reports and the control action ids it records; the
        slot's held energies, if any, are released (the batch reports them)."""
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
            _save_states(db, meter_states)
            db.executemany(
                "UPDATE control_actions SET seq=? WHERE id=?", [(seq, a) for a in actions]
            )
            db.execute("DELETE FROM held WHERE slot=?", (slot,))
        self._bytes += len(envelope)
        return seq

    def hold(self, energies: Iterable[SlotEnergy], slot_s: int) -> None:
        """Keep slot energies that cannot be sealed yet, with the meter states they report
        (so a restart resumes after them, and `held` gives them back)."""
        rows = [(e.slot_start, e.meter, e.wh, ",".join(sorted(e.quality))) for e in energies]
        states = [(e.meter, e.slot_start + slot_s, e.resume) for e in energies if e.resume]
        with self.db.transaction() as db:
            db.executemany("INSERT INTO held VALUES (?, ?, ?, ?)", rows)
            _save_states(db, states)

    def held(self) -> list[SlotEnergy]:
        """The held slot energies, oldest slot first."""
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT slot, meter, wh, quality FROM held ORDER BY slot, meter"
            ).fetchall()
        return [
            SlotEnergy(meter, int(slot), int(wh), frozenset(q for q in quality.split(",") if q))
            for slot, meter, wh, quality in rows
        ]

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


def _save_states(db: sqlite3.Connection, meter_states: Iterable[tuple[str, int, str]]) -> None:
    """Move each meter's stored state forward (never back) to (meter, slot, state)."""
    db.executemany(
        "INSERT INTO meter_state VALUES (?, ?, ?) ON CONFLICT (meter) DO UPDATE"
        " SET slot=excluded.slot, state=excluded.state WHERE excluded.slot > slot",
        list(meter_states),
    )


def read_stats(conn: sqlite3.Connection, max_bytes: int) -> OutboxStats:
    """Outbox figures from a connection (the daemon's, or a read-only one for `status`)."""
    depth, size, oldest = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(LENGTH(envelope)), 0), MIN(slot) FROM batches"
    ).fetchone()
    try:
        held = int(conn.execute("SELECT COUNT(DISTINCT slot) FROM held").fetchone()[0])
    except sqlite3.OperationalError:  # a state file not yet opened by this version
        held = 0
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
        waiting_for_key=held,
    )

"""The durable outbox: every sealed batch, kept until the ledger confirms it.

SQLite in WAL mode with ``synchronous=FULL``: a commit survives power loss. The per-gateway
`seq` is allocated in the same transaction that stores the batch signed with it, so a seq
is never used for two different stored batches, also across crashes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gateway.errors import GatewayError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq          INTEGER PRIMARY KEY,
    slot         INTEGER NOT NULL,
    envelope     BLOB    NOT NULL,
    created_at   REAL    NOT NULL,
    published_at REAL,
    confirmed_at REAL
);
CREATE INDEX IF NOT EXISTS batches_unconfirmed ON batches (seq) WHERE confirmed_at IS NULL;
"""


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
    next_seq: int
    last_confirmed_seq: int | None


class Outbox:
    """Thread-safe: the sealer stores, the MQTT thread confirms."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise GatewayError(f"outbox {path}: cannot use WAL journal (got {mode})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('next_seq', 0)")

    def store(self, slot: int, build: Callable[[int], bytes], now: float) -> int:
        """Allocate the next seq, build the envelope with it and store both atomically."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                seq = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
                envelope = build(seq)
                db.execute(
                    "INSERT INTO batches (seq, slot, envelope, created_at) VALUES (?, ?, ?, ?)",
                    (seq, slot, envelope, now),
                )
                db.execute("UPDATE meta SET value=? WHERE key='next_seq'", (seq + 1,))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return int(seq)

    def pending(self, limit: int = 1000) -> list[Pending]:
        """Unconfirmed batches, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, envelope, published_at FROM batches"
                " WHERE confirmed_at IS NULL ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Pending(seq, env, pub) for seq, env, pub in rows]

    def mark_published(self, seq: int, now: float) -> None:
        with self._lock:
            self._db.execute("UPDATE batches SET published_at=? WHERE seq=?", (now, seq))

    def confirm(self, seq: int, now: float) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE batches SET confirmed_at=? WHERE seq=? AND confirmed_at IS NULL",
                (now, seq),
            )

    def stats(self) -> OutboxStats:
        with self._lock:
            depth, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(envelope)), 0) FROM batches"
                " WHERE confirmed_at IS NULL"
            ).fetchone()
            next_seq = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
            last = self._db.execute(
                "SELECT MAX(seq) FROM batches WHERE confirmed_at IS NOT NULL"
            ).fetchone()[0]
        return OutboxStats(depth, size, next_seq, last)

    def close(self) -> None:
        with self._lock:
            self._db.close()

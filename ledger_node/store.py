"""The node's SQLite store: accepted transactions, equivocation evidence, decrypted readings
of the node's own groups, and rejection counters.

WAL with ``synchronous=FULL``: once `append` returns, the transaction survives power loss,
and only then is the MQTT message acknowledged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger_node.errors import MeterledgerError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transactions (
    pos         INTEGER PRIMARY KEY,          -- append order in this node's log
    txid        BLOB    NOT NULL UNIQUE,
    gateway     TEXT    NOT NULL,
    site        TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    slot        INTEGER NOT NULL,
    slot_s      INTEGER NOT NULL,
    epoch       INTEGER NOT NULL,
    envelope    BLOB    NOT NULL,
    received_at REAL    NOT NULL,
    UNIQUE (gateway, seq)
);
CREATE TABLE IF NOT EXISTS equivocations (
    id          INTEGER PRIMARY KEY,
    gateway     TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    first_txid  BLOB    NOT NULL,
    txid        BLOB    NOT NULL UNIQUE,
    envelope    BLOB    NOT NULL,
    received_at REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS readings (
    txid        BLOB    NOT NULL REFERENCES transactions (txid),
    site        TEXT    NOT NULL,
    gateway     TEXT    NOT NULL,
    slot        INTEGER NOT NULL,
    meter       TEXT    NOT NULL,
    wh          INTEGER NOT NULL,
    quality     TEXT    NOT NULL,             -- comma-separated flags, '' when clean
    PRIMARY KEY (gateway, slot, meter)
);
CREATE TABLE IF NOT EXISTS rejections (reason TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""


class StoreError(MeterledgerError):
    pass


@dataclass(frozen=True, slots=True)
class StoredReading:
    meter: str
    wh: int
    quality: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SlotTotal:
    site: str
    slot: int
    wh: int
    meters: int
    flagged: int


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            raise StoreError(f"{path}: cannot use WAL journal")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def txid_at(self, gateway: str, seq: int) -> bytes | None:
        row = self._db.execute(
            "SELECT txid FROM transactions WHERE gateway=? AND seq=?", (gateway, seq)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def has_txid(self, txid: bytes) -> bool:
        return (
            self._db.execute(
                "SELECT 1 FROM transactions WHERE txid=? UNION ALL SELECT 1 FROM equivocations"
                " WHERE txid=?",
                (txid, txid),
            ).fetchone()
            is not None
        )

    def append(
        self,
        txid: bytes,
        gateway: str,
        site: str,
        seq: int,
        slot: int,
        slot_s: int,
        epoch: int,
        envelope: bytes,
        received_at: float,
        readings: Sequence[StoredReading],
    ) -> list[str]:
        """Store a transaction and its readings in one commit.

        Returns the meters whose reading for this slot was already stored from another
        batch of the same gateway (kept as they were, not added twice).
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO transactions (txid, gateway, site, seq, slot, slot_s, epoch,"
                " envelope, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (txid, gateway, site, seq, slot, slot_s, epoch, envelope, received_at),
            )
            conflicts = []
            for r in readings:
                cur = db.execute(
                    "INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (txid, site, gateway, slot, r.meter, r.wh, ",".join(r.quality)),
                )
                if cur.rowcount == 0:
                    conflicts.append(r.meter)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return conflicts

    def add_equivocation(
        self, gateway: str, seq: int, first_txid: bytes, txid: bytes, envelope: bytes, at: float
    ) -> None:
        self._db.execute(
            "INSERT OR IGNORE INTO equivocations (gateway, seq, first_txid, txid, envelope,"
            " received_at) VALUES (?, ?, ?, ?, ?, ?)",
            (gateway, seq, first_txid, txid, envelope, at),
        )

    def count_rejection(self, reason: str) -> None:
        self._db.execute(
            "INSERT INTO rejections VALUES (?, 1) ON CONFLICT (reason) DO UPDATE"
            " SET count = count + 1",
            (reason,),
        )

    def rejections(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT reason, count FROM rejections ORDER BY reason"))

    def transaction_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM transactions").fetchone()[0])

    def equivocation_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM equivocations").fetchone()[0])

    def slot_totals(self, sites: Iterable[str] | None = None) -> list[SlotTotal]:
        """Per site and slot: total Wh, meters reported, and how many carry quality flags."""
        rows = self._db.execute(
            "SELECT site, slot, SUM(wh), COUNT(*), SUM(quality != '') FROM readings"
            " GROUP BY site, slot ORDER BY site, slot"
        ).fetchall()
        wanted = None if sites is None else set(sites)
        return [
            SlotTotal(site, slot, wh, n, flagged)
            for site, slot, wh, n, flagged in rows
            if wanted is None or site in wanted
        ]

    def close(self) -> None:
        self._db.close()

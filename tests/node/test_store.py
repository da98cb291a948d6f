"""The node's SQLite store on real files: its page size, the log's txid index (a prefix
of 8 bytes, matched in full), and the migrations of an existing database."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from ledger_node.interfaces import commands
from ledger_node.interfaces.verify import verify
from ledger_node.ledger import Ledger, LedgerSettings
from ledger_node.ledger.store import PAGE_BYTES, SCHEMA_VERSION, StoreError, connect
from ledger_node.ledger.txlog import MerkleLog
from tests.support.ledgers import T0, Net

_LOG_4 = (
    "CREATE TABLE log (pos INTEGER PRIMARY KEY, txid BLOB NOT NULL UNIQUE, type TEXT NOT NULL,"
    " author TEXT NOT NULL, envelope BLOB, leaf BLOB, received_at REAL NOT NULL,"
    " source TEXT NOT NULL) STRICT"
)
"""The log table of schema 4, with its UNIQUE txid index."""


def _indexes(db: sqlite3.Connection, table: str) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_schema WHERE type='index' AND tbl_name=?", (table,))
    return {r[0] for r in rows}


def test_a_new_database_has_large_pages_and_a_short_txid_index(tmp_path: Path) -> None:
    db = connect(tmp_path / "new.sqlite")
    assert db.execute("PRAGMA page_size").fetchone() == (PAGE_BYTES,)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert _indexes(db, "log") == {"log_authored", "log_txid"}  # no index of whole txids
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT pos FROM log WHERE substr(txid, 1, 8) = ? AND txid = ?",
        (bytes(8), bytes(32)),
    ).fetchall()
    assert "USING INDEX log_txid" in plan[0][3]


def test_txids_sharing_their_first_8_bytes_are_told_apart(tmp_path: Path) -> None:
    db = connect(tmp_path / "log.sqlite")
    txlog = MerkleLog(db)
    first = hashlib.sha256(b"a").digest()
    second = first[:8] + hashlib.sha256(b"b").digest()[8:]  # the same index key
    assert txlog.append(first, "x", "a", b"a", 1.0, "local") == 0
    assert txlog.append(second, "x", "a", b"b", 1.0, "local") == 1
    assert txlog.pos_of(first) == 0
    assert txlog.pos_of(second) == 1
    assert txlog.pos_of(first[:8] + bytes(24)) is None


def test_a_node_database_of_schema_3_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = connect(path)
    db.execute("DROP TABLE pending")
    db.execute(
        "CREATE TABLE pending (txid BLOB PRIMARY KEY, envelope BLOB NOT NULL, reason TEXT"
        " NOT NULL, received_at REAL NOT NULL, source TEXT NOT NULL) STRICT"
    )
    db.execute("INSERT INTO pending VALUES (x'01', x'02', 'unknown_command', 1.0, 'mqtt')")
    db.execute("UPDATE meta SET value = 3 WHERE key = 'schema'")
    db.close()
    db = connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (SCHEMA_VERSION,)
    assert db.execute("SELECT signer, known FROM pending").fetchall() == [("", 1)]
    assert "pending_signer" in _indexes(db, "pending")


def test_a_log_of_schema_4_is_migrated_and_still_verifies(tmp_path: Path) -> None:
    """A node database of schema 4 (the log with a UNIQUE index of whole txids), with
    readings batches and a shredded epoch: after the migration its entries are the same,
    txids are found through the short index, a resent batch and a resent fact are
    replays, and `verify` passes."""
    net = Net(tmp_path)
    facts = net.fig.registrations()
    net.everywhere(facts)
    net.epochs()
    tso = net.ledgers["tso"]
    batches = [
        gw.batch(T0 - 120, {"m1": 5, "m2": 6})
        for site, gw in sorted(net.fig.gateways.items())
        if site in ("site1", "site3")
    ]
    net.everywhere(batches)
    with tso.transaction() as changes:
        commands.VERBS["shred"].author(tso, {"site": "site1", "epoch": 0})
    net.everywhere([raw for _, raw in changes.authored])
    path, me = net.tmp / "tso.sqlite", tso.me
    columns = "pos, txid, type, author, envelope, leaf, received_at, source"
    before = tso.db.execute(f"SELECT {columns} FROM log ORDER BY pos").fetchall()
    assert any(row[4] is None for row in before)  # site1's batch was shredded
    tso.db.execute("BEGIN")
    tso.db.execute("ALTER TABLE log RENAME TO log_5")
    tso.db.execute("DROP INDEX log_txid")
    tso.db.execute(_LOG_4)
    tso.db.execute(f"INSERT INTO log SELECT {columns} FROM log_5")
    tso.db.execute("DROP TABLE log_5")
    tso.db.execute("UPDATE meta SET value = 4 WHERE key = 'schema'")
    tso.db.execute("COMMIT")
    tso.db.close()
    for ledger in net.ledgers.values():
        ledger.db.close()

    db = connect(path)
    assert db.execute("SELECT value FROM meta WHERE key='schema'").fetchone() == (SCHEMA_VERSION,)
    assert _indexes(db, "log") == {"log_authored", "log_txid"}
    assert db.execute(f"SELECT {columns} FROM log ORDER BY pos").fetchall() == before
    txlog = MerkleLog(db)
    assert [txlog.pos_of(bytes(row[1])) for row in before] == [row[0] for row in before]
    db.close()
    again = Ledger(connect(path), me, net.clock, LedgerSettings(late_after_s=600))
    with again.transaction():
        assert again.admit(batches[1], "mqtt").status == "replay"
        assert again.admit(batches[0], "mqtt").status == "replay"  # its envelope is shredded
        assert again.admit(facts[0], "mqtt").status == "replay"
    again.db.close()
    assert verify(connect(path, readonly=True), me).problems == []


def test_a_database_of_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    db = connect(path)
    db.execute("UPDATE meta SET value = 99 WHERE key = 'schema'")
    db.close()
    with pytest.raises(StoreError, match="has schema 99; this node uses 5: start with a new"):
        connect(path)

"""The gateway's one SQLite file (`state.sqlite`): outbox, meter state, slots held for a
key, keys, DR facts.

WAL journal with ``synchronous=FULL``, so a commit survives power loss. One file, so a
batch, the `seq` it was signed with, the meter states it reports and the control actions
it records are committed in one transaction. Created with mode 0600: it holds epoch keys.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import GatewayError

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq          INTEGER PRIMARY KEY,
    slot         INTEGER NOT NULL,
    envelope     BLOB    NOT NULL,
    created_at   REAL    NOT NULL,
    published_at REAL
);
CREATE TABLE IF NOT EXISTS meter_state (
    meter TEXT PRIMARY KEY,
    slot  INTEGER NOT NULL,
    state TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS held (
    slot    INTEGER NOT NULL,
    meter   TEXT    NOT NULL,
    wh      INTEGER NOT NULL,
    quality TEXT    NOT NULL,
    PRIMARY KEY (slot, meter)
);
CREATE TABLE IF NOT EXISTS epoch_keys (
    site    TEXT    NOT NULL,
    epoch   INTEGER NOT NULL,
    key     BLOB    NOT NULL,
    members TEXT    NOT NULL DEFAULT '',   -- the group's organisations, comma-separated
    PRIMARY KEY (site, epoch)
);
CREATE TABLE IF NOT EXISTS shredded_epochs (
    site  TEXT    NOT NULL,
    epoch INTEGER NOT NULL,
    PRIMARY KEY (site, epoch)
);
CREATE TABLE IF NOT EXISTS dr_facts (
    kind        TEXT NOT NULL,
    author      TEXT NOT NULL,
    key         TEXT NOT NULL,
    rev         INTEGER NOT NULL,
    envelope    BLOB NOT NULL,
    received_at REAL NOT NULL,
    PRIMARY KEY (kind, author, key)
);
CREATE TABLE IF NOT EXISTS dr_done (
    command TEXT    NOT NULL,
    state   INTEGER NOT NULL,
    PRIMARY KEY (command, state)
);
CREATE TABLE IF NOT EXISTS control_actions (
    id      INTEGER PRIMARY KEY,
    command TEXT    NOT NULL,
    state   INTEGER NOT NULL,
    t       INTEGER NOT NULL,
    ok      INTEGER NOT NULL,
    seq     INTEGER
);
"""
META_DEFAULTS = {"next_seq": 0, "boot": 0, "last_confirmed_seq": -1, "confirmed": 0}


class Database:
    """A connection shared by the gateway's threads; `transaction()` serialises writers."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            _create(path)
        self.path = path
        self.lock = threading.RLock()
        self.conn = _connect(path)
        with self.lock:
            self.conn.executescript(SCHEMA)
            self._migrate()
            for key, value in META_DEFAULTS.items():
                self.conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))

    def _migrate(self) -> None:
        """Bring a state file written by an older version up to this schema."""
        columns = {row[1] for row in self.conn.execute("PRAGMA table_info(epoch_keys)")}
        if "members" not in columns:
            self.conn.execute("ALTER TABLE epoch_keys ADD COLUMN members TEXT NOT NULL DEFAULT ''")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on any exception."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def meta(self, key: str) -> int:
        with self.lock:
            return int(
                self.conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0]
            )

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if mode != "wal":
        raise GatewayError(f"{path}: cannot use the WAL journal (got {mode})")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA secure_delete=ON")  # an erased key is zeroed on disk
    return conn


def _create(path: Path) -> None:
    """Build a new state file beside `path` and rename it into place, so a reader
    (`mlg-gateway status`) never finds the file without its tables."""
    tmp = path.with_name(path.name + ".new")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    conn = _connect(tmp)
    try:
        conn.executescript(SCHEMA)
    finally:
        conn.close()  # the last connection checkpoints the WAL into the file
    os.replace(tmp, path)


def open_readonly(path: Path) -> sqlite3.Connection:
    """For `mlg-gateway status`: read the state file without writing to it."""
    if not path.exists():
        raise GatewayError(f"no gateway state at {path}: has the gateway run with this config?")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

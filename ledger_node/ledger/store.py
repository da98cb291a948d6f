"""The node's database: the log, the state derived from it, and node-local records.

Embedded SQLite by default: WAL with ``synchronous=FULL``: once a transaction commits, it
survives power loss, and only then are the MQTT messages it holds acknowledged. One
process writes (the node's worker); the API, `status` and `verify` read through their own
connections. A `postgresql://` URL instead puts the same tables on a PostgreSQL server
(`pgstore`, which translates this module's SQLite-dialect SQL): every module talks to a
`Db`, whichever it is.

Three kinds of tables:

- the log (`log`, `tree`): every accepted fact, in this node's order, Merkle-hashed;
- derived state, rebuildable by replaying the log (`mlg-node verify` does exactly that and
  compares): registry, epochs, batches and the readings (and DR control actions) this node
  can decrypt, DR commands, declarations, AS reports, equivocations, keyed facts;
- node-local records: facts held for a missing predecessor, counters, contract results,
  slot digests, checkpoints and co-signatures, peers.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Protocol

try:  # the server-grade store is an optional extra (`pip install meterledger[postgres]`)
    import psycopg

    from ledger_node.ledger import pgstore
except ImportError:  # pragma: no cover - installed with the tests
    psycopg = None  # type: ignore[assignment]

from ledger_node.shared.errors import MeterledgerError

SCHEMA_VERSION = 5
MIGRATIONS = {
    3: (
        "ALTER TABLE pending ADD COLUMN signer TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE pending ADD COLUMN known INTEGER NOT NULL DEFAULT 1",
    ),
    # The log loses its UNIQUE txid index (its 32-byte keys were 12 % of the bytes a
    # reading takes) for an index of the txids' first 8 bytes (`log_txid`): the table is
    # copied, since a column constraint cannot be dropped in place (the schema's indexes
    # are made again after the migrations).
    4: (
        "CREATE TABLE log_5 (pos INTEGER PRIMARY KEY, txid BLOB NOT NULL, type TEXT NOT NULL,"
        " author TEXT NOT NULL, envelope BLOB, leaf BLOB, received_at REAL NOT NULL,"
        " source TEXT NOT NULL) STRICT;",  # the `;` ends what pgstore translates
        "INSERT INTO log_5 SELECT pos, txid, type, author, envelope, leaf, received_at, source"
        " FROM log ORDER BY pos",
        "DROP TABLE log",
        "ALTER TABLE log_5 RENAME TO log",
    ),
}
"""The statements that take a database from the version of the key to the next one."""

PAGE_BYTES = 16_384
"""SQLite's page size for a new database. A readings batch of four meters is a log row of
about 1 KB: a 4 KiB page held three of them and left a quarter unused; a 16 KiB page holds
fifteen (under 1 % unused). Larger pages would fit batches of 16 meters and more as well,
but multiply what each small commit writes to the WAL. An existing database keeps its
page size (only a VACUUM outside WAL mode changes it)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value ANY) STRICT;

-- The log: leaf `pos` is the envelope; its leaf hash is kept only once it is shredded.
-- A txid (the SHA-256 of the envelope) is found through the index of its first 8 bytes
-- (`txlog.TXID_MATCH`); no two entries share a txid (a readings batch is one per
-- (gateway, seq), any other fact is looked up before it is appended).
CREATE TABLE IF NOT EXISTS log (
    pos         INTEGER PRIMARY KEY,
    txid        BLOB    NOT NULL,
    type        TEXT    NOT NULL,
    author      TEXT    NOT NULL,
    envelope    BLOB,
    leaf        BLOB,
    received_at REAL    NOT NULL,
    source      TEXT    NOT NULL
) STRICT;
-- An organisation's facts by type (every revision of its declarations, its AS reports),
-- for the screens; readings batches, the bulk of the log, stay out of it (a query uses it
-- when it repeats the condition).
CREATE INDEX IF NOT EXISTS log_authored ON log (author, type) WHERE type != 'readings';
CREATE INDEX IF NOT EXISTS log_txid ON log (substr(txid, 1, 8));
-- Interior Merkle nodes of the upper levels: id = level << 40 | index.
CREATE TABLE IF NOT EXISTS tree (id INTEGER PRIMARY KEY, hash BLOB NOT NULL) STRICT;

-- Derived state.
CREATE TABLE IF NOT EXISTS orgs (
    id TEXT PRIMARY KEY, role TEXT NOT NULL, ac TEXT, ed25519 BLOB NOT NULL,
    x25519 BLOB NOT NULL, active INTEGER NOT NULL, pos INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS registry_n (author TEXT PRIMARY KEY, n INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS sites (
    site TEXT PRIMARY KEY, ra TEXT NOT NULL, gateway TEXT NOT NULL UNIQUE,
    gw_ed25519 BLOB NOT NULL, gw_x25519 BLOB NOT NULL, meters TEXT NOT NULL, pos INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS site_groups (
    site TEXT NOT NULL, members TEXT NOT NULL, gateway TEXT NOT NULL,
    PRIMARY KEY (site, members, gateway)
) STRICT;
CREATE TABLE IF NOT EXISTS epochs (
    site TEXT NOT NULL, epoch INTEGER NOT NULL, pos INTEGER NOT NULL, members TEXT NOT NULL,
    gateway TEXT NOT NULL, PRIMARY KEY (site, epoch)
) STRICT;
CREATE TABLE IF NOT EXISTS shreds (
    site TEXT NOT NULL, epoch INTEGER NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY (site, epoch)
) STRICT;
CREATE TABLE IF NOT EXISTS keyed (
    author TEXT NOT NULL, key TEXT NOT NULL, pos INTEGER NOT NULL, PRIMARY KEY (author, key)
) STRICT;
CREATE TABLE IF NOT EXISTS equivocations (
    pos INTEGER PRIMARY KEY, author TEXT NOT NULL, key TEXT NOT NULL, first_pos INTEGER NOT NULL,
    slot INTEGER
) STRICT;
-- state: sealed (not opened here), open, bad (sealed readings disagree with the batch),
-- shredded (its epoch key was destroyed), equivocated (its gateway signed another batch
-- with the same seq).
CREATE TABLE IF NOT EXISTS batches (
    pos INTEGER PRIMARY KEY, gateway TEXT NOT NULL, seq INTEGER NOT NULL, site TEXT NOT NULL,
    slot INTEGER NOT NULL, slot_s INTEGER NOT NULL, epoch INTEGER NOT NULL, state TEXT NOT NULL,
    UNIQUE (gateway, seq)
) STRICT;
CREATE INDEX IF NOT EXISTS batches_slot ON batches (slot, site);
CREATE INDEX IF NOT EXISTS batches_epoch ON batches (site, epoch, state);
CREATE TABLE IF NOT EXISTS readings (
    pos INTEGER NOT NULL, meter TEXT NOT NULL, wh INTEGER NOT NULL, r BLOB NOT NULL,
    quality TEXT NOT NULL, PRIMARY KEY (pos, meter)
) STRICT, WITHOUT ROWID;
-- DR control actions a gateway recorded in a batch this node decrypted (seed step 2).
CREATE TABLE IF NOT EXISTS control_actions (
    pos INTEGER NOT NULL, n INTEGER NOT NULL, command TEXT NOT NULL, state INTEGER NOT NULL,
    t INTEGER NOT NULL, ok INTEGER NOT NULL, PRIMARY KEY (pos, n)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY, pos INTEGER NOT NULL, t_start INTEGER NOT NULL, t_end INTEGER NOT NULL,
    slot_s INTEGER NOT NULL, gate_closure INTEGER NOT NULL, price INTEGER NOT NULL,
    targets TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS declarations (
    command TEXT NOT NULL, ra TEXT NOT NULL, rev INTEGER NOT NULL, pos INTEGER NOT NULL,
    sites TEXT NOT NULL, PRIMARY KEY (command, ra)
) STRICT;
CREATE TABLE IF NOT EXISTS as_reports (
    command TEXT NOT NULL, author TEXT NOT NULL, rev INTEGER NOT NULL, pos INTEGER NOT NULL,
    slots TEXT NOT NULL, PRIMARY KEY (command, author)
) STRICT;

-- Node-local records.
CREATE TABLE IF NOT EXISTS pending (
    txid BLOB PRIMARY KEY, envelope BLOB NOT NULL, reason TEXT NOT NULL,
    received_at REAL NOT NULL, source TEXT NOT NULL,
    signer TEXT NOT NULL DEFAULT '', known INTEGER NOT NULL DEFAULT 1
) STRICT;
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, count INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS slots (
    slot INTEGER PRIMARY KEY, count INTEGER NOT NULL, closes_at INTEGER NOT NULL,
    digest BLOB, digest_count INTEGER, announced INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX IF NOT EXISTS slots_open ON slots (closes_at) WHERE digest IS NULL;
-- What the contract must settle again: commands whose command or declarations changed, and
-- slots whose batches were decrypted. Written in the transaction that changed them, taken
-- in the one that settles; `verify` skips what is still queued (not settled yet).
CREATE TABLE IF NOT EXISTS unsettled_commands (command TEXT PRIMARY KEY) STRICT;
CREATE TABLE IF NOT EXISTS unsettled_slots (slot INTEGER PRIMARY KEY) STRICT;
CREATE TABLE IF NOT EXISTS results (
    command TEXT NOT NULL, slot INTEGER NOT NULL, kind TEXT NOT NULL, scope TEXT NOT NULL,
    contract TEXT NOT NULL, actual_wh INTEGER NOT NULL, baseline_wh INTEGER NOT NULL,
    delivered_wh INTEGER NOT NULL, target_wh INTEGER NOT NULL, reported INTEGER NOT NULL,
    declared INTEGER NOT NULL, flagged INTEGER NOT NULL, v_wh INTEGER NOT NULL, r BLOB NOT NULL,
    refs TEXT NOT NULL, PRIMARY KEY (command, slot, kind, scope)
) STRICT;
CREATE TABLE IF NOT EXISTS rewards (
    command TEXT NOT NULL, ac TEXT NOT NULL, contract TEXT NOT NULL, price INTEGER NOT NULL,
    credited_wh INTEGER NOT NULL, shortfall_wh INTEGER NOT NULL, penalised_wh INTEGER NOT NULL,
    reward_yen INTEGER NOT NULL, PRIMARY KEY (command, ac)
) STRICT;
CREATE TABLE IF NOT EXISTS checkpoints (
    node TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, t INTEGER NOT NULL,
    txid BLOB NOT NULL, envelope BLOB NOT NULL, received_at REAL NOT NULL,
    consistent TEXT NOT NULL, PRIMARY KEY (node, size)
) STRICT;
CREATE TABLE IF NOT EXISTS cosignatures (
    node TEXT NOT NULL, size INTEGER NOT NULL, witness TEXT NOT NULL, slots INTEGER NOT NULL,
    envelope BLOB NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (node, size, witness)
) STRICT;
CREATE TABLE IF NOT EXISTS peer_slots (
    peer TEXT NOT NULL, slot INTEGER NOT NULL, count INTEGER NOT NULL, digest BLOB NOT NULL,
    PRIMARY KEY (peer, slot)
) STRICT;
-- Readings batches whose envelopes `retention.prune` archived out of the log (their leaf
-- hashes stay in `log.leaf`).
CREATE TABLE IF NOT EXISTS pruned (pos INTEGER PRIMARY KEY) STRICT;
-- Past one machine (PostgreSQL): readings batches a verifying front-end checked (size,
-- envelope, signature with `key`, schema, registry), waiting for the sequencer to admit
-- them; and the front-ends' heartbeats (a silent one's broker session is adopted).
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT, txid BLOB NOT NULL UNIQUE, envelope BLOB NOT NULL,
    key BLOB NOT NULL, received_at REAL NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS frontends (
    client_id TEXT PRIMARY KEY, seen_at REAL NOT NULL, adopted_by TEXT
) STRICT;
CREATE TABLE IF NOT EXISTS peers (
    peer TEXT PRIMARY KEY, cursor INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL DEFAULT 0,
    fetched INTEGER NOT NULL DEFAULT 0, last_sync REAL
) STRICT;
"""

DERIVED_TABLES = (
    "orgs",
    "registry_n",
    "sites",
    "site_groups",
    "epochs",
    "shreds",
    "keyed",
    "equivocations",
    "batches",
    "readings",
    "control_actions",
    "commands",
    "declarations",
    "as_reports",
)
"""Tables that are a function of the log (and this node's secret key) alone."""


class StoreError(MeterledgerError):
    pass


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Db(Protocol):
    """A connection to the node's database: SQLite's, or `pgstore.PgDb`."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, seq: Iterable[Sequence[Any]], /) -> Cursor: ...
    def executescript(self, script: str, /) -> Any: ...
    def close(self) -> None: ...


PG_PREFIXES = ("postgresql://", "postgres://")

OperationalError: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
"""The database itself failed: disk full, I/O, locked, the server gone."""
DatabaseError: tuple[type[Exception], ...] = (sqlite3.Error,)
if psycopg is not None:
    OperationalError += (psycopg.OperationalError,)
    DatabaseError += (psycopg.Error,)


def is_postgres(where: object) -> bool:
    """True when the node's `db` setting names a PostgreSQL server (a URL)."""
    return str(where).startswith(PG_PREFIXES)


def is_postgres_db(db: Db) -> bool:
    return getattr(db, "dialect", "sqlite") == "postgresql"


def lost(db: Db) -> bool:
    """True when the connection to a database server is gone: retrying on it is futile."""
    return bool(getattr(db, "closed", False))


def connect(path: Path | str, *, readonly: bool = False) -> Db:
    """A connection to the node's database: a file (":memory:" for a scratch copy) or a
    `postgresql://` URL."""
    if is_postgres(path):
        if psycopg is None:
            raise StoreError(
                f"{path}: PostgreSQL needs psycopg: pip install 'meterledger[postgres]'"
            )
        try:
            return pgstore.connect(str(path), _SCHEMA, _versioned, readonly=readonly)
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot reach the node's PostgreSQL database: {exc}") from exc
    if readonly:
        if not Path(path).exists():
            raise StoreError(f"{path}: no such database (has the node run yet?)")
        db = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA query_only=ON")
        return db
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Decrypted readings live here: readable by the node's user only (SQLite gives
        # its WAL and shared-memory files the database file's mode).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA page_size={PAGE_BYTES}")  # before anything is written: new files only
    if str(path) != ":memory:":
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"{path}: cannot use the WAL journal (got {mode})")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA secure_delete=ON")  # deleted plaintext (shredded epochs) is zeroed
    db.executescript(_SCHEMA)
    _versioned(db)
    return db


def _versioned(db: Db) -> None:
    """Take a new database to SCHEMA_VERSION, or an older one through MIGRATIONS."""
    version = get_meta(db, "schema")
    if version is None:
        set_meta(db, "schema", SCHEMA_VERSION)
        version = SCHEMA_VERSION
    migrated = version in MIGRATIONS
    while version in MIGRATIONS:
        with transaction(db):
            for statement in MIGRATIONS[version]:
                db.execute(statement)
            set_meta(db, "schema", version + 1)
        version += 1
    if migrated:
        db.executescript(_SCHEMA)  # the indexes of the tables a migration copied
    if version != SCHEMA_VERSION:
        raise StoreError(
            f"the database has schema {version}; this node uses {SCHEMA_VERSION}: "
            "start with a new database and let the node catch up from its peers"
        )
    db.execute("CREATE INDEX IF NOT EXISTS pending_signer ON pending (signer, known)")


@contextmanager
def transaction(db: Db) -> Iterator[None]:
    """One write transaction: everything in it commits together or not at all. On
    PostgreSQL its statements are pipelined (sent without waiting for each answer; a read
    waits for those before it), and an error met on the way rolls it back all the same."""
    db.execute("BEGIN IMMEDIATE")
    pipeline = getattr(db, "pipeline", None)
    try:
        with pipeline() if pipeline is not None else nullcontext():
            yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def purge_wal(db: Db) -> None:
    """Copy the WAL into the database and empty it: with `secure_delete`, nothing deleted
    survives in either file (after a shred). On PostgreSQL, VACUUM FULL rewrites the
    tables that held plaintext without the deleted rows (the server's write-ahead log and
    backups keep them until they are recycled: see the README)."""
    if is_postgres_db(db):
        db.execute("VACUUM FULL readings, control_actions")
        return
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def get_meta(db: Db, key: str, default: Any = None) -> Any:
    """A node-local setting (SQLite keeps its type; PostgreSQL's text column holds JSON)."""
    row = db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    if row is None:
        return default
    return json.loads(row[0]) if is_postgres_db(db) else row[0]


def set_meta(db: Db, key: str, value: Any) -> None:
    stored = json.dumps(value) if is_postgres_db(db) else value
    db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, stored))


def count(db: Db, name: str, by: int = 1) -> None:
    """Add `by` to counter `name` (e.g. ``accepted:readings``, ``refused:late``)."""
    db.execute(
        "INSERT INTO counters VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET count = counters.count + excluded.count",
        (name, by),
    )


def counters(db: Db) -> dict[str, int]:
    return dict(db.execute("SELECT name, count FROM counters ORDER BY name"))

"""Retention: old slots' readings batches archived out of the log, their Merkle leaves kept.

A TSO with a million meters at one-minute slots stores hundreds of terabytes a year if it
keeps every envelope online. `prune` takes the readings batches of the closed slots before
a cutoff (and inside this node's last signed checkpoint), writes their envelopes to an
archive file and makes it durable, and only then empties those envelopes in the log,
keeping each entry's leaf hash (as a shred does) and recording the entry in `pruned`.

Nothing else is rewritten: the tree, the checkpoints and every inclusion and consistency
proof stay as they were; the derived rows (batches, decrypted readings, slot digests) stay;
SQLite reuses the freed pages and PostgreSQL's VACUUM the freed space. `verify` takes a
pruned entry by its leaf and its rows as stored. The archive is a list of (position,
envelope) records; each envelope hashes to its entry's leaf, so `check_archive` proves an
archive against the log (or any checkpoint of it) years later.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

from ledger_node.ledger.store import Db
from ledger_node.ledger.txlog import MerkleLog
from ledger_node.shared.errors import MeterledgerError

MAGIC = b"MLGARC1\n"
_RECORD = struct.Struct(">QI")  # position, envelope length


class ArchiveError(MeterledgerError):
    pass


def prunable(db: Db, before_slot: int, now: float, late_after_s: int) -> list[tuple[int, bytes]]:
    """(position, envelope) of the readings batches to archive: slots starting before
    `before_slot` (UTC s) and closed by `now`, inside this node's last signed checkpoint,
    not pruned or shredded yet; in log order."""
    signed = db.execute(
        "SELECT COALESCE(MAX(size), 0) FROM checkpoints WHERE consistent = 'own'"
    ).fetchone()[0]
    rows = db.execute(
        "SELECT b.pos, l.envelope FROM batches b JOIN log l ON l.pos = b.pos"
        " WHERE b.slot < ? AND b.slot + b.slot_s + ? <= ? AND b.pos < ?"
        " AND l.envelope IS NOT NULL ORDER BY b.pos",
        (before_slot, late_after_s, int(now), signed),
    ).fetchall()
    return [(int(pos), bytes(envelope)) for pos, envelope in rows]


def write_archive(path: Path, entries: list[tuple[int, bytes]]) -> int:
    """Write `entries` to a new archive file and make it durable (file and folder synced);
    its size in bytes. Refuses to overwrite a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ArchiveError(f"{path} exists: name a new archive file") from None
    with os.fdopen(fd, "wb") as f:
        f.write(MAGIC)
        for pos, envelope in entries:
            f.write(_RECORD.pack(pos, len(envelope)))
            f.write(envelope)
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return size


def read_archive(path: Path) -> Iterator[tuple[int, bytes]]:
    """The (position, envelope) records of an archive file."""
    with path.open("rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise ArchiveError(f"{path} is not a meterledger archive")
        while head := f.read(_RECORD.size):
            if len(head) != _RECORD.size:
                raise ArchiveError(f"{path} is truncated")
            pos, length = _RECORD.unpack(head)
            envelope = f.read(length)
            if len(envelope) != length:
                raise ArchiveError(f"{path} is truncated at entry {pos}")
            yield pos, envelope


def prune(log: MerkleLog, entries: list[tuple[int, bytes]]) -> None:
    """Empty the archived entries' envelopes, keeping their leaves (in the caller's write
    transaction, after `write_archive` returned). Each entry's row is deleted and written
    again without its envelope: a row shrunk in place would leave its pages as full as
    they were (SQLite balances a page when it empties, not when a row shrinks), while the
    deleted rows' pages go to the free list, for the log's next appends."""
    db = log.db
    rows = []
    for pos, envelope in entries:
        leaf = log.hasher.leaf(envelope)
        if leaf != log.leaf_hash(pos):
            raise ArchiveError(f"entry {pos} changed while it was archived; nothing pruned")
        row = db.execute(
            "SELECT txid, type, author, received_at, source FROM log WHERE pos=?", (pos,)
        ).fetchone()
        rows.append((pos, bytes(row[0]), row[1], row[2], leaf, row[3], row[4]))
    db.executemany("DELETE FROM log WHERE pos=?", [(r[0],) for r in rows])
    db.executemany(
        "INSERT INTO log (pos, txid, type, author, leaf, received_at, source)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.executemany("INSERT INTO pruned VALUES (?)", [(r[0],) for r in rows])


def check_archive(path: Path, log: MerkleLog) -> int:
    """Check every record of an archive against the log's leaves; how many. Raises
    `ArchiveError` on the first that does not match."""
    n = 0
    for pos, envelope in read_archive(path):
        if pos >= log.size or log.hasher.leaf(envelope) != log.leaf_hash(pos):
            raise ArchiveError(f"{path}: entry {pos} does not match the log's leaf")
        n += 1
    return n

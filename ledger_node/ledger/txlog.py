"""The append-only log: every accepted fact in this node's order, as an RFC 6962 Merkle tree.

Leaf `pos` is the fact's envelope. Interior nodes of level `STORED_LEVEL` and above are
stored (`tree` table), written in the same transaction as the leaf that completes them;
lower ones are recomputed from at most 2**STORED_LEVEL envelopes when a proof needs them.
The right edge of the tree (one hash per set bit of the size) is kept in memory, so an
append costs one leaf hash and, on average, one node hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ledger_node.ledger.merkle import (
    RFC6962,
    Rfc6962Hasher,
    consistency_proof,
    inclusion_proof,
    split_point,
)
from ledger_node.ledger.store import Db

STORED_LEVEL = 4
_LEVEL_SHIFT = 40

TXID_MATCH = "substr(txid, 1, 8) = ? AND txid = ?"
"""The condition that finds a txid in `log` through its index (`log_txid`, of the txids'
first 8 bytes: a quarter of a whole txid's key); its parameters are `txid_params`."""


def txid_params(txid: bytes) -> tuple[bytes, bytes]:
    """The parameters of `TXID_MATCH` for `txid`."""
    return txid[:8], txid


def node_id(level: int, index: int) -> int:
    return (level << _LEVEL_SHIFT) | index


@dataclass(frozen=True, slots=True)
class Entry:
    """One log entry; `envelope` is None once the entry was shredded."""

    pos: int
    txid: bytes
    type: str
    author: str
    envelope: bytes | None
    received_at: float
    source: str


class MerkleLog:
    """The log table and its Merkle tree, through the node's (single) writer connection."""

    def __init__(self, db: Db, hasher: Rfc6962Hasher = RFC6962) -> None:
        self.db = db
        self.hasher = hasher
        self.size = 0
        self._edge: list[tuple[int, bytes]] = []  # (level, hash), largest subtree first
        self.reload()

    def reload(self) -> None:
        """Read the size and the tree's right edge from the database."""
        row = self.db.execute("SELECT MAX(pos) FROM log").fetchone()
        self.size = 0 if row[0] is None else row[0] + 1
        self._edge = []
        start = 0
        for level in range(self.size.bit_length() - 1, -1, -1):
            if self.size >> level & 1:
                self._edge.append((level, self.node(level, start >> level)))
                start += 1 << level

    # -- appending ------------------------------------------------------------------

    def append(
        self,
        txid: bytes,
        kind: str,
        author: str,
        envelope: bytes,
        received_at: float,
        source: str,
    ) -> int:
        """Add an entry (inside the caller's transaction); return its position."""
        pos = self.size
        self.db.execute(
            "INSERT INTO log (pos, txid, type, author, envelope, received_at, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pos, txid, kind, author, envelope, received_at, source),
        )
        self._push(self.hasher.leaf(envelope))
        return pos

    def append_shredded(
        self, txid: bytes, kind: str, author: str, leaf: bytes, received_at: float, source: str
    ) -> int:
        """Add an entry whose envelope was shredded, by its leaf hash (the replay of
        `verify` copying a log that holds one)."""
        pos = self.size
        self.db.execute(
            "INSERT INTO log (pos, txid, type, author, leaf, received_at, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (pos, txid, kind, author, leaf, received_at, source),
        )
        self._push(leaf)
        return pos

    def _push(self, leaf_hash: bytes) -> None:
        edge = self._edge
        level, h = 0, leaf_hash
        self.size += 1
        while edge and edge[-1][0] == level:
            _, left = edge.pop()
            h = self.hasher.node(left, h)
            level += 1
            if level >= STORED_LEVEL:
                self.db.execute(
                    "INSERT INTO tree VALUES (?, ?)",
                    (node_id(level, (self.size >> level) - 1), h),
                )
        edge.append((level, h))

    # -- reading ----------------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """The Merkle root of the first `size` entries (default: all)."""
        if size is None or size == self.size:
            if not self._edge:
                return self.hasher.empty()
            h = self._edge[-1][1]
            for _, left in reversed(self._edge[:-1]):
                h = self.hasher.node(left, h)
            return h
        if not 0 <= size <= self.size:
            raise ValueError(f"the log has {self.size} entries, not {size}")
        return self.subtree(0, size) if size else self.hasher.empty()

    def leaf_hash(self, pos: int) -> bytes:
        row = self.db.execute("SELECT envelope, leaf FROM log WHERE pos=?", (pos,)).fetchone()
        if row is None:
            raise ValueError(f"no entry at position {pos}")
        return row[1] if row[0] is None else self.hasher.leaf(row[0])

    def node(self, level: int, index: int) -> bytes:
        """The hash of the perfect subtree at `level` (0 = leaves) and `index`."""
        if level >= STORED_LEVEL:
            row = self.db.execute(
                "SELECT hash FROM tree WHERE id=?", (node_id(level, index),)
            ).fetchone()
            if row is None:
                raise ValueError(f"tree node level {level} index {index} is missing")
            return bytes(row[0])
        start = index << level
        rows = self.db.execute(
            "SELECT envelope, leaf FROM log WHERE pos >= ? AND pos < ? ORDER BY pos",
            (start, start + (1 << level)),
        ).fetchall()
        if len(rows) != 1 << level:
            raise ValueError(f"tree node level {level} index {index} is beyond the log")
        hashes = [leaf if env is None else self.hasher.leaf(env) for env, leaf in rows]
        while len(hashes) > 1:
            hashes = [
                self.hasher.node(a, b) for a, b in zip(hashes[::2], hashes[1::2], strict=True)
            ]
        return hashes[0]

    def subtree(self, start: int, end: int) -> bytes:
        """The hash of leaves [start, end) as RFC 6962's MTH computes it."""
        width = end - start
        if width & (width - 1) == 0 and start % width == 0:
            return self.node(width.bit_length() - 1, start // width)
        k = split_point(width)
        return self.hasher.node(self.subtree(start, start + k), self.subtree(start + k, end))

    def inclusion(self, pos: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(pos, self.size if size is None else size, self.subtree)

    def consistency(self, old: int, new: int | None = None) -> list[bytes]:
        return consistency_proof(old, self.size if new is None else new, self.subtree)

    def pos_of(self, txid: bytes) -> int | None:
        query = f"SELECT pos FROM log WHERE {TXID_MATCH}"  # noqa: S608 - a constant
        row = self.db.execute(query, txid_params(txid)).fetchone()
        return None if row is None else int(row[0])

    def entry(self, pos: int) -> Entry | None:
        row = self.db.execute(
            "SELECT pos, txid, type, author, envelope, received_at, source FROM log WHERE pos=?",
            (pos,),
        ).fetchone()
        return None if row is None else Entry(*row)

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[Entry]:
        """Entries in log order, read in chunks."""
        stop = self.size if end is None else end
        while start < stop:
            rows = self.db.execute(
                "SELECT pos, txid, type, author, envelope, received_at, source FROM log"
                " WHERE pos >= ? AND pos < ? ORDER BY pos",
                (start, min(stop, start + 1000)),
            ).fetchall()
            if not rows:
                return
            for row in rows:
                yield Entry(*row)
            start = rows[-1][0] + 1

    def shred(self, pos: int) -> None:
        """Erase entry `pos`'s envelope, keeping its leaf hash: the tree stays intact."""
        leaf = self.leaf_hash(pos)
        self.db.execute("UPDATE log SET envelope=NULL, leaf=? WHERE pos=?", (leaf, pos))

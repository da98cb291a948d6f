"""Inclusion and consistency proofs as JSON documents, and checking them.

An inclusion proof names the fact (its txid and envelope), its leaf index, the tree size
and root it is proven against, and the audit path (RFC 9162 section 2.1.3; hashes in hex,
SHA-256 with leaf prefix 0x00 and node prefix 0x01). When the node has signed a
checkpoint that covers the fact, the proof is against that checkpoint and carries it, so
an auditor holding the node's public key knows the root is the node's. Any RFC 9162
verifier accepts `leaf_index`, `tree_size`, `leaf_hash`, `proof` and `root`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import nacl.signing

from ledger_node.ledger.merkle import RFC6962, verify_consistency, verify_inclusion
from ledger_node.ledger.store import Db
from ledger_node.ledger.txlog import MerkleLog
from ledger_node.shared.errors import MeterledgerError
from ledger_node.wire import Checkpoint, WireError, open_message

HASH = "sha256-rfc6962"


class ProofRequestError(MeterledgerError):
    pass


TXID_HEX_DIGITS = 64
"""A txid is the SHA-256 of a fact's envelope: 32 bytes, 64 hex digits."""


class TxidError(ProofRequestError):
    """Not a txid; `reason` is "not_hex" or "length"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def parse_txid(text: str) -> bytes:
    """A txid from its hex text (surrounding blanks ignored); `TxidError` unless it is 64
    hex digits."""
    text = text.strip()
    try:
        txid = bytes.fromhex(text)
    except ValueError:
        raise TxidError("not_hex", f"the txid {text[:80]!r} is not hex") from None
    if len(text) != TXID_HEX_DIGITS:
        raise TxidError(
            "length", f"a txid has {TXID_HEX_DIGITS} hex digits (a SHA-256); this has {len(text)}"
        )
    return txid


def _checkpoint_covering(db: Db, node: str, pos: int) -> tuple[int, bytes] | None:
    row = db.execute(
        "SELECT size, envelope FROM checkpoints WHERE node=? AND size > ? ORDER BY size DESC"
        " LIMIT 1",
        (node, pos),
    ).fetchone()
    return None if row is None else (int(row[0]), bytes(row[1]))


def inclusion(db: Db, node: str, txid: bytes) -> dict[str, Any]:
    txlog = MerkleLog(db)
    pos = txlog.pos_of(txid)
    if pos is None:
        raise ProofRequestError(f"{txid.hex()} is not in this node's log")
    entry = txlog.entry(pos)
    assert entry is not None
    covering = _checkpoint_covering(db, node, pos)
    size = covering[0] if covering is not None else txlog.size
    return {
        "kind": "inclusion",
        "hash": HASH,
        "node": node,
        "txid": txid.hex(),
        "envelope": None if entry.envelope is None else bytes(entry.envelope).hex(),
        "leaf_index": pos,
        "tree_size": size,
        "leaf_hash": txlog.leaf_hash(pos).hex(),
        "root": txlog.root(size).hex(),
        "proof": [h.hex() for h in txlog.inclusion(pos, size)],
        "checkpoint": None if covering is None else covering[1].hex(),
    }


def consistency(db: Db, node: str, old: int, new: int | None) -> dict[str, Any]:
    txlog = MerkleLog(db)
    new = txlog.size if new is None else new
    if not 0 < old <= new <= txlog.size:
        raise ProofRequestError(f"sizes must satisfy 0 < old <= new <= {txlog.size}")
    return {
        "kind": "consistency",
        "hash": HASH,
        "node": node,
        "old_size": old,
        "new_size": new,
        "old_root": txlog.root(old).hex(),
        "new_root": txlog.root(new).hex(),
        "proof": [h.hex() for h in txlog.consistency(old, new)],
    }


def check(doc: dict[str, Any], node_key: nacl.signing.VerifyKey | None = None) -> str:
    """Check a proof document; return what was shown, or raise `MeterledgerError`."""
    if doc.get("hash") != HASH:
        raise ProofRequestError(f"unknown hash {doc.get('hash')!r}; expected {HASH}")
    try:
        proof = [bytes.fromhex(h) for h in doc["proof"]]
        if doc.get("kind") == "consistency":
            verify_consistency(
                RFC6962,
                int(doc["old_size"]),
                int(doc["new_size"]),
                proof,
                bytes.fromhex(doc["old_root"]),
                bytes.fromhex(doc["new_root"]),
            )
            return (
                f"the log of {doc['node']} at {doc['new_size']} entries extends the one at"
                f" {doc['old_size']}"
            )
        leaf_hash = bytes.fromhex(doc["leaf_hash"])
        if doc.get("envelope"):
            envelope = bytes.fromhex(doc["envelope"])
            if hashlib.sha256(envelope).hexdigest() != doc["txid"]:
                raise ProofRequestError("the envelope does not hash to the txid")
            if RFC6962.leaf(envelope) != leaf_hash:
                raise ProofRequestError("the envelope does not hash to the leaf hash")
        root = bytes.fromhex(doc["root"])
        size = int(doc["tree_size"])
        verify_inclusion(RFC6962, int(doc["leaf_index"]), size, leaf_hash, proof, root)
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofRequestError(f"not a proof document: {exc}") from None
    shown = f"{doc['txid']} is entry {doc['leaf_index']} of {doc['node']}'s log of {size}"
    if doc.get("checkpoint") and node_key is not None:
        raw = bytes.fromhex(doc["checkpoint"])
        try:
            _, cp = open_message(raw, {doc["node"]: node_key}, len(raw), frozenset({"checkpoint"}))
        except WireError as exc:
            raise ProofRequestError(f"the checkpoint does not verify: {exc}") from None
        assert isinstance(cp, Checkpoint)
        if cp.size != size or cp.root != root:
            raise ProofRequestError("the proof's root is not the signed checkpoint's")
        shown += ", under its signed checkpoint"
    elif node_key is not None:
        raise ProofRequestError("the proof carries no signed checkpoint")
    return shown

"""Merkle trees as in RFC 6962/9162: hashing, inclusion and consistency proofs.

Leaves hash as ``SHA-256(0x00 || data)`` and interior nodes as ``SHA-256(0x01 || left ||
right)``, so a leaf can never pass for a node. Proofs are built from a `subtree(start,
end)` function giving the hash of leaves [start, end) (the log answers it from stored
nodes), and verified with the algorithms of RFC 9162 section 2.1.3.2 and 2.1.4.2; every
verify function takes the hasher, and a failure names both sides.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ledger_node.shared.errors import MeterledgerError

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_BYTES = 32

Subtree = Callable[[int, int], bytes]
"""The hash of the leaves [start, end) of a tree: a perfect subtree or a right edge."""


@dataclass(frozen=True, slots=True)
class Rfc6962Hasher:
    """SHA-256 with distinct leaf (0x00) and node (0x01) prefixes."""

    def leaf(self, data: bytes) -> bytes:
        return hashlib.sha256(LEAF_PREFIX + data).digest()

    def node(self, left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(NODE_PREFIX + left + right).digest()

    def empty(self) -> bytes:
        """The root of the empty tree: SHA-256 of nothing."""
        return hashlib.sha256(b"").digest()


RFC6962 = Rfc6962Hasher()


class ProofError(MeterledgerError):
    """A proof that does not verify; `expected` and `calculated` give both sides."""

    def __init__(self, message: str, expected: bytes = b"", calculated: bytes = b"") -> None:
        if expected or calculated:
            message += f" (expected {expected.hex()}, calculated {calculated.hex()})"
        super().__init__(message)
        self.expected = expected
        self.calculated = calculated


def split_point(n: int) -> int:
    """The largest power of two strictly below `n` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(hasher: Rfc6962Hasher, leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH of a whole list of leaf hashes, straight from the definition (for checking)."""
    if not leaf_hashes:
        return hasher.empty()
    if len(leaf_hashes) == 1:
        return leaf_hashes[0]
    k = split_point(len(leaf_hashes))
    return hasher.node(root_of(hasher, leaf_hashes[:k]), root_of(hasher, leaf_hashes[k:]))


def subtree_from_leaves(hasher: Rfc6962Hasher, leaf_hashes: Sequence[bytes]) -> Subtree:
    """A `Subtree` over an in-memory list of leaf hashes."""
    return lambda start, end: root_of(hasher, leaf_hashes[start:end])


def inclusion_proof(index: int, size: int, subtree: Subtree) -> list[bytes]:
    """The audit path of leaf `index` in the tree of `size` leaves (RFC 6962 PATH)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start += k
    proof.reverse()
    return proof


def consistency_proof(old: int, new: int, subtree: Subtree) -> list[bytes]:
    """The proof that the tree of `new` leaves extends the one of `old` (RFC 6962 PROOF)."""
    if not 0 <= old <= new:
        raise ValueError(f"no consistency proof from {old} to {new}")
    if old in (0, new):
        return []
    proof: list[bytes] = []
    start, end, m, whole = 0, new, old, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            proof.append(subtree(start + k, end))
            end = start + k
        else:
            proof.append(subtree(start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        proof.append(subtree(start, end))
    proof.reverse()
    return proof


def verify_inclusion(
    hasher: Rfc6962Hasher,
    index: int,
    size: int,
    leaf_hash: bytes,
    proof: Sequence[bytes],
    root: bytes,
) -> None:
    """Check an inclusion proof (RFC 9162 2.1.3.2); raise `ProofError` if it fails."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size}")
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(f"proof has {len(proof)} hashes, too many for leaf {index}/{size}")
        if fn & 1 or fn == sn:
            r = hasher.node(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hasher.node(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes, too few for leaf {index}/{size}")
    if not hmac.compare_digest(r, root):
        raise ProofError(f"leaf {index} is not in the tree of {size}", root, r)


def verify_consistency(
    hasher: Rfc6962Hasher,
    old: int,
    new: int,
    proof: Sequence[bytes],
    old_root: bytes,
    new_root: bytes,
) -> None:
    """Check a consistency proof (RFC 9162 2.1.4.2); raise `ProofError` if it fails."""
    if old in (0, new) or not 0 <= old <= new:
        _verify_trivial_consistency(old, new, proof, old_root, new_root)
        return
    if not proof:
        raise ProofError(f"empty proof from {old} to {new}")
    path = list(proof)
    if old & (old - 1) == 0:  # a power of two: the old root is a node of the new tree
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"proof from {old} to {new} has too many hashes")
        if fn & 1 or fn == sn:
            fr, sr = hasher.node(c, fr), hasher.node(c, sr)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = hasher.node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError(f"proof from {old} to {new} has too few hashes")
    if not hmac.compare_digest(fr, old_root):
        raise ProofError(f"proof does not lead to the root of size {old}", old_root, fr)
    if not hmac.compare_digest(sr, new_root):
        raise ProofError(f"proof does not lead to the root of size {new}", new_root, sr)


def _verify_trivial_consistency(
    old: int, new: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    if not 0 <= old <= new:
        raise ProofError(f"a tree of {new} cannot extend one of {old}")
    if proof:
        raise ProofError(f"a proof from size {old} to {new} must be empty")
    if old == new and not hmac.compare_digest(old_root, new_root):
        raise ProofError(f"two different roots for size {new}", old_root, new_root)

"""Checkpoints and witness co-signatures: what nodes say about their logs to each other.

A node's checkpoint names its log's size and Merkle root, proves it extends the node's
previous checkpoint (an RFC 9162 consistency proof from `prev`), and gives an
order-independent digest of each slot it closed since (SHA-256 over the sorted txids of
the slot's readings batches). Replicas append in different orders, so their roots differ,
but their slot digests agree; a witness co-signs the slots whose digest equals its own.
Neither message is a ledger fact: they travel between nodes and are kept beside the log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ledger_node.shared.ids import b64
from ledger_node.wire.errors import SchemaError
from ledger_node.wire.messages import Message, body_schema, register
from ledger_node.wire.schema import B64, Id, Int, ListOf, Obj

MAX_PROOF_HASHES = 128
MAX_CHECKPOINT_SLOTS = 256


@dataclass(frozen=True, slots=True)
class SlotDigest:
    """Slot starting at `slot` (UTC s): `count` batches whose sorted txids hash to `digest`."""

    slot: int
    count: int
    digest: bytes


@register
@dataclass(frozen=True, slots=True)
class Checkpoint(Message):
    """Node `by`'s log at `size` entries has Merkle root `root` (at UTC s `t`)."""

    TYPE: ClassVar[str] = "checkpoint"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "size": Int(1),
            "root": B64(32, 32),
            "t": Int(0),
            "prev": Int(0),
            "proof": ListOf(B64(32, 32), max_len=MAX_PROOF_HASHES),
            "slots": ListOf(
                Obj({"s": Int(0), "n": Int(0), "d": B64(32, 32)}),
                max_len=MAX_CHECKPOINT_SLOTS,
            ),
        },
    )

    by: str
    size: int
    root: bytes
    t: int
    prev: int
    proof: tuple[bytes, ...]
    """Consistency proof from the node's checkpoint at `prev` entries (empty if prev is 0
    or equal to `size`)."""
    slots: tuple[SlotDigest, ...]

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "size": self.size,
            "root": b64(self.root),
            "t": self.t,
            "prev": self.prev,
            "proof": [b64(h) for h in self.proof],
            "slots": [{"s": s.slot, "n": s.count, "d": b64(s.digest)} for s in self.slots],
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(
            v["by"],
            v["size"],
            v["root"],
            v["t"],
            v["prev"],
            tuple(v["proof"]),
            tuple(SlotDigest(s["s"], s["n"], s["d"]) for s in v["slots"]),
        )

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        if v["prev"] > v["size"]:
            raise SchemaError("prev", "a checkpoint cannot be older than its predecessor")
        _check_slots(v)


@register
@dataclass(frozen=True, slots=True)
class Cosignature(Message):
    """Witness `by` checked node `node`'s checkpoint `cp` (its txid): the log at `size`
    with root `root` extends what the witness saw before, and the `slots` listed have the
    same digest on the witness."""

    TYPE: ClassVar[str] = "cosig"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "node": Id(),
            "size": Int(1),
            "root": B64(32, 32),
            "cp": B64(32, 32),
            "t": Int(0),
            "slots": ListOf(Obj({"s": Int(0), "d": B64(32, 32)}), max_len=MAX_CHECKPOINT_SLOTS),
        },
    )

    by: str
    node: str
    size: int
    root: bytes
    checkpoint: bytes
    t: int
    slots: tuple[tuple[int, bytes], ...]
    """(slot start UTC s, digest) the witness agrees with."""

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "node": self.node,
            "size": self.size,
            "root": b64(self.root),
            "cp": b64(self.checkpoint),
            "t": self.t,
            "slots": [{"s": s, "d": b64(d)} for s, d in self.slots],
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(
            v["by"],
            v["node"],
            v["size"],
            v["root"],
            v["cp"],
            v["t"],
            tuple((s["s"], s["d"]) for s in v["slots"]),
        )

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        if v["by"] == v["node"]:
            raise SchemaError("node", "a node does not witness its own checkpoint")
        _check_slots(v)


def _check_slots(v: dict[str, Any]) -> None:
    slots = [s["s"] for s in v["slots"]]
    if slots != sorted(set(slots)):
        raise SchemaError("slots", "must be sorted by slot and name each slot once")

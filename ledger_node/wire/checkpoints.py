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
from typing import Any, ClassVar

from ledger_node.wire import canonical
from ledger_node.wire.errors import SchemaError
from ledger_node.wire.messages import BODY_VERSION, check_version, register
from ledger_node.wire.schema import B64, Const, Id, Int, ListOf, Obj, b64

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
class Checkpoint:
    """Node `by`'s log at `size` entries has Merkle root `root` (at UTC s `t`)."""

    TYPE: ClassVar[str] = "checkpoint"
    AUTHOR: ClassVar[str] = "by"
    SCHEMA: ClassVar[Obj] = Obj(
        {
            "v": Const(BODY_VERSION),
            "type": Const("checkpoint"),
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
        }
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

    @property
    def author(self) -> str:
        return self.by

    def to_body(self) -> bytes:
        obj = {
            "v": BODY_VERSION,
            "type": self.TYPE,
            "by": self.by,
            "size": self.size,
            "root": b64(self.root),
            "t": self.t,
            "prev": self.prev,
            "proof": [b64(h) for h in self.proof],
            "slots": [{"s": s.slot, "n": s.count, "d": b64(s.digest)} for s in self.slots],
        }
        _check_checkpoint(self.SCHEMA.check(obj, ""))
        return canonical.encode(obj)

    @classmethod
    def from_body(cls, obj: dict[str, Any]) -> Checkpoint:
        check_version(obj)
        v = cls.SCHEMA.check(obj, "")
        _check_checkpoint(v)
        return cls(
            v["by"],
            v["size"],
            v["root"],
            v["t"],
            v["prev"],
            tuple(v["proof"]),
            tuple(SlotDigest(s["s"], s["n"], s["d"]) for s in v["slots"]),
        )


def _check_checkpoint(v: dict[str, Any]) -> None:
    if v["prev"] > v["size"]:
        raise SchemaError("prev", "a checkpoint cannot be older than its predecessor")
    slots = [s["s"] for s in v["slots"]]
    if slots != sorted(set(slots)):
        raise SchemaError("slots", "must be sorted by slot and name each slot once")


@register
@dataclass(frozen=True, slots=True)
class Cosignature:
    """Witness `by` checked node `node`'s checkpoint `cp` (its txid): the log at `size`
    with root `root` extends what the witness saw before, and the `slots` listed have the
    same digest on the witness."""

    TYPE: ClassVar[str] = "cosig"
    AUTHOR: ClassVar[str] = "by"
    SCHEMA: ClassVar[Obj] = Obj(
        {
            "v": Const(BODY_VERSION),
            "type": Const("cosig"),
            "by": Id(),
            "node": Id(),
            "size": Int(1),
            "root": B64(32, 32),
            "cp": B64(32, 32),
            "t": Int(0),
            "slots": ListOf(Obj({"s": Int(0), "d": B64(32, 32)}), max_len=MAX_CHECKPOINT_SLOTS),
        }
    )

    by: str
    node: str
    size: int
    root: bytes
    checkpoint: bytes
    t: int
    slots: tuple[tuple[int, bytes], ...]
    """(slot start UTC s, digest) the witness agrees with."""

    @property
    def author(self) -> str:
        return self.by

    def to_body(self) -> bytes:
        obj = {
            "v": BODY_VERSION,
            "type": self.TYPE,
            "by": self.by,
            "node": self.node,
            "size": self.size,
            "root": b64(self.root),
            "cp": b64(self.checkpoint),
            "t": self.t,
            "slots": [{"s": s, "d": b64(d)} for s, d in self.slots],
        }
        _check_cosig(self.SCHEMA.check(obj, ""))
        return canonical.encode(obj)

    @classmethod
    def from_body(cls, obj: dict[str, Any]) -> Cosignature:
        check_version(obj)
        v = cls.SCHEMA.check(obj, "")
        _check_cosig(v)
        return cls(
            v["by"],
            v["node"],
            v["size"],
            v["root"],
            v["cp"],
            v["t"],
            tuple((s["s"], s["d"]) for s in v["slots"]),
        )


def _check_cosig(v: dict[str, Any]) -> None:
    if v["by"] == v["node"]:
        raise SchemaError("node", "a node does not witness its own checkpoint")
    slots = [s["s"] for s in v["slots"]]
    if slots != sorted(set(slots)):
        raise SchemaError("slots", "must be sorted by slot and name each slot once")

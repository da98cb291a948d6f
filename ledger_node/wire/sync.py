"""Anti-entropy between nodes: a node asks a peer about the peer's log and verifies
whatever it gets back itself.

Three questions (`op`): ``ids`` (the txids at positions from..from+count), ``get`` (the
envelopes at the listed positions) and ``consistency`` (an RFC 9162 consistency proof
from size `from` to size `count`, with the root at `count`). Answers stay below the
asker's `max` bytes. Every fact an answer carries is an envelope signed by its own
author and is checked as if it had come from the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ledger_node.shared.ids import b64
from ledger_node.wire.checkpoints import MAX_PROOF_HASHES
from ledger_node.wire.envelope import MAX_ENVELOPE_BYTES
from ledger_node.wire.errors import SchemaError
from ledger_node.wire.messages import Message, body_schema, register
from ledger_node.wire.schema import B64, Id, Int, ListOf, Obj, Str

SYNC_OPS = frozenset({"ids", "get", "consistency"})
MAX_SYNC_IDS = 1024
MAX_SYNC_GET = 256

_HEAD = {"by": Id(), "to": Id(), "id": B64(16, 16), "op": Str(choices=SYNC_OPS)}
"""The fields a request and its answer share: who asks whom, the request id, the question."""


@register
@dataclass(frozen=True, slots=True)
class SyncRequest(Message):
    """Node `by` asks peer `to` (request id `id`, 16 bytes)."""

    TYPE: ClassVar[str] = "sync_req"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            **_HEAD,
            "from": Int(0),
            "count": Int(0),
            "pos": ListOf(Int(0), max_len=MAX_SYNC_GET),
            "max": Int(1024, 16 * 1024 * 1024),
        },
    )

    by: str
    to: str
    id: bytes
    op: str
    start: int
    count: int
    positions: tuple[int, ...]
    max_bytes: int

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "to": self.to,
            "id": b64(self.id),
            "op": self.op,
            "from": self.start,
            "count": self.count,
            "pos": list(self.positions),
            "max": self.max_bytes,
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(
            v["by"], v["to"], v["id"], v["op"], v["from"], v["count"], tuple(v["pos"]), v["max"]
        )

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        if v["op"] == "ids" and not 1 <= v["count"] <= MAX_SYNC_IDS:
            raise SchemaError("count", f"ids asks for 1..{MAX_SYNC_IDS} positions")
        if v["op"] == "get" and not v["pos"]:
            raise SchemaError("pos", "get names at least one position")
        if v["op"] == "consistency" and not 0 < v["from"] <= v["count"]:
            raise SchemaError("from", "consistency needs 0 < from <= count")


@dataclass(frozen=True, slots=True)
class SyncEntry:
    """The envelope at log position `pos` of the answering node."""

    pos: int
    envelope: bytes


@register
@dataclass(frozen=True, slots=True)
class SyncResponse(Message):
    """Peer `by`'s answer to request `id` of node `to`. `size` is the peer's log size
    and `root` its root at that size (for ``consistency``: at the asked size)."""

    TYPE: ClassVar[str] = "sync_resp"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            **_HEAD,
            "size": Int(0),
            "root": B64(32, 32),
            "from": Int(0),
            "ids": ListOf(B64(32, 32), max_len=MAX_SYNC_IDS),
            "entries": ListOf(
                Obj({"p": Int(0), "e": B64(1, MAX_ENVELOPE_BYTES)}), max_len=MAX_SYNC_GET
            ),
            "proof": ListOf(B64(32, 32), max_len=MAX_PROOF_HASHES),
        },
    )

    by: str
    to: str
    id: bytes
    op: str
    size: int
    root: bytes
    start: int
    ids: tuple[bytes, ...] = ()
    """For ``ids``: the txids at positions start, start+1, …"""
    entries: tuple[SyncEntry, ...] = ()
    proof: tuple[bytes, ...] = ()

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "to": self.to,
            "id": b64(self.id),
            "op": self.op,
            "size": self.size,
            "root": b64(self.root),
            "from": self.start,
            "ids": [b64(t) for t in self.ids],
            "entries": [{"p": e.pos, "e": b64(e.envelope)} for e in self.entries],
            "proof": [b64(h) for h in self.proof],
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(
            v["by"],
            v["to"],
            v["id"],
            v["op"],
            v["size"],
            v["root"],
            v["from"],
            tuple(v["ids"]),
            tuple(SyncEntry(e["p"], e["e"]) for e in v["entries"]),
            tuple(v["proof"]),
        )

"""High-water marks: what a node has committed of each gateway's batches.

A node publishes one per gateway (retained, on ``{prefix}/hwm/{node}/{gateway}``). A
gateway takes a batch as confirmed once the nodes it trusts report it: every `seq` below
`next`, and every seq listed in `above`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ledger_node.wire.errors import SchemaError
from ledger_node.wire.messages import Message, body_schema, register
from ledger_node.wire.schema import Id, Int, ListOf, Obj

MAX_ABOVE = 256


@register
@dataclass(frozen=True, slots=True)
class HighWaterMark(Message):
    """Node `by` has committed all of `gateway`'s seqs below `next` and those in `above`.

    `t` is the node's clock (UTC s) when it wrote the mark.
    """

    TYPE: ClassVar[str] = "hwm"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "gw": Id(),
            "next": Int(0),
            "above": ListOf(Int(0), max_len=MAX_ABOVE),
            "t": Int(0),
        },
    )

    by: str
    gateway: str
    next: int
    above: tuple[int, ...]
    t: int

    def covers(self, seq: int) -> bool:
        return seq < self.next or seq in self.above

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "gw": self.gateway,
            "next": self.next,
            "above": list(self.above),
            "t": self.t,
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(v["by"], v["gw"], v["next"], tuple(v["above"]), v["t"])

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        above = v["above"]
        if above != sorted(set(above)) or (above and above[0] <= v["next"]):
            raise SchemaError("above", "must be sorted, unique and above next")

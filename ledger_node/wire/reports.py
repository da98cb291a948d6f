"""AS reports: an RA's or AC's own totals from its aggregation system (AS集計値).

The ledger keeps them beside its own totals (BC集計値) and reconciles the two slot by
slot. A later `rev` from the same author for the same command replaces an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ledger_node.wire.errors import SchemaError
from ledger_node.wire.facts import MAX_DR_SLOTS
from ledger_node.wire.messages import Message, body_schema, register
from ledger_node.wire.schema import Id, Int, ListOf, Obj


@register
@dataclass(frozen=True, slots=True)
class AsReport(Message):
    """Organisation `by`'s own total per slot of `command`: (slot start UTC s, Wh)."""

    TYPE: ClassVar[str] = "as_report"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "command": Id(),
            "rev": Int(0, 2**32 - 1),
            "slots": ListOf(
                Obj({"s": Int(0), "wh": Int(0, 10**12)}), max_len=MAX_DR_SLOTS, min_len=1
            ),
        },
    )

    by: str
    command: str
    rev: int
    slots: tuple[tuple[int, int], ...]

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "command": self.command,
            "rev": self.rev,
            "slots": [{"s": s, "wh": wh} for s, wh in self.slots],
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(v["by"], v["command"], v["rev"], tuple((s["s"], s["wh"]) for s in v["slots"]))

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        slots = [s["s"] for s in v["slots"]]
        if slots != sorted(set(slots)):
            raise SchemaError("slots", "must be sorted by slot and name each slot once")

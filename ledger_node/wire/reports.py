"""AS reports: an RA's or AC's own totals from its aggregation system (AS集計値).

The ledger keeps them beside its own totals (BC集計値) and reconciles the two slot by
slot. A later `rev` from the same author for the same command replaces an earlier one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ledger_node.wire import canonical
from ledger_node.wire.errors import SchemaError
from ledger_node.wire.facts import MAX_DR_SLOTS
from ledger_node.wire.messages import BODY_VERSION, check_version, register
from ledger_node.wire.schema import Const, Id, Int, ListOf, Obj


@register
@dataclass(frozen=True, slots=True)
class AsReport:
    """Organisation `by`'s own total per slot of `command`: (slot start UTC s, Wh)."""

    TYPE: ClassVar[str] = "as_report"
    AUTHOR: ClassVar[str] = "by"
    SCHEMA: ClassVar[Obj] = Obj(
        {
            "v": Const(BODY_VERSION),
            "type": Const("as_report"),
            "by": Id(),
            "command": Id(),
            "rev": Int(0, 2**32 - 1),
            "slots": ListOf(
                Obj({"s": Int(0), "wh": Int(0, 10**12)}), max_len=MAX_DR_SLOTS, min_len=1
            ),
        }
    )

    by: str
    command: str
    rev: int
    slots: tuple[tuple[int, int], ...]

    @property
    def author(self) -> str:
        return self.by

    def to_body(self) -> bytes:
        obj = {
            "v": BODY_VERSION,
            "type": self.TYPE,
            "by": self.by,
            "command": self.command,
            "rev": self.rev,
            "slots": [{"s": s, "wh": wh} for s, wh in self.slots],
        }
        _check(self.SCHEMA.check(obj, ""))
        return canonical.encode(obj)

    @classmethod
    def from_body(cls, obj: dict[str, Any]) -> AsReport:
        check_version(obj)
        v = cls.SCHEMA.check(obj, "")
        _check(v)
        return cls(v["by"], v["command"], v["rev"], tuple((s["s"], s["wh"]) for s in v["slots"]))


def _check(v: dict[str, Any]) -> None:
    slots = [s["s"] for s in v["slots"]]
    if slots != sorted(set(slots)):
        raise SchemaError("slots", "must be sorted by slot and name each slot once")

"""AS report CSV files (the aggregation system's own totals per slot): each line read
with its slot and Wh or the problem that keeps it out of a report, for the API, the CLI
and the import screen alike."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from ledger_node.interfaces.authoring import RequestError, parse_time
from ledger_node.wire import AsReport, DrCommand
from ledger_node.wire.schema import Field, Int, ListOf, Obj

MAX_CSV_BYTES = 1024 * 1024


CSV_PROBLEMS = {
    "slot": "the slot is not a time (UTC seconds or ISO 8601 with its offset)",
    "missing": "no value",
    "number": "the value is not a number",
    "fraction": "%(value)s kWh is not a whole number of Wh",
    "range": "the value is outside %(lo)s..%(hi)s Wh",
    "duplicate": "the slot appears twice (first on line %(first)s)",
    "outside": "the slot is outside the command's window",
    "boundary": "the slot does not start on one of the command's slot boundaries",
}
"""Why a line of an AS report CSV cannot be in a report, by `CsvLine.problem`."""


@dataclass(frozen=True)
class CsvLine:
    """One data line of an AS report CSV: its slot (UTC s) and Wh, or its `problem`."""

    line: int
    """Its line number in the file (the header is line 1)."""
    slot_text: str
    value_text: str
    """The Wh (or kWh) as written."""
    slot: int | None = None
    wh: int | None = None
    problem: str = ""
    """A key of `CSV_PROBLEMS`, "" for a good line."""
    args: Mapping[str, Any] = field(default_factory=dict)
    """The values `CSV_PROBLEMS[problem]` names."""
    detail: str = ""
    """The problem in the reader's words where it has more to say (a time's)."""

    @property
    def message(self) -> str:
        return self.detail or CSV_PROBLEMS[self.problem] % self.args


def int_rule(schema: Obj, *keys: str) -> Int:
    """The integer rule of a message field, e.g. ``int_rule(AsReport.SCHEMA, "slots",
    "wh")``: its bounds are the wire's, for forms that check before signing."""
    rule: Field = schema
    for key in keys:
        while isinstance(rule, ListOf):
            rule = rule.item
        assert isinstance(rule, Obj), key
        rule = rule.fields[key]
    while isinstance(rule, ListOf):
        rule = rule.item
    assert isinstance(rule, Int), keys
    return rule


AS_WH = int_rule(AsReport.SCHEMA, "slots", "wh")


class _Fraction(ValueError):
    """A kWh value that is no whole number of Wh."""


def _wh(text: str, unit: str) -> int:
    """Wh from a CSV value in `unit` ("wh", or "kwh" with up to 3 decimals); `ValueError`
    (`_Fraction` for a kWh value that is no whole Wh) or `InvalidOperation` if not."""
    if unit == "wh":
        return int(text)
    wh = Decimal(text) * 1000
    if not wh.is_finite():
        raise InvalidOperation(text)
    if wh != wh.to_integral_value():
        raise _Fraction(text)
    return int(wh)


def read_as_csv(text: str, command: DrCommand | None = None) -> list[CsvLine]:
    """Every data line of an AS report CSV (a header with `slot` and `wh` or `kwh`), with
    its slot and Wh or its problem; with `command`, also a slot outside its window or off
    its slot boundaries. `RequestError` for a file that is no such CSV (size, header)."""
    if len(text) > MAX_CSV_BYTES:
        raise RequestError(f"CSV over {MAX_CSV_BYTES} bytes")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    if "slot" not in header or not ({"wh", "kwh"} & set(header)):
        raise RequestError("the CSV needs a header with 'slot' and 'wh' (or 'kwh')")
    lines: list[CsvLine] = []
    first: dict[int, int] = {}
    for row in reader:
        values = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        unit = "wh" if values.get("wh") or "kwh" not in values else "kwh"
        line = CsvLine(reader.line_num, values.get("slot", ""), values.get(unit, ""))
        lines.append(_checked(line, unit, command, first))
    return lines


def _checked(line: CsvLine, unit: str, command: DrCommand | None, first: dict[int, int]) -> CsvLine:
    """`line` with its slot and Wh, or with its problem (`first`: the line of each slot)."""
    try:
        slot = parse_time(line.slot_text)
    except RequestError as exc:
        return replace(line, problem="slot", detail=str(exc))
    if not line.value_text:
        return replace(line, slot=slot, problem="missing")
    try:
        wh = _wh(line.value_text, unit)
    except _Fraction:
        return replace(line, slot=slot, problem="fraction", args={"value": line.value_text})
    except (ValueError, InvalidOperation):
        return replace(line, slot=slot, problem="number")
    line = replace(line, slot=slot, wh=wh)
    if not AS_WH.lo <= wh <= AS_WH.hi:
        return replace(line, problem="range", args={"lo": AS_WH.lo, "hi": AS_WH.hi})
    if slot in first:
        return replace(line, problem="duplicate", args={"first": first[slot]})
    first[slot] = line.line
    if command is not None:
        if slot not in range(command.start, command.end):
            return replace(line, problem="outside")
        if (slot - command.start) % command.slot_s:
            return replace(line, problem="boundary")
    return line


def parse_as_csv(text: str) -> dict[int, int]:
    """An AS report CSV (see `read_as_csv`): Wh by slot (UTC s); `RequestError` naming
    the first line that cannot be in a report."""
    slots: dict[int, int] = {}
    for line in read_as_csv(text):
        if line.problem:
            raise RequestError(f"CSV line {line.line}: {line.message}")
        assert line.slot is not None and line.wh is not None
        slots[line.slot] = line.wh
    if not slots:
        raise RequestError("the CSV has no rows")
    return slots

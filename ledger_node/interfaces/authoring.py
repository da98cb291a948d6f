"""Facts this node's organisation writes, from a request (`commands.COMMANDS` names them).

Each function builds the fact from plain values, numbers it (registry `n`, revision
`rev`) from what the ledger holds, signs it as this node and admits it like any other
fact: a fact the ledger would refuse from anyone else is refused here too, with the same
reason. Runs in the node's worker (see `Node.submit`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from ledger_node.ledger.admission import Ledger, Outcome
from ledger_node.ledger.registry import Registry
from ledger_node.shared.errors import MeterledgerError
from ledger_node.shared.keys import PublicIdentity
from ledger_node.wire import (
    AsReport,
    DrCommand,
    DrDeclaration,
    EpochShred,
    GatewayKey,
    Message,
    Org,
    OrgAdd,
    OrgRemove,
    SiteMove,
    SiteRegistration,
    WireError,
)
from ledger_node.wire.schema import MAX_SAFE_INT, Field, Int, ListOf, Obj

MAX_CSV_BYTES = 1024 * 1024


class RequestError(MeterledgerError):
    """A request that cannot become a fact; the message says why, and `reason` is the
    ledger's refusal label when the ledger refused it (`refusals`: "gate_closed", …)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def _field(body: Mapping[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise RequestError(f"{key!r} must be a {kind.__name__}")
    return value


def _public(body: Mapping[str, Any], key: str) -> PublicIdentity:
    """The public identity (a .pub file's JSON) in field `key`."""
    try:
        return PublicIdentity.from_json(_field(body, key, dict))
    except MeterledgerError as exc:
        raise RequestError(f"{key}: {exc}") from None


def submit(ledger: Ledger, message: Message) -> dict[str, Any]:
    """Sign and admit `message`; the outcome as JSON, or `RequestError` if refused."""
    try:
        outcome: Outcome = ledger.author(message)
    except (WireError, ValueError) as exc:
        raise RequestError(str(exc)) from None
    if outcome.status == "held":
        raise RequestError(
            f"not accepted ({outcome.reason}): {outcome.detail}; author its predecessor first",
            outcome.reason,
        )
    if not outcome.ok:
        why = f": {outcome.detail}" if outcome.detail else ""
        raise RequestError(f"refused ({outcome.reason}){why}", outcome.reason)
    return {"type": message.TYPE, "txid": outcome.txid.hex(), "pos": outcome.pos}


def org_add(ledger: Ledger, body: Mapping[str, Any]) -> dict[str, Any]:
    """{"public": <.pub file's JSON>, "role": "ac"|"ra", "ac": <for an RA>}"""
    public = _public(body, "public")
    role = _field(body, "role", str)
    ac = body.get("ac")
    org = Org(public.name, role, bytes(public.verify_key), bytes(public.box_key), ac)
    return submit(ledger, OrgAdd(ledger.me.name, ledger.registry_n(), org))


def org_remove(ledger: Ledger, body: Mapping[str, Any]) -> dict[str, Any]:
    return submit(ledger, OrgRemove(ledger.me.name, ledger.registry_n(), _field(body, "id", str)))


def site(ledger: Ledger, body: Mapping[str, Any]) -> dict[str, Any]:
    """{"site": …, "gateway": <the gateway's .pub JSON>, "meters": [ids]}"""
    gw = _public(body, "gateway")
    meters = _field(body, "meters", list)
    key = GatewayKey(gw.name, bytes(gw.verify_key), bytes(gw.box_key))
    message = SiteRegistration(
        ledger.me.name, ledger.registry_n(), _field(body, "site", str), key, tuple(sorted(meters))
    )
    return submit(ledger, message)


def site_move(ledger: Ledger, body: Mapping[str, Any]) -> dict[str, Any]:
    return submit(
        ledger,
        SiteMove(
            ledger.me.name, ledger.registry_n(), _field(body, "site", str), _field(body, "ra", str)
        ),
    )


def command(ledger: Ledger, body: Mapping[str, Any]) -> dict[str, Any]:
    """{"id", "start", "end", "slot_s", "gate_closure" (UTC s or ISO 8601),
    "price_yen_per_kwh", "targets": {ac: Wh per slot}}; the answer carries "warnings"
    when no registered gateway seals slots of its length (it would count no meter)."""
    targets = _field(body, "targets", dict)
    message = DrCommand(
        by=ledger.me.name,
        id=_field(body, "id", str),
        start=parse_time(body.get("start")),
        end=parse_time(body.get("end")),
        slot_s=_field(body, "slot_s", int),
        gate_closure=parse_time(body.get("gate_closure")),
        price_yen_per_kwh=_field(body, "price_yen_per_kwh", int),
        targets=tuple(sorted((str(ac), int(wh)) for ac, wh in targets.items())),
    )
    answer = submit(ledger, message)
    lengths = gateway_slot_lengths(ledger.db, ledger.registry)
    if lengths and message.slot_s not in lengths:
        sealed = ", ".join(f"{s} s ({len(g)} gateways)" for s, g in sorted(lengths.items()))
        answer["warnings"] = [
            f"no registered gateway seals {message.slot_s} s slots (their newest batches:"
            f" {sealed}): this command counts none of their readings; issue another with"
            " their slot length"
        ]
    return answer


def gateway_slot_lengths(db: sqlite3.Connection, registry: Registry) -> dict[int, list[str]]:
    """The registered sites' gateways by the slot length (s) of their newest batch held
    here (gateways without a batch yet are not known)."""
    lengths: dict[int, list[str]] = {}
    for site in registry.sites.values():
        row = db.execute(
            "SELECT slot_s FROM batches WHERE gateway=? ORDER BY seq DESC LIMIT 1",
            (site.gateway.id,),
        ).fetchone()
        if row is not None:
            lengths.setdefault(int(row[0]), []).append(site.gateway.id)
    return lengths


def _next_rev(ledger: Ledger, table: str, who: str, command_id: str) -> int:
    row = ledger.db.execute(
        f"SELECT rev FROM {table} WHERE command=? AND {who}=?",  # noqa: S608
        (command_id, ledger.me.name),
    ).fetchone()
    return 1 if row is None else int(row[0]) + 1


def declaration(ledger: Ledger, body: Mapping[str, Any]) -> dict[str, Any]:
    """{"command", "sites": {site: baseline Wh (one per slot, or a list per slot)}}"""
    command_id = _field(body, "command", str)
    sites = []
    for name, baseline in sorted(_field(body, "sites", dict).items()):
        values = baseline if isinstance(baseline, list) else [baseline]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise RequestError(f"site {name}: baselines are integer Wh")
        sites.append((str(name), tuple(values)))
    rev = _next_rev(ledger, "declarations", "ra", command_id)
    return submit(ledger, DrDeclaration(ledger.me.name, command_id, rev, tuple(sites)))


def as_report(ledger: Ledger, command_id: str, slots: Mapping[int, int]) -> dict[str, Any]:
    rev = _next_rev(ledger, "as_reports", "author", command_id)
    report = AsReport(ledger.me.name, command_id, rev, tuple(sorted(slots.items())))
    return submit(ledger, report)


def as_report_json(ledger: Ledger, body: Mapping[str, Any]) -> dict[str, Any]:
    """{"command", "slots": [{"slot": UTC s or ISO 8601, "wh": int}, …]}"""
    rows = _field(body, "slots", list)
    slots = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(f"slots[{i}] must be an object")
        slots[parse_time(row.get("slot"))] = _field(row, "wh", int)
    return as_report(ledger, _field(body, "command", str), slots)


def shred(ledger: Ledger, body: Mapping[str, Any]) -> dict[str, Any]:
    return submit(
        ledger, EpochShred(ledger.me.name, _field(body, "site", str), _field(body, "epoch", int))
    )


def parse_time(value: Any) -> int:
    """UTC unix seconds from an integer or an ISO 8601 text with its offset."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SAFE_INT:
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return int(text)
        try:
            stamp = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if stamp.tzinfo is None:
                raise RequestError(f"time {text!r} needs its offset (e.g. +09:00 or Z)")
            return int(stamp.timestamp())
    raise RequestError(f"{value!r} is not a time (UTC seconds or ISO 8601 with offset)")


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

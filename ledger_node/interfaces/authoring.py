"""Facts an organisation writes, from a request (`commands.COMMANDS` names them).

Each builder makes its fact from plain values and its author's id, numbered (registry
`n`, revision `rev`) by a `Numbers`: on a node from what its ledger holds
(`LedgerNumbers`), offline from the broker's retained facts or given by hand
(`offline`). On a node, `commands.Command.author` signs it as the node's organisation
and admits it like any other fact: a fact the ledger would refuse from anyone else is
refused here too, with the same reason. It runs in the node's worker (`Node.submit`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ledger_node.ledger.admission import Ledger, Outcome
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db
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
from ledger_node.wire.schema import MAX_SAFE_INT


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


class Numbers(Protocol):
    """Where a new fact's number comes from: the next registry `n` of its author, the
    next revision of its author's fact of a type for a command."""

    def registry_n(self) -> int: ...

    def next_rev(self, fact: str, command: str) -> int: ...


REVISED = {DrDeclaration.TYPE: ("declarations", "ra"), AsReport.TYPE: ("as_reports", "author")}
"""The revised fact types: the table holding each author's newest, and its author column."""


class LedgerNumbers:
    """Numbers from what this node's ledger holds of its own organisation's facts."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def registry_n(self) -> int:
        return self.ledger.registry_n()

    def next_rev(self, fact: str, command: str) -> int:
        table, who = REVISED[fact]
        row = self.ledger.db.execute(
            f"SELECT rev FROM {table} WHERE command=? AND {who}=?",  # noqa: S608
            (command, self.ledger.me.name),
        ).fetchone()
        return 1 if row is None else int(row[0]) + 1


Build = Callable[[str, Numbers, Mapping[str, Any]], Message]
"""A fact's builder: from its author's id, its numbering and the request's fields."""


def admit_signed(ledger: Ledger, raw: bytes) -> dict[str, Any]:
    """A fact signed elsewhere (`mlg-node sign`), admitted as one from the broker would
    be; once accepted it is published on its retained topic like the node's own facts.
    The answer's `status`: accepted, replay (held already) or held (for a predecessor
    this node has not seen); `RequestError` if refused."""
    outcome = ledger.admit(raw, "api", hold_unknown=True)
    if outcome.ok and outcome.message is not None:
        ledger.changes.authored.append((outcome.message, raw))
    elif outcome.status not in ("replay", "held"):
        why = f": {outcome.detail}" if outcome.detail else ""
        raise RequestError(f"refused ({outcome.reason}){why}", outcome.reason)
    answer = {"status": outcome.status, "txid": outcome.txid.hex(), "pos": outcome.pos}
    if outcome.status == "held":
        answer["detail"] = outcome.detail
    return answer


def org_add(me: str, numbers: Numbers, body: Mapping[str, Any]) -> OrgAdd:
    """{"public": <.pub file's JSON>, "role": "ac"|"ra", "ac": <for an RA>}"""
    public = _public(body, "public")
    role = _field(body, "role", str)
    ac = body.get("ac")
    org = Org(public.name, role, bytes(public.verify_key), bytes(public.box_key), ac)
    return OrgAdd(me, numbers.registry_n(), org)


def org_remove(me: str, numbers: Numbers, body: Mapping[str, Any]) -> OrgRemove:
    """{"id": the AC or RA}"""
    return OrgRemove(me, numbers.registry_n(), _field(body, "id", str))


def site(me: str, numbers: Numbers, body: Mapping[str, Any]) -> SiteRegistration:
    """{"site": …, "gateway": <the gateway's .pub JSON>, "meters": [ids]}"""
    gw = _public(body, "gateway")
    meters = _field(body, "meters", list)
    key = GatewayKey(gw.name, bytes(gw.verify_key), bytes(gw.box_key))
    return SiteRegistration(
        me, numbers.registry_n(), _field(body, "site", str), key, tuple(sorted(meters))
    )


def site_move(me: str, numbers: Numbers, body: Mapping[str, Any]) -> SiteMove:
    """{"site": …, "ra": the new RA}"""
    return SiteMove(me, numbers.registry_n(), _field(body, "site", str), _field(body, "ra", str))


def command(me: str, numbers: Numbers, body: Mapping[str, Any]) -> DrCommand:
    """{"id", "start", "end", "slot_s", "gate_closure" (UTC s or ISO 8601),
    "price_yen_per_kwh", "targets": {ac: Wh per slot}}"""
    targets = _field(body, "targets", dict)
    return DrCommand(
        by=me,
        id=_field(body, "id", str),
        start=parse_time(body.get("start")),
        end=parse_time(body.get("end")),
        slot_s=_field(body, "slot_s", int),
        gate_closure=parse_time(body.get("gate_closure")),
        price_yen_per_kwh=_field(body, "price_yen_per_kwh", int),
        targets=tuple(sorted((str(ac), int(wh)) for ac, wh in targets.items())),
    )


def slot_warnings(ledger: Ledger, message: Message) -> list[str]:
    """A DR command's warning when no registered gateway seals slots of its length (it
    would count no meter); none when it matches one, or nothing is known yet."""
    assert isinstance(message, DrCommand)
    lengths = gateway_slot_lengths(ledger.db, ledger.registry)
    if not lengths or message.slot_s in lengths:
        return []
    sealed = ", ".join(f"{s} s ({len(g)} gateways)" for s, g in sorted(lengths.items()))
    return [
        f"no registered gateway seals {message.slot_s} s slots (their newest batches:"
        f" {sealed}): this command counts none of their readings; issue another with"
        " their slot length"
    ]


def gateway_slot_lengths(db: Db, registry: Registry) -> dict[int, list[str]]:
    """The registered sites' gateways by the slot length (s) of their newest batch held
    here (gateways without a batch yet are not known)."""
    lengths: dict[int, list[str]] = {}
    for s in registry.sites.values():
        row = db.execute(
            "SELECT slot_s FROM batches WHERE gateway=? ORDER BY seq DESC LIMIT 1",
            (s.gateway.id,),
        ).fetchone()
        if row is not None:
            lengths.setdefault(int(row[0]), []).append(s.gateway.id)
    return lengths


def declaration(me: str, numbers: Numbers, body: Mapping[str, Any]) -> DrDeclaration:
    """{"command", "sites": {site: baseline Wh (one per slot, or a list per slot)}}"""
    command_id = _field(body, "command", str)
    sites = []
    for name, baseline in sorted(_field(body, "sites", dict).items()):
        values = baseline if isinstance(baseline, list) else [baseline]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise RequestError(f"site {name}: baselines are integer Wh")
        sites.append((str(name), tuple(values)))
    rev = numbers.next_rev(DrDeclaration.TYPE, command_id)
    return DrDeclaration(me, command_id, rev, tuple(sites))


def as_report(me: str, numbers: Numbers, command_id: str, slots: Mapping[int, int]) -> AsReport:
    """An AS report for `command_id`: Wh by slot (UTC s)."""
    rev = numbers.next_rev(AsReport.TYPE, command_id)
    return AsReport(me, command_id, rev, tuple(sorted(slots.items())))


def as_report_json(me: str, numbers: Numbers, body: Mapping[str, Any]) -> AsReport:
    """{"command", "slots": [{"slot": UTC s or ISO 8601, "wh": int}, …]}"""
    rows = _field(body, "slots", list)
    slots = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise RequestError(f"slots[{i}] must be an object")
        slots[parse_time(row.get("slot"))] = _field(row, "wh", int)
    return as_report(me, numbers, _field(body, "command", str), slots)


def shred(me: str, numbers: Numbers, body: Mapping[str, Any]) -> EpochShred:
    """{"site", "epoch"}"""
    return EpochShred(me, _field(body, "site", str), _field(body, "epoch", int))


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

"""DR command (DR指令), for the TSO: a form for a new command (its id, window in JST, slot
length, gate closure, price and a target per AC) and the commands issued, each with the
RAs' declarations the node holds.

Submitting authors the signed command through the API's authoring command
(`authoring.command` in the node's worker). Every field is checked first, against the
wire's bounds and rules (a window of whole slots on slot boundaries, gate closure not
after the start) and the registry (active ACs), each error next to its field.
"""

from __future__ import annotations

import datetime as dt
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from ledger_node.interfaces.api import dr_commands
from ledger_node.interfaces.as_csv import int_rule
from ledger_node.interfaces.authoring import gateway_slot_lengths
from ledger_node.interfaces.commands import JSON
from ledger_node.interfaces.web.i18n import N_
from ledger_node.interfaces.web.pages import Screen, context, page
from ledger_node.interfaces.web.screens.authored import (
    Errors,
    Problem,
    author,
    entry,
    posted,
    serves,
    wall_time,
)
from ledger_node.interfaces.web.templating import JST, jst
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db
from ledger_node.shared.ids import ID_PATTERN
from ledger_node.wire import DEFAULT_SLOT_S, DrCommand
from ledger_node.wire.facts import MAX_DR_SLOTS

SCREEN = Screen("/command", N_("DR command"), frozenset({"tso"}))
ROUTE = "/api/commands"
SLOT_S = int_rule(DrCommand.SCHEMA, "slot_s")
PRICE = int_rule(DrCommand.SCHEMA, "price_yen_per_kwh")
TARGET_WH = int_rule(DrCommand.SCHEMA, "targets", "wh")
SLOT_LENGTHS = (60, 300, 900, 1800, 3600)
"""The slot lengths the form offers (s); the balancing market's slot (コマ) is 30 min, the
gateways' default `DEFAULT_SLOT_S` 1 min (the form suggests the gateways' own)."""
INPUT_TIME = "%Y-%m-%d %H:%M"
"""How the form shows a date and time (JST)."""

router = APIRouter()


def form_time(text: str) -> int | None:
    """UTC s from a form's date and time ("2026-11-30 21:00", "2026/11/30 21:00:30",
    ISO 8601): JST unless it names its offset; None if it is none."""
    try:
        stamp = dt.datetime.fromisoformat(text.strip().replace("/", "-"))
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=JST)
    return int(stamp.timestamp())


def active_acs(registry: Registry) -> list[str]:
    return sorted(o.org.id for o in registry.orgs.values() if o.active and o.org.role == "ac")


def _integer(text: str, lo: int, hi: int) -> tuple[int | None, Problem | None]:
    text = text.strip().replace(",", "")
    if not text:
        return None, Problem(N_("Enter a value."))
    try:
        value = int(text)
    except ValueError:
        return None, Problem(N_("%(value)s is not an integer."), {"value": text})
    if not lo <= value <= hi:
        return None, Problem(
            N_("Enter a value from %(lo)s to %(hi)s."), {"lo": f"{lo:,}", "hi": f"{hi:,}"}
        )
    return value, None


def _times(shown: dict[str, str], slot_s: int | None, now: float, errors: Errors) -> dict[str, int]:
    """The window and gate closure (UTC s), checked: each a time, the window after its
    start and of whole slots on slot boundaries, the gate closure ahead and not after the
    start. Errors go to `errors` by field."""
    times: dict[str, int] = {}
    for name in ("start", "end", "gate_closure"):
        t = form_time(shown[name])
        if t is None:
            errors[name] = Problem(N_("Enter a date and time (JST)."))
        else:
            times[name] = t
    start, end, gate = times.get("start"), times.get("end"), times.get("gate_closure")
    if start is not None and slot_s and start % slot_s:
        errors["start"] = Problem(
            N_("The start must be on a slot boundary (a multiple of %(s)s s)."), {"s": slot_s}
        )
    if start is not None and end is not None:
        if end <= start:
            errors["end"] = Problem(N_("The end must be after the start."))
        elif slot_s and (end - start) % slot_s:
            errors["end"] = Problem(
                N_("The window is not a whole number of %(s)s-second slots."), {"s": slot_s}
            )
        elif slot_s and (end - start) // slot_s > MAX_DR_SLOTS:
            errors["end"] = Problem(N_("A command has at most %(n)s slots."), {"n": MAX_DR_SLOTS})
    if gate is not None:
        if start is not None and gate > start:
            errors["gate_closure"] = Problem(N_("The gate closure must not be after the start."))
        elif gate <= now:
            errors["gate_closure"] = Problem(
                N_("The gate closure has passed already (it is %(t)s JST now)."),
                {"t": jst(now, "%Y/%m/%d %H:%M:%S")},
            )
    return times


def read_form(
    form: FormData, db: Db, acs: list[str], now: float
) -> tuple[dict[str, str], dict[str, Any] | None, Errors]:
    """The form as typed, the command's request fields (None if it has errors), and its
    errors by field."""
    shown = {
        k: str(form.get(k, "")).strip()
        for k in ("id", "start", "end", "slot_s", "gate_closure", "price")
    }
    shown |= {k: str(v).strip() for k, v in form.items() if k.startswith("target-")}
    errors: Errors = {}
    cid = shown["id"]
    if not cid:
        errors["id"] = Problem(N_("Enter an id for the command."))
    elif not ID_PATTERN.fullmatch(cid):
        errors["id"] = Problem(
            N_("Use lower-case letters, digits, '.', '_' and '-' (up to 63 characters).")
        )
    elif db.execute("SELECT 1 FROM commands WHERE id=?", (cid,)).fetchone():
        errors["id"] = Problem(N_("Command %(id)s exists already."), {"id": cid})
    slot_s, problem = _integer(shown["slot_s"], SLOT_S.lo, SLOT_S.hi)
    if problem:
        errors["slot_s"] = problem
    times = _times(shown, slot_s, now, errors)
    price, problem = _integer(shown["price"], PRICE.lo, PRICE.hi)
    if problem:
        errors["price"] = problem
    targets: dict[str, int] = {}
    for key in sorted(k for k in shown if k.startswith("target-")):
        ac = key.removeprefix("target-")
        if ac not in acs:
            errors["targets"] = Problem(N_("There is no active AC %(ac)s."), {"ac": ac})
        elif shown[key]:
            wh, problem = _integer(shown[key], TARGET_WH.lo, TARGET_WH.hi)
            if problem:
                errors[key] = problem
            elif wh is not None:
                targets[ac] = wh
    if not targets and "targets" not in errors and not any(k.startswith("target-") for k in errors):
        errors["targets"] = Problem(N_("Give at least one AC a target."))
    if errors:
        return shown, None, errors
    fields = {
        "id": cid,
        "start": times["start"],
        "end": times["end"],
        "slot_s": slot_s,
        "gate_closure": times["gate_closure"],
        "price_yen_per_kwh": price,
        "targets": targets,
    }
    return shown, fields, errors


def defaults(now: float, slot_s: int) -> dict[str, str]:
    """A new command's suggested window: the next hour but one, in slots of `slot_s`,
    gate closure an hour before."""
    start = (int(now) // 3600 + 2) * 3600
    return {
        "id": "",
        "start": jst(start, INPUT_TIME),
        "end": jst(start + 3600, INPUT_TIME),
        "slot_s": str(slot_s),
        "gate_closure": jst(start - 3600, INPUT_TIME),
        "price": "",
    }


def _issued(db: Db) -> list[dict[str, Any]]:
    """The commands this node holds, newest start first, with their log entries."""
    logged = {
        cid: (pos, bytes(txid).hex(), t)
        for cid, pos, txid, t in db.execute(
            "SELECT c.id, c.pos, l.txid, l.received_at FROM commands c JOIN log l ON l.pos = c.pos"
        )
    }
    out = []
    for c in reversed(dr_commands(db)):
        pos, txid, t = logged[c["id"]]
        out.append(
            c
            | {
                "slots": range(c["start"], c["end"], c["slot_s"]),
                "targets": sorted(c["targets"].items()),
                "pos": pos,
                "txid": txid,
                "received_at": t,
            }
        )
    return out


def _screen(
    request: Request,
    shown: dict[str, str] | None = None,
    errors: Errors | None = None,
    status: int = HTTPStatus.OK,
) -> HTMLResponse:
    ctx = context(request)
    now = ctx.api.now()
    with ctx.reading() as db:
        registry = Registry(db)
        role = registry.role(ctx.api.me)
        if not serves(SCREEN, role):
            return page(request, "command.html", {"serves": False}, status)
        issued = _issued(db)
        accepted = entry(db, request.query_params.get("accepted"))
        lengths = gateway_slot_lengths(db, registry)
    # The gateways' slot length where they agree on one, else the shared default.
    slot_s = next(iter(lengths)) if len(lengths) == 1 else DEFAULT_SLOT_S
    for c in issued:
        c["open"] = c["gate_closure"] > now
        c["until"] = wall_time(request, c["gate_closure"])
    values = {
        "serves": True,
        "form": shown or defaults(now, slot_s),
        "errors": errors or {},
        "acs": active_acs(registry),
        "slot_lengths": SLOT_LENGTHS,
        "issued": issued,
        "accepted": accepted,
        "now": now,
    }
    return page(request, "command.html", values, status)


@router.get("/command", response_class=HTMLResponse, include_in_schema=False)
def command_page(request: Request) -> Response:
    return _screen(request)


@router.post("/command", include_in_schema=False)
async def issue(request: Request) -> Response:
    form = await posted(request, SCREEN)
    if form is None:
        return _screen(request, status=HTTPStatus.FORBIDDEN)
    ctx = context(request)
    with ctx.reading() as db:
        shown, fields, errors = read_form(form, db, active_acs(Registry(db)), ctx.api.now())

    def again(errors: Errors, status: int) -> Response:
        return _screen(request, shown, errors, status)

    if fields is None:
        return again(errors, HTTPStatus.BAD_REQUEST)
    return await author(request, SCREEN, ROUTE, JSON, fields, again)

"""DR declaration (DR宣言登録画面), for an RA: the open DR commands for its AC with their
gate closure counting down, its sites with a baseline each, and its declarations with
every revision's standing on the ledger.

Submitting authors the signed declaration through the API's authoring command
(`authoring.declaration` in the node's worker). The form is checked against the registry
first (each site must be this RA's, each baseline an integer of Wh per slot within the
wire's bounds, one value or one per slot), so that the ledger sees only a declaration it
can take; whether the gate is still open is the ledger's decision (`gate_closed`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import FormData

from ledger_node.interfaces.as_csv import int_rule
from ledger_node.interfaces.commands import JSON
from ledger_node.interfaces.web.i18n import N_
from ledger_node.interfaces.web.pages import Screen, context, page
from ledger_node.interfaces.web.screens.authored import (
    Errors,
    Problem,
    author,
    entry,
    posted,
    revisions,
    serves,
    wall_time,
)
from ledger_node.ledger import load_command
from ledger_node.ledger.registry import Registry, Site
from ledger_node.ledger.store import Db
from ledger_node.wire import DrCommand, DrDeclaration

SCREEN = Screen("/declare", N_("DR declaration"), frozenset({"ra"}))
ROUTE = "/api/declarations"
BASELINE_WH = int_rule(DrDeclaration.SCHEMA, "sites", "baseline_wh")
"""The wire's bounds of a baseline (Wh per slot)."""
_SEPARATORS = re.compile(r"[\s,、，]+")
_INTEGER = re.compile(r"[+-]?\d+")

router = APIRouter()


@dataclass
class Form:
    """The declaration form as shown: the command, the sites ticked, each baseline as
    typed (Wh per slot: one value, or one per slot separated by commas)."""

    command: str = ""
    chosen: set[str] = field(default_factory=set)
    baselines: dict[str, str] = field(default_factory=dict)


def open_commands(db: Db, ac: str | None, now: float) -> list[DrCommand]:
    """The DR commands to `ac` whose gate closure is still ahead, the soonest first."""
    out = []
    for (cid,) in db.execute(
        "SELECT id FROM commands WHERE gate_closure > ? ORDER BY gate_closure, id", (now,)
    ):
        cmd = load_command(db, cid)
        if cmd is not None and ac in dict(cmd.targets):
            out.append(cmd)
    return out


def _baseline(text: str, slots: int) -> tuple[list[int] | None, Problem | None]:
    """Baselines (Wh per slot) from a field: one value, or one per slot."""
    parts = [p for p in _SEPARATORS.split(text.strip()) if p]
    if not parts:
        return None, Problem(N_("Enter the baseline in Wh per slot."))
    values = []
    for part in parts:
        if not _INTEGER.fullmatch(part):
            return None, Problem(N_("%(value)s is not an integer of Wh."), {"value": part})
        value = int(part)
        if value < BASELINE_WH.lo:
            return None, Problem(N_("A baseline cannot be negative."))
        if value > BASELINE_WH.hi:
            return None, Problem(N_("At most %(hi)s Wh per slot."), {"hi": f"{BASELINE_WH.hi:,}"})
        values.append(value)
    if len(values) not in (1, slots):
        return None, Problem(
            N_("Give one value, or %(n)s values (one per slot); there are %(got)s."),
            {"n": slots, "got": len(values)},
        )
    return values, None


def read_form(
    form: FormData, me: str, registry: Registry, command: DrCommand | None
) -> tuple[Form, dict[str, Any] | None, Errors]:
    """The form as typed, the declaration's request fields (None if it has errors), and
    its errors by field."""
    shown = Form(
        str(form.get("command", "")),
        {str(s) for s in form.getlist("site")},
        {k.removeprefix("baseline-"): str(v) for k, v in form.items() if k.startswith("baseline-")},
    )
    errors: Errors = {}
    if command is None:
        errors["command"] = Problem(
            N_("There is no DR command %(id)s on this node."), {"id": shown.command or "-"}
        )
    elif registry.ac_of(me) not in dict(command.targets):
        errors["command"] = Problem(
            N_("Command %(id)s is not for your AC (%(ac)s)."),
            {"id": command.id, "ac": registry.ac_of(me) or "-"},
        )
        command = None
    sites: dict[str, list[int] | int] = {}
    for site in sorted(shown.chosen):
        held = registry.sites.get(site)
        if held is None:
            errors["sites"] = Problem(N_("There is no site %(site)s."), {"site": site})
        elif held.ra != me:
            errors["sites"] = Problem(
                N_("Site %(site)s belongs to %(ra)s, not to this RA."),
                {"site": site, "ra": held.ra},
            )
        elif command is not None:
            values, problem = _baseline(shown.baselines.get(site, ""), len(command.slots))
            if problem is not None:
                errors[f"baseline-{site}"] = problem
            elif values is not None:
                sites[site] = values[0] if len(values) == 1 else values
    if not shown.chosen:
        errors["sites"] = Problem(N_("Choose at least one site."))
    if errors or command is None:
        return shown, None, errors
    return shown, {"command": command.id, "sites": sites}, errors


def my_sites(registry: Registry, me: str) -> list[Site]:
    return sorted((s for s in registry.sites.values() if s.ra == me), key=lambda s: s.site)


def _screen(
    request: Request,
    shown: Form | None = None,
    errors: Errors | None = None,
    status: int = HTTPStatus.OK,
) -> HTMLResponse:
    """The screen: open commands, the form (`shown` as typed, else the current
    declaration or every site ticked), and this RA's declarations."""
    ctx = context(request)
    me, now = ctx.api.me, ctx.api.now()
    with ctx.reading() as db:
        registry = Registry(db)
        role = registry.role(me)
        if not serves(SCREEN, role):
            return page(request, "declare.html", {"serves": False}, status)
        commands = open_commands(db, registry.ac_of(me), now)
        history = revisions(db, DrDeclaration, me, "declarations", "ra", "declaration")
        wanted = shown.command if shown else request.query_params.get("command", "")
        selected = load_command(db, wanted) if wanted else None
        if selected is not None and registry.ac_of(me) not in dict(selected.targets):
            selected = None  # another AC's command: nothing to declare for it here
        if selected is None and not shown and commands:
            selected = commands[0]
        accepted = entry(db, request.query_params.get("accepted"))
        history_commands = {cid: load_command(db, cid) for cid in history}
    sites = my_sites(registry, me)
    if shown is None:
        shown = Form(selected.id if selected else "")
        current = next(
            (r.message for r in history.get(shown.command, []) if r.status == "current"), None
        )
        if current is not None:
            shown.chosen = {s for s, _ in current.sites}
            shown.baselines = {s: ", ".join(map(str, b)) for s, b in current.sites}
        else:
            shown.chosen = {s.site for s in sites}
    values = {
        "serves": True,
        "commands": [
            {
                "cmd": c,
                "until": wall_time(request, c.gate_closure),
                "rev": next(
                    (r.message.rev for r in history.get(c.id, []) if r.status == "current"), None
                ),
            }
            for c in commands
        ],
        "selected": selected,
        "is_open": selected is not None and selected.gate_closure > now,
        "sites": sites,
        "form": shown,
        "errors": errors or {},
        "history": [(cid, history_commands[cid], revs) for cid, revs in sorted(history.items())],
        "accepted": accepted,
        "baseline_hi": BASELINE_WH.hi,
    }
    return page(request, "declare.html", values, status)


@router.get("/declare", response_class=HTMLResponse, include_in_schema=False)
def declare_page(request: Request) -> Response:
    return _screen(request)


@router.post("/declare", include_in_schema=False)
async def declare(request: Request) -> Response:
    form = await posted(request, SCREEN)
    if form is None:
        return _screen(request, status=HTTPStatus.FORBIDDEN)
    ctx = context(request)
    with ctx.reading() as db:
        registry = Registry(db)
        command = load_command(db, str(form.get("command", "")))
    shown, fields, errors = read_form(form, ctx.api.me, registry, command)

    def again(errors: Errors, status: int) -> Response:
        return _screen(request, shown, errors, status)

    if fields is None:
        return again(errors, HTTPStatus.BAD_REQUEST)
    return await author(request, SCREEN, ROUTE, JSON, fields, again, command=shown.command)

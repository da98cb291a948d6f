"""AS report import (AS実績取込), for ACs and RAs: upload the aggregation system's own
totals as CSV for a DR command, see every line checked in a preview before anything is
signed, then submit; the organisation's reports with each revision's standing, and how
the current one compares with the ledger's totals.

The file is read as the API reads it (`authoring.read_as_csv`: header ``slot,wh`` or
``slot,kwh``, slots as UTC seconds or ISO 8601 with offset), and checked against the
command's window and slot boundaries line by line. Submitting sends the previewed text
through the API's CSV authoring command (`authoring.as_report` in the node's worker).
"""

from __future__ import annotations

from collections import Counter
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from ledger_node.contract.settlement import reconcile
from ledger_node.interfaces import commands
from ledger_node.interfaces.as_csv import MAX_CSV_BYTES, read_as_csv
from ledger_node.interfaces.authoring import RequestError
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
)
from ledger_node.ledger import load_command
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db
from ledger_node.wire import AsReport, DrCommand

SCREEN = Screen("/as-report", N_("AS report import"), frozenset({"ac", "ra"}))
ROUTE = "/api/as-reports"

PROBLEMS = {
    "slot": N_("not a time: UTC seconds, or ISO 8601 with its offset (2026-01-14T00:00+09:00)"),
    "missing": N_("no value"),
    "number": N_("not a number"),
    "fraction": N_("%(value)s kWh is not a whole number of Wh"),
    "range": N_("outside %(lo)s to %(hi)s Wh"),
    "duplicate": N_("this slot appears twice (first on line %(first)s)"),
    "outside": N_("this slot is outside the command's window"),
    "boundary": N_("not on a slot boundary of the command"),
}
"""The words of each problem of a CSV line (`authoring.CSV_PROBLEMS`) on the screen."""

router = APIRouter()


def _decode(data: bytes) -> str:
    """A file's text as the API reads a CSV body."""
    return data.decode("utf-8-sig", errors="replace")


def report_commands(db: Db, me: str, registry: Registry) -> list[DrCommand]:
    """The commands an AS report of `me` can be for: those to its AC (an RA's) or to it
    (an AC's), the newest start first."""
    ac = me if registry.role(me) == "ac" else registry.ac_of(me)
    out = []
    for (cid,) in db.execute("SELECT id FROM commands ORDER BY t_start DESC, id"):
        cmd = load_command(db, cid)
        if cmd is not None and ac in dict(cmd.targets):
            out.append(cmd)
    return out


def _compared(db: Db, command: str, me: str) -> Counter[str]:
    """How `me`'s AS report for `command` compares with the ledger's totals, in slots:
    equal, differs, no_ledger (no ledger total yet), no_as (no AS value)."""
    return Counter(
        "no_ledger" if r.ledger_wh is None else "no_as" if r.as_wh is None else r.status
        for r in reconcile(db, command, me)
    )


def _preview(text: str, command: DrCommand) -> dict[str, Any]:
    """The file's lines checked against `command`; `RequestError` if it is no AS CSV."""
    lines = read_as_csv(text, command)
    good = [ln for ln in lines if not ln.problem]
    return {
        "lines": lines,
        "bad": len(lines) - len(good),
        "covered": len(good),
        "slots": len(command.slots),
        "slot_s": command.slot_s,
        "total_wh": sum(ln.wh or 0 for ln in good),
        "text": text,
    }


def _screen(
    request: Request,
    shown: dict[str, Any] | None = None,
    errors: Errors | None = None,
    status: int = HTTPStatus.OK,
) -> HTMLResponse:
    ctx = context(request)
    me = ctx.api.me
    with ctx.reading() as db:
        registry = Registry(db)
        if not serves(SCREEN, registry.role(me)):
            return page(request, "as_report.html", {"serves": False}, status)
        cmds = report_commands(db, me, registry)
        history = revisions(db, AsReport, me, "as_reports", "author", "as_report")
        checks = {cid: _compared(db, cid, me) for cid in history}
        accepted = entry(db, request.query_params.get("accepted"))
    shown = shown or {"command": request.query_params.get("command", "")}
    values = {
        "serves": True,
        "commands": cmds,
        "form": shown,
        "errors": errors or {},
        "history": sorted(history.items()),
        "checks": checks,
        "accepted": accepted,
        "max_bytes": MAX_CSV_BYTES,
        "max_mib": MAX_CSV_BYTES / (1024 * 1024),
        "problems": PROBLEMS,
        "next_rev": {cid: revs[0].message.rev + 1 for cid, revs in history.items()},
    }
    return page(request, "as_report.html", values, status)


@router.get("/as-report", response_class=HTMLResponse, include_in_schema=False)
def as_report_page(request: Request) -> Response:
    return _screen(request)


@router.post("/as-report", include_in_schema=False)
async def import_report(request: Request) -> Response:
    """``action=preview`` with an uploaded ``file``: the checked lines, nothing signed;
    ``action=submit`` with the previewed ``text``: checked again, then authored."""
    form = await posted(request, SCREEN)
    if form is None:
        return _screen(request, status=HTTPStatus.FORBIDDEN)
    ctx = context(request)
    cid = str(form.get("command", ""))
    shown: dict[str, Any] = {"command": cid}
    errors: Errors = {}
    with ctx.reading() as db:
        command = load_command(db, cid)
        allowed = {c.id for c in report_commands(db, ctx.api.me, Registry(db))}
    if command is None or cid not in allowed:
        errors["command"] = Problem(N_("Choose one of the DR commands to your AC."))
    upload = form.get("file")
    if form.get("action") == "submit":
        text = str(form.get("text", ""))
    elif isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_CSV_BYTES + 1)
        if len(data) > MAX_CSV_BYTES:
            errors["file"] = Problem(
                N_("The file is larger than %(mib)s MiB: split it, or send it through the API."),
                {"mib": MAX_CSV_BYTES // (1024 * 1024)},
            )
        text = _decode(data)
        shown["filename"] = upload.filename
    else:
        text = ""
        errors["file"] = Problem(N_("Choose a CSV file."))
    if errors or command is None:
        return _screen(request, shown, errors, HTTPStatus.BAD_REQUEST)
    try:
        shown["preview"] = _preview(text, command)
    except RequestError as exc:
        errors["file"] = Problem(
            N_("This is not an AS report CSV: %(detail)s"), {"detail": str(exc)}
        )
        return _screen(request, shown, errors, HTTPStatus.BAD_REQUEST)
    if form.get("action") != "submit" or shown["preview"]["bad"]:
        bad = bool(shown["preview"]["bad"])
        return _screen(request, shown, errors, HTTPStatus.BAD_REQUEST if bad else HTTPStatus.OK)
    row = commands.route(ROUTE, commands.CSV)
    assert row is not None
    fields = row.read({"command": [cid]}, text.encode())

    def again(errors: Errors, status: int) -> Response:
        return _screen(request, shown, errors, status)

    return await author(request, SCREEN, ROUTE, commands.CSV, fields, again, command=cid)

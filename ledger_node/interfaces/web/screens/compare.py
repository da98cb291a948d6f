"""Performance comparison (実績比較画面): the paper's figure 6 per command, AC or RA and
day, with each slot's baseline, target, delivered reduction, coverage and the public check
of its total; the reward; a chart; a slot's drill-down to its consumers' readings; and
the table as CSV (UTF-8 with a BOM, so Excel opens it in Japanese).

`COLUMNS` defines the table once: the page and the CSV are both made from it, so the
download holds exactly what the page shows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from http import HTTPStatus
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ledger_node.interfaces.web import comparison, drilldown
from ledger_node.interfaces.web.chart import Series, step_chart
from ledger_node.interfaces.web.comparison import Comparison, ComparisonError, Memory, SlotRow
from ledger_node.interfaces.web.context import WebContext
from ledger_node.interfaces.web.i18n import N_
from ledger_node.interfaces.web.pages import Screen, context, page
from ledger_node.interfaces.web.templating import JST, jst, kwh, language, slot_span, translations

SCREEN = Screen("/compare", N_("Performance comparison"))
MAX_VERDICTS = 50_000
"""Public-check verdicts each node's screen remembers (a few hundred bytes each)."""

Gettext = Callable[[str], str]


def memory_of(ctx: WebContext) -> Memory:
    """What the node's comparison screen remembers between views."""
    memory = ctx.screen_state.get("compare")
    if not isinstance(memory, Memory):
        memory = ctx.screen_state["compare"] = Memory(MAX_VERDICTS, ctx.registries)
    return memory


@cache
def gettext_of(lang: str) -> Gettext:
    return translations(lang).gettext


def _signed_kwh(wh: int | None) -> str:
    return "" if wh is None else f"{wh / 1000:+,.3f}"


def _bc(c: Comparison, r: SlotRow, _: Gettext) -> str:
    return _("not settled") if r.bc_wh is None else kwh(r.bc_wh)


def _as(c: Comparison, r: SlotRow, _: Gettext) -> str:
    return _("no AS report") if r.as_wh is None else kwh(r.as_wh)


def _target(c: Comparison, r: SlotRow, _: Gettext) -> str:
    return "—" if c.entity is None or c.entity.kind != "ac" else kwh(r.target_wh)


def _coverage(c: Comparison, r: SlotRow, _: Gettext) -> str:
    if r.reported is None:
        return ""
    text = f"{r.reported}/{r.declared}"
    return text + (" " + _("%(n)s flagged") % {"n": r.flagged} if r.flagged else "")


def _check(c: Comparison, r: SlotRow, _: Gettext) -> str:
    if r.bc_wh is None:
        return ""
    return "✓ " + _("passed") if r.check is None else "✗ " + _("FAILED") + ": " + r.check


STATES = {"open": N_("open"), "final": N_("final")}
"""A total's state: open while readings may still change it, then final."""


def _state(c: Comparison, r: SlotRow, _: Gettext) -> str:
    return "" if r.state is None else _(STATES[r.state])


@dataclass(frozen=True)
class Column:
    label: str
    """A gettext message id."""
    css: str
    cell: Callable[[Comparison, SlotRow, Gettext], str]


COLUMNS: tuple[Column, ...] = (
    Column(N_("Name"), "name", lambda c, r, _: c.entity.id if c.entity else ""),
    Column(N_("Command ID"), "command", lambda c, r, _: c.command.id if c.command else ""),
    Column(N_("Date"), "date", lambda c, r, _: jst(r.slot, "%Y/%m/%d")),
    Column(N_("Slot (JST)"), "slot", lambda c, r, _: slot_span(r.slot, c.command.slot_s)),  # type: ignore[union-attr]
    Column(N_("BC total (kWh)"), "num bc", _bc),
    Column(N_("AS total (kWh)"), "num as", _as),
    Column(N_("AS − BC (kWh)"), "num diff", lambda c, r, _: _signed_kwh(r.diff_wh)),
    Column(N_("Baseline (kWh)"), "num", lambda c, r, _: kwh(r.baseline_wh)),
    Column(N_("Target (kWh)"), "num", _target),
    Column(N_("Delivered reduction (kWh)"), "num", lambda c, r, _: kwh(r.delivered_wh)),
    Column(N_("Meters reported/declared"), "num", _coverage),
    Column(N_("Total's public check"), "check", _check),
    Column(N_("State"), "state", _state),
)
"""The comparison table's columns: label, CSS classes, and the cell's text."""


def header(_: Gettext) -> list[str]:
    return [_(col.label) for col in COLUMNS]


def cells(c: Comparison, _: Gettext) -> list[list[str]]:
    """The table's rows as the texts of their cells."""
    return [[col.cell(c, r, _) for col in COLUMNS] for r in c.rows]


def _compare(request: Request) -> Comparison:
    ctx = context(request)
    q = request.query_params
    with ctx.reading() as db:
        return comparison.compare(
            db,
            ctx.api.me,
            memory_of(ctx),
            JST,
            ctx.api.finality(),
            q.get("command"),
            q.get("entity"),
            q.get("date"),
        )


def _chart(c: Comparison, _: Gettext) -> object:
    if c.command is None or c.entity is None:
        return None
    series = [Series(N_("Baseline"), "baseline", [r.baseline_wh for r in c.every])]
    if c.entity.kind == "ac":
        levels = [
            None if r.baseline_wh is None else r.baseline_wh - (r.target_wh or 0) for r in c.every
        ]
        series.append(Series(N_("Target (baseline − reduction target)"), "target", levels))
    series.append(Series(N_("Actual (BC total)"), "actual", [r.bc_wh for r in c.every]))
    return step_chart(list(c.command.slots), c.command.slot_s, series, _)


def _query(c: Comparison) -> str:
    """The query naming this comparison (for the CSV link and the drill-downs)."""
    if c.command is None or c.entity is None or c.day is None:
        return ""
    return urlencode({"command": c.command.id, "entity": c.entity.id, "date": c.day.isoformat()})


router = APIRouter()


@router.get("/compare", response_class=HTMLResponse, include_in_schema=False)
def compare_page(request: Request) -> Response:
    c = _compare(request)
    _ = gettext_of(language(request.cookies, request.query_params))
    css = [col.css for col in COLUMNS]
    listed = {e.id for e in c.entities}
    values = {
        "c": c,
        "header": list(zip(css, header(_), strict=True)),
        "table": [
            (row, list(zip(css, texts, strict=True)))
            for row, texts in zip(c.rows, cells(c, _), strict=True)
        ],
        "indented": {e.id for e in c.entities if e.kind == "ra" and e.ac in listed},
        "chart": None if c.error else _chart(c, _),
        "query": _query(c),
        "asked": dict(request.query_params),
    }
    status = HTTPStatus.BAD_REQUEST if c.error else HTTPStatus.OK
    return page(request, "compare.html", values, status)


@router.get("/compare.csv", include_in_schema=False)
def compare_csv(request: Request) -> Response:
    c = _compare(request)
    if c.error or c.command is None or c.entity is None or c.day is None:
        return compare_page(request)
    _ = gettext_of(language(request.cookies, request.query_params))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header(_))
    writer.writerows(cells(c, _))
    name = f"compare-{c.command.id}-{c.entity.id}-{c.day.isoformat()}.csv"
    return Response(
        ("\ufeff" + out.getvalue()).encode(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
            "Cache-Control": "no-store",
        },
    )


@router.get("/compare/slot", response_class=HTMLResponse, include_in_schema=False)
def compare_slot(request: Request) -> Response:
    ctx = context(request)
    q = request.query_params
    try:
        with ctx.reading() as db:
            d = drilldown.drill(
                db,
                ctx.api.me,
                memory_of(ctx),
                q.get("command", ""),
                q.get("entity", ""),
                q.get("slot", ""),
            )
    except ComparisonError as exc:
        return page(request, "compare_slot.html", {"d": None, "error": exc}, HTTPStatus.BAD_REQUEST)
    back = urlencode(
        {
            "command": d.command.id,
            "entity": d.entity.id,
            "date": jst(d.slot, "%Y-%m-%d"),
        }
    )
    values = {
        "d": d,
        "error": None,
        "back": back,
        # A plain gettext in the loops: jinja's own copies the context on each call there.
        "t": gettext_of(language(request.cookies, request.query_params)),
        "SITE_TOTAL": N_("site total"),
        "NOT_SETTLED_HERE": N_("not settled on this node"),
        "NO_AS_REPORT": N_("no AS report"),
    }
    return page(request, "compare_slot.html", values)

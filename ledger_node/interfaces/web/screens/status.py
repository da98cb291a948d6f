"""Node status: what `mlg-node status` shows, refreshing by itself every few seconds."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ledger_node.interfaces import status
from ledger_node.interfaces.web.i18n import N_
from ledger_node.interfaces.web.pages import Screen, context, page

SCREEN = Screen("/status", N_("Node status"))
REFRESH_S = 5

router = APIRouter()


@router.get("/status", response_class=HTMLResponse, include_in_schema=False)
def status_page(request: Request) -> Response:
    ctx = context(request)
    with ctx.reading() as db:
        s = status.gather(db, ctx.api.me, ctx.api.now())
    values = {"s": s, "refresh_s": REFRESH_S, "door": dict(ctx.refusals), "shown_at": time.time()}
    return page(request, "status.html", values)

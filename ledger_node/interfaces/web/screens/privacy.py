"""Privacy: the brief's figure 7 as measured from this node. Every site with its RA and
AC, each key epoch's members, whether this node holds the epoch's data key (and if not,
why: not in the site's group, or shredded), and how many of its batches the node stores
decrypted or as ciphertext only; and the organisations × sites matrix of who reads whose
readings, this node's row highlighted."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ledger_node.interfaces import privacy
from ledger_node.interfaces.web.i18n import N_
from ledger_node.interfaces.web.pages import Screen, context, page

SCREEN = Screen("/privacy", N_("Privacy"))

router = APIRouter()


@router.get("/privacy", response_class=HTMLResponse, include_in_schema=False)
def privacy_page(request: Request) -> Response:
    ctx = context(request)
    with ctx.reading() as db:
        view = privacy.gather(db, ctx.api.me)
    return page(request, "privacy.html", {"v": view})

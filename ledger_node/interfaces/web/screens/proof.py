"""Proofs: a transaction's inclusion proof under this node's signed checkpoint (leaf
index, tree size, root, audit path, the checkpoint and its co-signers), checked here with
the node's public key and downloadable as the JSON document `mlg-node prove` prints (any
RFC 9162 verifier takes it); and the newest entries of the log to pick one from."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ledger_node.interfaces.api import ApiError
from ledger_node.interfaces.web.i18n import N_
from ledger_node.interfaces.web.pages import Screen, context, page
from ledger_node.ledger import proofs
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.rules import LEDGER_TYPES
from ledger_node.ledger.store import Db
from ledger_node.shared.errors import MeterledgerError

SCREEN = Screen("/proof", N_("Proofs"))
RECENT = 30
"""Log entries listed per page."""
ECHO_CHARS = 200
"""At most this much of a bad txid goes back into the form."""

TXID_ERRORS = {
    "not_hex": N_("this is not a txid: a txid is written in hex digits (0-9, a-f)"),
    "length": N_("a txid has 64 hex digits (the SHA-256 of the fact's envelope)"),
}
TXID_UNKNOWN = N_("no entry with this txid in this node's log")
BAD_TYPE = N_("no such fact type")
BAD_BEFORE = N_("not an entry number")

router = APIRouter()


def _txid(text: str) -> tuple[bytes | None, str]:
    """The txid in `text` and "", or None and the error to show."""
    try:
        return proofs.parse_txid(text), ""
    except proofs.TxidError as exc:
        return None, TXID_ERRORS[exc.reason]


def _entries(db: Db, kind: str | None, before: int | None) -> list[dict[str, Any]]:
    """The newest `RECENT` log entries (of type `kind`, below position `before`)."""
    rows = db.execute(
        "SELECT pos, txid, type, author, received_at, envelope IS NULL FROM log"
        " WHERE (?1 IS NULL OR type = ?1) AND (?2 IS NULL OR pos < ?2) ORDER BY pos DESC LIMIT ?3",
        (kind, before, RECENT),
    ).fetchall()
    keys = ("pos", "txid", "type", "author", "t", "shredded")
    return [dict(zip(keys, (*r[:1], bytes(r[1]).hex(), *r[2:]), strict=True)) for r in rows]


def _filename(me: str, pos: int) -> str:
    """The downloaded proof's file name: node and leaf index."""
    return f"proof-{me}-{pos}.json"


def _proof(db: Db, me: str, txid: bytes) -> dict[str, Any] | None:
    """The inclusion proof of `txid` with what the screen shows beside it; None if the
    txid is not in the log."""
    try:
        doc = proofs.inclusion(db, me, txid)
    except proofs.ProofRequestError:
        return None
    pos, size = doc["leaf_index"], doc["tree_size"]
    kind, author, received, source = db.execute(
        "SELECT type, author, received_at, source FROM log WHERE pos=?", (pos,)
    ).fetchone()
    checkpoint = None
    if doc["checkpoint"] is not None:
        t, received_cp = db.execute(
            "SELECT t, received_at FROM checkpoints WHERE node=? AND size=?", (me, size)
        ).fetchone()
        cosigners = db.execute(
            "SELECT witness, slots, received_at FROM cosignatures WHERE node=? AND size=?"
            " ORDER BY witness",
            (me, size),
        ).fetchall()
        checkpoint = {"t": t, "received_at": received_cp, "cosigners": cosigners}
    try:
        checked, ok = proofs.check(doc, Registry(db).verify_keys.get(me)), True
    except MeterledgerError as exc:
        checked, ok = str(exc), False
    return {
        "doc": doc,
        "entry": {"type": kind, "author": author, "t": received, "source": source},
        "checkpoint": checkpoint,
        "checked": checked,
        "ok": ok,
        "filename": _filename(me, pos),
    }


@router.get("/proof", response_class=HTMLResponse, include_in_schema=False)
def proof_page(request: Request) -> Response:
    ctx = context(request)
    q = request.query_params
    errors: dict[str, str] = {}
    text = q.get("txid", "").strip()
    kind = q.get("type") or None
    if kind is not None and kind not in LEDGER_TYPES:
        errors["type"], kind = BAD_TYPE, None
    before_text = q.get("before", "")
    before = int(before_text) if before_text.isdigit() and len(before_text) < 19 else None
    if before_text and before is None:
        errors["before"] = BAD_BEFORE
    found = None
    with ctx.reading() as db:
        if text:
            txid, errors["txid"] = _txid(text)
            if txid is not None:
                found = _proof(db, ctx.api.me, txid)
                errors["txid"] = "" if found is not None else TXID_UNKNOWN
        entries = _entries(db, kind, before)
    errors = {k: v for k, v in errors.items() if v}
    status = HTTPStatus.BAD_REQUEST if errors else HTTPStatus.OK
    if errors.get("txid") == TXID_UNKNOWN:
        status = HTTPStatus.NOT_FOUND
    values = {
        "txid": text[:ECHO_CHARS],
        "kind": kind or "",
        "types": sorted(LEDGER_TYPES),
        "entries": entries,
        "older": entries[-1]["pos"] if len(entries) == RECENT else None,
        "paged": before is not None,
        "found": found,
        "errors": errors,
    }
    return page(request, "proof.html", values, status)


@router.get("/proof.json", include_in_schema=False)
def proof_download(request: Request) -> Response:
    """The inclusion proof as a file to download (what `mlg-node prove` prints)."""
    ctx = context(request)
    txid, error = _txid(request.query_params.get("txid", ""))
    if txid is None:
        raise ApiError(HTTPStatus.BAD_REQUEST, error)
    with ctx.reading() as db:
        try:
            doc = proofs.inclusion(db, ctx.api.me, txid)
        except proofs.ProofRequestError:
            raise ApiError(HTTPStatus.NOT_FOUND, TXID_UNKNOWN) from None
    name = _filename(ctx.api.me, doc["leaf_index"])
    return Response(
        json.dumps(doc, indent=2) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )

"""What the screens that author facts share (DR declaration, DR command, AS report): an
error per form field, the one way a form becomes a fact (the API's authoring command of
`commands.COMMANDS`, run in the node's worker by `Api.author`), the log entry it became,
and an author's revisions of a fact per command with their standing on the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ledger_node.interfaces import commands
from ledger_node.interfaces.authoring import RequestError
from ledger_node.interfaces.web.i18n import N_
from ledger_node.interfaces.web.pages import Screen, authored_form, context
from ledger_node.ledger.refusals import GATE_CLOSED
from ledger_node.ledger.store import Db
from ledger_node.ledger.txlog import TXID_MATCH, txid_params
from ledger_node.shared.errors import MeterledgerError
from ledger_node.wire import Message, open_stored


@dataclass(frozen=True)
class Problem:
    """An error to show next to a form's field: a gettext message id and its values."""

    msg: str
    args: Mapping[str, Any] = field(default_factory=dict)


Errors = dict[str, Problem]
"""A form's errors by field name ("form": the form as a whole)."""


Again = Callable[[Errors, int], Response]
"""The screen again, with the form as it was posted, these errors and this status."""


def role_of(request: Request) -> str | None:
    """This node's organisation's role ("tso", "ac", "ra")."""
    return context(request).role()


def serves(screen: Screen, role: str | None) -> bool:
    return screen.roles is None or role in screen.roles


async def posted(request: Request, screen: Screen) -> FormData | None:
    """The posted form of `screen`, sent by an operator with its CSRF token (else
    `AuthError`); None if this node's role has no such screen."""
    form, _ = await authored_form(request)
    return form if serves(screen, role_of(request)) else None


def refusal(exc: MeterledgerError) -> Problem:
    """Why the node did not author a form's fact, for the form."""
    if isinstance(exc, RequestError) and exc.reason == GATE_CLOSED:
        return Problem(
            N_(
                "The gate has closed: the ledger no longer accepts declarations for this "
                "command. Nothing was registered."
            )
        )
    return Problem(N_("Nothing was registered: %(detail)s"), {"detail": str(exc)})


async def author(
    request: Request,
    screen: Screen,
    route: str,
    content: str,
    fields: Mapping[str, Any],
    again: Again,
    **query: str,
) -> Response:
    """Author the fact of the API's authoring command for POST `route` (body `content`)
    from a form's checked `fields`, in the node's worker; then back to `screen` (with
    `query`), which shows its log entry, or `again` with the refusal."""
    row = commands.route(route, content)
    assert row is not None, route
    try:
        answer = await run_in_threadpool(context(request).api.author, row, fields)
    except MeterledgerError as exc:
        return again({"form": refusal(exc)}, HTTPStatus.CONFLICT)
    extra = "".join(f"&{k}={quote(v)}" for k, v in query.items())
    return RedirectResponse(f"{screen.path}?accepted={answer['txid']}{extra}", HTTPStatus.SEE_OTHER)


@dataclass(frozen=True)
class Entry:
    """A fact in the log: its position, txid (hex), type, author and arrival (UTC s)."""

    pos: int
    txid: str
    type: str
    author: str
    received_at: float


def entry(db: Db, txid: str | None) -> Entry | None:
    """The log entry of `txid` (hex), if this node holds it."""
    try:
        raw = bytes.fromhex(txid or "")
    except ValueError:
        return None
    row = db.execute(
        f"SELECT pos, type, author, received_at FROM log WHERE {TXID_MATCH}",  # noqa: S608
        txid_params(raw),
    ).fetchone()
    return None if row is None else Entry(row[0], raw.hex(), row[1], row[2], row[3])


@dataclass(frozen=True)
class Revision:
    """One revision of a fact kept per command and author (a declaration, an AS report)."""

    entry: Entry
    message: Any
    """The `DrDeclaration` or `AsReport`."""
    status: str
    """"current" (the revision that counts), "superseded" (a newer one counts),
    "evidence" (a second fact under a used revision: equivocation, kept as evidence) or
    "equivocated" (the first of such a pair)."""
    other: int | None = None
    """The log position of the other fact of an equivocation."""


def revisions(
    db: Db, fact: type[Message], author: str, table: str, who: str, label: str
) -> dict[str, list[Revision]]:
    """`author`'s facts of type `fact` in this node's log, by command, newest revision
    first; `table` (column `who` names the author) holds the revision that counts, and
    an equivocation's key begins with `label` (see `rules.dr`)."""
    current = dict(
        db.execute(f"SELECT command, pos FROM {table} WHERE {who}=?", (author,))  # noqa: S608
    )
    evidence = dict(
        db.execute(
            "SELECT pos, first_pos FROM equivocations WHERE author=? AND instr(key, ?) = 1",
            (author, f"{label}:"),
        )
    )
    first = {f: pos for pos, f in evidence.items()}
    out: dict[str, list[Revision]] = {}
    rows = db.execute(
        # The condition on 'readings' repeats the index's (log_authored): it is used.
        "SELECT pos, txid, received_at, envelope FROM log WHERE author=? AND type=?"
        " AND type != 'readings' AND envelope IS NOT NULL",
        (author, fact.TYPE),
    )
    for pos, txid, received_at, raw in rows:
        message: Any = open_stored(raw)
        command = message.command
        if pos in evidence:
            status, other = "evidence", evidence[pos]
        elif pos in first:
            status, other = "equivocated", first[pos]
        elif current.get(command) == pos:
            status, other = "current", None
        else:
            status, other = "superseded", None
        e = Entry(pos, bytes(txid).hex(), fact.TYPE, author, received_at)
        out.setdefault(command, []).append(Revision(e, message, status, other))
    for revs in out.values():
        revs.sort(key=lambda r: (-r.message.rev, -r.entry.pos))
    return out


def wall_time(request: Request, t: float) -> float:
    """The wall-clock instant (UTC s) at which the node's clock reads `t`, for a countdown
    in the browser (a simulated network's clock runs faster than the wall's)."""
    ctx = context(request)
    rate = float(getattr(getattr(ctx.api.node, "clock", None), "scale", 1.0))
    return time.time() + (t - ctx.api.now()) / rate

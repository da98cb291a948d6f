"""The node's JSON API over HTTP, on loopback unless configured otherwise.

Reads go to the database through a read-only connection per request; writes (facts this
organisation authors) run in the node's worker like any other fact. Request bodies are
limited to `MAX_BODY_BYTES` before they are read. Errors are JSON: ``{"error": "…"}``
with status 400 (bad request), 404 (not found), 413 (too large) or 503 (node busy).

GET  /api/status                     what `mlg-node status --json` prints
GET  /api/log                        {"size", "root"}
GET  /api/proof?txid=HEX             inclusion proof (see `proofs`)
GET  /api/consistency?from=N[&to=M]  consistency proof
GET  /api/registry                   organisations and sites
GET  /api/commands                   DR commands with their declarations
GET  /api/results?command=ID[&scope=ORG]   results per slot and scope, each "open" or
                                     "final", and the rewards once the window closed
GET  /api/reconciliation?command=ID[&org=ORG]  AS reports against the ledger, slot by
                                     slot (default: every report this node can check)
GET  /api/totals[?site=S]            per site and slot: Wh and meters (readable sites)
GET  /api/control[?command=ID]       DR control actions the gateways recorded in their
                                     sealed batches (readable sites), oldest first
GET  /api/enrolments                 gateways' enrolment requests waiting (an RA's node)
POST /api/orgs, /api/orgs/remove, /api/sites, /api/site-moves, /api/commands,
     /api/declarations, /api/as-reports (JSON, or CSV with ?command=ID), /api/enrolments,
     /api/shred:
     the authoring commands of `commands.COMMANDS`, whose rows say what each takes
POST /api/facts                      a fact signed elsewhere (`mlg-node sign`), the envelope
                                     as the body: {"status": accepted|replay|held, "txid",
                                     "pos"}; accepted facts are published like the node's

`GETS` is the table of GET routes; `web.routes` serves both tables over HTTP and
`client` is the other end, for the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger_node.contract import settlement
from ledger_node.contract.settlement import Finality
from ledger_node.interfaces import authoring, commands, status
from ledger_node.interfaces.commands import Query, param
from ledger_node.ledger import LedgerSettings, load_command, proofs
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db, connect
from ledger_node.network import enrolments
from ledger_node.shared.errors import MeterledgerError

if TYPE_CHECKING:
    from ledger_node.network.node import Node

log = logging.getLogger("mlg.node.api")

MAX_BODY_BYTES = 1024 * 1024
FACTS_ROUTE = "/api/facts"
"""Admits a fact signed elsewhere (`mlg-node sign`): the envelope's bytes as the body."""


class ApiError(MeterledgerError):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def totals(db: Db, site: str | None) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT b.site, b.slot, SUM(r.wh), COUNT(*),"
        " SUM(CASE WHEN r.quality != '' THEN 1 ELSE 0 END) FROM batches b"
        " JOIN readings r ON r.pos = b.pos WHERE b.state = 'open'"
        " AND (CAST(? AS TEXT) IS NULL OR b.site = ?)"
        " GROUP BY b.site, b.slot ORDER BY b.site, b.slot",
        (site, site),
    ).fetchall()
    keys = ("site", "slot", "wh", "meters", "flagged")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def control_actions(db: Db, command: str | None) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT b.site, b.gateway, b.seq, b.slot, c.command, c.state, c.t, c.ok"
        " FROM control_actions c JOIN batches b ON b.pos = c.pos"
        " WHERE (CAST(? AS TEXT) IS NULL OR c.command = ?) ORDER BY c.t, b.gateway, b.seq, c.n",
        (command, command),
    ).fetchall()
    keys = ("site", "gateway", "seq", "slot", "command", "state", "t", "ok")
    return [dict(zip(keys, row, strict=True)) | {"ok": bool(row[7])} for row in rows]


def results(
    db: Db, command_id: str, finality: Finality, scope: str | None = None
) -> dict[str, Any]:
    """A DR command's results per slot and scope (all scopes if None), each open or
    final, and its rewards once its window has closed (`settlement.settled`)."""
    command = load_command(db, command_id)
    if command is None:
        raise ApiError(HTTPStatus.NOT_FOUND, f"no DR command {command_id} on this node")
    return settlement.settled(db, command, finality, scope)


def registry(db: Db) -> dict[str, Any]:
    reg = Registry(db)
    return {
        "network": reg.network,
        "contract": reg.contract,
        "orgs": [
            {"id": o.org.id, "role": o.org.role, "ac": o.org.ac, "active": o.active}
            for o in reg.orgs.values()
        ],
        "sites": [
            {
                "site": s.site,
                "ra": s.ra,
                "gateway": s.gateway.id,
                "meters": list(s.meters),
                "group": list(reg.group(s.site)[0]),
            }
            for s in reg.sites.values()
        ],
    }


def dr_commands(db: Db) -> list[dict[str, Any]]:
    """Every DR command, oldest start first, with each RA's newest declaration."""
    out = []
    for (cid,) in db.execute("SELECT id FROM commands ORDER BY t_start").fetchall():
        cmd = load_command(db, cid)
        assert cmd is not None
        out.append(
            {
                "id": cmd.id,
                "start": cmd.start,
                "end": cmd.end,
                "slot_s": cmd.slot_s,
                "gate_closure": cmd.gate_closure,
                "price_yen_per_kwh": cmd.price_yen_per_kwh,
                "targets": dict(cmd.targets),
                "declarations": {
                    ra: {"rev": d.rev, "sites": {s: list(b) for s, b in d.sites}}
                    for ra, d in settlement.load_declarations(db, cid).items()
                },
            }
        )
    return out


def _proof(db: Db, me: str, txid: str) -> dict[str, Any]:
    return proofs.inclusion(db, me, proofs.parse_txid(txid))


def _consistency(db: Db, me: str, query: Query) -> dict[str, Any]:
    to = param(query, "to", required=False)
    old = int(param(query, "from") or 0)
    return proofs.consistency(db, me, old, None if to is None else int(to))


def reconciliation(db: Db, me: str, command: str, org: str | None = None) -> list[dict[str, Any]]:
    """AS reports for `command` beside the ledger, slot by slot: `org`'s, or by default
    this node's own (an AC or RA) and every report of an organisation whose results this
    node settles (the TSO: every report); a slot of a scope this node cannot read is
    `not_readable`, not missing."""
    registry = Registry(db)
    kinds = {o: state.org.role for o, state in registry.orgs.items()}
    readable = {
        scope
        for _, scope in settlement.scopes_of(
            me,
            registry,
            [o for o, k in kinds.items() if k == "ra"],
            [o for o, k in kinds.items() if k == "ac"],
        )
    }
    if org is not None:
        orgs = [org]
    else:
        reported = settlement.as_reported(db, command)
        own = [me] if kinds.get(me) in ("ac", "ra") else []
        orgs = sorted(set(own) | (set(reported) & readable))
    return [
        {
            "org": o,
            "slot": r.slot,
            "ledger_wh": r.ledger_wh,
            "as_wh": r.as_wh,
            "status": r.status,
        }
        for o in orgs
        for r in settlement.reconcile(db, command, o, o in readable)
    ]


class Api:
    """Request handling, separate from the HTTP plumbing so the CLI can reuse it."""

    def __init__(
        self,
        db_path: Path | str,
        me: str,
        node: Node | None,
        clock_now: Callable[[], float],
        late_after_s: int = LedgerSettings().late_after_s,
    ) -> None:
        self.db_path = db_path
        """The node's database: its SQLite file or its PostgreSQL URL."""
        self.me = me
        self.node = node
        self.now = clock_now
        self.late_after_s = late_after_s
        """The node's lateness limit: a slot's result is final at the latest this long
        after its end (`settlement.Finality`)."""

    def finality(self) -> Finality:
        """Which results can still change, as of now on the node's clock."""
        return Finality(self.now(), self.late_after_s)

    def get(self, path: str, query: Query) -> Any:
        handler = GETS.get(path)
        db = connect(self.db_path, readonly=True)
        try:
            if handler is None:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource {path}")
            return handler.answer(db, self, query)
        finally:
            db.close()

    def post(self, path: str, query: Query, body: bytes, content_type: str) -> Any:
        if self.node is None:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the node is not running")
        if path == FACTS_ROUTE:
            node = self.node
            return node.submit(lambda: authoring.admit_signed(node.ledger, body))
        command = commands.route(path, content_type)
        # An unknown path's body is read as JSON all the same: a bad body is a 400 first.
        fields = (commands.json_object if command is None else command.read)(query, body)
        if command is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource {path}")
        return self.author(command, fields)

    def author(self, command: commands.Command, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Run `command`'s builder on a request's `fields` in the node's worker: the one way
        a request (the API's, a screen's form) becomes a signed fact. Its answer names the
        fact's type, txid and log position; `RequestError` if the ledger refuses it."""
        node = self.node
        if node is None:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the node is not running")
        return node.submit(lambda: command.author(node.ledger, fields))


Answer = Callable[[Db, Api, Query], Any]


@dataclass(frozen=True)
class Get:
    """One GET route: its path, what it answers, its query parameters and the answer."""

    path: str
    summary: str
    params: tuple[tuple[str, bool, str], ...]
    """(name, required, description) of each query parameter."""
    answer: Answer


GETS: dict[str, Get] = {
    g.path: g
    for g in (
        Get(
            "/api/status",
            "What `mlg-node status --json` prints",
            (),
            lambda db, api, q: status.gather(db, api.me, api.now()),
        ),
        Get(
            "/api/log",
            "The log's size and root",
            (),
            lambda db, api, q: status.gather(db, api.me, api.now())["log"],
        ),
        Get(
            "/api/proof",
            "Inclusion proof of a transaction, under this node's signed checkpoint",
            (("txid", True, "the transaction id, hex"),),
            lambda db, api, q: _proof(db, api.me, param(q, "txid") or ""),
        ),
        Get(
            "/api/consistency",
            "Consistency proof between two sizes of the log",
            (("from", True, "the older size"), ("to", False, "the newer size (now)")),
            lambda db, api, q: _consistency(db, api.me, q),
        ),
        Get("/api/registry", "Organisations and sites", (), lambda db, api, q: registry(db)),
        Get(
            "/api/commands",
            "DR commands with each RA's newest declaration",
            (),
            lambda db, api, q: dr_commands(db),
        ),
        Get(
            "/api/results",
            "A DR command's results per slot and scope, and its rewards",
            (("command", True, "the command id"), ("scope", False, "one AC or RA")),
            lambda db, api, q: results(
                db, param(q, "command") or "", api.finality(), param(q, "scope", required=False)
            ),
        ),
        Get(
            "/api/reconciliation",
            "An organisation's AS report against the ledger, slot by slot",
            (
                ("command", True, "the command id"),
                (
                    "org",
                    False,
                    "one AC or RA (default: this node's own and every report of an"
                    " organisation this node settles; on the TSO's node every report)",
                ),
            ),
            lambda db, api, q: reconciliation(
                db, api.me, param(q, "command") or "", param(q, "org", required=False)
            ),
        ),
        Get(
            "/api/totals",
            "Per site and slot: Wh and meters (sites this node can read)",
            (("site", False, "one site"),),
            lambda db, api, q: totals(db, param(q, "site", required=False)),
        ),
        Get(
            "/api/enrolments",
            "Gateways' enrolment requests waiting for this RA's approval",
            (),
            lambda db, api, q: enrolments.pending(db),
        ),
        Get(
            "/api/control",
            "DR control actions the gateways recorded (sites this node can read)",
            (("command", False, "one command"),),
            lambda db, api, q: control_actions(db, param(q, "command", required=False)),
        ),
    )
}
"""The GET routes: each answers from a read-only connection to the node's database."""

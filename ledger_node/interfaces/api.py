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
GET  /api/results?command=ID[&scope=ORG]   results per slot and scope, rewards
GET  /api/reconciliation?command=ID[&org=ORG]  AS report against the ledger, slot by slot
GET  /api/totals[?site=S]            per site and slot: Wh and meters (readable sites)
GET  /api/control[?command=ID]       DR control actions the gateways recorded in their
                                     sealed batches (readable sites), oldest first
POST /api/orgs, /api/orgs/remove, /api/sites, /api/site-moves, /api/commands,
     /api/declarations, /api/as-reports (JSON, or CSV with ?command=ID), /api/shred
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ledger_node.contract import settlement
from ledger_node.interfaces import authoring, status
from ledger_node.ledger import load_command, proofs
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import connect
from ledger_node.shared.errors import MeterledgerError

if TYPE_CHECKING:
    from ledger_node.network.node import Node

log = logging.getLogger("mlg.node.api")

MAX_BODY_BYTES = 1024 * 1024


class ApiError(MeterledgerError):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def _q(query: dict[str, list[str]], key: str, required: bool = True) -> str | None:
    values = query.get(key)
    if not values:
        if required:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"query parameter {key!r} is required")
        return None
    return values[0]


def totals(db: sqlite3.Connection, site: str | None) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT b.site, b.slot, SUM(r.wh), COUNT(*), SUM(r.quality != '') FROM batches b"
        " JOIN readings r ON r.pos = b.pos WHERE b.state = 'open' AND (? IS NULL OR b.site = ?)"
        " GROUP BY b.site, b.slot ORDER BY b.site, b.slot",
        (site, site),
    ).fetchall()
    keys = ("site", "slot", "wh", "meters", "flagged")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def control_actions(db: sqlite3.Connection, command: str | None) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT b.site, b.gateway, b.seq, b.slot, c.command, c.state, c.t, c.ok"
        " FROM control_actions c JOIN batches b ON b.pos = c.pos"
        " WHERE (? IS NULL OR c.command = ?) ORDER BY c.t, b.gateway, b.seq, c.n",
        (command, command),
    ).fetchall()
    keys = ("site", "gateway", "seq", "slot", "command", "state", "t", "ok")
    return [dict(zip(keys, row, strict=True)) | {"ok": bool(row[7])} for row in rows]


class Api:
    """Request handling, separate from the HTTP plumbing so the CLI can reuse it."""

    def __init__(
        self, db_path: Path, me: str, node: Node | None, clock_now: Callable[[], float]
    ) -> None:
        self.db_path = db_path
        self.me = me
        self.node = node
        self.now = clock_now

    def get(self, path: str, query: dict[str, list[str]]) -> Any:
        db = connect(self.db_path, readonly=True)
        try:
            return self._get(db, path, query)
        finally:
            db.close()

    def _get(self, db: sqlite3.Connection, path: str, query: dict[str, list[str]]) -> Any:
        if path == "/api/status":
            return status.gather(db, self.me, self.now())
        if path == "/api/log":
            s = status.gather(db, self.me, self.now())
            return s["log"]
        if path == "/api/proof":
            txid = _q(query, "txid") or ""
            try:
                return proofs.inclusion(db, self.me, bytes.fromhex(txid))
            except ValueError:
                raise ApiError(HTTPStatus.BAD_REQUEST, "txid must be hex") from None
        if path == "/api/consistency":
            to = _q(query, "to", required=False)
            return proofs.consistency(
                db, self.me, int(_q(query, "from") or 0), None if to is None else int(to)
            )
        if path == "/api/registry":
            registry = Registry(db)
            return {
                "network": registry.network,
                "contract": registry.contract,
                "orgs": [
                    {"id": o.org.id, "role": o.org.role, "ac": o.org.ac, "active": o.active}
                    for o in registry.orgs.values()
                ],
                "sites": [
                    {
                        "site": s.site,
                        "ra": s.ra,
                        "gateway": s.gateway.id,
                        "meters": list(s.meters),
                        "group": list(registry.group(s.site)[0]),
                    }
                    for s in registry.sites.values()
                ],
            }
        if path == "/api/commands":
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
        if path == "/api/results":
            command = _q(query, "command") or ""
            return {
                "results": settlement.results(
                    db, command, scope=_q(query, "scope", required=False)
                ),
                "rewards": settlement.rewards(db, command),
            }
        if path == "/api/reconciliation":
            org = _q(query, "org", required=False) or self.me
            rows = settlement.reconcile(db, _q(query, "command") or "", org)
            return [
                {"slot": r.slot, "ledger_wh": r.ledger_wh, "as_wh": r.as_wh, "status": r.status}
                for r in rows
            ]
        if path == "/api/totals":
            return totals(db, _q(query, "site", required=False))
        if path == "/api/control":
            return control_actions(db, _q(query, "command", required=False))
        raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource {path}")

    def post(self, path: str, query: dict[str, list[str]], body: bytes, content_type: str) -> Any:
        if self.node is None:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the node is not running")
        if path == "/api/as-reports" and "csv" in content_type:
            command = _q(query, "command") or ""
            slots = authoring.parse_as_csv(body.decode("utf-8-sig", errors="replace"))
            return self._author(lambda ledger: authoring.as_report(ledger, command, slots))
        try:
            obj = json.loads(body or b"{}")
        except ValueError as exc:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
        handlers: dict[str, Callable[[Any, dict[str, Any]], dict[str, Any]]] = {
            "/api/orgs": authoring.org_add,
            "/api/orgs/remove": authoring.org_remove,
            "/api/sites": authoring.site,
            "/api/site-moves": authoring.site_move,
            "/api/commands": authoring.command,
            "/api/declarations": authoring.declaration,
            "/api/as-reports": authoring.as_report_json,
            "/api/shred": authoring.shred,
        }
        handler = handlers.get(path)
        if handler is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource {path}")
        return self._author(lambda ledger: handler(ledger, obj))

    def _author(self, fn: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        assert self.node is not None
        node = self.node
        return node.submit(lambda: fn(node.ledger))


class _Handler(BaseHTTPRequestHandler):
    api: Api
    server_version = "meterledger"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def _send(self, status_code: HTTPStatus, obj: Any) -> None:
        data = (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode()
        self.send_response(status_code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, fn: Callable[[], Any]) -> None:
        try:
            self._send(HTTPStatus.OK, fn())
        except ApiError as exc:
            self._send(exc.status, {"error": str(exc)})
        except MeterledgerError as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except (ValueError, KeyError) as exc:
            self._send(HTTPStatus.BAD_REQUEST, {"error": f"bad request: {exc}"})

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self._handle(lambda: self.api.get(url.path, parse_qs(url.query)))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY_BYTES:
            self._send(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY_BYTES} bytes"}
            )
            return
        body = self.rfile.read(length)
        content_type = self.headers.get("Content-Type", "application/json")
        self._handle(lambda: self.api.post(url.path, parse_qs(url.query), body, content_type))


class ApiServer:
    """The HTTP server in a daemon thread."""

    def __init__(self, api: Api, host: str, port: int) -> None:
        handler = type("Handler", (_Handler,), {"api": api})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="mlg-api", daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> None:
        self.thread.start()
        log.info("JSON API on http://%s:%d/api/", self.httpd.server_address[0], self.port)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

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
     /api/declarations, /api/as-reports (JSON, or CSV with ?command=ID), /api/shred:
     the authoring commands of `commands.COMMANDS`, whose rows say what each takes

`GETS` is the table of GET routes; `call_node` is the other end, for the CLI.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from ledger_node.contract import settlement
from ledger_node.interfaces import commands, status
from ledger_node.interfaces.commands import Query, param
from ledger_node.ledger import load_command, proofs
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import connect
from ledger_node.network.config import NodeConfig
from ledger_node.shared.errors import MeterledgerError

if TYPE_CHECKING:
    from ledger_node.network.node import Node

log = logging.getLogger("mlg.node.api")

MAX_BODY_BYTES = 1024 * 1024


class ApiError(MeterledgerError):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


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


def results(db: sqlite3.Connection, command: str, scope: str | None = None) -> dict[str, Any]:
    """A DR command's results per slot and scope (all scopes if None) and its rewards."""
    return {
        "results": settlement.results(db, command, scope=scope),
        "rewards": settlement.rewards(db, command),
    }


def registry(db: sqlite3.Connection) -> dict[str, Any]:
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


def dr_commands(db: sqlite3.Connection) -> list[dict[str, Any]]:
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


def _proof(db: sqlite3.Connection, me: str, txid: str) -> dict[str, Any]:
    try:
        return proofs.inclusion(db, me, bytes.fromhex(txid))
    except ValueError:
        raise ApiError(HTTPStatus.BAD_REQUEST, "txid must be hex") from None


def _consistency(db: sqlite3.Connection, me: str, query: Query) -> dict[str, Any]:
    to = param(query, "to", required=False)
    old = int(param(query, "from") or 0)
    return proofs.consistency(db, me, old, None if to is None else int(to))


def _reconciliation(db: sqlite3.Connection, me: str, query: Query) -> list[dict[str, Any]]:
    org = param(query, "org", required=False) or me
    rows = settlement.reconcile(db, param(query, "command") or "", org)
    return [
        {"slot": r.slot, "ledger_wh": r.ledger_wh, "as_wh": r.as_wh, "status": r.status}
        for r in rows
    ]


class Api:
    """Request handling, separate from the HTTP plumbing so the CLI can reuse it."""

    def __init__(
        self, db_path: Path, me: str, node: Node | None, clock_now: Callable[[], float]
    ) -> None:
        self.db_path = db_path
        self.me = me
        self.node = node
        self.now = clock_now

    def get(self, path: str, query: Query) -> Any:
        handler = GETS.get(path)
        db = connect(self.db_path, readonly=True)
        try:
            if handler is None:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource {path}")
            return handler(db, self, query)
        finally:
            db.close()

    def post(self, path: str, query: Query, body: bytes, content_type: str) -> Any:
        if self.node is None:
            raise ApiError(HTTPStatus.SERVICE_UNAVAILABLE, "the node is not running")
        command = commands.route(path, content_type)
        # An unknown path's body is read as JSON all the same: a bad body is a 400 first.
        fields = (commands.json_object if command is None else command.read)(query, body)
        if command is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource {path}")
        author = command.author
        return self._author(lambda ledger: author(ledger, fields))

    def _author(self, fn: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        assert self.node is not None
        node = self.node
        return node.submit(lambda: fn(node.ledger))


Get = Callable[[sqlite3.Connection, Api, Query], Any]

GETS: dict[str, Get] = {
    "/api/status": lambda db, api, q: status.gather(db, api.me, api.now()),
    "/api/log": lambda db, api, q: status.gather(db, api.me, api.now())["log"],
    "/api/proof": lambda db, api, q: _proof(db, api.me, param(q, "txid") or ""),
    "/api/consistency": lambda db, api, q: _consistency(db, api.me, q),
    "/api/registry": lambda db, api, q: registry(db),
    "/api/commands": lambda db, api, q: dr_commands(db),
    "/api/results": lambda db, api, q: results(
        db, param(q, "command") or "", param(q, "scope", required=False)
    ),
    "/api/reconciliation": lambda db, api, q: _reconciliation(db, api.me, q),
    "/api/totals": lambda db, api, q: totals(db, param(q, "site", required=False)),
    "/api/control": lambda db, api, q: control_actions(db, param(q, "command", required=False)),
}
"""The GET routes: each answers from a read-only connection to the node's database."""


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


# -- the other end: commands that call the running node ------------------------------------------


def write_address(path: Path, host: str, port: int) -> None:
    """Write the API's address for other commands (atomically: new file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{host}:{port}\n")
    tmp.replace(path)


def read_address(path: Path) -> tuple[str, int]:
    """The (host, port) a running node wrote to `path` (OSError or ValueError while it has
    not)."""
    host, _, port = path.read_text().strip().rpartition(":")
    return host, int(port)


def node_url(cfg: NodeConfig, path: str) -> str:
    """`path` on the API of the node of `cfg` (on the port it wrote, when configured as 0)."""
    if cfg.api is None:
        raise MeterledgerError("api.listen is off in the config: these commands need the API")
    host, port = cfg.api
    if port == 0:  # any free port: the running node wrote the one it got
        try:
            host, port = read_address(cfg.api_addr_path)
        except (OSError, ValueError):
            raise MeterledgerError(
                f"api.listen has port 0 and {cfg.api_addr_path} names no port: is the node running?"
            ) from None
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - we connect, not listen
        host = "127.0.0.1"
    return f"http://{host}:{port}{path}"


def call_node(cfg: NodeConfig, path: str, body: bytes, content_type: str) -> Any:
    """POST `body` to the node of `cfg` and return its JSON answer; its error as ours."""
    request = urllib.request.Request(  # noqa: S310 - http to the configured node only
        node_url(cfg, path), data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            message = str(exc)
        raise MeterledgerError(message) from None
    except urllib.error.URLError as exc:
        raise MeterledgerError(
            f"cannot reach the node at {node_url(cfg, '')}: {exc.reason}"
            " (is `mlg-node run` running?)"
        ) from None

"""The node's HTTP door, attacked from outside over real HTTP: no authoring without the
node's token or an operator's session with its CSRF token, no request from another origin
or naming another host (DNS rebinding), no body past the limit; each refused with its
reason, and nothing authored."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import time
import urllib.error
import urllib.request
from typing import Any

from ledger_node.interfaces.api import FACTS_ROUTE, GETS
from ledger_node.interfaces.commands import COMMANDS, JSON
from ledger_node.interfaces.web import WebContext, WebServer
from ledger_node.interfaces.web.app import MAX_BODY_BYTES
from tests.node.conftest import T0, Org, post

COMMAND = {
    "id": "c1",
    "start": T0 + 3600,
    "end": T0 + 7200,
    "slot_s": 1800,
    "gate_closure": T0 + 1800,
    "price_yen_per_kwh": 20,
    "targets": {"ac1": 500},
}
BODY = json.dumps(COMMAND).encode()
NO_TOKEN = {"Authorization": ""}


def _get(org: Org, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{org.server.port}{path}", headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, json.loads(exc.read())


def _raw(port: int, head: str, chunks: list[bytes]) -> int:
    """Send a request's head and body chunks over a plain socket (the server may answer and
    close before the body is all sent); the answer's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head.encode())
        with contextlib.suppress(OSError):
            for chunk in [*chunks, b"0\r\n\r\n"] if chunks else []:
                if select.select([s], [], [], 0)[0]:
                    break  # answered already: stop sending
                s.sendall(chunk)
        answer = s.recv(4096)
    return int(answer.split(b" ", 2)[1])


def test_authoring_needs_the_token_or_a_session_with_its_csrf_token(orgs: dict[str, Org]) -> None:
    tso = orgs["tso"]
    size = tso.ledger.log.size
    for headers in (NO_TOKEN, {"Authorization": "Bearer not-the-token"}):
        status, answer = post(tso, "/api/commands", BODY, JSON, headers)
        assert status == 401 and "token" in answer["error"], answer
        # A fact signed elsewhere is let in by the same door only.
        status, answer = post(tso, FACTS_ROUTE, b"ML", "application/octet-stream", headers)
        assert status == 401 and "token" in answer["error"], answer
    # An operator's session: its cookie alone is what a page elsewhere can make a browser
    # send; without the session's CSRF token it authors nothing.
    ops = tso.server.ctx.operators
    ops.add("yamada", "correct horse battery")
    sid, session = ops.open_session("yamada", time.time())
    cookie = {"Cookie": f"{tso.server.ctx.cookie}={sid}", **NO_TOKEN}
    status, answer = post(tso, "/api/commands", BODY, JSON, cookie)
    assert status == 401 and "CSRF" in answer["error"], answer
    status, answer = post(tso, "/api/commands", BODY, JSON, {**cookie, "X-CSRF-Token": "x" * 43})
    assert status == 401, answer
    assert tso.ledger.log.size == size  # nothing authored by any of them
    status, answer = post(
        tso, "/api/commands", BODY, JSON, {**cookie, "X-CSRF-Token": session.csrf}
    )
    assert (status, answer["type"]) == (200, "dr_command"), answer
    assert tso.ledger.log.size == size + 1
    # A closed session is gone, a login link works once.
    ops.close_session(sid)
    assert ops.session(sid, time.time()) is None
    link = ops.login_link("yamada", time.time())
    assert ops.use_link(link, time.time()) == "yamada"
    try:
        ops.use_link(link, time.time())
        raise AssertionError("a login link worked twice")
    except Exception as exc:
        assert "used or expired" in str(exc)


def test_other_origins_other_hosts_and_big_bodies_are_refused_with_a_reason(
    orgs: dict[str, Org],
) -> None:
    tso = orgs["tso"]
    size = tso.ledger.log.size
    port = tso.server.port
    evil = {"Origin": "http://evil.example"}
    status, answer = post(tso, "/api/commands", BODY, JSON, evil)
    assert status == 403 and "evil.example" in answer["error"], answer
    status, answer = post(tso, "/api/commands", BODY, JSON, {"Sec-Fetch-Site": "cross-site"})
    assert status == 403, answer
    # DNS rebinding: a page of evil.example, its name now resolving to 127.0.0.1.
    for method in ("GET", "POST"):
        headers = {"Host": f"evil.example:{port}"}
        if method == "GET":
            status, _, answer = _get(tso, "/api/status", headers)
        else:
            status, answer = post(tso, "/api/commands", BODY, JSON, headers)
        assert status == 421 and "evil.example" in answer["error"], (method, answer)
    # Too large: refused on its declared length before the body is read, and when a body
    # without a length (chunked) grows past the limit while it streams in.
    token = tso.server.ctx.token
    head = (
        f"POST /api/commands HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\n"
    )
    assert _raw(port, head + f"Content-Length: {MAX_BODY_BYTES + 1}\r\n\r\n", []) == 413
    chunk = b"%x\r\n%s\r\n" % (64 * 1024, b" " * 64 * 1024)
    chunked = head + "Transfer-Encoding: chunked\r\n\r\n"
    assert _raw(port, chunked, [chunk] * (MAX_BODY_BYTES // (64 * 1024) + 2)) == 413
    assert tso.ledger.log.size == size
    refusals = tso.server.ctx.refusals
    assert {"cross_origin", "cross_site", "wrong_host", "too_large"} <= set(refusals), refusals
    # The same origin, as the node's own pages send it, passes.
    same = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    status, answer = post(tso, "/api/commands", BODY, JSON, same)
    assert status == 200, answer


def test_answers_carry_security_headers_and_the_openapi_document_names_every_route(
    orgs: dict[str, Org],
) -> None:
    status, headers, doc = _get(orgs["ra1"], "/api/openapi.json")
    assert status == 200
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
    assert set(doc["paths"]) == set(GETS) | {c.route for c in COMMANDS} | {FACTS_ROUTE}
    for c in COMMANDS:
        post_op = doc["paths"][c.route]["post"]
        assert c.content in post_op["requestBody"]["content"]
        assert {"token": []} in post_op["security"]
    facts = doc["paths"][FACTS_ROUTE]["post"]
    assert "application/octet-stream" in facts["requestBody"]["content"]
    assert {"token": []} in facts["security"]
    (txid,) = doc["paths"]["/api/proof"]["get"]["parameters"]
    assert (txid["name"], txid["in"], txid["required"]) == ("txid", "query", True)


def test_bound_beyond_loopback_every_read_needs_a_login(orgs: dict[str, Org]) -> None:
    ctx = orgs["ra1"].server.ctx
    # As `WebServer` sets it up for any address but loopback (bound here to loopback all
    # the same, so the test listens nowhere else).
    closed = WebServer(
        WebContext(ctx.api, ctx.token, ctx.operators, open_reads=False), "127.0.0.1", 0
    )
    closed.start()
    try:
        org = Org(orgs["ra1"].ledger, closed, orgs["ra1"].config)
        status, _, answer = _get(org, "/api/status")
        assert status == 401 and "login" in answer["error"], answer
        status, _, answer = _get(org, "/api/status", {"Authorization": f"Bearer {ctx.token}"})
        assert status == 200 and answer["node"] == "ra1"
    finally:
        closed.stop()

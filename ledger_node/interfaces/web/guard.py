"""The door of the node's HTTP server, before any route runs.

Loopback is no lock: every local process and every web page open in a local browser can
reach it. So a request is refused unless its Host header names this node (a page from
another site, rebound by DNS to 127.0.0.1, names its own host), a request that changes
anything is refused when the browser says it comes from another origin, and a body is
refused beyond `max_body` bytes before it is read. Every answer carries headers that keep
the pages out of frames and scripts from elsewhere. Each refusal is logged with its
reason and counted (`refusals`).
"""

from __future__ import annotations

import html
import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("mlg.node.web")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        b" object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),  # "no-referrer" makes forms send Origin: null
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)


class Refusal(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Guard:
    """ASGI middleware: the checks above, then the application."""

    def __init__(
        self,
        app: App,
        hosts: Callable[[], frozenset[str]],
        max_body: int,
        refusals: Counter[str],
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.max_body = max_body
        self.refusals = refusals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check(scope)
        except Refusal as exc:
            self.refusals[exc.reason] += 1
            log.warning("refused %s %s (%s): %s", scope["method"], scope["path"], exc.reason, exc)
            await _refuse(send, exc, scope["path"])
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        try:
            await self.app(scope, self._limited(receive), send_with_headers)
        except Refusal as exc:  # a body past the limit, where the app did not answer it
            if not started:
                await _refuse(send, exc, scope["path"])

    def _check(self, scope: Scope) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if host.lower() not in self.hosts():
            raise Refusal(421, "wrong_host", f"host {host!r} is not this node")
        if scope["method"] in SAFE_METHODS:
            return
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"{scope['scheme']}://{host.lower()}":
            raise Refusal(403, "cross_origin", f"a request from {origin} may not change anything")
        site = headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            raise Refusal(403, "cross_site", f"a {site} request may not change anything")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            raise Refusal(413, "too_large", f"the body is over {self.max_body} bytes")

    def _limited(self, receive: Receive) -> Receive:
        """`receive`, refusing a body (chunked, or lying about its length) past the limit."""
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    self.refusals["too_large"] += 1
                    log.warning("refused a body over %d bytes while it streamed", self.max_body)
                    raise Refusal(413, "too_large", f"the body is over {self.max_body} bytes")
            return message

        return limited


async def _refuse(send: Send, exc: Refusal, path: str) -> None:
    """The refusal as JSON for the API, as a short page for a screen."""
    if path.startswith("/api/"):
        body, kind = json.dumps({"error": str(exc)}).encode(), b"application/json"
    else:
        text = html.escape(str(exc))
        body = (
            f'<!doctype html><meta charset="utf-8"><title>{exc.status}</title>'
            f'<link rel="stylesheet" href="/static/style.css"><main><h1>{exc.status}</h1>'
            f'<p class="error" role="alert">{text}</p></main>'
        ).encode()
        kind = b"text/html; charset=utf-8"
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", kind),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})

"""The node's FastAPI application: the guard at the door, the JSON API, its OpenAPI
document at ``/api/openapi.json``, and errors as ``{"error": "…"}`` with their status.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ledger_node.interfaces.api import Api, ApiError
from ledger_node.interfaces.web.auth import (
    COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    AuthError,
    Operators,
    Session,
    same,
)
from ledger_node.interfaces.web.guard import Guard
from ledger_node.interfaces.web.routes import api_router
from ledger_node.shared.errors import MeterledgerError

MAX_BODY_BYTES = 1024 * 1024
"""Every request body at most (an AS report of a year of minute slots is about 600 kB)."""


@dataclass
class WebContext:
    """What the web application serves and whom it trusts."""

    api: Api
    token: str
    operators: Operators
    open_reads: bool = True
    """Reads without a login (on loopback only: bound elsewhere, every page needs one)."""
    hosts: frozenset[str] = field(default_factory=frozenset)
    """The Host header values that name this node ("127.0.0.1:8470", …)."""
    refusals: Counter[str] = field(default_factory=Counter)
    """Requests refused at the door, by reason."""

    def session(self, request: Request) -> Session | None:
        return self.operators.session(request.cookies.get(COOKIE), time.time())

    def has_token(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and same(value.strip(), self.token)

    async def authorize(self, request: Request, body: bytes) -> None:
        """Raise `AuthError` unless the request may author a fact: the node's API token,
        or an operator's session with its CSRF token (header or form field)."""
        if self.has_token(request):
            return
        session = self.session(request)
        if session is None:
            raise AuthError("authoring needs the node's API token or an operator's login")
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and "form-urlencoded" in request.headers.get("content-type", ""):
            sent = (parse_qs(body.decode("latin-1")).get(CSRF_FIELD) or [""])[0]
        if not sent or not same(sent, session.csrf):
            raise AuthError("the form's CSRF token is missing or wrong: reload the page")

    def may_read(self, request: Request) -> bool:
        return self.open_reads or self.has_token(request) or self.session(request) is not None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def make_app(ctx: WebContext) -> FastAPI:
    app = FastAPI(
        title=f"meterledger node {ctx.api.me}",
        description="Signed DR facts, totals and proofs of one organisation's ledger node.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx

    @app.middleware("http")
    async def reads_need_login(request: Request, call_next):  # type: ignore[no-untyped-def]
        if request.method in ("GET", "HEAD") and not ctx.may_read(request):
            return _error(HTTPStatus.UNAUTHORIZED, "this node needs a login to be read")
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> JSONResponse:
        return _error(HTTPStatus.UNAUTHORIZED, str(exc))

    @app.exception_handler(MeterledgerError)
    async def refused(request: Request, exc: MeterledgerError) -> JSONResponse:
        return _error(HTTPStatus.BAD_REQUEST, str(exc))

    @app.exception_handler(ValueError)
    @app.exception_handler(KeyError)
    async def bad_request(request: Request, exc: Exception) -> JSONResponse:
        return _error(HTTPStatus.BAD_REQUEST, f"bad request: {exc}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == HTTPStatus.NOT_FOUND:
            return _error(exc.status_code, f"no such resource {request.url.path}")
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            return _error(exc.status_code, f"{request.method} is not allowed on {request.url.path}")
        return _error(exc.status_code, str(exc.detail))

    app.include_router(api_router(ctx.api, ctx.authorize))
    app.openapi_schema = None
    _add_security_schemes(app)
    return app


def _add_security_schemes(app: FastAPI) -> None:
    """Name the two ways to author in the OpenAPI document."""
    make = app.openapi

    def openapi() -> dict:  # type: ignore[type-arg]
        if app.openapi_schema is None:
            schema = make()
            schema.setdefault("components", {})["securitySchemes"] = {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "the node's API token",
                },
                "session": {"type": "apiKey", "in": "cookie", "name": COOKIE},
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def guarded(app: FastAPI, ctx: WebContext) -> Guard:
    """The application behind its guard (the ASGI app to serve)."""
    return Guard(app, lambda: ctx.hosts, MAX_BODY_BYTES, ctx.refusals)

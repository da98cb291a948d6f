"""The node's FastAPI application: the guard at the door, the JSON API, its OpenAPI
document at ``/api/openapi.json``, and errors as ``{"error": "…"}`` with their status.
"""

from __future__ import annotations

from http import HTTPStatus
from urllib.parse import quote

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ledger_node.interfaces.api import ApiError
from ledger_node.interfaces.web import pages
from ledger_node.interfaces.web.auth import (
    AuthError,
    session_cookie,
)
from ledger_node.interfaces.web.context import WebContext
from ledger_node.interfaces.web.guard import Guard, Refusal
from ledger_node.interfaces.web.routes import api_router
from ledger_node.interfaces.web.screens import SCREENS
from ledger_node.interfaces.web.templating import HERE, language, render
from ledger_node.shared.errors import MeterledgerError

OPEN_PATHS = frozenset({"/login", "/login/link"})
"""Pages anyone may load, also where reads need a login."""
MAX_BODY_BYTES = 1024 * 1024
"""Every request body at most (an AS report of a year of minute slots is about 600 kB)."""


def _error(status: int, message: str, request: Request | None = None) -> Response:
    """An error as JSON for the API, as a page for a browser's request of a screen."""
    if request is not None and not request.url.path.startswith("/api/"):
        lang = language(request.cookies, request.query_params)
        html = render(lang, "error.html", {"status": status, "message": message})
        return HTMLResponse(html, status_code=status)
    return JSONResponse({"error": message}, status_code=status)


class LoginNeeded(Exception):
    """A read where reads need a login (the node is bound beyond loopback)."""


def _reader(request: Request) -> None:
    """Every route's first step: a read needs a login unless reads are open here."""
    ctx: WebContext = request.app.state.ctx
    path = request.url.path
    if request.method in ("GET", "HEAD") and path not in OPEN_PATHS and not ctx.may_read(request):
        raise LoginNeeded("this node needs a login to be read")


def make_app(ctx: WebContext) -> FastAPI:
    app = FastAPI(
        title=f"meterledger node {ctx.api.me}",
        description="Signed DR facts, totals and proofs of one organisation's ledger node.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(_reader)],
    )
    app.state.ctx = ctx

    @app.exception_handler(LoginNeeded)
    async def login_needed(request: Request, exc: LoginNeeded) -> Response:
        if request.url.path.startswith("/api/"):
            return _error(HTTPStatus.UNAUTHORIZED, str(exc))
        return RedirectResponse("/login?next=" + quote(request.url.path), HTTPStatus.SEE_OTHER)

    @app.exception_handler(Refusal)
    async def refused_at_the_door(request: Request, exc: Refusal) -> Response:
        return _error(exc.status, str(exc), request)  # counted by the guard

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return _error(exc.status, str(exc), request)

    @app.exception_handler(AuthError)
    async def auth_error(request: Request, exc: AuthError) -> Response:
        return _error(HTTPStatus.UNAUTHORIZED, str(exc), request)

    @app.exception_handler(MeterledgerError)
    async def refused(request: Request, exc: MeterledgerError) -> Response:
        return _error(HTTPStatus.BAD_REQUEST, str(exc), request)

    @app.exception_handler(ValueError)
    @app.exception_handler(KeyError)
    async def bad_request(request: Request, exc: Exception) -> Response:
        return _error(HTTPStatus.BAD_REQUEST, f"bad request: {exc}", request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == HTTPStatus.NOT_FOUND:
            return _error(exc.status_code, f"no such resource {request.url.path}", request)
        if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
            message = f"{request.method} is not allowed on {request.url.path}"
            return _error(exc.status_code, message, request)
        return _error(exc.status_code, str(exc.detail), request)

    app.include_router(api_router(ctx.api, ctx.authorize))

    app.state.screens = [screen for screen, _ in SCREENS]
    app.include_router(pages.router)
    for _, router in SCREENS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.openapi_schema = None
    _add_security_schemes(app, session_cookie(ctx.api.me))
    return app


def _add_security_schemes(app: FastAPI, cookie: str) -> None:
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
                "session": {"type": "apiKey", "in": "cookie", "name": cookie},
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def guarded(app: FastAPI, ctx: WebContext) -> Guard:
    """The application behind its guard (the ASGI app to serve)."""
    return Guard(app, lambda: ctx.hosts, MAX_BODY_BYTES, ctx.refusals)

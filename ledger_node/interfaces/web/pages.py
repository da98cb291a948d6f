"""What every screen shares: rendering a page for the reader (language, login, CSRF
token, this node's role), reading a form with its CSRF token, and the pages that are no
screen of their own: the home page, login (password or one-time link), logout, language.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from ledger_node.interfaces.web.auth import CSRF_FIELD, AuthError
from ledger_node.interfaces.web.context import WebContext
from ledger_node.interfaces.web.templating import LANG_COOKIE, LANGUAGES, language, render

FAILED_LOGIN_DELAY_S = 1.0


@dataclass(frozen=True)
class Screen:
    """A screen in the navigation: its path, its label (a gettext message id) and the
    roles of the nodes that show it (None: every node)."""

    path: str
    label: str
    roles: frozenset[str] | None = None


def context(request: Request) -> WebContext:
    ctx: WebContext = request.app.state.ctx
    return ctx


def page(
    request: Request,
    template: str,
    values: Mapping[str, Any] | None = None,
    status: int = HTTPStatus.OK,
) -> HTMLResponse:
    """`template` rendered for the reader, with what the layout needs."""
    ctx = context(request)
    session = ctx.session(request)
    lang = language(request.cookies, request.query_params)
    role = ctx.role()
    screens = request.app.state.screens
    html = render(
        lang,
        template,
        {
            "me": ctx.api.me,
            "role": role,
            "operator": session.operator if session else None,
            "csrf": session.csrf if session else "",
            "path": request.url.path,
            "here": _here(request),
            "nav": [s for s in screens if s.roles is None or role in s.roles],
            **(values or {}),
        },
    )
    response = HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict")
    return response


def _here(request: Request) -> str:
    """This page's path and query, to come back to after a login or a language switch."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _local(target: str | None) -> str:
    """A path on this node to go to next (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


async def authored_form(request: Request) -> tuple[FormData, str]:
    """The posted form and who sends it; `AuthError` unless an operator with the form's
    CSRF token (or the node's token) sends it."""
    form = await request.form()
    csrf = form.get(CSRF_FIELD)
    operator = context(request).authorize(request, csrf if isinstance(csrf, str) else "")
    return form, operator


router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def home(request: Request) -> Response:
    return page(request, "home.html")


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request) -> Response:
    return page(
        request, "login.html", {"next": _local(request.query_params.get("next")), "error": ""}
    )


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    ctx = context(request)
    form = await request.form()
    name, password = str(form.get("name", "")), str(form.get("password", ""))
    target = _local(str(form.get("next", "/")))
    try:
        ctx.operators.check_password(name, password)
    except AuthError as exc:
        await asyncio.sleep(FAILED_LOGIN_DELAY_S)  # guessing costs time
        ctx.refusals["bad_login"] += 1
        values = {"next": target, "error": str(exc), "name": name}
        return page(request, "login.html", values, HTTPStatus.UNAUTHORIZED)
    return _logged_in(ctx, name, target)


@router.get("/login/link", include_in_schema=False)
def login_link(request: Request) -> Response:
    ctx = context(request)
    try:
        name = ctx.operators.use_link(request.query_params.get("token", ""), time.time())
    except AuthError as exc:
        ctx.refusals["bad_login_link"] += 1
        values = {"next": "/", "error": str(exc)}
        return page(request, "login.html", values, HTTPStatus.UNAUTHORIZED)
    return _logged_in(ctx, name, "/")


def _logged_in(ctx: WebContext, name: str, target: str) -> Response:
    sid, session = ctx.operators.open_session(name, time.time())
    response = RedirectResponse(target, status_code=HTTPStatus.SEE_OTHER)
    response.set_cookie(
        ctx.cookie,
        sid,
        max_age=int(session.expires - time.time()),
        httponly=True,
        samesite="strict",
        path="/",
    )
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    await authored_form(request)
    ctx = context(request)
    ctx.operators.close_session(request.cookies.get(ctx.cookie))
    response = RedirectResponse("/", status_code=HTTPStatus.SEE_OTHER)
    response.delete_cookie(ctx.cookie, path="/")
    return response


@router.get("/lang/{lang}", include_in_schema=False)
def switch_language(request: Request, lang: str) -> Response:
    target = _local(request.query_params.get("next"))
    response = RedirectResponse(target, status_code=HTTPStatus.SEE_OTHER)
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="strict")
    return response


def login_url(request: Request) -> str:
    return "/login?next=" + quote(_here(request), safe="")

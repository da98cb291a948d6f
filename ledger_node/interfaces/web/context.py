"""What the web application serves and whom it trusts: `WebContext`."""

from __future__ import annotations

import threading
import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field

from fastapi import Request

from ledger_node.interfaces.api import Api
from ledger_node.interfaces.web.auth import (
    CSRF_HEADER,
    AuthError,
    Operators,
    Session,
    same,
    session_cookie,
)
from ledger_node.interfaces.web.i18n import N_
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db, connect


class RegistryCache:
    """The registry as of a database snapshot, built again only when a registry fact was
    applied since (each raises its author's `n`, genesis included); shared by the screens,
    read only."""

    def __init__(self) -> None:
        self._registry: tuple[tuple[tuple[str, int], ...], Registry] | None = None
        self._lock = threading.Lock()

    def get(self, db: Db) -> Registry:
        seen = tuple(db.execute("SELECT author, n FROM registry_n ORDER BY author"))
        with self._lock:
            if self._registry is None or self._registry[0] != seen:
                self._registry = (seen, Registry(db))
            return self._registry[1]


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
    registries: RegistryCache = field(default_factory=RegistryCache)
    screen_state: dict[str, object] = field(default_factory=dict)
    """What a screen keeps between views, by screen."""

    def role(self) -> str | None:
        """This node's organisation's role ("tso", "ac", "ra"; None until registered)."""
        with self.reading() as db:
            return self.registries.get(db).role(self.api.me)

    @property
    def cookie(self) -> str:
        """The name of this node's session cookie."""
        return session_cookie(self.api.me)

    def session(self, request: Request) -> Session | None:
        return self.operators.session(request.cookies.get(self.cookie), time.time())

    def has_token(self, request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and same(value.strip(), self.token)

    def authorize(self, request: Request, csrf: str | None = None) -> str:
        """Who authors: raise `AuthError` unless the request carries the node's API token,
        or an operator's session with its CSRF token (`csrf` from a form, else the
        ``X-CSRF-Token`` header). Returns the operator's name ("" for the token)."""
        if self.has_token(request):
            return ""
        session = self.session(request)
        if session is None:
            raise AuthError(N_("authoring needs the node's API token or an operator's login"))
        sent = csrf if csrf is not None else request.headers.get(CSRF_HEADER)
        if not sent or not same(sent, session.csrf):
            raise AuthError(N_("the form's CSRF token is missing or wrong: reload the page"))
        return session.operator

    def reading(self) -> closing[Db]:
        """A read-only connection to the node's database, closed after its `with`."""
        return closing(connect(self.api.db_path, readonly=True))

    def may_read(self, request: Request) -> bool:
        return self.open_reads or self.has_token(request) or self.session(request) is not None

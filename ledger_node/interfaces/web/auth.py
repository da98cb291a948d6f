"""Who may make the node sign: its API token, and operators' sessions with CSRF tokens.

Reading may stay open on loopback; authoring a fact never is. A request that authors
carries either the node's API token (``Authorization: Bearer …``; the token file is made
with mode 0600 at the node's first start and read by the CLI) or the session cookie of
an operator who logged in, with that session's CSRF token (a form field or the
``X-CSRF-Token`` header): a page on another site can make a browser send the cookie, but
cannot read the CSRF token. Passwords are stored as argon2 hashes; sessions and one-time
login links as SHA-256 hashes of their random ids, in the node's `<db>.web` file.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import argon2

from ledger_node.interfaces.web.i18n import N_
from ledger_node.shared.errors import MeterledgerError
from ledger_node.shared.ids import ID_PATTERN
from ledger_node.shared.keys import write_secret_file


def session_cookie(node: str) -> str:
    """The session cookie's name on `node`'s screens: browsers keep cookies per host, not
    per port, so nodes on one machine need names of their own."""
    return f"mlg_session_{node}"


CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LINK_TTL_S = 15 * 60
MIN_PASSWORD = 10

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operators (name TEXT PRIMARY KEY, hash TEXT NOT NULL,
    created REAL NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS sessions (id BLOB PRIMARY KEY, operator TEXT NOT NULL,
    csrf TEXT NOT NULL, expires REAL NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS links (id BLOB PRIMARY KEY, operator TEXT NOT NULL,
    expires REAL NOT NULL) STRICT;
"""


class AuthError(MeterledgerError):
    """Not allowed: no or a wrong token, session or CSRF token, a bad password."""


def ensure_token(path: Path) -> str:
    """The node's API token: read, or made (mode 0600) at the first start."""
    if not path.exists():
        write_secret_file(path, secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


@dataclass(frozen=True)
class Session:
    operator: str
    csrf: str
    expires: float


class Operators:
    """Operators, their sessions and one-time login links, in one SQLite file."""

    def __init__(self, path: Path, session_s: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch(mode=0o600)
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(_SCHEMA)
        self.session_s = session_s
        self._lock = threading.Lock()
        self._hasher = argon2.PasswordHasher()

    def close(self) -> None:
        self.db.close()

    def add(self, name: str, password: str) -> None:
        """Add an operator, or set a new password for one."""
        if not ID_PATTERN.fullmatch(name):
            raise AuthError(f"operator name {name!r} must match {ID_PATTERN.pattern}")
        if len(password) < MIN_PASSWORD:
            raise AuthError(f"the password must have at least {MIN_PASSWORD} characters")
        with self._lock:
            self.db.execute(
                "INSERT OR REPLACE INTO operators VALUES (?, ?, ?)",
                (name, self._hasher.hash(password), time.time()),
            )

    def names(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self.db.execute("SELECT name FROM operators ORDER BY name")]

    def check_password(self, name: str, password: str) -> None:
        """Raise `AuthError` unless `password` is `name`'s (the same message either way)."""
        with self._lock:
            row = self.db.execute("SELECT hash FROM operators WHERE name=?", (name,)).fetchone()
        try:
            if row is None:
                raise argon2.exceptions.VerifyMismatchError
            self._hasher.verify(row[0], password)
        except argon2.exceptions.VerificationError:
            raise AuthError(N_("unknown operator or wrong password")) from None

    def open_session(self, name: str, now: float) -> tuple[str, Session]:
        """A new session for operator `name`: its cookie value and its record."""
        sid, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        session = Session(name, csrf, now + self.session_s)
        with self._lock:
            self.db.execute("DELETE FROM sessions WHERE expires < ?", (now,))
            self.db.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?)",
                (_digest(sid), name, csrf, session.expires),
            )
        return sid, session

    def session(self, sid: str | None, now: float) -> Session | None:
        if not sid:
            return None
        with self._lock:
            row = self.db.execute(
                "SELECT s.operator, s.csrf, s.expires FROM sessions s JOIN operators o"
                " ON o.name = s.operator WHERE s.id=?",
                (_digest(sid),),
            ).fetchone()
        if row is None or row[2] < now:
            return None
        return Session(row[0], row[1], row[2])

    def close_session(self, sid: str | None) -> None:
        if sid:
            with self._lock:
                self.db.execute("DELETE FROM sessions WHERE id=?", (_digest(sid),))

    def login_link(self, name: str, now: float, ttl_s: float = LINK_TTL_S) -> str:
        """A one-time login token for operator `name`, valid for `ttl_s` seconds."""
        with self._lock:
            if self.db.execute("SELECT 1 FROM operators WHERE name=?", (name,)).fetchone() is None:
                raise AuthError(f"no operator {name!r}: add one with `mlg-node operator-add`")
            token = secrets.token_urlsafe(32)
            self.db.execute(
                "INSERT INTO links VALUES (?, ?, ?)", (_digest(token), name, now + ttl_s)
            )
        return token

    def use_link(self, token: str, now: float) -> str:
        """The operator a one-time login token is for; the token is spent."""
        with self._lock:
            row = self.db.execute(
                "DELETE FROM links WHERE id=? RETURNING operator, expires", (_digest(token),)
            ).fetchone()
        if row is None or row[1] < now:
            raise AuthError(N_("this login link is unknown, used or expired: ask for a new one"))
        return str(row[0])


def same(a: str, b: str) -> bool:
    """Constant-time equality of two secrets."""
    return hmac.compare_digest(a.encode(), b.encode())

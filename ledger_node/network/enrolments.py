"""Gateways' enrolment requests waiting for their RA's approval, and the codes used.

An RA's node keeps the newest request of each gateway it receives on the enrolment
topics (the envelope parsed and size-limited; its body and signature are checked when an
operator approves it, `interfaces.enrolment`), at most `MAX_PENDING` gateways, and the
digest of every code an approval used, so that no code enrols twice. Both live in the
node's database, in tables of their own (`ensure`), so an approval, its site
registration and the used code commit in one transaction.
"""

from __future__ import annotations

import logging
from typing import Any

from ledger_node.ledger.store import Db
from ledger_node.wire import WireError, parse
from ledger_node.wire.enrol import MAX_ENROL_BYTES

log = logging.getLogger("mlg.node.enrol")

MAX_PENDING = 1000
"""Gateways whose request is kept; beyond it new gateways' requests are refused."""

_TABLES = (
    "CREATE TABLE IF NOT EXISTS enrol_requests (gateway TEXT PRIMARY KEY, site TEXT NOT NULL,"
    " envelope BLOB NOT NULL, received_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS enrol_used (digest TEXT PRIMARY KEY, gateway TEXT NOT NULL,"
    " site TEXT NOT NULL, txid TEXT NOT NULL, t REAL NOT NULL)",
)


def ensure(db: Db) -> None:
    for sql in _TABLES:
        db.execute(sql)


def offer(db: Db, site: str, gateway: str, raw: bytes, now: float) -> str:
    """Keep a request received on ``enrol/{site}/{gateway}`` (the gateway's newest); the
    refusal's reason ("" if kept) for the caller's counter."""
    try:
        envelope = parse(raw, MAX_ENROL_BYTES)
    except WireError as exc:
        log.warning("enrolment request on %s/%s refused: %s", site, gateway, exc)
        return "enrol_malformed"
    if envelope.signer != gateway:
        log.warning(
            "enrolment request on %s/%s signed as %s: refused", site, gateway, envelope.signer
        )
        return "enrol_malformed"
    known = db.execute("SELECT 1 FROM enrol_requests WHERE gateway=?", (gateway,)).fetchone()
    if known is None and pending_count(db) >= MAX_PENDING:
        log.warning(
            "enrolment request of %s refused: %d requests wait already", gateway, MAX_PENDING
        )
        return "enrol_full"
    db.execute(
        "INSERT INTO enrol_requests VALUES (?, ?, ?, ?) ON CONFLICT (gateway) DO UPDATE"
        " SET site=excluded.site, envelope=excluded.envelope, received_at=excluded.received_at",
        (gateway, site, raw, now),
    )
    log.info("enrolment request of gateway %s for site %s kept for approval", gateway, site)
    return ""


def pending_count(db: Db) -> int:
    return int(db.execute("SELECT COUNT(*) FROM enrol_requests").fetchone()[0])


def pending(db: Db) -> list[dict[str, Any]]:
    """The requests waiting: gateway, site, when received."""
    rows = db.execute(
        "SELECT gateway, site, received_at FROM enrol_requests ORDER BY received_at"
    ).fetchall()
    return [{"gateway": g, "site": s, "received_at": t} for g, s, t in rows]


def request_of(db: Db, gateway: str) -> bytes | None:
    row = db.execute("SELECT envelope FROM enrol_requests WHERE gateway=?", (gateway,)).fetchone()
    return None if row is None else bytes(row[0])


def used_by(db: Db, digest: str) -> str | None:
    """The gateway a code (its digest) enrolled, or None if unused."""
    row = db.execute("SELECT gateway FROM enrol_used WHERE digest=?", (digest,)).fetchone()
    return None if row is None else str(row[0])


def record(db: Db, digest: str, gateway: str, site: str, txid: str, now: float) -> None:
    """The code is used: the request is done with."""
    db.execute("INSERT INTO enrol_used VALUES (?, ?, ?, ?, ?)", (digest, gateway, site, txid, now))
    db.execute("DELETE FROM enrol_requests WHERE gateway=?", (gateway,))

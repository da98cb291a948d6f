"""Facts held for a predecessor this node has not seen yet (a registry fact out of order,
a declaration before its command, an epoch key before its group, a fact by a signer not
yet registered), kept in the `pending` table and tried again after every fact that could
unblock them.

Two pools, so that junk cannot crowd out what counts: facts whose signature this node
checked (`known` signers) and facts by signers it does not know yet, whose claimed author
anyone can forge. Each pool is bounded, and so is each claimed author within it; a held
fact expires after `LedgerSettings.pending_ttl_s`. Beyond a bound a fact is refused
(`pending_full`); an expired one is dropped (counted `expired`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ledger_node.ledger.store import Db


@dataclass(frozen=True, slots=True)
class Limits:
    known: int
    """Held facts by known signers, at most."""
    unknown: int
    """Held facts by signers not (yet) in the registry, at most."""
    per_signer: int
    """Held facts per claimed author, at most, in either pool."""
    ttl_s: float
    """A held fact is dropped this long after it arrived (clock seconds)."""


class Pending:
    """The held facts of one database; the pools' sizes are kept in memory."""

    def __init__(self, db: Db, limits: Limits) -> None:
        self.db = db
        self.limits = limits
        self.reload()

    def reload(self) -> None:
        self.sizes = {True: 0, False: 0}
        for known, n in self.db.execute("SELECT known, COUNT(*) FROM pending GROUP BY known"):
            self.sizes[bool(known)] = int(n)

    @property
    def size(self) -> int:
        return self.sizes[True] + self.sizes[False]

    def __contains__(self, txid: bytes) -> bool:
        if not self.size:
            return False
        row = self.db.execute("SELECT 1 FROM pending WHERE txid=?", (txid,)).fetchone()
        return row is not None

    def no_room(self, signer: str, known: bool) -> str | None:
        """Why a new fact by `signer` cannot be held, or None if it can."""
        pool = self.limits.known if known else self.limits.unknown
        if self.sizes[known] >= pool:
            kind = "known" if known else "unknown"
            return f"{pool} facts by {kind} signers are held already"
        held = self.db.execute(
            "SELECT COUNT(*) FROM pending WHERE signer=? AND known=?", (signer, int(known))
        ).fetchone()[0]
        if held >= self.limits.per_signer:
            return f"{held} facts claimed by {signer} are held already"
        return None

    def hold(
        self,
        txid: bytes,
        raw: bytes,
        reason: str,
        at: float,
        source: str,
        signer: str,
        known: bool,
        again: bool,
    ) -> None:
        """Keep a fact aside; `again` for one already held (its reason, even its pool, may
        have changed: a signer registered meanwhile)."""
        if again:
            row = self.db.execute("SELECT known FROM pending WHERE txid=?", (txid,)).fetchone()
            if row is not None:
                self.sizes[bool(row[0])] -= 1
        self.sizes[known] += 1
        self.db.execute(
            "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?, ?, ?)",
            (txid, raw, reason, at, source, signer, int(known)),
        )

    def expire(self, now: float) -> list[tuple[str, str]]:
        """Drop the facts held longer than the limit; their (signer, reason)."""
        if not self.size:
            return []
        cutoff = now - self.limits.ttl_s
        gone = self.db.execute(
            "DELETE FROM pending WHERE received_at < ? RETURNING signer, reason, known", (cutoff,)
        ).fetchall()
        for _, _, known in gone:
            self.sizes[bool(known)] -= 1
        return [(signer, reason) for signer, reason, _ in gone]

    def retry(self, admit: Callable[[bytes, str, float], bool]) -> None:
        """Offer every held fact to `admit(raw, source, received_at)`, oldest first, until a
        round unblocks nothing; drop those it no longer holds (it returns False)."""
        progress = True
        while progress and self.size:
            progress = False
            rows = self.db.execute(
                "SELECT txid, envelope, received_at, source, known FROM pending"
                " ORDER BY received_at"
            ).fetchall()
            for txid, raw, received_at, source, known in rows:
                if not admit(raw, source, received_at):
                    self.db.execute("DELETE FROM pending WHERE txid=?", (txid,))
                    self.sizes[bool(known)] -= 1
                    progress = True

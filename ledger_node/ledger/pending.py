"""Facts held for a predecessor this node has not seen yet (a registry fact out of order,
a declaration before its command, an epoch key before its group, a fact by a signer not
yet registered), kept in the `pending` table and tried again after every fact that could
unblock them. At most `LedgerSettings.max_pending`; more are refused (`pending_full`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable


class Pending:
    """The held facts of one database; `size` is kept in memory."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.reload()

    def reload(self) -> None:
        self.size = int(self.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def __contains__(self, txid: bytes) -> bool:
        if not self.size:
            return False
        row = self.db.execute("SELECT 1 FROM pending WHERE txid=?", (txid,)).fetchone()
        return row is not None

    def hold(
        self, txid: bytes, raw: bytes, reason: str, at: float, source: str, again: bool
    ) -> None:
        """Keep a fact aside; `again` for one already held (its reason may have changed)."""
        self.db.execute(
            "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?)", (txid, raw, reason, at, source)
        )
        self.size += not again

    def retry(self, admit: Callable[[bytes, str, float], bool]) -> None:
        """Offer every held fact to `admit(raw, source, received_at)`, oldest first, until a
        round unblocks nothing; drop those it no longer holds (it returns False)."""
        progress = True
        while progress and self.size:
            progress = False
            rows = self.db.execute(
                "SELECT txid, envelope, received_at, source FROM pending ORDER BY received_at"
            ).fetchall()
            for txid, raw, received_at, source in rows:
                if not admit(raw, source, received_at):
                    self.db.execute("DELETE FROM pending WHERE txid=?", (txid,))
                    self.size -= 1
                    progress = True

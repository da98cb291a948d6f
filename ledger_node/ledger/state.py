"""The log and the state derived from it, on one writer connection: what every rule works on.

`LedgerState` holds the Merkle log, the registry, the privacy groups' epochs, the record of
what the current transaction changed, and the few steps the rules of different fact types
share: appending an arrival to the log, the key index of keyed facts (registry `n`, epoch,
command, revision), keeping an equivocation as evidence, and the counters and slot records
gathered in memory until the transaction commits.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from ledger_node.ledger.arrival import Arrival, Changes
from ledger_node.ledger.groups import Groups
from ledger_node.ledger.refusals import EQUIVOCATION, Refused
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db, count
from ledger_node.ledger.txlog import MerkleLog
from ledger_node.shared.clock import Clock
from ledger_node.shared.keys import Identity

log = logging.getLogger("mlg.node.ingest")


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    max_message_bytes: int = 64 * 1024
    late_after_s: int = 6 * 3600
    """Readings for a slot are accepted until this long after it ends (clock seconds);
    then the slot is closed and its digest final. Long enough for a gateway's outbox to
    bridge a broker outage; later batches are refused (`late`)."""
    future_slack_s: int = 300
    """Readings for a slot ending more than this after now are refused."""
    max_pending: int = 1000
    """Facts by known signers held for a predecessor, at most; more are refused
    (`pending_full`)."""
    max_pending_unknown: int = 200
    """Facts by signers not in the registry (yet) held, at most: anyone can send them."""
    max_pending_per_signer: int = 50
    """Held facts per claimed author, at most."""
    pending_ttl_s: int = 24 * 3600
    """A held fact is dropped this long after it arrived (clock seconds)."""


class LedgerState:
    """The log, the registry, the groups and the derived tables of one node database."""

    def __init__(self, db: Db, me: Identity, clock: Clock, settings: LedgerSettings) -> None:
        self.db = db
        self.me = me
        self.clock = clock
        self.settings = settings
        self.log = MerkleLog(db)
        self.registry = Registry(db)
        self.groups = Groups(db, me)
        self.changes = Changes()
        """What the current write transaction changed (see `Ledger.transaction`)."""
        self.openable: set[tuple[str, int]] = set()
        """(site, epoch) pairs that may hold batches this node can decrypt."""
        self._counts: Counter[str] = Counter()
        self._slots: dict[int, tuple[int, int]] = {}
        self._highest_seq: dict[str, int] = {}

    def reload(self) -> None:
        """Re-read everything kept in memory (after a rollback)."""
        self._counts.clear()
        self._slots.clear()
        self._highest_seq.clear()
        self.log.reload()
        self.registry.reload()
        self.groups.reload()
        self.openable = set(self.groups.boxes)

    def count(self, name: str) -> None:
        self._counts[name] += 1

    def flush(self) -> None:
        """Write the counters and slot records gathered since the last flush."""
        for name, n in sorted(self._counts.items()):  # one order for every writer: no deadlock
            count(self.db, name, n)
        self._counts.clear()
        if self._slots:
            self.db.executemany(
                "INSERT INTO slots (slot, count, closes_at) VALUES (?, ?, ?) ON CONFLICT (slot)"
                " DO UPDATE SET count = slots.count + excluded.count, closes_at = CASE WHEN"
                " excluded.closes_at > slots.closes_at THEN excluded.closes_at ELSE"
                " slots.closes_at END, digest = NULL, announced = 0",
                [(slot, n, closes) for slot, (n, closes) in self._slots.items()],
            )
            self._slots.clear()

    def touch_slot(self, slot: int, end: int) -> None:
        """Count one more batch for `slot` (ending at `end`): its digest is computed anew."""
        n, closes = self._slots.get(slot, (0, 0))
        self._slots[slot] = (n + 1, max(closes, end + self.settings.late_after_s))

    def highest_seq(self, gateway: str) -> int:
        """The highest seq of `gateway`'s batches held (-1: none), read once then kept."""
        seq = self._highest_seq.get(gateway)
        if seq is None:
            row = self.db.execute("SELECT MAX(seq) FROM batches WHERE gateway=?", (gateway,))
            found = row.fetchone()[0]
            seq = self._highest_seq[gateway] = -1 if found is None else int(found)
        return seq

    def batch_held(self, gateway: str, seq: int) -> None:
        """Note that a batch of `gateway` with `seq` was written to the batches table."""
        if seq > self.highest_seq(gateway):
            self._highest_seq[gateway] = seq

    # -- what the rules share ---------------------------------------------------------------

    def append(self, a: Arrival) -> int:
        """Append the arrival to the log; its position."""
        return self.log.append(
            a.txid, a.message.TYPE, a.message.author, a.envelope.raw, a.at, a.source
        )

    def keyed(self, author: str, key: str) -> int | None:
        """The log position of `author`'s fact under `key` ("n:3", "command:c1"…), if any."""
        row = self.db.execute(
            "SELECT pos FROM keyed WHERE author=? AND key=?", (author, key)
        ).fetchone()
        return None if row is None else int(row[0])

    def key(self, author: str, key: str, pos: int) -> None:
        self.db.execute("INSERT INTO keyed VALUES (?, ?, ?)", (author, key, pos))

    def equivocation(self, a: Arrival, key: str, first: int, slot: int | None = None) -> None:
        """Keep a second fact under a used key as evidence (one per key), in the log so
        that every replica learns of it; refuse any further variant."""
        author = a.message.author
        seen = self.db.execute(
            "SELECT COUNT(*) FROM equivocations WHERE author=? AND key=?", (author, key)
        ).fetchone()[0]
        if seen:
            raise Refused(EQUIVOCATION, f"{author} {key}: more variants (one is kept)")
        pos = self.append(a)
        self.db.execute(
            "INSERT INTO equivocations VALUES (?, ?, ?, ?, ?)", (pos, author, key, first, slot)
        )
        self.count(f"refused:{EQUIVOCATION}")
        log.error(
            "EQUIVOCATION: %s signed two different facts for %s (entries %d and %d); "
            "both kept as evidence, neither counts",
            author,
            key,
            first,
            pos,
        )

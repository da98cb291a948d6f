"""High-water marks: which of each gateway's batches this node has committed.

Per gateway, `next` (every seq below it is committed) and the committed seqs above it.
The node publishes a signed `HighWaterMark` per gateway after the commit that changed it,
at most once per `every_s`; gateways take it as confirmation and stop resending. Every
`heartbeat_s` it publishes the mark of each gateway it knows (it holds its batches, or a
site registration names it) again, changed or not: its signed time keeps the gateway's
clock to the nodes' (`gateway.timekeeping`), a new gateway's before its first batch too.
"""

from __future__ import annotations

import time
from bisect import insort

from ledger_node.ledger.store import Db
from ledger_node.wire import HighWaterMark
from ledger_node.wire.hwm import MAX_ABOVE

HEARTBEAT_S = 30.0
"""Clock seconds between a gateway's unchanged marks: a gateway waits `clock_wait_s` (60 s
by default) for a signed time at start."""


class SeqMarks:
    def __init__(
        self,
        db: Db,
        node: str,
        every_s: float = 1.0,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.db = db
        self.node = node
        self.every_s = every_s
        self.heartbeat_s = heartbeat_s
        self._next: dict[str, int] = {}
        self._above: dict[str, list[int]] = {}
        self._dirty: set[str] = set()
        self._sent: dict[str, float] = {}
        self._known = {row[0] for row in db.execute("SELECT DISTINCT gateway FROM batches")}

    def _load(self, gateway: str) -> None:
        seqs = [
            r[0]
            for r in self.db.execute(
                "SELECT seq FROM batches WHERE gateway=? ORDER BY seq", (gateway,)
            )
        ]
        self._next[gateway] = 0
        self._above[gateway] = []
        for seq in seqs:
            self._add(gateway, seq)

    def add(self, gateway: str, seq: int) -> None:
        """Seq `seq` of `gateway` was committed."""
        self._known.add(gateway)
        if gateway not in self._next:
            self._load(gateway)
        else:
            self._add(gateway, seq)
        self._dirty.add(gateway)

    def _add(self, gateway: str, seq: int) -> None:
        above = self._above[gateway]
        nxt = self._next[gateway]
        if seq < nxt or seq in above:
            return
        if seq == nxt:
            nxt += 1
            while above and above[0] == nxt:
                above.pop(0)
                nxt += 1
            self._next[gateway] = nxt
        else:
            insort(above, seq)

    def due(self) -> list[str]:
        """Gateways whose mark changed and was not sent in the last `every_s` (real
        seconds), or was not sent in the last `heartbeat_s`."""
        now = time.monotonic()
        ready = [g for g in self._dirty if now - self._sent.get(g, 0.0) >= self.every_s]
        registered = {row[0] for row in self.db.execute("SELECT gateway FROM sites")}
        ready += [
            g
            for g in (self._known | registered) - self._dirty
            if now - self._sent.get(g, 0.0) >= self.heartbeat_s
        ]
        for g in ready:
            self._dirty.discard(g)
            self._sent[g] = now
        return sorted(ready)

    def mark(self, gateway: str, t: float) -> HighWaterMark:
        """The gateway's mark; `above` lists the newest committed seqs above `next`."""
        if gateway not in self._next:
            self._load(gateway)
        above = self._above[gateway][-MAX_ABOVE:]
        return HighWaterMark(self.node, gateway, self._next[gateway], tuple(above), int(t))

"""Anti-entropy: fetch from any peer the facts this node missed, and verify them itself.

Every node keeps every fact (readings as ciphertext), so any peer can restore any other.
Per peer this node keeps a cursor into the peer's log. When the peer's checkpoint shows a
larger log (at most every `interval_s`, at once after a start or a disagreement), it asks
for the txids from the cursor on, then for the envelopes it lacks, and admits each one
exactly as if it had come from the broker (signature, author, rules); the peer is trusted
for nothing. The peer's answers stay below the asker's size limit.

Answering is bounded too: a request whose id was answered already (a replay of a captured
request) is refused (`sync_replay`), and a peer gets at most `ANSWERS_PER_S` answers a
second (`sync_rate`), so nobody can make a node do its work again and again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from ledger_node.ledger.admission import Ledger
from ledger_node.wire import SyncEntry, SyncRequest, SyncResponse
from ledger_node.wire.sync import MAX_SYNC_GET, MAX_SYNC_IDS

log = logging.getLogger("mlg.node.sync")

REQUEST_TIMEOUT_S = 15.0
ANSWERS_PER_S = 20.0
"""Answers to one peer per second at most (a token bucket of a second's worth)."""
REMEMBERED_IDS = 4096
"""Ids of answered requests remembered per peer (replays of older ones meet the rate)."""
_ID_BYTES_B64 = 47  # one base64 txid with its quotes and comma
_HEADROOM = 1024  # the rest of an answer's body and its envelope


@dataclass
class _Pull:
    """What this node is fetching from one peer."""

    request: SyncRequest | None = None
    sent_at: float = 0.0
    start: int = 0
    ids: list[bytes] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)


class AntiEntropy:
    def __init__(self, ledger: Ledger, max_bytes: int, interval_s: float = 10.0) -> None:
        self.ledger = ledger
        self.db = ledger.db
        self.me = ledger.me
        self.max_bytes = max_bytes
        self.interval_s = interval_s
        self._pulls: dict[str, _Pull] = {}
        self._last_pull: dict[str, float] = {}
        self.urgent: set[str] = set()
        self.fetched = 0
        self._answered: dict[str, dict[bytes, None]] = {}
        self._tokens: dict[str, tuple[float, float]] = {}

    def _sign(self, message: SyncRequest | SyncResponse) -> bytes:
        return message.seal(self.me)

    # -- asking ------------------------------------------------------------------------------

    def step(self) -> list[tuple[str, bytes]]:
        """Requests to send now: (peer, envelope)."""
        out = []
        now = time.monotonic()
        for peer, cursor, size in self.db.execute(
            "SELECT peer, cursor, size FROM peers"
        ).fetchall():
            if self.ledger.registry.role(peer) is None:
                continue
            pull = self._pulls.get(peer)
            if pull is not None and pull.request is not None:
                if now - pull.sent_at < REQUEST_TIMEOUT_S:
                    continue
                log.info("no answer from %s; asking again", peer)
                out.append((peer, self._send(peer, pull, pull.request, now)))
                continue
            start = cursor
            if cursor > size:  # the peer's log restarted: read it again from the start
                self.db.execute("UPDATE peers SET cursor=0 WHERE peer=?", (peer,))
                start = 0
            due = peer in self.urgent or now - self._last_pull.get(peer, 0.0) >= self.interval_s
            if start < size and due:
                self.urgent.discard(peer)
                self._last_pull[peer] = now
                out.append((peer, self._ask_ids(peer, start, size, now)))
        return out

    def consistency(self, peer: str, old: int, new: int) -> bytes:
        """A request for a consistency proof of the peer's log between two sizes."""
        request = SyncRequest(
            self.me.name, peer, os.urandom(16), "consistency", old, new, (), self.max_bytes
        )
        return self._sign(request)

    def _ask_ids(self, peer: str, cursor: int, size: int, now: float) -> bytes:
        pull = self._pulls.setdefault(peer, _Pull())
        wanted = min(MAX_SYNC_IDS, size - cursor)
        request = SyncRequest(
            self.me.name, peer, os.urandom(16), "ids", cursor, wanted, (), self.max_bytes
        )
        return self._send(peer, pull, request, now)

    def _send(self, peer: str, pull: _Pull, request: SyncRequest, now: float) -> bytes:
        pull.request = request
        pull.sent_at = now
        return self._sign(request)

    def on_response(self, message: SyncResponse) -> list[tuple[str, bytes]]:
        """Take a peer's (verified) answer: admit what it carries, ask for what is still
        missing. Returns the requests to send."""
        peer = message.by
        pull = self._pulls.get(peer)
        if pull is None or pull.request is None or pull.request.id != message.id:
            log.debug("stale sync answer from %s", peer)
            return []
        now = time.monotonic()
        if message.op == "ids":
            pull.start = message.start
            pull.ids = list(message.ids)
            pull.missing = [
                message.start + i
                for i, txid in enumerate(message.ids)
                if self.ledger.log.pos_of(txid) is None and txid not in self.ledger.pending
            ]
        elif message.op == "get":
            self._take(peer, message.entries, pull.request.positions, pull)
        if pull.missing:
            request = SyncRequest(
                self.me.name,
                peer,
                os.urandom(16),
                "get",
                0,
                0,
                tuple(pull.missing[:MAX_SYNC_GET]),
                self.max_bytes,
            )
            return [(peer, self._send(peer, pull, request, now))]
        cursor = pull.start + len(pull.ids)
        self.db.execute(
            "UPDATE peers SET cursor=?, last_sync=? WHERE peer=?", (cursor, time.time(), peer)
        )
        pull.request = None
        size = self.db.execute("SELECT size FROM peers WHERE peer=?", (peer,)).fetchone()[0]
        if cursor < size:
            return [(peer, self._ask_ids(peer, cursor, size, now))]
        return []

    def _take(
        self, peer: str, entries: tuple[SyncEntry, ...], asked: tuple[int, ...], pull: _Pull
    ) -> None:
        wanted = set(asked)
        got = set()
        for entry in entries:
            if entry.pos not in wanted or entry.pos in got:
                continue
            got.add(entry.pos)
            outcome = self.ledger.admit(entry.envelope, f"sync:{peer}", hold_unknown=True)
            if outcome.ok:
                self.fetched += 1
                self.db.execute("UPDATE peers SET fetched = fetched + 1 WHERE peer=?", (peer,))
        # The peer answers in the order asked, skips entries it cannot send (shredded) and
        # stops at its size limit: everything up to the last entry it sent is done; if it
        # sent none, the first asked is unsendable (shredded, or alone over the limit).
        last = max(got) if got else asked[0]
        if not got:
            log.info("%s cannot send its entry %d; skipping it", peer, last)
        pull.missing = [p for p in pull.missing if p > last or (p not in wanted)]

    # -- answering ---------------------------------------------------------------------------

    def _may_answer(self, message: SyncRequest) -> bool:
        """A new request id from `by`, within its rate; refusals counted and logged."""
        peer = message.by
        answered = self._answered.setdefault(peer, {})
        if message.id in answered:
            self.ledger.count("refused:sync_replay")
            log.warning("refused a replayed sync request from %s", peer)
            return False
        now = time.monotonic()
        tokens, then = self._tokens.get(peer, (ANSWERS_PER_S, now))
        tokens = min(ANSWERS_PER_S, tokens + (now - then) * ANSWERS_PER_S)
        if tokens < 1:
            self._tokens[peer] = (tokens, now)
            self.ledger.count("refused:sync_rate")
            log.warning("refused a sync request from %s: over %g a second", peer, ANSWERS_PER_S)
            return False
        self._tokens[peer] = (tokens - 1, now)
        answered[message.id] = None
        if len(answered) > REMEMBERED_IDS:
            del answered[next(iter(answered))]
        return True

    def on_request(self, message: SyncRequest) -> bytes | None:
        """The signed answer to a peer's (verified) request, or None if not for us."""
        if message.to != self.me.name or self.ledger.registry.role(message.by) is None:
            return None
        if not self._may_answer(message):
            return None
        txlog = self.ledger.log
        budget = min(message.max_bytes, self.max_bytes) - _HEADROOM
        ids: list[bytes] = []
        entries: list[SyncEntry] = []
        proof: list[bytes] = []
        root = txlog.root()
        if message.op == "ids":
            n = max(1, min(message.count, budget // _ID_BYTES_B64))
            ids = [
                bytes(row[0])
                for row in self.db.execute(
                    "SELECT txid FROM log WHERE pos >= ? ORDER BY pos LIMIT ?", (message.start, n)
                )
            ]
        elif message.op == "get":
            used = 0
            for pos in message.positions:
                entry = txlog.entry(pos)
                if entry is None or entry.envelope is None:
                    continue
                cost = (len(entry.envelope) + 2) // 3 * 4 + 32
                if used + cost > budget:
                    break
                used += cost
                entries.append(SyncEntry(pos, entry.envelope))
        elif message.count <= txlog.size:
            proof = txlog.consistency(message.start, message.count)
            root = txlog.root(message.count)
        answer = SyncResponse(
            by=self.me.name,
            to=message.by,
            id=message.id,
            op=message.op,
            size=txlog.size,
            root=root,
            start=message.start,
            ids=tuple(ids),
            entries=tuple(entries),
            proof=tuple(proof),
        )
        return self._sign(answer)

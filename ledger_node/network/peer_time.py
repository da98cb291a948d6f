"""This node's clock against its peers': the signed times of their fresh checkpoints.

A node judges `late` and `future` batches and gate closures by its own clock; one that is
off refuses good batches or takes late ones. Each fresh (not retained) checkpoint of a
peer says the peer's time when it was signed (whole seconds); a delay on the way (a busy
broker or node) only makes the peer look behind, so each peer counts by the least delayed
of its checkpoints of the last `WINDOW_S`. Of the peers heard from in the last
`SAMPLE_MAX_AGE_S`, the one whose time is nearest this node's gives the skew
(this node's time at receipt − the peer's), kept in the database's meta table
(`clock_skew_s`): one peer agreeing is enough to clear this node (a skewed peer raises the
alarm on its own node, not on every other). `mlg-node status` raises `clock_skew` beyond
`MAX_SKEW_S`. With one peer the node cannot tell which clock is wrong: the alarm says so.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from ledger_node.ledger.store import Db, set_meta

MAX_SKEW_S = 30.0
"""Seconds this node's clock may differ from its nearest peer's before the alarm
(checkpoints are whole seconds and travel through the broker; NTP keeps servers well
within this)."""
SAMPLE_MAX_AGE_S = 600.0
"""A peer's time counts for this many real seconds after its checkpoint arrived."""
WINDOW_S = 30.0
"""A peer's checkpoints of this many real seconds back count: the least delayed of them
(a window short enough that this node's clock stepped ahead shows within it)."""


class PeerTime:
    """The peers' latest signed times, and how far this node's clock is from the nearest."""

    def __init__(self, db: Db, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.monotonic = monotonic
        self._samples: dict[str, deque[tuple[float, float]]] = {}  # peer → (ours − theirs, mono)

    def observe(self, peer: str, peer_t: int, now: float) -> None:
        """A fresh checkpoint of `peer` signed at `peer_t` arrived at `now` (our clock)."""
        mono = self.monotonic()
        # Signed in whole seconds (truncated): the middle of that second is nearest.
        recent = self._samples.setdefault(peer, deque())
        recent.append((now - (peer_t + 0.5), mono))
        while len(recent) > 1 and mono - recent[0][1] > WINDOW_S:
            recent.popleft()
        fresh = [
            min(d for d, _ in r)
            for r in self._samples.values()
            if mono - r[-1][1] <= SAMPLE_MAX_AGE_S
        ]
        nearest = min(fresh, key=math.fabs)
        set_meta(self.db, "clock_skew_s", round(nearest, 1))
        set_meta(self.db, "clock_skew_peers", len(fresh))
        set_meta(self.db, "clock_skew_at", now)

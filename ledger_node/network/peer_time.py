"""This node's clock against its peers': the signed times of their fresh checkpoints.

A node judges `late` and `future` batches and gate closures by its own clock; one that is
off refuses good batches or takes late ones. Each fresh (not retained) checkpoint of a
peer says the peer's time when it was signed (whole seconds). Of the peers heard from in
the last `SAMPLE_MAX_AGE_S`, the one whose time is nearest this node's gives the skew
(this node's time at receipt − the peer's), kept in the database's meta table
(`clock_skew_s`): one peer agreeing is enough to clear this node (a skewed peer raises the
alarm on its own node, not on every other). `mlg-node status` raises `clock_skew` beyond
`MAX_SKEW_S`. With one peer the node cannot tell which clock is wrong: the alarm says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ledger_node.ledger.store import Db, set_meta

MAX_SKEW_S = 30.0
"""Seconds this node's clock may differ from its nearest peer's before the alarm
(checkpoints are whole seconds and travel through the broker; NTP keeps servers well
within this)."""
SAMPLE_MAX_AGE_S = 600.0
"""A peer's time counts for this many real seconds after its checkpoint arrived."""


class PeerTime:
    """The peers' latest signed times, and how far this node's clock is from the nearest."""

    def __init__(self, db: Db, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.monotonic = monotonic
        self._samples: dict[str, tuple[float, float]] = {}  # peer → (ours − theirs, mono)

    def observe(self, peer: str, peer_t: int, now: float) -> None:
        """A fresh checkpoint of `peer` signed at `peer_t` arrived at `now` (our clock)."""
        mono = self.monotonic()
        # Signed in whole seconds (truncated): the middle of that second is nearest.
        self._samples[peer] = (now - (peer_t + 0.5), mono)
        fresh = [d for d, m in self._samples.values() if mono - m <= SAMPLE_MAX_AGE_S]
        nearest = min(fresh, key=math.fabs)
        set_meta(self.db, "clock_skew_s", round(nearest, 1))
        set_meta(self.db, "clock_skew_peers", len(fresh))
        set_meta(self.db, "clock_skew_at", now)

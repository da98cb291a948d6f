"""Confirmation by the ledger: the nodes' signed high-water marks, counted to a quorum.

A node publishes, retained on ``{prefix}/hwm/{node}/{gateway}``, which of this gateway's
seqs it has committed (`HighWaterMark`). A batch is confirmed once `quorum` of the nodes
named in the config cover its seq. A mark must be signed by the node its topic names and
be for this gateway; an older mark than one already held is ignored (a replay, or a
retained copy arriving late). With no nodes configured, the broker's PUBACK confirms.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from gateway.trust import Refused, Trust
from ledger_node.wire import HighWaterMark
from ledger_node.wire.topics import Topics

log = logging.getLogger("mlg.gateway.confirm")


class Confirmations:
    def __init__(
        self, topics: Topics, trust: Trust, nodes: Iterable[str], gateway: str, quorum: int
    ) -> None:
        self.topics = topics
        self.trust = trust
        self.nodes = tuple(nodes)
        self.gateway = gateway
        self.quorum = quorum
        self.marks: dict[str, HighWaterMark] = {}
        self._lock = threading.Lock()

    @property
    def by_puback(self) -> bool:
        """True when no nodes are configured: a successful PUBACK confirms."""
        return not self.nodes

    def offer(self, topic: str, raw: bytes) -> HighWaterMark | None:
        """Take a mark received on `topic`; None if it is refused or not newer."""
        parsed = self.topics.parse(topic)
        node = parsed.part("node") if parsed is not None and parsed.kind == "hwm" else ""
        message = self.trust.open(raw, HighWaterMark.TYPE, authors=self.nodes)
        assert isinstance(message, HighWaterMark)
        if message.by != node:
            raise Refused("wrong_topic", f"mark by {message.by!r} on the topic of {node!r}")
        if message.gateway != self.gateway:
            raise Refused("not_for_us", f"mark is for gateway {message.gateway!r}")
        with self._lock:
            held = self.marks.get(node)
            if held is not None and (held.t, held.next) > (message.t, message.next):
                log.debug("older mark from %s ignored", node)
                return None
            self.marks[node] = message
        return message

    def covered(self, seqs: Iterable[int]) -> list[int]:
        """Those of `seqs` that `quorum` nodes' marks cover."""
        with self._lock:
            marks = list(self.marks.values())
        return [s for s in seqs if sum(m.covers(s) for m in marks) >= self.quorum]

    def highest_seen(self) -> int:
        """One more than the highest seq any trusted node reports (0 if none)."""
        with self._lock:
            marks = list(self.marks.values())
        return max((max(m.next, m.above[-1] + 1 if m.above else 0) for m in marks), default=0)

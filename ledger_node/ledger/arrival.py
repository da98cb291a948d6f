"""One fact on its way in, and what the facts of one transaction changed.

An `Arrival` is what every rule is given: the opened message, its envelope as received,
its txid, when it arrived and from where. A `Changes` record gathers, per write
transaction, what the running node must act on once the transaction has committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger_node.wire import Envelope, Message

LIVE_SOURCES = frozenset({"mqtt", "local", "frontend"})
"""Sources whose arrival time counts: lateness and gate closure are judged on them ("frontend":
a readings batch a verifying front-end received, with its time of arrival there). Facts
fetched from a peer ("peer") were judged by that peer when they arrived; the replay of
`verify` ("replay") re-checks everything but time."""


@dataclass(frozen=True, slots=True)
class Arrival:
    """A signed fact that passed the envelope, signature and schema checks."""

    message: Message
    envelope: Envelope
    txid: bytes
    at: float
    """Arrival time, clock seconds (UTC)."""
    source: str
    """"mqtt", "frontend", "local" (authored here), "peer" (anti-entropy) or "replay"."""

    @property
    def live(self) -> bool:
        """True when the arrival time counts (see `LIVE_SOURCES`)."""
        return self.source in LIVE_SOURCES


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """A readings batch appended to the log."""

    gateway: str
    seq: int
    slot: int


@dataclass(slots=True)
class Changes:
    """What one write transaction changed, for the node to act on after its commit."""

    batches: list[BatchInfo] = field(default_factory=list)
    """Readings batches appended (the gateways' high-water marks move)."""
    registry: bool = False
    """A registry fact was applied (the TSO may have to start new epochs)."""
    commands: set[str] = field(default_factory=set)
    """DR commands whose command or declarations changed (to settle again)."""
    opened_slots: set[int] = field(default_factory=set)
    """Slot starts of batches decrypted (commands over them to settle again)."""
    authored: list[tuple[Message, bytes]] = field(default_factory=list)
    """Facts this node signed and admitted, with their envelopes (to publish)."""
    shredded: bool = False
    """An epoch was shredded (the database's write-ahead log is purged of its data)."""

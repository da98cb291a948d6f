"""Why the ledger does not take a fact (now, or at all).

`Refused` carries a stable `reason` label, counted and logged like the wire's rejection
reasons; `Held` means the fact depends on one this node has not seen yet (a registry fact
out of order, a declaration before its command): it is kept aside and tried again.
"""

from __future__ import annotations

from ledger_node.shared.errors import MeterledgerError

NOT_ALLOWED = "not_allowed"
"""The author's role (or the registry) does not allow this fact."""
LATE = "late"
"""Readings for a slot that closed, or a declaration after gate closure."""
FUTURE = "future"
"""Readings for a slot that has not ended yet by this node's clock."""
REPLAY = "replay"
"""The same bytes again: a no-op."""
EQUIVOCATION = "equivocation"
"""Different bytes under a key already used (gateway and seq, author and n, …)."""
STALE = "stale"
"""A revision older than the one held."""
BAD_PAYLOAD = "bad_payload"
"""Sealed readings that do not match their batch's public commitments."""
SHREDDED = "shredded"
"""An epoch key that was shredded before it arrived."""
PENDING_FULL = "pending_full"
"""Too many facts are waiting for a predecessor (in the signer's pool, or by the signer)."""
SEQ_GAP = "seq_gap"
"""A batch whose seq is too far above its gateway's highest (`wire.readings.MAX_SEQ_GAP`)."""
EXPIRED = "expired"
"""A held fact whose predecessor did not come in time."""
GATE_CLOSED = "gate_closed"
"""A declaration that arrived after its command's gate closure."""


class Refused(MeterledgerError):
    """The fact is not accepted; `reason` is one of the labels above or a wire reason;
    `subject` names the gateway whose batch it was, where refusals are counted per gateway
    (repeated `late`, `future` or `seq_gap` refusals are its alarm)."""

    def __init__(self, reason: str, detail: str, subject: str = "") -> None:
        super().__init__(detail)
        self.reason = reason
        self.subject = subject


class Replay(Exception):
    """The fact is already held (the same bytes, or its key with the same txid): a no-op."""


class Held(MeterledgerError):
    """The fact waits for another (`reason` says which kind) and is tried again later."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason

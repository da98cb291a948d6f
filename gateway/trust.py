"""Messages from parties the gateway trusts: verified against configured keys, or refused.

Every input is size-limited before it is parsed (`open_message` checks the limit first),
signed by a key from the config, of a type expected on its topic and addressed to this
gateway or its site. A refusal is logged (`mlg.gateway.trust`) and counted by reason;
nothing refused changes any state.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable

import nacl.signing

from ledger_node.shared.keys import PublicIdentity
from ledger_node.wire import MAX_ENVELOPE_BYTES, Message, WireError, open_message

log = logging.getLogger("mlg.gateway.trust")


class Refused(WireError):
    """A valid, signed message that is not acceptable here (wrong topic, site, gateway,
    author, or too late); `reason` labels it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Trust:
    """Verify keys by id, and counters of refused messages by reason."""

    def __init__(self, parties: Iterable[PublicIdentity], max_bytes: int = MAX_ENVELOPE_BYTES):
        self.keys: dict[str, nacl.signing.VerifyKey] = {p.name: p.verify_key for p in parties}
        self.max_bytes = max_bytes
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()

    def open(self, raw: bytes, kind: str, authors: Iterable[str] | None = None) -> Message:
        """The message in `raw` if it is a valid `kind` signed by one of `authors`
        (default: any trusted party); raises `WireError` saying why not."""
        allowed = None if authors is None else set(authors)
        signers = (
            self.keys if allowed is None else {k: v for k, v in self.keys.items() if k in allowed}
        )
        _, message = open_message(raw, signers, self.max_bytes, frozenset({kind}))
        return message

    def refuse(self, topic: str, exc: WireError) -> None:
        """Count and log a refused message."""
        with self._lock:
            self.refused[exc.reason] += 1
        log.warning("refused message on %s (%s): %s", topic, exc.reason, exc)

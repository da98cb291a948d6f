"""Messages on their way in: from paho's network thread through a verifying thread to the
node's worker.

paho's thread only queues what arrives (`Inbound`). The verifying thread takes what has
queued, checks each envelope's structure and signature against the registry as it is then
(PyNaCl's call releases the GIL inside libsodium, so the check runs while the worker
writes) and hands the worker a list of messages in arrival order, each with its
`Verified` record, or None when the check failed or the message is no envelope: the
worker's admission then checks it itself and refuses it with its reason, counter and log
line. Nothing is refused, counted or dropped here; the worker re-checks only that a
`Verified` record's key is still the signer's (`Ledger.admit`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import nacl.signing

from ledger_node.wire import Verified, WireError, parse, verify

log = logging.getLogger("mlg.node.verify")

Keys = Callable[[], Mapping[str, nacl.signing.VerifyKey]]
"""The registry's current verify keys (read at each check)."""


@dataclass(slots=True)
class Inbound:
    """One message from the broker."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    retained: bool = False
    """A copy the broker kept, delivered on subscribing: old news, not a fresh time."""
    checked: Verified | None = None
    """Its envelope and signature, checked by the verifying thread."""


class Verifier:
    """The verifying thread between paho's `put` and `out`, the worker's queue."""

    def __init__(
        self,
        keys: Keys,
        max_bytes: int,
        out: Callable[[list[Inbound]], None],
        limit: int,
        burst: int,
    ) -> None:
        """`limit`: messages waiting here at most (beyond it paho's thread waits: TCP
        back-pressure); `burst`: messages handed on in one list at most."""
        self._keys = keys
        self._max_bytes = max_bytes
        self._in: queue.Queue[Inbound] = queue.Queue(limit)
        self._out = out
        self._burst = burst
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mlg-verify", daemon=True)

    def put(self, item: Inbound) -> None:
        """Queue a message from paho's thread (blocks while `limit` wait)."""
        self._in.put(item)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def check(self, item: Inbound) -> None:
        """Set `item.checked` if its payload is an envelope signed with a registered key."""
        if not item.payload:
            return
        try:
            item.checked = verify(parse(item.payload, self._max_bytes), self._keys())
        except WireError:
            item.checked = None  # the worker's admission says why

    def _run(self) -> None:
        take, burst = self._in.get, self._burst
        while not self._stop.is_set():
            try:
                items = [take(timeout=0.1)]
            except queue.Empty:
                continue
            try:
                while len(items) < burst:
                    items.append(self._in.get_nowait())
            except queue.Empty:
                pass
            for item in items:
                try:
                    self.check(item)
                except Exception:  # a bug here must not stop ingest: the worker checks
                    log.exception("checking a message on %s failed", item.topic)
            self._out(items)

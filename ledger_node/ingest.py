"""Ingest: size limit → envelope → signature → schema → registry → dedupe → store → decrypt.

Every rejection has a reason (the `reason` of a `WireError`, or one of this module's) that
is logged under `mlg.node.ingest` and counted in the store. Bad input never raises out of
`ingest` and never changes what was accepted before.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import nacl.exceptions
import nacl.secret
import nacl.signing

from ledger_node import pedersen
from ledger_node.clock import Clock
from ledger_node.config import RegisteredGateway
from ledger_node.keys import GroupKey
from ledger_node.store import Store, StoredReading
from ledger_node.wire import ReadingsBatch, SlotPayload, WireError, open_message

log = logging.getLogger("mlg.node.ingest")

NOT_ALLOWED = "not_allowed"  # a gateway writing for a site it is not registered for
BAD_PAYLOAD = "bad_payload"  # a group member finds the sealed readings inconsistent
READINGS = frozenset({ReadingsBatch.TYPE})


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message: accepted, duplicate, equivocation or rejected (reason)."""

    status: str
    reason: str = ""
    txid: bytes = b""


class Ingestor:
    def __init__(
        self,
        store: Store,
        gateways: Iterable[RegisteredGateway],
        group_keys: Iterable[GroupKey],
        clock: Clock,
        max_bytes: int,
    ) -> None:
        self.store = store
        self.clock = clock
        self.max_bytes = max_bytes
        gws = list(gateways)
        self._verify_keys: Mapping[str, nacl.signing.VerifyKey] = {
            g.identity.name: g.identity.verify_key for g in gws
        }
        self._sites = {g.identity.name: g.site for g in gws}
        self._boxes = {(k.site, k.epoch): k.box() for k in group_keys}
        self.counts: Counter[str] = Counter()

    def ingest(self, raw: bytes) -> Outcome:
        """Check and store one message; never raises for bad input."""
        try:
            envelope, batch = open_message(raw, self._verify_keys, self.max_bytes, READINGS)
        except WireError as exc:
            return self._reject(exc.reason, str(exc))
        assert isinstance(batch, ReadingsBatch)
        if self._sites.get(batch.gateway) != batch.site:
            return self._reject(
                NOT_ALLOWED, f"{batch.gateway} is not registered for site {batch.site!r}"
            )
        txid = envelope.txid
        first = self.store.txid_at(batch.gateway, batch.seq)
        if first is not None:
            if first == txid:
                self.counts["duplicate"] += 1
                return Outcome("duplicate", txid=txid)
            if not self.store.has_txid(txid):
                self.store.add_equivocation(
                    batch.gateway, batch.seq, first, txid, raw, self.clock.now()
                )
            self.counts["equivocation"] += 1
            log.error(
                "EQUIVOCATION: %s signed two different batches with seq %d; kept as evidence",
                batch.gateway,
                batch.seq,
            )
            return Outcome("equivocation", "equivocation", txid)
        readings: list[StoredReading] = []
        box = self._boxes.get((batch.site, batch.epoch))
        if box is not None:
            try:
                readings = _open_readings(box, batch)
            except (ValueError, WireError, nacl.exceptions.CryptoError) as exc:
                return self._reject(BAD_PAYLOAD, f"{batch.gateway} seq {batch.seq}: {exc}")
        conflicts = self.store.append(
            txid,
            batch.gateway,
            batch.site,
            batch.seq,
            batch.slot_start,
            batch.slot_seconds,
            batch.epoch,
            raw,
            self.clock.now(),
            readings,
        )
        if conflicts:
            log.warning(
                "%s seq %d: slot %d already had readings for %s; kept the first",
                batch.gateway,
                batch.seq,
                batch.slot_start,
                ", ".join(conflicts),
            )
        self.counts["accepted"] += 1
        log.debug("accepted %s seq %d slot %d", batch.gateway, batch.seq, batch.slot_start)
        return Outcome("accepted", txid=txid)

    def _reject(self, reason: str, detail: str) -> Outcome:
        self.counts[f"rejected:{reason}"] += 1
        self.store.count_rejection(reason)
        log.warning("rejected (%s): %s", reason, detail)
        return Outcome("rejected", reason)


def _open_readings(box: nacl.secret.SecretBox, batch: ReadingsBatch) -> list[StoredReading]:
    """Decrypt a batch's readings and check them against its public commitments."""
    payload = SlotPayload.from_bytes(box.decrypt(batch.box))
    if payload.gateway != batch.gateway or payload.seq != batch.seq:
        raise ValueError("sealed readings belong to another batch")
    if [r.meter for r in payload.readings] != [c.meter for c in batch.commitments]:
        raise ValueError("sealed readings and public commitments name different meters")
    for reading, public in zip(payload.readings, batch.commitments, strict=True):
        if pedersen.commit(reading.wh, reading.blinding) != public.commitment:
            raise ValueError(f"meter {reading.meter}: reading does not open its commitment")
    return [StoredReading(r.meter, r.wh, r.quality) for r in payload.readings]

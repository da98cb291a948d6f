"""Decryption: open the stored batches of the epochs this node holds keys for.

Runs after the commit that acknowledged the batches (a busy member node does not slow its
acknowledgements). Each reading is checked against its batch's public Pedersen commitment
before it is stored; a batch that fails is marked ``bad`` and counted (per gateway too:
the node's `bad_payload:<gateway>` alarm), never used. Its high-water mark still counts it:
the mark says the signed batch is logged, and resending the same bytes could not mend it.
"""

from __future__ import annotations

import logging

import nacl.exceptions
import nacl.secret

from ledger_node.ledger.refusals import BAD_PAYLOAD
from ledger_node.ledger.state import LedgerState
from ledger_node.wire import (
    ReadingsBatch,
    SlotPayload,
    WireError,
    open_stored,
    pedersen,
)

log = logging.getLogger("mlg.node.ingest")


def open_sealed(state: LedgerState, limit: int = 256) -> int:
    """Decrypt up to `limit` stored batches of the epochs this node holds keys for; record
    their slots in `state.changes`. Returns how many batches were taken."""
    done = 0
    for site, epoch in sorted(state.openable):
        box = state.groups.boxes.get((site, epoch))
        rows = state.db.execute(
            "SELECT b.pos, l.envelope FROM batches b JOIN log l ON l.pos = b.pos"
            " WHERE b.site=? AND b.epoch=? AND b.state='sealed' AND l.envelope IS NOT NULL"
            " LIMIT ?",
            (site, epoch, limit - done),
        ).fetchall()
        if len(rows) < limit - done or box is None:
            state.openable.discard((site, epoch))
        if box is None:
            continue
        for pos, raw in rows:
            _open_one(state, box, pos, raw)
        done += len(rows)
        if done >= limit:
            break
    return done


def _open_one(state: LedgerState, box: nacl.secret.SecretBox, pos: int, raw: bytes) -> None:
    batch = open_stored(raw)
    assert isinstance(batch, ReadingsBatch)
    try:
        payload = open_payload(box, batch)
    except (ValueError, WireError, nacl.exceptions.CryptoError) as exc:
        state.db.execute("UPDATE batches SET state='bad' WHERE pos=?", (pos,))
        state.count(f"refused:{BAD_PAYLOAD}")
        state.count(f"refused_by:{batch.gateway}:{BAD_PAYLOAD}")
        log.warning("refused (%s): %s seq %d: %s", BAD_PAYLOAD, batch.gateway, batch.seq, exc)
        return
    state.db.executemany(
        "INSERT INTO readings VALUES (?, ?, ?, ?, ?)",
        [(pos, r.meter, r.wh, r.blinding, ",".join(r.quality)) for r in payload.readings],
    )
    state.db.executemany(
        "INSERT INTO control_actions VALUES (?, ?, ?, ?, ?, ?)",
        [(pos, n, a.command, a.state, a.t, int(a.ok)) for n, a in enumerate(payload.control)],
    )
    state.db.execute("UPDATE batches SET state='open' WHERE pos=?", (pos,))
    state.changes.opened_slots.add(batch.slot_start)


def open_payload(box: nacl.secret.SecretBox, batch: ReadingsBatch) -> SlotPayload:
    """Decrypt a batch's sealed payload and check its readings against the public
    commitments (ValueError naming the first that does not match)."""
    payload = SlotPayload.from_bytes(box.decrypt(batch.box))
    if payload.gateway != batch.gateway or payload.seq != batch.seq:
        raise ValueError("sealed readings belong to another batch")
    if [r.meter for r in payload.readings] != [c.meter for c in batch.commitments]:
        raise ValueError("sealed readings and public commitments name different meters")
    for reading, public in zip(payload.readings, batch.commitments, strict=True):
        if pedersen.commit(reading.wh, reading.blinding) != public.commitment:
            raise ValueError(f"meter {reading.meter}: reading does not open its commitment")
    return payload

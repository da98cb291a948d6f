"""Readings batches: from a registered gateway for its own site and meters, within the
slot's acceptance window; one per (gateway, seq), another with the same key is evidence.

The batch is stored as ciphertext (``sealed``, or ``shredded`` when its epoch's key is
gone); `decrypt` opens it later on the nodes of its group.
"""

from __future__ import annotations

from ledger_node.ledger.arrival import Arrival, BatchInfo
from ledger_node.ledger.refusals import FUTURE, LATE, NOT_ALLOWED, SEQ_GAP, Refused, Replay
from ledger_node.ledger.state import LedgerState
from ledger_node.wire import ReadingsBatch
from ledger_node.wire.readings import MAX_SEQ_GAP


def readings(state: LedgerState, a: Arrival) -> int | None:
    batch = a.message
    assert isinstance(batch, ReadingsBatch)
    registry, settings = state.registry, state.settings
    site_id = registry.gateway_sites.get(batch.gateway)
    if site_id is None:
        raise Refused(NOT_ALLOWED, f"{batch.gateway} is not a registered gateway")
    if site_id != batch.site:
        raise Refused(NOT_ALLOWED, f"{batch.gateway} is registered for {site_id}")
    site = registry.sites[site_id]
    unknown = [c.meter for c in batch.commitments if c.meter not in site.meters]
    if unknown:
        raise Refused(NOT_ALLOWED, f"meter {unknown[0]} is not registered for {site_id}")
    end = batch.slot_start + batch.slot_seconds
    gw = batch.gateway
    if a.live:
        if a.at > end + settings.late_after_s:
            closed = end + settings.late_after_s
            raise Refused(LATE, f"slot {batch.slot_start} closed at {closed}", gw)
        if end > a.at + settings.future_slack_s:
            raise Refused(FUTURE, f"slot {batch.slot_start} ends in the future ({end})", gw)
    highest = state.highest_seq(gw)
    if batch.seq > highest + MAX_SEQ_GAP:
        raise Refused(
            SEQ_GAP,
            f"seq {batch.seq} is over {MAX_SEQ_GAP} above {gw}'s highest"
            f" ({highest if highest >= 0 else None})",
            gw,
        )
    pos = state.log.size
    shredded = (batch.site, batch.epoch) in state.groups.shredded
    # A taken (gateway, seq) is no error: the transaction goes on (PostgreSQL would abort
    # it on a failed insert). Above the gateway's highest seq none can be taken, and the
    # insert's row count is not asked for (a pipelined store need not wait for it).
    fresh = batch.seq > highest
    cur = state.db.execute(
        "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (gateway, seq) DO NOTHING",
        (
            pos,
            batch.gateway,
            batch.seq,
            batch.site,
            batch.slot_start,
            batch.slot_seconds,
            batch.epoch,
            "shredded" if shredded else "sealed",
        ),
    )
    if not fresh and not cur.rowcount:
        if state.log.pos_of(a.txid) is not None:
            raise Replay
        first = state.db.execute(
            "SELECT pos FROM batches WHERE gateway=? AND seq=?", (batch.gateway, batch.seq)
        ).fetchone()[0]
        state.equivocation(a, f"seq:{batch.seq}", first, batch.slot_start)
        state.db.execute("UPDATE batches SET state='equivocated' WHERE pos=?", (first,))
        # Neither counts: what was decrypted of the first goes, as if it never had been
        # (so a replay, which meets the pair before any decryption, ends the same).
        state.db.execute("DELETE FROM readings WHERE pos=?", (first,))
        state.db.execute("DELETE FROM control_actions WHERE pos=?", (first,))
        state.touch_slot(batch.slot_start, end)
        return None
    state.batch_held(gw, batch.seq)
    state.append(a)
    state.touch_slot(batch.slot_start, end)
    state.changes.batches.append(BatchInfo(batch.gateway, batch.seq, batch.slot_start))
    if (batch.site, batch.epoch) in state.groups.boxes:
        state.openable.add((batch.site, batch.epoch))
    return pos

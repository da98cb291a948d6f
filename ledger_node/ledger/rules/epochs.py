"""Epoch keys (a privacy group's data key, wrapped for each member) and their shreds.

An epoch key counts once per (TSO, site, epoch) and only for a group its site has had; a
shred forgets the data key on every replica, turns the epoch's batches into unreadable
ciphertext and deletes what was decrypted from them, while every hash stays in the log.
"""

from __future__ import annotations

import logging

from ledger_node.ledger.arrival import Arrival
from ledger_node.ledger.state import LedgerState
from ledger_node.wire import EpochKey, EpochShred

log = logging.getLogger("mlg.node.groups")


def _key(site: str, epoch: int) -> str:
    return f"epoch:{site}:{epoch}"


def epoch_key(state: LedgerState, a: Arrival) -> int | None:
    key = a.message
    assert isinstance(key, EpochKey)
    state.registry.check_author(key.TYPE, key.by)
    first = state.keyed(key.by, _key(key.site, key.epoch))
    if first is not None:
        state.equivocation(a, _key(key.site, key.epoch), first)
        return None
    state.groups.check(key, state.registry)
    pos = state.append(a)
    state.key(key.by, _key(key.site, key.epoch), pos)
    if state.groups.apply(key, pos):
        state.openable.add((key.site, key.epoch))
        log.info("holds the data key of %s epoch %d", key.site, key.epoch)
    return pos


def epoch_shred(state: LedgerState, a: Arrival) -> int | None:
    shred = a.message
    assert isinstance(shred, EpochShred)
    state.registry.check_author(shred.TYPE, shred.by)
    pos = state.append(a)
    key_pos = state.groups.shred(shred.site, shred.epoch, pos)
    if key_pos is not None:
        state.log.shred(key_pos)
    affected = [
        row[0]
        for row in state.db.execute(
            "SELECT pos FROM batches WHERE site=? AND epoch=?", (shred.site, shred.epoch)
        )
    ]
    state.db.executemany("DELETE FROM readings WHERE pos=?", [(p,) for p in affected])
    state.db.executemany("DELETE FROM control_actions WHERE pos=?", [(p,) for p in affected])
    state.db.execute(
        "UPDATE batches SET state='shredded' WHERE site=? AND epoch=? AND state != 'equivocated'",
        (shred.site, shred.epoch),
    )
    state.openable.discard((shred.site, shred.epoch))
    state.changes.shredded = True
    log.warning(
        "epoch %d of %s shredded: %d batches stay as ciphertext, unreadable",
        shred.epoch,
        shred.site,
        len(affected),
    )
    return pos


def replay_shredded(
    state: LedgerState,
    txid: bytes,
    author: str,
    leaf: bytes,
    epoch: tuple[str, int, str, str],
) -> int:
    """Copy a shredded epoch key entry (its leaf hash and its epoch's public record,
    `epoch` = site, epoch, members, gateway) during `verify`'s replay."""
    pos = state.log.append_shredded(txid, EpochKey.TYPE, author, leaf, state.clock.now(), "replay")
    site, number, members, gateway = epoch
    state.db.execute(
        "INSERT INTO epochs VALUES (?, ?, ?, ?, ?)", (site, number, pos, members, gateway)
    )
    state.key(author, _key(site, number), pos)
    state.groups.reload()
    return pos

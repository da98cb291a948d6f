"""Checkpoints and witnessing: closed slots' digests, signed checkpoints, co-signatures.

A slot closes `late_after_s` after it ends; from then on no live batch for it is taken,
and its digest (SHA-256 over a label, the slot and the sorted txids of every readings
batch for it, evidence of equivocation included) is the same on every replica that holds
the same facts, whatever order they came in. The node's checkpoint announces its log
(size, root, a consistency proof from its previous checkpoint) and the digests of the
slots it closed or changed since. A witness checks that the log only grew, compares each
slot digest with its own and co-signs those that agree; a disagreement makes it fetch
from that peer (anti-entropy) and is shown by `mlg-node status`.
"""

from __future__ import annotations

import hashlib
import logging

from ledger_node.ledger.admission import Ledger
from ledger_node.ledger.merkle import RFC6962, ProofError, verify_consistency
from ledger_node.ledger.store import Db, count
from ledger_node.network.peer_time import PeerTime
from ledger_node.wire import (
    Checkpoint,
    Cosignature,
    SlotDigest,
)
from ledger_node.wire.checkpoints import MAX_CHECKPOINT_SLOTS

log = logging.getLogger("mlg.node.witness")

_SLOT_LABEL = b"meterledger/slot/v1"
KEEP_CHECKPOINTS = 1000
"""Checkpoints kept per node (its own and each peer's): the newest ones."""


def slot_digest(db: Db, slot: int) -> SlotDigest:
    """The order-independent digest of every readings batch for the slot starting at
    `slot` (UTC s)."""
    txids = sorted(
        bytes(row[0])
        for row in db.execute(
            "SELECT l.txid FROM batches b JOIN log l ON l.pos = b.pos WHERE b.slot=?"
            " UNION ALL SELECT l.txid FROM equivocations e JOIN log l ON l.pos = e.pos"
            " WHERE e.slot=?",
            (slot, slot),
        )
    )
    h = hashlib.sha256(_SLOT_LABEL)
    h.update(slot.to_bytes(8, "big"))
    for txid in txids:
        h.update(txid)
    return SlotDigest(slot, len(txids), h.digest())


class Witness:
    """This node's checkpoints, and its view of its peers' checkpoints."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.db = ledger.db
        self.me = ledger.me
        self.disagreeing: set[str] = set()
        """Peers whose slot digests differ from ours (anti-entropy pulls from them)."""
        self.unchecked: dict[str, tuple[int, int]] = {}
        """Peers whose log growth needs a consistency proof from them: (old, new) sizes."""
        self.peer_time = PeerTime(self.db)

    # -- own slots and checkpoints ----------------------------------------------------------

    def close_slots(self, now: float) -> int:
        """Compute the digest of every slot that closed (or changed after closing)."""
        slots = [
            row[0]
            for row in self.db.execute(
                "SELECT slot FROM slots WHERE digest IS NULL AND closes_at <= ?", (int(now),)
            )
        ]
        for slot in slots:
            d = slot_digest(self.db, slot)
            self.db.execute(
                "UPDATE slots SET digest=?, digest_count=?, announced=0 WHERE slot=?",
                (d.digest, d.count, slot),
            )
        return len(slots)

    def own_digest(self, slot: int, now: float) -> SlotDigest | None:
        """Our digest of a closed slot (None while it is open or unknown here)."""
        row = self.db.execute(
            "SELECT digest, digest_count, closes_at FROM slots WHERE slot=?", (slot,)
        ).fetchone()
        if row is None or row[2] > now:
            return None
        if row[0] is None:
            self.close_slots(now)
            return self.own_digest(slot, now)
        return SlotDigest(slot, row[1], bytes(row[0]))

    def last_checkpoint(self) -> tuple[int, bytes] | None:
        row = self.db.execute(
            "SELECT size, root FROM checkpoints WHERE node=? ORDER BY size DESC LIMIT 1",
            (self.me.name,),
        ).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def checkpoint(self, now: float) -> bytes | None:
        """Sign a checkpoint if the log grew or slots await announcing."""
        self.close_slots(now)
        rows = self.db.execute(
            "SELECT slot, digest_count, digest FROM slots WHERE digest IS NOT NULL"
            " AND announced=0 ORDER BY slot LIMIT ?",
            (MAX_CHECKPOINT_SLOTS,),
        ).fetchall()
        size = self.ledger.log.size
        last = self.last_checkpoint()
        prev = 0 if last is None else last[0]
        if not rows and prev == size:
            return None
        cp = Checkpoint(
            by=self.me.name,
            size=size,
            root=self.ledger.log.root(),
            t=int(now),
            prev=prev,
            proof=tuple(self.ledger.log.consistency(prev)) if 0 < prev < size else (),
            slots=tuple(SlotDigest(s, n, bytes(d)) for s, n, d in rows),
        )
        raw = cp.seal(self.me)
        self.db.execute(
            "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self.me.name, size, cp.root, cp.t, hashlib.sha256(raw).digest(), raw, now, "own"),
        )
        self.db.executemany("UPDATE slots SET announced=1 WHERE slot=?", [(s,) for s, _, _ in rows])
        self._prune(self.me.name)
        return raw

    def _prune(self, node: str) -> None:
        """Keep the newest `KEEP_CHECKPOINTS` checkpoints of `node` and their co-signatures."""
        row = self.db.execute(
            "SELECT size FROM checkpoints WHERE node=? ORDER BY size DESC LIMIT 1 OFFSET ?",
            (node, KEEP_CHECKPOINTS),
        ).fetchone()
        if row is not None:
            self.db.execute("DELETE FROM checkpoints WHERE node=? AND size <= ?", (node, row[0]))
            self.db.execute("DELETE FROM cosignatures WHERE node=? AND size <= ?", (node, row[0]))

    # -- peers' checkpoints -------------------------------------------------------------------

    def on_checkpoint(self, raw: bytes, now: float, fresh: bool = True) -> Cosignature | None:
        """Check a peer's checkpoint; co-sign the slots we agree on if its log only grew.
        A `fresh` one (not a retained copy) also says the peer's time (`PeerTime`)."""
        opened = self.ledger.open_signed(raw, frozenset({Checkpoint.TYPE}))
        if opened is None:
            return None
        envelope, message = opened
        assert isinstance(message, Checkpoint)
        peer = message.by
        if peer == self.me.name or self.ledger.registry.role(peer) is None:
            return None
        txid = envelope.txid
        if self.db.execute(
            "SELECT 1 FROM checkpoints WHERE node=? AND txid=?", (peer, txid)
        ).fetchone():
            return None
        verdict = self._consistency(message)
        self.db.execute(
            "INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (peer, message.size, message.root, message.t, txid, raw, now, verdict),
        )
        self.db.execute(
            "INSERT INTO peers (peer, size) VALUES (?, ?) ON CONFLICT (peer) DO UPDATE"
            " SET size = excluded.size",
            (peer, message.size),
        )
        self._prune(peer)
        if fresh:
            self.peer_time.observe(peer, message.t, now)
        agreed = self._compare_slots(peer, message, now)
        if verdict not in ("ok", "first"):
            return None
        return Cosignature(
            by=self.me.name,
            node=peer,
            size=message.size,
            root=message.root,
            checkpoint=txid,
            t=int(now),
            slots=tuple(agreed),
        )

    def _consistency(self, cp: Checkpoint) -> str:
        """'first', 'ok', 'unchecked' (a proof was asked for) or 'FORK'."""
        rows = self.db.execute(
            "SELECT size, root FROM checkpoints WHERE node=? ORDER BY size", (cp.by,)
        ).fetchall()
        if not rows:
            return "first"
        by_size = {int(s): bytes(r) for s, r in rows}
        if cp.size in by_size:
            return "ok" if by_size[cp.size] == cp.root else self._fork(cp, "two roots for one size")
        if max(by_size) > cp.size:
            return self._fork(cp, f"log shrank from {max(by_size)} to {cp.size}")
        older = max(s for s in by_size if s < cp.size)
        if older == cp.prev:
            try:
                verify_consistency(RFC6962, older, cp.size, cp.proof, by_size[older], cp.root)
            except ProofError as exc:
                return self._fork(cp, str(exc))
            self.unchecked.pop(cp.by, None)
            return "ok"
        self.unchecked[cp.by] = (older, cp.size)
        return "unchecked"

    def _fork(self, cp: Checkpoint, why: str) -> str:
        count(self.db, "alarm:fork")
        log.error(
            "FORK: %s's checkpoint at size %d does not extend its earlier one: %s",
            cp.by,
            cp.size,
            why,
        )
        return "FORK"

    def consistency_answer(
        self, peer: str, old: int, new: int, root: bytes, proof: tuple[bytes, ...]
    ) -> None:
        """A peer answered our request for a consistency proof between two checkpoints."""
        rows = dict(
            self.db.execute(
                "SELECT size, root FROM checkpoints WHERE node=? AND size IN (?, ?)",
                (peer, old, new),
            ).fetchall()
        )
        if old not in rows or new not in rows:
            return
        try:
            verify_consistency(RFC6962, old, new, proof, bytes(rows[old]), bytes(rows[new]))
        except ProofError as exc:
            log.error("FORK: %s's log at %d does not extend its log at %d: %s", peer, new, old, exc)
            count(self.db, "alarm:fork")
            verdict = "FORK"
        else:
            verdict = "ok"
        self.db.execute(
            "UPDATE checkpoints SET consistent=? WHERE node=? AND size=?", (verdict, peer, new)
        )
        self.unchecked.pop(peer, None)

    def _compare_slots(self, peer: str, cp: Checkpoint, now: float) -> list[tuple[int, bytes]]:
        agreed = []
        for d in cp.slots:
            self.db.execute(
                "INSERT OR REPLACE INTO peer_slots VALUES (?, ?, ?, ?)",
                (peer, d.slot, d.count, d.digest),
            )
            mine = self.own_digest(d.slot, now)
            if mine is None:
                continue
            if mine.digest == d.digest:
                agreed.append((d.slot, d.digest))
            else:
                self.disagreeing.add(peer)
                log.warning(
                    "slot %d: %s has %d batches (digest %s…), this node %d (%s…)",
                    d.slot,
                    peer,
                    d.count,
                    d.digest.hex()[:12],
                    mine.count,
                    mine.digest.hex()[:12],
                )
        return agreed

    def on_cosignature(self, raw: bytes, now: float) -> None:
        """Keep a witness's co-signature of one of our checkpoints."""
        opened = self.ledger.open_signed(raw, frozenset({Cosignature.TYPE}))
        if opened is None:
            return
        message = opened[1]
        assert isinstance(message, Cosignature)
        if message.node != self.me.name:
            return
        row = self.db.execute(
            "SELECT root, txid FROM checkpoints WHERE node=? AND size=?",
            (self.me.name, message.size),
        ).fetchone()
        if row is None or bytes(row[0]) != message.root or bytes(row[1]) != message.checkpoint:
            count(self.db, "refused:bad_cosig")
            log.warning("co-signature by %s names no checkpoint of ours", message.by)
            return
        self.db.execute(
            "INSERT OR REPLACE INTO cosignatures VALUES (?, ?, ?, ?, ?, ?)",
            (self.me.name, message.size, message.by, len(message.slots), raw, now),
        )

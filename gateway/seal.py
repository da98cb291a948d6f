"""Sealing a slot: commit to each meter's energy, encrypt the readings, sign the batch."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.slots import SlotEnergy
from ledger_node import pedersen
from ledger_node.keys import GroupKey, Identity
from ledger_node.wire import MeterCommitment, Reading, ReadingsBatch, SlotPayload, seal


class Sealer:
    """Builds signed batches for one gateway and site with the site group's key."""

    def __init__(self, identity: Identity, site: str, group_key: GroupKey) -> None:
        if group_key.site != site:
            raise ValueError(f"group key is for site {group_key.site!r}, not {site!r}")
        self.identity = identity
        self.site = site
        self.group_key = group_key
        self._box = group_key.box()

    def seal(self, seq: int, slot_start: int, slot_s: int, energies: Sequence[SlotEnergy]) -> bytes:
        """The envelope bytes of batch `seq` for the slot starting at `slot_start`."""
        readings = tuple(
            Reading(e.meter, e.wh, pedersen.random_blinding(), tuple(sorted(e.quality)))
            for e in sorted(energies, key=lambda e: e.meter)
        )
        commitments = tuple(
            MeterCommitment(r.meter, pedersen.commit(r.wh, r.blinding)) for r in readings
        )
        payload = SlotPayload(self.identity.name, seq, readings).to_bytes()
        batch = ReadingsBatch(
            gateway=self.identity.name,
            site=self.site,
            seq=seq,
            slot_start=slot_start,
            slot_seconds=slot_s,
            epoch=self.group_key.epoch,
            commitments=commitments,
            box=bytes(self._box.encrypt(payload)),
        )
        return seal(batch.to_body(), self.identity.name, self.identity.signing_key)

"""Sealing a slot: commit to each meter's energy, encrypt the readings, sign the batch."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gateway.errors import GatewayError
from gateway.slots import SlotEnergy
from ledger_node.shared.keys import GroupKey, Identity
from ledger_node.wire import (
    MAX_ENVELOPE_BYTES,
    ControlAction,
    MeterCommitment,
    Reading,
    ReadingsBatch,
    SlotPayload,
    pedersen,
)


class Sealer:
    """Builds signed batches for one gateway and site with the site group's newest key.

    `group_key` returns the key to seal with now (the newest epoch the gateway holds).
    """

    def __init__(
        self,
        identity: Identity,
        site: str,
        group_key: Callable[[], GroupKey],
        max_bytes: int = MAX_ENVELOPE_BYTES,
    ) -> None:
        self.identity = identity
        self.site = site
        self.group_key = group_key
        self.max_bytes = max_bytes

    def seal(
        self,
        seq: int,
        slot_start: int,
        slot_s: int,
        energies: Sequence[SlotEnergy],
        control: Sequence[ControlAction] = (),
    ) -> bytes:
        """The envelope bytes of batch `seq` for the slot starting at `slot_start`."""
        key = self.group_key()
        if key.site != self.site:
            raise GatewayError(f"group key is for site {key.site!r}, not {self.site!r}")
        readings = tuple(
            Reading(e.meter, e.wh, pedersen.random_blinding(), tuple(sorted(e.quality)))
            for e in sorted(energies, key=lambda e: e.meter)
        )
        commitments = tuple(
            MeterCommitment(r.meter, pedersen.commit(r.wh, r.blinding)) for r in readings
        )
        payload = SlotPayload(self.identity.name, seq, readings, tuple(control)).to_bytes()
        batch = ReadingsBatch(
            gateway=self.identity.name,
            site=self.site,
            seq=seq,
            slot_start=slot_start,
            slot_seconds=slot_s,
            epoch=key.epoch,
            commitments=commitments,
            box=bytes(key.box().encrypt(payload)),
        )
        envelope = batch.seal(self.identity)
        if len(envelope) > self.max_bytes:
            raise GatewayError(
                f"batch of slot {slot_start} is {len(envelope)} bytes, over the message limit "
                f"of {self.max_bytes}: configure fewer meters per gateway"
            )
        return envelope

"""The line from slot energies to sealed batches in the outbox.

A slot is sealed once every meter has reported it, or half a slot (`grace_s`) after it
ended with what arrived. Before the site's first epoch key (or while no key is usable) its
energies are stored unsealed (`Outbox.hold`) and sealed, oldest first, once a key is here.
A refusing outbox (full) keeps the slot and every later one for the next try. Times are
UTC seconds.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable

from gateway.alarms import Alarms
from gateway.config import GatewayConfig
from gateway.control import unsealed_actions
from gateway.db import Database
from gateway.errors import GatewayError, OutboxFullError
from gateway.facts import EpochKeys
from gateway.outbox import Outbox
from gateway.seal import Sealer
from gateway.slots import SlotEnergy
from ledger_node.wire.readings import MAX_CONTROL_ACTIONS

log = logging.getLogger("mlg.gateway")


class SealingLine:
    def __init__(
        self,
        cfg: GatewayConfig,
        db: Database,
        keys: EpochKeys,
        sealer: Sealer,
        outbox: Outbox,
        alarms: Alarms,
        on_sealed: Callable[[int, int, list[SlotEnergy]], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.db = db
        self.keys = keys
        self.sealer = sealer
        self.outbox = outbox
        self.alarms = alarms
        self.on_sealed = on_sealed
        self.grace_s = cfg.slot_seconds / 2
        self.open: dict[int, dict[str, SlotEnergy]] = defaultdict(dict)
        """Slot start → meter → energy, not sealed yet."""
        self.held = len(outbox.held())
        """Slot energies stored unsealed until a key arrives."""
        self.refused = 0
        """Batches the outbox refused (full)."""
        self.last_sealed: int | None = None

    def take(self, energies: Iterable[SlotEnergy]) -> None:
        for energy in energies:
            self.open[energy.slot_start][energy.meter] = energy

    def seal_due(self, now: float) -> int:
        """Seal (or hold) the slots that are due; return how many were sealed."""
        if not self.open and not self.held:
            return 0
        ready = self.keys.ready
        if ready and self.held:
            self._release_held()
        sealed = 0
        for slot in sorted(self.open):
            energies = self.open[slot]
            complete = len(energies) == len(self.cfg.meters)
            if not complete and now < slot + self.cfg.slot_seconds + self.grace_s:
                continue
            if not ready:
                self._hold(slot)
            elif self._seal(slot, list(energies.values()), now):
                del self.open[slot]
                sealed += 1
            else:
                break  # the outbox refuses: keep this and later slots for the next try
        return sealed

    def _hold(self, slot: int) -> None:
        energies = list(self.open.pop(slot).values())
        self.outbox.hold(energies, self.cfg.slot_seconds)
        self.held += len(energies)
        try:
            self.keys.current()
            why = "no usable epoch key"
        except GatewayError as exc:
            why = str(exc)
        log.warning("slot %d held (stored, unsealed): %s", slot, why)
        self.alarms.on(
            "no_epoch_key",
            f"{self.outbox.stats().waiting_for_key} slots stored unsealed: {why} (is the site"
            " registered with this gateway's key, and is the TSO's node running?)",
        )

    def _release_held(self) -> None:
        """The epoch key is here: put the held slots back in line for sealing."""
        held = self.outbox.held()
        self.take(held)
        log.info(
            "site %s: epoch key here, sealing %d held slots",
            self.cfg.site,
            len({e.slot_start for e in held}),
        )
        self.held = 0
        self.alarms.off("no_epoch_key")

    def _seal(self, slot: int, batch: list[SlotEnergy], now: float) -> bool:
        slot_s = self.cfg.slot_seconds
        actions = unsealed_actions(self.db, slot + slot_s, MAX_CONTROL_ACTIONS)

        def build(seq: int) -> bytes:
            return self.sealer.seal(seq, slot, slot_s, batch, [a for _, a in actions])

        states = [(e.meter, e.slot_start + slot_s, e.resume) for e in batch if e.resume]
        try:
            seq = self.outbox.store(slot, build, now, states, [i for i, _ in actions])
        except OutboxFullError as exc:
            self.refused += 1
            self.alarms.on("outbox_full", str(exc))
            return False
        except GatewayError as exc:
            self.alarms.on("cannot_seal", str(exc))
            return False
        self.alarms.off("cannot_seal")
        self.last_sealed = slot
        if self.on_sealed is not None:
            self.on_sealed(slot, slot_s, batch)
        missing = sorted(m.id for m in self.cfg.meters if m.id not in {e.meter for e in batch})
        log.info(
            "slot %d sealed as seq %d: %s%s%s",
            slot,
            seq,
            ", ".join(
                f"{e.meter}={e.wh} Wh{'/' + '+'.join(sorted(e.quality)) if e.quality else ''}"
                for e in batch
            ),
            f" (no reading yet from {', '.join(missing)})" if missing else "",
            f"; {len(actions)} control actions" if actions else "",
        )
        return True

"""The gateway daemon: pollers feed samples; closed slots are sealed, stored, published."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict

from gateway.config import GatewayConfig
from gateway.outbox import Outbox
from gateway.poll import BusPoller
from gateway.publish import Publisher
from gateway.seal import Sealer
from gateway.slots import MeterSlots, Sample, SlotEnergy
from ledger_node.clock import Clock
from ledger_node.keys import GroupKey, Identity

log = logging.getLogger("mlg.gateway")

FLUSH_EVERY_S = 1.0
"""Real seconds between sweeps of the outbox for batches to (re)publish."""


class Gateway:
    def __init__(self, cfg: GatewayConfig, clock: Clock) -> None:
        self.cfg = cfg
        self.clock = clock
        identity = Identity.load(cfg.key_path)
        if identity.name != cfg.gateway_id:
            log.warning(
                "key %s is for %r, config says %r", cfg.key_path, identity.name, cfg.gateway_id
            )
        self.sealer = Sealer(identity, cfg.site, GroupKey.load(cfg.group_key_path))
        self.outbox = Outbox(cfg.outbox_path)
        self.publisher = Publisher(
            cfg.mqtt, self.outbox, cfg.mqtt.readings_topic(cfg.site, identity.name), clock
        )
        self.slots = {
            m.id: MeterSlots(m.id, cfg.slot_seconds, m.poll_seconds, m.model.max_power_w)
            for m in cfg.meters
        }
        self.grace_s = cfg.slot_seconds / 2
        self._samples: queue.Queue[Sample] = queue.Queue()
        self._open: dict[int, dict[str, SlotEnergy]] = defaultdict(dict)
        self.stop_event = threading.Event()
        self.pollers = [
            BusPoller(
                bus,
                [m for m in cfg.meters if m.bus == bus.name],
                clock,
                self._samples.put,
                self.stop_event,
            )
            for bus in cfg.buses
        ]

    def run(self) -> None:
        """Run until `stop_event` is set."""
        self.publisher.start()
        for poller in self.pollers:
            poller.start()
        log.info(
            "gateway %s (site %s): %d meters on %d buses, %d s slots",
            self.sealer.identity.name,
            self.cfg.site,
            len(self.cfg.meters),
            len(self.cfg.buses),
            self.cfg.slot_seconds,
        )
        last_flush = 0.0
        try:
            while not self.stop_event.is_set():
                try:
                    sample = self._samples.get(timeout=0.1)
                except queue.Empty:
                    pass
                else:
                    for energy in self.slots[sample.meter].add(sample):
                        self._open[energy.slot_start][energy.meter] = energy
                self._seal_due(self.clock.now())
                if time.monotonic() - last_flush >= FLUSH_EVERY_S:
                    self.publisher.flush()
                    last_flush = time.monotonic()
        finally:
            self.stop_event.set()
            for poller in self.pollers:
                poller.join(timeout=5)
            self.publisher.stop()
            self.outbox.close()

    def _seal_due(self, now: float) -> None:
        """Seal slots that every meter reported, or whose grace period is over."""
        for slot in sorted(self._open):
            energies = self._open[slot]
            complete = len(energies) == len(self.cfg.meters)
            if not complete and now < slot + self.cfg.slot_seconds + self.grace_s:
                continue
            del self._open[slot]
            batch = list(energies.values())

            def build(seq: int, slot: int = slot, batch: list[SlotEnergy] = batch) -> bytes:
                return self.sealer.seal(seq, slot, self.cfg.slot_seconds, batch)

            seq = self.outbox.store(slot, build, now)
            missing = sorted(m.id for m in self.cfg.meters if m.id not in energies)
            log.info(
                "slot %d sealed as seq %d: %s%s",
                slot,
                seq,
                ", ".join(f"{e.meter}={e.wh} Wh" for e in energies.values()),
                f" (no reading yet from {', '.join(missing)})" if missing else "",
            )
            self.publisher.flush()

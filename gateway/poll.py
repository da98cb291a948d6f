"""Bus pollers: one thread owns each bus and polls its meters on a grid aligned to UTC.

Polls fall on multiples of each meter's poll period, so with a period dividing the slot
length there is a poll at every slot boundary and interpolation spans one poll interval.
A meter that does not answer costs one timeout per poll and never stops the others.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence

from gateway.bus import ModbusBus
from gateway.config import BusConfig, MeterConfig
from gateway.errors import BusError
from gateway.meters import plan_blocks
from gateway.slots import Sample
from ledger_node.clock import Clock

log = logging.getLogger("mlg.gateway.poll")

ENERGY_REGISTER = "import_energy"


class BusPoller(threading.Thread):
    """Polls the cumulative import energy of every meter on one bus."""

    def __init__(
        self,
        bus_cfg: BusConfig,
        meters: Sequence[MeterConfig],
        clock: Clock,
        on_sample: Callable[[Sample], None],
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"mlg-bus-{bus_cfg.name}", daemon=True)
        self.bus = ModbusBus(bus_cfg)
        self.meters = list(meters)
        self.clock = clock
        self.on_sample = on_sample
        self.stop = stop
        self.errors: dict[str, int] = {m.id: 0 for m in meters}
        self.polls: dict[str, int] = {m.id: 0 for m in meters}
        self._blocks = {
            m.id: plan_blocks([m.model.register(ENERGY_REGISTER)], m.model.max_block)
            for m in meters
        }

    def run(self) -> None:
        now = self.clock.now()
        due = {m.id: self._next_grid(m, now) for m in self.meters}
        try:
            while not self.stop.is_set():
                meter = min(self.meters, key=lambda m: due[m.id])
                wait = due[meter.id] - self.clock.now()
                if wait > 0:
                    self.clock.wait(self.stop, wait)
                    continue
                self._poll(meter)
                due[meter.id] = self._next_grid(meter, self.clock.now())
        finally:
            self.bus.close()

    def _poll(self, meter: MeterConfig) -> None:
        reg = meter.model.register(ENERGY_REGISTER)
        (block,) = self._blocks[meter.id]
        t0 = self.clock.now()
        try:
            words = self.bus.read(meter.unit, meter.model.table, block.address, block.count)
        except BusError as exc:
            self.errors[meter.id] += 1
            log.warning("meter %s: %s", meter.id, exc)
            return
        t1 = self.clock.now()
        self.polls[meter.id] += 1
        offset = reg.address - block.address
        value = reg.decode(words[offset : offset + reg.words], meter.model.big_word_first)
        self.on_sample(Sample(meter.id, (t0 + t1) / 2, value))

    @staticmethod
    def _next_grid(meter: MeterConfig, now: float) -> float:
        period = meter.poll_seconds
        return (math.floor(now / period) + 1) * period

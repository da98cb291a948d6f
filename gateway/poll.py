"""The bus scheduler: one thread owns each bus and polls its meters on a UTC-aligned grid.

Polls fall on multiples of each meter's poll period, so with a period dividing the slot
length there is a poll close to every slot boundary. One dead or slow meter never stalls
the others: a failed poll of a meter that answered its last poll is retried at once while
the meter's retry budget for the current slot lasts, and a meter that keeps failing is
polled less often (exponential
back-off, at most `MAX_BACKOFF_FRACTION` of a slot) until it answers again. An adapter
that disappears is reopened, at most once a second. Jobs submitted by other threads (DR
control writes) run between polls, before any poll that is due.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from gateway.bus import ModbusBus
from gateway.config import ENERGY_REGISTER, BusConfig, MeterConfig
from gateway.errors import BusError, PortError
from gateway.meters import MeterDriver
from gateway.slots import Sample
from ledger_node.shared.clock import Clock

log = logging.getLogger("mlg.gateway.poll")

BACKOFF_AFTER = 3
"""Failed polls in a row after which a meter is polled less often."""
MAX_BACKOFF_FRACTION = 0.25
"""The longest back-off between polls of a failing meter, as a fraction of a slot."""
PORT_RETRY_S = 1.0
"""Real seconds between attempts to reopen a bus whose port is gone."""


@dataclass
class MeterHealth:
    """What `status` shows of one meter (mutated by its bus thread only)."""

    polls: int = 0
    errors: int = 0
    retries: int = 0
    consecutive_errors: int = 0
    last_poll: float | None = None  # UTC s of the last good poll
    last_error: str = ""
    last_error_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class BusPoller(threading.Thread):
    """Polls the cumulative import energy of every meter on one bus."""

    def __init__(
        self,
        bus_cfg: BusConfig,
        meters: Sequence[MeterConfig],
        clock: Clock,
        on_sample: Callable[[Sample], None],
        slot_s: int,
        bus: ModbusBus | None = None,
    ) -> None:
        super().__init__(name=f"mlg-bus-{bus_cfg.name}", daemon=True)
        self.cfg = bus_cfg
        self.bus = bus if bus is not None else ModbusBus(bus_cfg)
        self.meters = list(meters)
        self.clock = clock
        stamp = getattr(clock, "stamp", None)  # a DisciplinedClock tags its corrections
        self._stamp: Callable[[], tuple[float, int]] = stamp or (lambda: (clock.now(), 0))
        self.on_sample = on_sample
        self.slot_s = slot_s
        self.health = {m.id: MeterHealth() for m in meters}
        self.port_ok = True
        self._drivers = {m.id: MeterDriver(m.model, [ENERGY_REGISTER]) for m in meters}
        self._budget: dict[str, tuple[int, int]] = {}  # meter → (slot, retries left)
        self._jobs: queue.Queue[tuple[Callable[[ModbusBus], Any], Future[Any]]] = queue.Queue()
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def submit(self, job: Callable[[ModbusBus], Any]) -> Future[Any]:
        """Run `job(bus)` on this bus's thread, before the next due poll."""
        future: Future[Any] = Future()
        self._jobs.put((job, future))
        self._wake.set()
        return future

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        now, grid_gen = self._stamp()
        due = {m.id: self._next_grid(m, now) for m in self.meters}
        try:
            while not self._stopping.is_set():
                self._run_jobs()
                now, gen = self._stamp()
                if gen != grid_gen:
                    # The gateway's time was corrected (an hour back, at a Pi's first boot):
                    # the polls' grid moves with it, or the next poll would wait that long.
                    grid_gen = gen
                    due = {m.id: self._next_grid(m, now) for m in self.meters}
                meter = min(self.meters, key=lambda m: due[m.id])
                wait = due[meter.id] - now
                if wait > 0:
                    self.clock.wait(self._wake, wait)
                    self._wake.clear()
                    continue
                ok = self._poll(meter)
                now = self.clock.now()
                due[meter.id] = self._next_grid(meter, now + self._backoff_s(meter, ok))
        finally:
            self._run_jobs(stopping=True)
            self.bus.close()

    def _run_jobs(self, stopping: bool = False) -> None:
        """Run the submitted jobs; when `stopping`, fail them instead."""
        while True:
            try:
                job, future = self._jobs.get_nowait()
            except queue.Empty:
                return
            if not future.set_running_or_notify_cancel():
                continue
            if stopping:
                future.set_exception(BusError(f"bus {self.cfg.name} stopped"))
                continue
            try:
                future.set_result(job(self.bus))
            except BaseException as exc:  # the submitter gets it
                future.set_exception(exc)

    def _poll(self, meter: MeterConfig) -> bool:
        """One poll of `meter`, with retries while its slot budget lasts; True if it answered."""
        health = self.health[meter.id]
        attempts = 0
        while True:
            t0, gen0 = self._stamp()
            try:
                values = self._drivers[meter.id].read(self.bus, meter.unit)
            except PortError as exc:
                self._port_lost(health, exc)
                return False
            except BusError as exc:
                health.errors += 1
                health.last_error, health.last_error_at = str(exc), self.clock.now()
                # A meter that already failed its last poll is not retried: it would only
                # cost the others more timeouts.
                retry = health.consecutive_errors == 0 and attempts < self.cfg.retries
                if retry and self._take_retry(meter.id, t0):
                    attempts += 1
                    health.retries += 1
                    continue
                health.consecutive_errors += 1
                if health.consecutive_errors in (1, BACKOFF_AFTER):
                    log.warning("meter %s: %s", meter.id, exc)
                return False
            break
        t1, gen = self._stamp()
        if not self.port_ok:
            self.port_ok = True
            log.info("bus %s: %s is back", self.cfg.name, self.bus.where)
        if health.consecutive_errors >= BACKOFF_AFTER:
            log.info(
                "meter %s answers again after %d failed polls", meter.id, health.consecutive_errors
            )
        health.consecutive_errors = 0
        value = values.get(ENERGY_REGISTER)
        if value is None:  # refused: counted by the driver, judged as a failed poll
            health.errors += 1
            health.last_error = f"meter refuses register {ENERGY_REGISTER}"
            return False
        health.polls += 1
        health.last_poll = t1
        # Mid-transaction, unless the clock was corrected meanwhile (then its end).
        t = (t0 + t1) / 2 if gen == gen0 else t1
        self.on_sample(Sample(meter.id, t, value, gen))
        return True

    def _port_lost(self, health: MeterHealth, exc: PortError) -> None:
        health.errors += 1
        health.last_error, health.last_error_at = str(exc), self.clock.now()
        if self.port_ok:
            log.error("%s; retrying every %.0f s", exc, PORT_RETRY_S)
            self.port_ok = False
        self._stopping.wait(PORT_RETRY_S)

    def _take_retry(self, meter_id: str, t: float) -> bool:
        slot = math.floor(t / self.slot_s)
        budget_slot, left = self._budget.get(meter_id, (slot, self.cfg.retry_budget))
        if budget_slot != slot:
            left = self.cfg.retry_budget
        if left <= 0:
            self._budget[meter_id] = (slot, 0)
            return False
        self._budget[meter_id] = (slot, left - 1)
        return True

    def _backoff_s(self, meter: MeterConfig, ok: bool) -> float:
        failures = self.health[meter.id].consecutive_errors
        if ok or failures < BACKOFF_AFTER:
            return 0.0
        longest = max(meter.poll_seconds, MAX_BACKOFF_FRACTION * self.slot_s)
        return float(min(meter.poll_seconds * 2.0 ** (failures - BACKOFF_AFTER), longest))

    @staticmethod
    def _next_grid(meter: MeterConfig, after: float) -> float:
        period = meter.poll_seconds
        return (math.floor(after / period) + 1) * period


def wait_result(future: Future[Any], timeout_s: float) -> Any:
    """The job's result, raising its exception; `BusError` when it takes too long."""
    deadline = time.monotonic() + timeout_s
    try:
        return future.result(timeout=max(deadline - time.monotonic(), 0))
    except TimeoutError:
        raise BusError(f"bus job did not finish within {timeout_s} s") from None

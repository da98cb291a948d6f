"""The B-route bus thread: one meter behind a Wi-SUN dongle, its readings as samples.

At 30-minute slots each sample is the meter's own fixed-time reading (0xEA) at the
boundary it names, so slot boundaries are exact to the meter: taken from the INF the
meter sends after each boundary, or asked for once the boundary is `SETTLE_S` past. A
boundary further on than the next one means readings were missed (the gateway or the
link was down): they are read from the meter's history (0xE5 day, 0xE2) and fed in
order, so the slot energies continue where the stored state left off and none is
counted twice (`MeterSlots` ignores anything at or before its last sample). These samples are on
the meter's clock (`METER_TIME`): corrections of the gateway's clock do not move them. At
shorter slots the cumulative energy (0xE0) is polled on the grid like a Modbus meter. A refused
password raises the alarm `broute_refused` and waits `refused_retry_s` real seconds; no
meter in range raises `broute_no_meter` and backs off.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from typing import Any

from gateway.broute import echonet
from gateway.broute.credentials import Credentials
from gateway.broute.echonet import EchonetError
from gateway.broute.meter import BrouteMeter
from gateway.broute.session import BrouteSession, NoBeacon, PasswordRefused
from gateway.broute.skstack import Dongle
from gateway.config import BusConfig, MeterConfig
from gateway.errors import BusError, PortError
from gateway.poll import MeterHealth
from gateway.slots import METER_TIME, Sample
from ledger_node.shared.clock import Clock

log = logging.getLogger("mlg.gateway.broute")

FIXED_SLOT_S = 1800
"""The meter's fixed-time reading interval: slots of this length use 0xEA."""
SETTLE_S = 20.0
"""Gateway-clock seconds after a boundary before 0xEA is asked for (the INF usually
comes first); asked again every `SETTLE_S` until the meter has the new boundary."""
HISTORY_DAYS = 99
"""The oldest history day a meter serves (0xE5 0..99)."""
MAX_BACKOFF_S = 60.0
"""Longest real wait between attempts when no meter answers the scan."""


ALARMS = ("broute_refused", "broute_no_meter")
"""A B-route bus's alarms: a refused password, no meter answering the scan."""


def broute_alarms(pollers: Iterable[object]) -> dict[str, str]:
    """Each of `ALARMS` → the texts of the B-route pollers raising it ("" when none does)."""
    out, pollers = {}, list(pollers)
    for name in ALARMS:
        texts = [
            p.alarms[name] for p in pollers if isinstance(p, BroutePoller) and name in p.alarms
        ]
        out[name] = "; ".join(texts)
    return out


class BroutePoller(threading.Thread):
    """Reads one B-route meter (`meters` holds exactly one) and feeds its samples."""

    def __init__(
        self,
        bus_cfg: BusConfig,
        meters: list[MeterConfig],
        clock: Clock,
        on_sample: Callable[[Sample], None],
        slot_s: int,
        creds: Credentials,
        last: Mapping[str, tuple[float, float]] | None = None,
        dongle: Dongle | None = None,
    ) -> None:
        super().__init__(name=f"mlg-bus-{bus_cfg.name}", daemon=True)
        if len(meters) != 1:
            raise ValueError(f"bus {bus_cfg.name}: a Wi-SUN bus reads one meter")
        self.cfg = bus_cfg
        self.meter = meters[0]
        self.meters = meters
        self.clock = clock
        stamp = getattr(clock, "stamp", None)
        self._stamp: Callable[[], tuple[float, int]] = stamp or (lambda: (clock.now(), 0))
        self._grid_gen = 0  # the clock generation the polls' grid was computed in
        self.on_sample = on_sample
        self.slot_s = slot_s
        w = bus_cfg.wisun
        if w is None:
            raise ValueError(f"bus {bus_cfg.name} is not a Wi-SUN bus")
        self.options = w
        self.bus = dongle or Dongle(bus_cfg.port, bus_cfg.baud, w.dongle, bus_cfg.timeout_s)
        self.session = BrouteSession(
            self.bus, creds, w.answer_timeout_s, bus_cfg.retries, w.scan_duration
        )
        self.reader = BrouteMeter(self.session)
        self.health = {self.meter.id: MeterHealth()}
        self.port_ok = True
        self.alarms: dict[str, str] = {}
        self.backfilled = 0
        self.fixed_mode = slot_s == FIXED_SLOT_S
        restored = (last or {}).get(self.meter.id)
        self._restored_wh = restored[1] if restored else None
        self._last_boundary: float | None = None
        if restored and self.fixed_mode and restored[0] % FIXED_SLOT_S == 0:
            self._last_boundary = restored[0]
        self._fails = 0
        self._asked = -math.inf
        self._wake = threading.Event()
        self._stopping = threading.Event()

    def submit(self, job: Callable[[Any], Any]) -> Future[Any]:
        """Modbus jobs (DR control, the plain view's reads) cannot run on a Wi-SUN bus."""
        future: Future[Any] = Future()
        future.set_exception(BusError(f"bus {self.cfg.name} is a Wi-SUN bus: no Modbus jobs"))
        return future

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    def run(self) -> None:
        due = self._next_grid(self.clock.now())
        try:
            while not self._stopping.is_set():
                try:
                    self.reader.ensure()
                    self.reader.seed(self._restored_wh)
                    self._clear("broute_refused", "broute_no_meter")
                    if not self.port_ok:
                        self.port_ok = True
                        log.info("bus %s: %s is back", self.cfg.name, self.bus.where)
                    if self.fixed_mode:
                        self._fixed_step()
                    else:
                        due = self._energy_step(due)
                    self._fails = 0
                except PasswordRefused as exc:
                    self._failed(exc, quiet=True)
                    self.alarms["broute_refused"] = str(exc)
                    log.error("%s; trying again in %.0f s", exc, self.options.refused_retry_s)
                    self._stopping.wait(self.options.refused_retry_s)
                except NoBeacon as exc:
                    self._failed(exc)
                    self.alarms["broute_no_meter"] = str(exc)
                    self._stopping.wait(min(2.0**self._fails, MAX_BACKOFF_S))
                except PortError as exc:
                    self._failed(exc)
                    self.port_ok = False
                    self._stopping.wait(1.0)
                except (BusError, EchonetError) as exc:
                    self._failed(exc)
                    self._stopping.wait(min(0.5 * self._fails, 5.0))
        finally:
            try:
                self.session.close()
            except BusError as exc:
                log.debug("closing the session: %s", exc)

    def _failed(self, exc: Exception, quiet: bool = False) -> None:
        health = self.health[self.meter.id]
        health.errors += 1
        health.consecutive_errors += 1
        health.last_error, health.last_error_at = str(exc), self.clock.now()
        self._fails += 1
        if not quiet and (self._fails in (1, 3) or self._fails % 100 == 0):
            log.warning("meter %s: %s", self.meter.id, exc)

    def _clear(self, *names: str) -> None:
        for name in names:
            if self.alarms.pop(name, None) is not None:
                log.info("alarm %s cleared", name)

    def _emit(self, t: float, wh: float, gen: int) -> None:
        health = self.health[self.meter.id]
        health.polls += 1
        health.consecutive_errors = 0
        health.last_poll = self.clock.now()
        self.on_sample(Sample(self.meter.id, t, wh, gen))

    # -- 30-minute slots: the meter's fixed-time readings -----------------------------------
    def _fixed_step(self) -> None:
        for frame in self.session.notifications():
            for epc, edt in frame.props:
                if epc == echonet.FIXED and edt:
                    self._take_fixed(edt)
        now = self.clock.now()
        last = self._last_boundary
        due = -math.inf if last is None else last + FIXED_SLOT_S + SETTLE_S
        if now >= max(due, self._asked + SETTLE_S):
            self._asked = now
            self._take_fixed(self.session.get([echonet.FIXED]).get(echonet.FIXED))
            return
        self.bus.pump(0.1, until_udp=True)  # real time: an INF ends the wait

    def _take_fixed(self, edt: bytes) -> None:
        t, raw = echonet.fixed(edt)
        last = self._last_boundary
        if raw is None or (last is not None and t <= last):
            return
        if last is not None and t > last + FIXED_SLOT_S:
            self._backfill(last, t)
        self._emit(t, self.reader.wh(raw), METER_TIME)
        self._last_boundary = t

    def _backfill(self, last: float, until: float) -> None:
        """Feed the history's boundaries after `last` and before `until` (UTC s)."""
        now = self.clock.now()
        today = dt.datetime.fromtimestamp(now, echonet.JST).date()
        first = dt.datetime.fromtimestamp(last + FIXED_SLOT_S, echonet.JST).date()
        oldest = min((today - first).days, HISTORY_DAYS)
        found = 0
        for day in range(oldest, -1, -1):
            for t, raw in self.reader.history_raw(day, now):
                if last < t < until and raw is not None:
                    self._emit(t, self.reader.wh(raw), METER_TIME)
                    found += 1
        self.backfilled += found
        missing = round((until - last) / FIXED_SLOT_S) - 1 - found
        log.info(
            "meter %s: %d missed boundaries read from the history%s",
            self.meter.id,
            found,
            f", {missing} not in it" if missing else "",
        )

    # -- shorter slots: 0xE0 on the grid ----------------------------------------------------
    def _energy_step(self, due: float) -> float:
        now, gen = self._stamp()
        if gen != self._grid_gen:  # the gateway's time was corrected: the grid moves with it
            self._grid_gen = gen
            due = self._next_grid(now)
        wait = due - now
        if wait > 0:
            self.clock.wait(self._wake, wait)
            self._wake.clear()
            return due
        t0, gen0 = self._stamp()
        wh = self.reader.energy_wh()
        t1, gen = self._stamp()
        self._emit((t0 + t1) / 2 if gen == gen0 else t1, wh, gen)
        return self._next_grid(self.clock.now())

    def _next_grid(self, after: float) -> float:
        period = self.meter.poll_seconds
        return (math.floor(after / period) + 1) * period

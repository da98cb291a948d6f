"""DR control (seed step 2): switch the configured output for the windows this site is
declared for, and record every switch for the sealed batch of the slot it happened in.

The output is a coil (Modbus FC 05, the firmware adapter's DR relay on coil 0) or a
holding register (FC 06) of a configured meter's device; the write runs on the thread
that owns that bus. Each attempt is recorded as a `ControlAction` (with `ok` False when
the device did not confirm it) in the state database, and the next batch sealed for its
slot (or a later one) carries it. A failed switch is tried again every `RETRY_S`; what
was done survives a restart, so nothing is switched or recorded twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from gateway.bus import ModbusBus
from gateway.config import ControlConfig, MeterConfig
from gateway.db import Database
from gateway.errors import BusError
from gateway.facts import DrPlan, Window
from gateway.poll import wait_result
from ledger_node.shared.clock import Clock
from ledger_node.wire import ControlAction

log = logging.getLogger("mlg.gateway.control")

RETRY_S = 10.0
"""Clock seconds between attempts of a switch the device did not confirm."""
WRITE_TIMEOUT_S = 10.0
"""Real seconds to wait for the bus thread to carry out a switch."""


class Controller:
    def __init__(
        self,
        cfg: ControlConfig,
        meter: MeterConfig,
        plan: DrPlan,
        db: Database,
        clock: Clock,
        submit: Callable[[Callable[[ModbusBus], Any]], Future[Any]],
    ) -> None:
        self.cfg = cfg
        self.meter = meter
        self.plan = plan
        self.db = db
        self.clock = clock
        self.submit = submit
        self._next_try: dict[tuple[str, int], float] = {}

    def tick(self) -> None:
        """Carry out the switches due now."""
        now = self.clock.now()
        windows = self.plan.windows()
        done = self._done()
        active = [w for w in windows if w.start <= now < w.end]
        for w in active:
            if (w.command, 1) not in done:
                self._switch(w, 1, now)
        for w in windows:
            if now < w.end or (w.command, 0) in done:
                continue
            if not self._attempted(w.command, 1):
                continue  # never switched on (the gateway was down through the window)
            if any(a.command != w.command for a in active):
                self._mark_done(w.command, 0)  # another window keeps the output on
                continue
            self._switch(w, 0, now)

    def _switch(self, window: Window, state: int, now: float) -> None:
        key = (window.command, state)
        if now < self._next_try.get(key, 0.0):
            return
        self._next_try[key] = now + RETRY_S
        cfg, unit = self.cfg, self.meter.unit

        def write(bus: ModbusBus) -> None:
            if cfg.coil is not None:
                bus.write_coil(unit, cfg.coil, bool(state))
            else:
                assert cfg.register is not None
                bus.write_register(unit, cfg.register, cfg.on if state else cfg.off)

        try:
            wait_result(self.submit(write), WRITE_TIMEOUT_S)
            ok = True
        except BusError as exc:
            ok = False
            log.error(
                "DR %s: switching %s failed: %s", window.command, "on" if state else "off", exc
            )
        t = int(self.clock.now())
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO control_actions (command, state, t, ok) VALUES (?, ?, ?, ?)",
                (window.command, state, t, int(ok)),
            )
            if ok:
                db.execute("INSERT OR IGNORE INTO dr_done VALUES (?, ?)", key)
        if ok:
            log.info("DR %s: switched %s at %d", window.command, "on" if state else "off", t)

    def _done(self) -> set[tuple[str, int]]:
        with self.db.lock:
            return {(c, s) for c, s in self.db.conn.execute("SELECT command, state FROM dr_done")}

    def _attempted(self, command: str, state: int) -> bool:
        with self.db.lock:
            row = self.db.conn.execute(
                "SELECT 1 FROM control_actions WHERE command=? AND state=? LIMIT 1",
                (command, state),
            ).fetchone()
        return row is not None

    def _mark_done(self, command: str, state: int) -> None:
        with self.db.transaction() as db:
            db.execute("INSERT OR IGNORE INTO dr_done VALUES (?, ?)", (command, state))


def unsealed_actions(db: Database, slot_end: int, limit: int) -> list[tuple[int, ControlAction]]:
    """Recorded actions not yet in a batch, taken before `slot_end` (UTC s), oldest first:
    (row id, action)."""
    with db.lock:
        rows = db.conn.execute(
            "SELECT id, command, state, t, ok FROM control_actions"
            " WHERE seq IS NULL AND t < ? ORDER BY id LIMIT ?",
            (slot_end, limit),
        ).fetchall()
    return [(i, ControlAction(c, s, t, bool(ok))) for i, c, s, t, ok in rows]

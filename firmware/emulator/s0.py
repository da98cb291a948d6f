"""The `adapter` model: the firmware's own `Adapter` (firmware/adapter.py) on CPython,
fed the S0 pulses that a pulse-output meter on the emulated load would emit.

Pulse k begins when the load's energy since the anchor reaches k pulses' worth (found by
bisection, so it is exact to 0.1 ms of emulated time) and lasts 40 ms. Everything the
adapter reports, counts, stores on flash (`state_dir`) and switches (its DR relay drives
the load's DR response) is the firmware's code at work.
"""

from __future__ import annotations

import math
from pathlib import Path

from firmware import ticks
from firmware.adapter import H_PPK, Adapter
from firmware.emulator.dr import ControlledLoad
from firmware.pulses import HIGH, LOW
from firmware.registers import HOLDING
from ledger_node.shared.clock import Clock

PULSE_S = 0.040
RESOLUTION_S = 1e-4


class EmulatedAdapter(Adapter):
    """The adapter firmware counting pulses from `load` since `anchor` (UTC s).

    On a fresh flash directory the count starts at `origin_wh`; otherwise it resumes from
    what the firmware stored, as on the board. `pulses_per_kwh` is the meter's pulse
    value, also written to the adapter's settings.
    """

    def __init__(
        self,
        load: ControlledLoad,
        clock: Clock,
        anchor: float,
        state_dir: Path,
        origin_wh: float = 0.0,
        pulses_per_kwh: int = 1000,
    ) -> None:
        self.load = load
        self.clock = clock
        self.anchor = anchor
        state_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(str(state_dir), self._now_ms, self._switch)
        if self.settings.get("pulses_per_kwh") != pulses_per_kwh:
            if self.check_holding(H_PPK, [pulses_per_kwh]):
                raise ValueError(f"adapter: {pulses_per_kwh} pulses per kWh is out of range")
            self.set_holding(H_PPK, pulses_per_kwh)
            self.written(HOLDING, H_PPK, 1)
        if self.energy_uwh() == 0 and origin_wh > 0:
            self.set_energy(round(origin_wh * 1e6))
        self.wh_per_pulse = 1000.0 / pulses_per_kwh
        self.start_wh = self.energy_uwh() / 1e6
        self._emitted = 0  # pulses emitted since the anchor
        self._last_t = anchor
        self._high_at: float | None = None  # end of the pulse in progress

    @property
    def model_name(self) -> str:
        return "adapter"

    def _now_ms(self) -> int:
        return ticks.wrap(math.floor(self.clock.now() * 1000))

    def _switch(self, on: bool) -> None:
        self.load.set_relay(self.clock.now(), on)

    def energy_wh(self, t: float) -> float:
        """What a perfect adapter has counted by `t`: whole pulses of the load's energy."""
        pulses = math.floor(self.load.energy_wh(self.anchor, t) / self.wh_per_pulse + 1e-9)
        return self.start_wh + pulses * self.wh_per_pulse

    def _edge(self, t: float, level: int) -> None:
        self.counter.edge(ticks.wrap(math.floor(t * 1000)), level)

    def _advance(self, now: float) -> None:
        """Emit the S0 edges up to `now`, in order, as the pin interrupt would see them."""
        while True:
            target = (self._emitted + 1) * self.wh_per_pulse
            if self.load.energy_wh(self.anchor, now) < target:
                break
            lo, hi = self._last_t, now
            while hi - lo > RESOLUTION_S:
                mid = (lo + hi) / 2
                if self.load.energy_wh(self.anchor, mid) < target:
                    lo = mid
                else:
                    hi = mid
            if self._high_at is not None:  # end the previous pulse, halfway at the latest
                self._edge(min(self._high_at, (self._last_t + hi) / 2), HIGH)
            self._edge(hi, LOW)
            self._emitted += 1
            self._last_t = hi
            self._high_at = hi + PULSE_S
        if self._high_at is not None and self._high_at <= now:
            self._edge(self._high_at, HIGH)
            self._high_at = None

    # -- what the emulator's line calls ----------------------------------------------------
    def refresh(self) -> None:
        self._advance(self.clock.now())
        super().refresh()

    def tick(self) -> None:
        """Idle work between requests: pulses, and the firmware's main-loop service."""
        self._advance(self.clock.now())
        self.service(self._now_ms())

    def close(self) -> None:
        """A clean stop: the firmware stores its exact count."""
        self.shutdown()

"""A low-voltage smart meter's readings in Wh, from its properties over a B-route session.

The counters are scaled by the coefficient (0xD3, 1 when the meter refuses it) and the
unit (0xE1), and continued across the wrap at 10**digits counts (0xD7): the energy only
grows. `last_counts` carries the unwrapped counter from one read to the next (and from the
gateway's stored state at start).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.broute import echonet
from gateway.broute.echonet import EchonetError
from gateway.broute.session import BrouteSession
from gateway.errors import BusError

log = logging.getLogger("mlg.gateway.broute")


@dataclass(frozen=True)
class Scale:
    """Wh per count (coefficient × unit) and the counter's modulus (10**digits)."""

    wh_per_count: float
    modulus: int


class BrouteMeter:
    def __init__(self, session: BrouteSession) -> None:
        self.session = session
        self.scale: Scale | None = None
        self.last_counts: int | None = None
        self.refused: set[int] = set()

    def ensure(self) -> Scale:
        """Join if needed; read the scale once per session."""
        self.session.ensure()
        if self.scale is None:
            frame = self.session.get([echonet.COEFFICIENT, echonet.DIGITS, echonet.UNIT])
            values = dict(frame.props)
            coefficient = echonet.coefficient(values[0xD3]) if values.get(0xD3) else 1
            if not values.get(0xD7) or not values.get(0xE1):
                raise BusError("the meter does not serve its digits (0xD7) or unit (0xE1)")
            self.scale = Scale(
                coefficient * echonet.unit_wh(values[0xE1]), 10 ** echonet.digits(values[0xD7])
            )
            log.info(
                "meter scale: %g Wh per count, wraps at %d counts",
                self.scale.wh_per_count,
                self.scale.modulus,
            )
        return self.scale

    def seed(self, energy_wh: float | None) -> None:
        """Continue the counter from a stored energy (Wh) after a restart."""
        if energy_wh is not None and self.scale is not None and self.last_counts is None:
            self.last_counts = round(energy_wh / self.scale.wh_per_count)

    def wh(self, raw: int) -> float:
        """A raw counter (mod 10**digits) as cumulative Wh, continued from the last one."""
        assert self.scale is not None
        counts = echonet.unwrap(raw, self.last_counts, self.scale.modulus)
        if self.last_counts is not None and counts < self.last_counts:
            log.warning("counter went back from %d to %d", self.last_counts, counts)
        self.last_counts = counts if self.last_counts is None else max(counts, self.last_counts)
        return counts * self.scale.wh_per_count

    def energy_wh(self) -> float:
        """Cumulative forward energy now (0xE0), Wh."""
        self.ensure()
        frame = self.session.get([echonet.ENERGY])
        return self.wh(echonet.counts(frame.get(echonet.ENERGY)))

    def fixed_wh(self, edt: bytes | None = None) -> tuple[float, float | None]:
        """The last 30-minute fixed-time reading (0xEA, or an INF's EDT): (UTC s, Wh)."""
        self.ensure()
        if edt is None:
            edt = self.session.get([echonet.FIXED]).get(echonet.FIXED)
        t, raw = echonet.fixed(edt)
        return t, None if raw is None else self.wh(raw)

    def history_raw(self, day: int, now: float) -> list[tuple[float, int | None]]:
        """History day `day` (0xE5 set, 0xE2 read) at `now` (UTC s): (UTC s, raw counter or
        None) × 48, dated by the JST calendar."""
        self.ensure()
        self.session.setc([(echonet.HISTORY_DAY, bytes([day]))])
        edt = self.session.get([echonet.HISTORY]).get(echonet.HISTORY)
        got_day, values = echonet.history(edt)
        if got_day != day:
            raise EchonetError(f"asked for history day {day}, the meter sent day {got_day}")
        return list(zip(echonet.history_times(day, now), values, strict=True))

    def read_all(self) -> dict[str, float | None]:
        """Every reading once, for `mlg-gateway read` (None: the meter refuses it)."""
        scale = self.ensure()
        epcs = [echonet.ENERGY, echonet.ENERGY_REVERSE, echonet.POWER, echonet.CURRENTS]
        frame = self.session.get(epcs)
        values = dict(frame.props)
        out: dict[str, float | None] = dict.fromkeys(
            ("import_energy", "export_energy", "power", "current_r", "current_t")
        )
        if values.get(0xE0):
            out["import_energy"] = echonet.counts(values[0xE0]) * scale.wh_per_count
        if values.get(0xE3):
            out["export_energy"] = echonet.counts(values[0xE3], 0xE3) * scale.wh_per_count
        if values.get(0xE7):
            out["power"] = float(echonet.power_w(values[0xE7]))
        if values.get(0xE8):
            out["current_r"], out["current_t"] = echonet.currents_a(values[0xE8])
        t, fixed = self.fixed_wh()
        out["fixed_energy"] = fixed
        out["fixed_at"] = t
        return out

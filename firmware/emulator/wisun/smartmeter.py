"""An emulated low-voltage smart meter: its ECHONET Lite properties over a load in time.

The cumulative counter is the load's exact energy since `anchor` plus `origin_wh`, in
whole counts of `unit` (0xE1) × `coefficient` (0xD3), modulo 10**digits (0xD7). The
30-minute fixed-time reading (0xEA) is the counter at the last boundary; the history
(0xE2) holds the day chosen with 0xE5 (0 today, JST). Export (0xE3, 0xEB) stays 0.
Properties it does not have are answered Get_SNA (0x52), as a meter does.
"""

from __future__ import annotations

import math

from firmware.emulator.dr import ControlledLoad
from gateway.broute import echonet
from gateway.broute.echonet import Frame
from ledger_node.shared.clock import Clock

VOLTS = 200.0
"""Single-phase three-wire 100/200 V: the currents (0xE8) are the power over 200 V."""


class SmartMeter:
    """The meter object; `answer(frame)` is its reply to one request (None: no reply)."""

    model_name = "broute"

    def __init__(
        self,
        load: ControlledLoad,
        clock: Clock,
        anchor: float,
        origin_wh: float = 0.0,
        unit_code: int = 0x01,
        coefficient: int = 1,
        digits: int = 6,
    ) -> None:
        if unit_code not in echonet.UNITS_KWH or not 1 <= digits <= 8 or coefficient < 1:
            raise ValueError("bad meter scale: unit code, 1..8 digits, coefficient >= 1")
        self.load = load
        self.clock = clock
        self.anchor = anchor
        self.origin_wh = origin_wh
        self.unit_code = unit_code
        self.coefficient = coefficient
        self.digits = digits
        self.wh_per_count = echonet.UNITS_KWH[unit_code] * 1000.0 * coefficient
        self.history_day = 0
        self.requests = 0

    def energy_wh(self, t: float) -> float:
        """Energy consumed by `t` (UTC s), Wh: the ground truth."""
        return self.origin_wh + self.load.energy_wh(self.anchor, t)

    def counter(self, t: float) -> int:
        """The counter at `t`: whole counts, wrapped at 10**digits."""
        counts = math.floor(max(self.energy_wh(t), 0.0) / self.wh_per_count + 1e-9)
        return int(counts % 10**self.digits)

    def last_boundary(self, t: float) -> float:
        return math.floor(t / 1800.0) * 1800.0

    def fixed_edt(self, t: float) -> bytes:
        b = self.last_boundary(t)
        return echonet.encode_fixed(b, self.counter(b))

    def value(self, epc: int, t: float) -> bytes | None:
        """The EDT of `epc` at `t`, or None when the meter has no such property."""
        p = self.load.power_w(t)
        values = {
            echonet.COEFFICIENT: self.coefficient.to_bytes(4, "big"),
            echonet.DIGITS: bytes([self.digits]),
            echonet.UNIT: bytes([self.unit_code]),
            echonet.ENERGY: self.counter(t).to_bytes(4, "big"),
            echonet.ENERGY_REVERSE: bytes(4),
            echonet.POWER: round(p).to_bytes(4, "big", signed=True),
            echonet.CURRENTS: (round(p / VOLTS * 10).to_bytes(2, "big", signed=True)) * 2,
            echonet.FIXED: self.fixed_edt(t),
            echonet.FIXED_REVERSE: echonet.encode_fixed(self.last_boundary(t), 0),
            echonet.HISTORY_DAY: bytes([self.history_day]),
            echonet.HISTORY: self._history(t),
        }
        return values.get(epc)

    def _history(self, t: float) -> bytes:
        times = echonet.history_times(self.history_day, t)
        return echonet.encode_history(
            self.history_day, [self.counter(x) if x <= t else None for x in times]
        )

    def answer(self, request: Frame) -> Frame | None:
        """Get → Get_Res/Get_SNA; SetC of 0xE5 → Set_Res/SetC_SNA; anything else: none."""
        if request.deoj != echonet.SMART_METER:
            return None
        self.requests += 1
        t = self.clock.now()
        props: list[tuple[int, bytes]] = []
        ok = True
        if request.esv == echonet.GET:
            for epc, _ in request.props:
                edt = self.value(epc, t)
                ok = ok and edt is not None
                props.append((epc, edt or b""))
            esv = echonet.GET_RES if ok else echonet.GET_SNA
        elif request.esv == echonet.SETC:
            for epc, edt in request.props:
                good = epc == echonet.HISTORY_DAY and len(edt) == 1 and edt[0] <= 99
                if good:
                    self.history_day = edt[0]
                ok = ok and good
                props.append((epc, b"" if good else edt))
            esv = echonet.SET_RES if ok else echonet.SETC_SNA
        else:
            return None
        return Frame(request.tid, echonet.SMART_METER, request.seoj, esv, tuple(props))

    def notification(self, boundary: float) -> Frame:
        """The INF the meter sends after a 30-minute boundary: 0xEA at `boundary`."""
        edt = echonet.encode_fixed(boundary, self.counter(boundary))
        return Frame(0, echonet.SMART_METER, echonet.CONTROLLER, echonet.INF, ((0xEA, edt),))

    def tick(self) -> None:
        """Nothing between requests: values are computed when asked."""

    def close(self) -> None:
        """Nothing to store."""

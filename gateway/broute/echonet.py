"""ECHONET Lite frames (EHD 0x1081, format 1) and the low-voltage smart meter's properties.

Used by the gateway's B-route driver and by the emulator's meter: one codec for both ends.
The controller is object 0x05FF01, the meter 0x028801. A Get (ESV 0x62) is answered with
Get_Res (0x72), or Get_SNA (0x52) naming the properties the meter cannot serve; SetC
(0x61) with Set_Res (0x71) or SetC_SNA (0x51); the meter announces its 30-minute
fixed-time reading with INF (0x73). Meter time is JST (UTC+9) whatever the host's zone.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

EHD = b"\x10\x81"
CONTROLLER = b"\x05\xff\x01"
SMART_METER = b"\x02\x88\x01"
PORT = 0x0E1A
"""The ECHONET Lite UDP port, 3610."""

GET, GET_RES, GET_SNA = 0x62, 0x72, 0x52
SETC, SET_RES, SETC_SNA = 0x61, 0x71, 0x51
INF, INFC, INFC_RES = 0x73, 0x74, 0x7A

COEFFICIENT, DIGITS, ENERGY, UNIT, ENERGY_REVERSE = 0xD3, 0xD7, 0xE0, 0xE1, 0xE3
HISTORY, HISTORY_DAY, POWER, CURRENTS = 0xE2, 0xE5, 0xE7, 0xE8
FIXED, FIXED_REVERSE = 0xEA, 0xEB

UNITS_KWH = {
    0x00: 1.0,
    0x01: 0.1,
    0x02: 0.01,
    0x03: 0.001,
    0x04: 0.0001,
    0x0A: 10.0,
    0x0B: 100.0,
    0x0C: 1000.0,
    0x0D: 10000.0,
}
"""0xE1: the cumulative energy unit code → kWh per count."""
NO_DATA = 0xFFFFFFFE
"""A history or fixed-time entry the meter has no value for."""
NO_PHASE = 0x7FFE
"""0xE8: the T phase of a two-wire meter."""
JST = dt.timezone(dt.timedelta(hours=9))
HISTORY_POINTS = 48
MAX_FRAME = 1232
"""Largest UDP payload accepted (the dongle's limit); a longer frame is refused unparsed."""


class EchonetError(ValueError):
    """A frame or property value that does not decode (logged and counted by the caller)."""


@dataclass(frozen=True)
class Frame:
    """One ECHONET Lite message: transaction id, source and destination objects, service,
    and the properties (EPC → EDT, empty EDT in a Get)."""

    tid: int
    seoj: bytes
    deoj: bytes
    esv: int
    props: tuple[tuple[int, bytes], ...]

    def encode(self) -> bytes:
        """The frame's bytes."""
        out = bytearray(EHD + self.tid.to_bytes(2, "big") + self.seoj + self.deoj)
        out += bytes([self.esv, len(self.props)])
        for epc, edt in self.props:
            out += bytes([epc, len(edt)]) + edt
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Frame:
        """Parse `data`; `EchonetError` for anything short, long, or not format 1."""
        if len(data) > MAX_FRAME:
            raise EchonetError(f"frame of {len(data)} bytes exceeds {MAX_FRAME}")
        if len(data) < 12 or data[:2] != EHD:
            raise EchonetError(f"not an ECHONET Lite format 1 frame: {data[:12].hex()}")
        opc, cur, props = data[11], 12, []
        for _ in range(opc):
            if cur + 2 > len(data):
                raise EchonetError("frame truncated in its property list")
            epc, pdc = data[cur], data[cur + 1]
            if cur + 2 + pdc > len(data):
                raise EchonetError(f"frame truncated in property 0x{epc:02X}")
            props.append((epc, bytes(data[cur + 2 : cur + 2 + pdc])))
            cur += 2 + pdc
        if cur != len(data):
            raise EchonetError(f"{len(data) - cur} bytes after the last property")
        return cls(int.from_bytes(data[2:4], "big"), data[4:7], data[7:10], data[10], tuple(props))

    def get(self, epc: int) -> bytes:
        """The EDT of `epc`; `EchonetError` if the frame lacks it or it is empty."""
        for e, edt in self.props:
            if e == epc and edt:
                return edt
        raise EchonetError(f"property 0x{epc:02X} missing from the answer (ESV 0x{self.esv:02X})")


def get_request(tid: int, epcs: list[int]) -> bytes:
    """A Get (0x62) from the controller to the meter for `epcs`."""
    return Frame(tid, CONTROLLER, SMART_METER, GET, tuple((e, b"") for e in epcs)).encode()


def set_request(tid: int, props: list[tuple[int, bytes]]) -> bytes:
    """A SetC (0x61) from the controller to the meter."""
    return Frame(tid, CONTROLLER, SMART_METER, SETC, tuple(props)).encode()


# -- property values -------------------------------------------------------------------------
def _int(edt: bytes, size: int, epc: int, signed: bool = False) -> int:
    if len(edt) != size:
        raise EchonetError(f"0x{epc:02X}: want {size} bytes, got {len(edt)}")
    return int.from_bytes(edt, "big", signed=signed)


def coefficient(edt: bytes) -> int:
    """0xD3: the multiplier of the cumulative counts (1 when the meter has none)."""
    value = _int(edt, 4, COEFFICIENT)
    if not 1 <= value <= 999_999:
        raise EchonetError(f"0xD3: coefficient {value} out of 1..999999")
    return value


def digits(edt: bytes) -> int:
    """0xD7: the counter's effective digits; it wraps at 10**digits counts."""
    value = _int(edt, 1, DIGITS)
    if not 1 <= value <= 8:
        raise EchonetError(f"0xD7: {value} effective digits out of 1..8")
    return value


def unit_wh(edt: bytes) -> float:
    """0xE1: Wh per count."""
    code = _int(edt, 1, UNIT)
    if code not in UNITS_KWH:
        raise EchonetError(f"0xE1: unknown unit code 0x{code:02X}")
    return UNITS_KWH[code] * 1000.0


def counts(edt: bytes, epc: int = ENERGY) -> int:
    """0xE0/0xE3: the cumulative counter."""
    value = _int(edt, 4, epc)
    if value > 99_999_999:
        raise EchonetError(f"0x{epc:02X}: counter {value} beyond 8 digits")
    return value


def power_w(edt: bytes) -> int:
    """0xE7: instantaneous power, W (signed: negative when exporting)."""
    return _int(edt, 4, POWER, signed=True)


def currents_a(edt: bytes) -> tuple[float, float | None]:
    """0xE8: R and T phase currents, A (T is None on a two-wire meter)."""
    if len(edt) != 4:
        raise EchonetError(f"0xE8: want 4 bytes, got {len(edt)}")
    r = int.from_bytes(edt[:2], "big", signed=True) / 10.0
    t_raw = int.from_bytes(edt[2:], "big")
    t = None if t_raw == NO_PHASE else int.from_bytes(edt[2:], "big", signed=True) / 10.0
    return r, t


def meter_time(t: float) -> bytes:
    """UTC seconds as the meter's 7-byte date-time (JST)."""
    d = dt.datetime.fromtimestamp(round(t), JST)
    return d.year.to_bytes(2, "big") + bytes([d.month, d.day, d.hour, d.minute, d.second])


def utc_of(edt: bytes) -> float:
    """The meter's 7-byte date-time (JST) as UTC seconds."""
    try:
        d = dt.datetime(
            int.from_bytes(edt[:2], "big"), edt[2], edt[3], edt[4], edt[5], edt[6], tzinfo=JST
        )
    except ValueError as exc:
        raise EchonetError(f"bad meter date-time {edt.hex()}: {exc}") from None
    return d.timestamp()


def fixed(edt: bytes, epc: int = FIXED) -> tuple[float, int | None]:
    """0xEA/0xEB: (UTC s of the 30-minute boundary, counter or None for no data)."""
    if len(edt) != 11:
        raise EchonetError(f"0x{epc:02X}: want 11 bytes, got {len(edt)}")
    value = int.from_bytes(edt[7:], "big")
    return utc_of(edt[:7]), None if value == NO_DATA else value


def encode_fixed(t: float, value: int | None) -> bytes:
    return meter_time(t) + (NO_DATA if value is None else value).to_bytes(4, "big")


def history(edt: bytes) -> tuple[int, list[int | None]]:
    """0xE2: (day: 0 today, 1 yesterday…, 48 half-hourly counters from 00:00 JST)."""
    if len(edt) != 2 + 4 * HISTORY_POINTS:
        raise EchonetError(f"0xE2: want {2 + 4 * HISTORY_POINTS} bytes, got {len(edt)}")
    values: list[int | None] = []
    for i in range(HISTORY_POINTS):
        v = int.from_bytes(edt[2 + 4 * i : 6 + 4 * i], "big")
        values.append(None if v == NO_DATA else v)
    return int.from_bytes(edt[:2], "big"), values


def encode_history(day: int, values: list[int | None]) -> bytes:
    return day.to_bytes(2, "big") + b"".join(
        (NO_DATA if v is None else v).to_bytes(4, "big") for v in values
    )


def history_times(day: int, now: float) -> list[float]:
    """UTC seconds of the 48 entries of history day `day` (0: today in JST) at `now`."""
    today = dt.datetime.fromtimestamp(now, JST).date() - dt.timedelta(days=day)
    midnight = dt.datetime(today.year, today.month, today.day, tzinfo=JST).timestamp()
    return [midnight + 1800.0 * i for i in range(HISTORY_POINTS)]


def unwrap(raw: int, last: int | None, modulus: int) -> int:
    """The counter `raw` (mod `modulus`, 10**digits) continued from `last` (unwrapped): the
    smallest value ≥ `last` with that residue, or `raw` when there is no `last`. A counter
    that went back by less than half the range is returned as is (backwards: the caller's
    plausibility check flags it)."""
    if last is None:
        return raw
    base = last - last % modulus
    value = base + raw
    if value < last and last - value > modulus // 2:
        value += modulus
    return value

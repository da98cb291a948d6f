"""Modbus RTU slave: one unit id over one `RegisterBank`.

Function codes 01 (read coils), 03 (read holding), 04 (read input), 05 (write coil),
06 (write register), 16 (write registers). Frames with a bad CRC or for another unit are
ignored, as the standard says; broadcasts (unit 0) are executed for writes and never
answered. `Framer` cuts the byte stream into frames at 3.5 character times of silence.
"""

from . import ticks
from .compat import const
from .crc import check, crc16
from .registers import (
    COIL,
    HOLDING,
    ILLEGAL_ADDRESS,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    INPUT,
    RegisterBank,
)

_BROADCAST = const(0)
_MAX_READ_REGISTERS = const(125)
_MAX_WRITE_REGISTERS = const(123)
_MAX_READ_COILS = const(2000)
MAX_FRAME = const(256)


def char_time_s(baud: int, bits_per_char: int = 11) -> float:
    """Seconds one character takes on the line (start + 8 data + parity + stop bits)."""
    return bits_per_char / baud


def frame_gap_s(baud: int, bits_per_char: int = 11) -> float:
    """The 3.5-character silence that ends a frame; fixed at 1.75 ms above 19200 baud."""
    if baud > 19200:
        return 0.00175
    return 3.5 * char_time_s(baud, bits_per_char)


class Framer:
    """Cuts received bytes into frames: a frame ends after `gap_us` of silence.

    The caller passes the tick time (µs, `time.ticks_us()` on the board) of each chunk it
    read and polls between reads. A frame longer than `max_frame` is dropped whole and
    counted in `overruns`: no valid frame is that long, so it is noise.
    """

    def __init__(self, gap_us: int, max_frame: int = MAX_FRAME) -> None:
        self.gap_us = gap_us
        self._buf = bytearray(max_frame)
        self._n = 0
        self._overrun = False
        self.last_us = 0  # tick of the last byte received
        self.first_us = 0  # tick of the first byte of the frame being received
        self.overruns = 0

    @property
    def receiving(self) -> bool:
        return self._n > 0 or self._overrun

    def feed(self, data: bytes, now_us: int) -> bytes | None:
        """Take `data` received at `now_us`; return the previous frame if it had ended."""
        done = self.poll(now_us)
        if not self.receiving:
            self.first_us = now_us
        n = self._n
        if self._overrun or n + len(data) > len(self._buf):
            self._overrun = True
            self._n = 0
        else:
            self._buf[n : n + len(data)] = data
            self._n = n + len(data)
        self.last_us = now_us
        return done

    def poll(self, now_us: int) -> bytes | None:
        """The frame received so far, once `gap_us` of silence has followed it; else None."""
        if not self.receiving or ticks.diff(now_us, self.last_us) < self.gap_us:
            return None
        if self._overrun:
            self._overrun = False
            self.overruns += 1
            return None
        frame = bytes(self._buf[: self._n])
        self._n = 0
        return frame


class Slave:
    def __init__(self, unit_id: int, bank: RegisterBank) -> None:
        self.unit_id = unit_id
        self.bank = bank
        self._tx = bytearray(MAX_FRAME)
        self.frames = 0  # frames addressed to us (or broadcast) with a good CRC
        self.crc_errors = 0
        self.exceptions = 0

    def handle(self, frame: bytes) -> memoryview | None:
        """Process one received frame; return the response bytes, or None for no answer."""
        if not check(frame):
            self.crc_errors += 1
            return None
        unit = frame[0]
        if unit not in (self.unit_id, _BROADCAST):
            return None
        self.frames += 1
        fc = frame[1]
        n = len(frame) - 2  # without the CRC
        if fc in (1, 3, 4, 5, 6):
            if n != 6:
                return self._reply_exception(unit, fc, ILLEGAL_VALUE)
            address = (frame[2] << 8) | frame[3]
            value = (frame[4] << 8) | frame[5]
            if fc == 5:
                return self._write_coil(unit, frame, address, value)
            if fc == 6:
                return self._write_registers(unit, frame, address, 1, frame[4:6])
            if unit == _BROADCAST:
                return None  # reads are never broadcast
            return self._read(unit, fc, address, value)
        if fc == 16:
            if n < 7:
                return self._reply_exception(unit, fc, ILLEGAL_VALUE)
            address = (frame[2] << 8) | frame[3]
            count = (frame[4] << 8) | frame[5]
            if not 1 <= count <= _MAX_WRITE_REGISTERS or frame[6] != 2 * count:
                return self._reply_exception(unit, fc, ILLEGAL_VALUE)
            if n != 7 + 2 * count:
                return self._reply_exception(unit, fc, ILLEGAL_VALUE)
            return self._write_registers(unit, frame, address, count, frame[7 : 7 + 2 * count])
        return self._reply_exception(unit, fc, ILLEGAL_FUNCTION)

    def _read(self, unit: int, fc: int, address: int, count: int) -> memoryview | None:
        if fc == 1:
            if not 1 <= count <= _MAX_READ_COILS:
                return self._reply_exception(unit, fc, ILLEGAL_VALUE)
            if self.bank.offset(COIL, address, count) < 0:
                return self._reply_exception(unit, fc, ILLEGAL_ADDRESS)
            nbytes = (count + 7) // 8
            tx = self._tx
            for i in range(nbytes):
                tx[3 + i] = 0
            coils = self.bank.coils
            for i in range(count):
                if coils[address + i]:
                    tx[3 + i // 8] |= 1 << (i % 8)
            return self._finish(unit, fc, nbytes)
        if not 1 <= count <= _MAX_READ_REGISTERS:
            return self._reply_exception(unit, fc, ILLEGAL_VALUE)
        kind = INPUT if fc == 4 else HOLDING
        start = self.bank.offset(kind, address, count)
        if start < 0:
            return self._reply_exception(unit, fc, ILLEGAL_ADDRESS)
        self.bank.refresh()
        src = self.bank.input if kind == INPUT else self.bank.holding
        nbytes = 2 * count
        self._tx[3 : 3 + nbytes] = src[start : start + nbytes]
        return self._finish(unit, fc, nbytes)

    def _finish(self, unit: int, fc: int, nbytes: int) -> memoryview:
        tx = self._tx
        tx[0] = unit
        tx[1] = fc
        tx[2] = nbytes
        return self._seal(3 + nbytes)

    def _write_coil(self, unit: int, frame: bytes, address: int, value: int) -> memoryview | None:
        if value not in (0x0000, 0xFF00):
            return self._reply_exception(unit, 5, ILLEGAL_VALUE)
        if self.bank.offset(COIL, address, 1) < 0:
            return self._reply_exception(unit, 5, ILLEGAL_ADDRESS)
        self.bank.coils[address] = 1 if value else 0
        self.bank.written(COIL, address, 1)
        return self._echo(unit, frame)

    def _write_registers(
        self, unit: int, frame: bytes, address: int, count: int, data: bytes
    ) -> memoryview | None:
        start = self.bank.offset(HOLDING, address, count)
        if start < 0:
            return self._reply_exception(unit, frame[1], ILLEGAL_ADDRESS)
        words = [(data[2 * i] << 8) | data[2 * i + 1] for i in range(count)]
        code = self.bank.check_holding(address, words)
        if code:
            return self._reply_exception(unit, frame[1], code)
        self.bank.holding[start : start + 2 * count] = data
        self.bank.written(HOLDING, address, count)
        return self._echo(unit, frame)

    def _echo(self, unit: int, frame: bytes) -> memoryview | None:
        if unit == _BROADCAST:
            return None
        tx = self._tx
        tx[0:6] = frame[0:6]  # unit, fc, address, value or count
        return self._seal(6)

    def _reply_exception(self, unit: int, fc: int, code: int) -> memoryview | None:
        self.exceptions += 1
        if unit == _BROADCAST:
            return None
        tx = self._tx
        tx[0] = unit
        tx[1] = fc | 0x80
        tx[2] = code
        return self._seal(3)

    def _seal(self, n: int) -> memoryview:
        tx = self._tx
        crc = crc16(tx, n)
        tx[n] = crc & 0xFF
        tx[n + 1] = crc >> 8
        return memoryview(tx)[: n + 2]

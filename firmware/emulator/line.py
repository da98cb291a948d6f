"""The emulator's lines: meters sharing a pseudo-terminal with the timing of a real RS-485
line, or a Modbus TCP port.

A pseudo-terminal moves bytes instantly, so this side supplies the physics: the
firmware's `Framer` ends a frame after 3.5 character times of silence, and an answer is
written only when the request, the turnaround and the answer itself would have taken
their time on the wire. Over TCP (MBAP framing, no CRC) only the turnaround applies.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import socketserver
import struct
import threading
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from firmware import ticks
from firmware.crc import check, crc16
from firmware.emulator.faults import Faults
from firmware.emulator.meter import EastronSlave, EmulatedMeter
from firmware.modbus_rtu import MAX_FRAME, Framer, Slave, char_time_s, frame_gap_s
from firmware.registers import RegisterBank

log = logging.getLogger("mlg.emulator")


@dataclass(frozen=True)
class Framing:
    """Baud rate and character framing, e.g. 9600 8N1, and the device's turnaround."""

    baud: int = 9600
    parity: str = "N"
    stopbits: int = 1
    turnaround_s: float = 0.0

    def __post_init__(self) -> None:
        if not 300 <= self.baud <= 4_000_000 or self.parity not in ("N", "E", "O"):
            raise ValueError(f"bad framing {self.baud} 8{self.parity}{self.stopbits}")
        if self.stopbits not in (1, 2) or self.turnaround_s < 0:
            raise ValueError("stop bits must be 1 or 2 and the turnaround >= 0")

    @property
    def bits_per_char(self) -> int:
        return 1 + 8 + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_s(self) -> float:
        return char_time_s(self.baud, self.bits_per_char)

    @property
    def gap_s(self) -> float:
        return frame_gap_s(self.baud, self.bits_per_char)

    def __str__(self) -> str:
        return f"{self.baud} 8{self.parity}{self.stopbits}"


class Meter(Protocol):
    """What a line needs of a meter besides its registers."""

    @property
    def model_name(self) -> str: ...

    def energy_wh(self, t: float) -> float:
        """Energy consumed (or counted) by time `t` (UTC s), Wh: the ground truth."""
        ...

    def tick(self) -> None:
        """Idle work between requests."""
        ...

    def close(self) -> None:
        """A clean stop."""
        ...


@dataclass
class MeterOnLine:
    """One meter on a line: its unit id, registers, the firmware's slave over them, and
    the faults it shows."""

    line: str
    unit: int
    meter: Meter
    faults: Faults | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.meter, RegisterBank):
            raise TypeError(f"unit {self.unit}: a meter must be a register bank")
        if not 1 <= self.unit <= 247:
            raise ValueError(f"line {self.line}: unit id {self.unit} is not 1..247")
        self.slave = (
            EastronSlave(self.unit, self.meter)
            if isinstance(self.meter, EmulatedMeter)
            else Slave(self.unit, self.meter)
        )


@dataclass(frozen=True)
class Outcome:
    """What goes back on the line for one request: the reply (None: silence), an extra
    delay before it, and noise bytes sent before it."""

    reply: bytes | None
    delay_s: float = 0.0
    noise: bytes = b""


class Station:
    """The meters sharing one line. Every frame is offered to each slave, as on RS-485;
    the addressed meter's faults are drawn for it. Thread-safe."""

    def __init__(self, name: str, meters: Sequence[MeterOnLine]) -> None:
        units = [m.unit for m in meters]
        if len(set(units)) != len(units):
            raise ValueError(f"line {name}: a unit id appears twice")
        self.name = name
        self.meters = list(meters)
        self._lock = threading.Lock()

    def handle(self, frame: bytes) -> Outcome:
        with self._lock:
            target = next((m for m in self.meters if frame and m.unit == frame[0]), None)
            kind = None
            if target is not None and target.faults is not None and check(frame):
                kind = target.faults.draw()
                if kind == "jump" and isinstance(target.meter, EmulatedMeter):
                    target.meter.jump(target.faults.rates.jump_wh)
                elif kind == "reset" and isinstance(target.meter, EmulatedMeter):
                    target.meter.reset_counter()
            reply = None
            for m in self.meters:
                answer = m.slave.handle(frame)
                if answer is not None:
                    reply = bytes(answer)
                    break
            if reply is None or target is None or target.faults is None:
                return Outcome(reply)
            return _with_fault(reply, kind, target.faults)

    def tick(self) -> None:
        with self._lock:
            for m in self.meters:
                m.meter.tick()

    def close(self) -> None:
        with self._lock:
            for m in self.meters:
                m.meter.close()


def _with_fault(reply: bytes, kind: str | None, faults: Faults) -> Outcome:
    if kind == "silent":
        return Outcome(None)
    if kind == "crc":
        return Outcome(reply[:-1] + bytes([reply[-1] ^ 0xFF]))
    if kind == "exception":
        body = bytes([reply[0], reply[1] | 0x80, faults.rates.exception_code])
        crc = crc16(body)
        return Outcome(body + bytes([crc & 0xFF, crc >> 8]))
    if kind == "slow":
        return Outcome(reply, delay_s=faults.rates.slow_s)
    if kind == "garbage":
        return Outcome(reply, noise=faults.noise())
    return Outcome(reply)


# -- pseudo-terminals ----------------------------------------------------------------------
class PtyLine:
    """One end of a pseudo-terminal pair served by Modbus slaves; the other end is `path`."""

    def __init__(self, link: Path | None = None) -> None:
        self.master, self._slave_fd = os.openpty()
        tty.setraw(self._slave_fd)
        os.set_blocking(self.master, False)
        self.device = os.ttyname(self._slave_fd)
        self.link = link
        if link is not None:
            if link.is_symlink():
                link.unlink()
            link.symlink_to(self.device)

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.device

    def close(self) -> None:
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()
        for fd in (self.master, self._slave_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _now_us() -> int:
    return ticks.wrap(int(time.monotonic() * 1_000_000))


def serve(
    line: PtyLine,
    station: Station,
    framing: Framing,
    running: Callable[[], bool],
    idle_s: float = 0.05,
) -> None:
    """Answer requests on `line` until `running()` is false."""
    fd = line.master
    framer = Framer(int(framing.gap_s * 1_000_000), MAX_FRAME)
    started = 0.0  # when the first byte of the frame being received arrived
    while running():
        ready, _, _ = select.select([fd], [], [], framing.gap_s if framer.receiving else idle_s)
        frame_started = started
        if ready:
            try:
                chunk = os.read(fd, MAX_FRAME)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the other end is closed for a moment
                time.sleep(idle_s)
                continue
            was_receiving = framer.receiving
            frame = framer.feed(chunk, _now_us())
            if frame is not None or not was_receiving:
                started = time.monotonic()
        else:
            frame = framer.poll(_now_us())
        if frame is not None:
            _answer(fd, station, framing, frame, frame_started)
        if framer.overruns:
            log.debug("line %s: %d bytes of noise dropped", station.name, framer.overruns)
            framer.overruns = 0


def _answer(fd: int, station: Station, framing: Framing, frame: bytes, started: float) -> None:
    # On a real line the request ends len(frame) characters after its first byte and the
    # device sees the silence after it: it samples its values then.
    heard_at = started + framing.char_s * len(frame) + framing.gap_s
    _sleep_until(heard_at)
    outcome = station.handle(frame)
    if outcome.reply is None:
        return
    at = heard_at + framing.turnaround_s + outcome.delay_s
    if outcome.noise:
        at += framing.char_s * len(outcome.noise)
        _sleep_until(at)
        write_all(fd, outcome.noise)
        at += framing.gap_s
    _sleep_until(at + framing.char_s * len(outcome.reply))
    write_all(fd, outcome.reply)


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def write_all(fd: int, data: bytes, timeout_s: float | None = None) -> None:
    """Write all of `data` to the non-blocking `fd`; with `timeout_s`, give up (the bytes
    are lost, as from an overflowing UART) when nobody reads them for that long."""
    view = memoryview(data)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            if deadline is not None and time.monotonic() > deadline:
                return
            select.select([], [fd], [], 0.1)
            continue
        view = view[n:]


# -- Modbus TCP ----------------------------------------------------------------------------
MBAP = struct.Struct(">HHHB")  # transaction id, protocol id (0), length, unit id
MAX_MBAP_LENGTH = 254  # unit id + a PDU of at most 253 bytes


class TcpLine:
    """A Modbus TCP server for a station's meters (MBAP framing; the unit id selects the
    meter). Listens on `host` (loopback unless configured); port 0 picks a free one."""

    def __init__(self, station: Station, host: str, port: int, turnaround_s: float = 0.0) -> None:
        self.station = station
        self.turnaround_s = turnaround_s
        self.rejected = 0
        line = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                line._serve_connection(self.request)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server((host, port), Handler)
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"mlg-tcp-{station.name}", daemon=True
        )

    @property
    def path(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> TcpLine:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve_connection(self, sock: socket.socket) -> None:
        sock.settimeout(300)
        with contextlib.suppress(OSError):
            while True:
                header = _recv_exact(sock, MBAP.size)
                if header is None:
                    return
                tid, protocol, length, unit = MBAP.unpack(header)
                if protocol != 0 or not 2 <= length <= MAX_MBAP_LENGTH:
                    self.rejected += 1
                    log.warning(
                        "line %s: MBAP header refused (protocol %d, length %d); closing",
                        self.station.name,
                        protocol,
                        length,
                    )
                    return
                pdu = _recv_exact(sock, length - 1)
                if pdu is None:
                    return
                body = bytes([unit]) + pdu
                crc = crc16(body)
                outcome = self.station.handle(body + bytes([crc & 0xFF, crc >> 8]))
                if outcome.reply is None:
                    continue
                time.sleep(self.turnaround_s + outcome.delay_s)
                reply = outcome.reply[1:-2]
                if not check(outcome.reply):  # a CRC fault: TCP has no CRC, garble the PDU
                    reply = reply[:-1] + bytes([reply[-1] ^ 0xFF])
                sock.sendall(outcome.noise + MBAP.pack(tid, 0, len(reply) + 1, unit) + reply)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data

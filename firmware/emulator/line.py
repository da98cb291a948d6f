"""A serial line on a pseudo-terminal, with the timing of a real RS-485 line.

A pseudo-terminal moves bytes instantly, so this side supplies the physics: a frame ends
after 3.5 character times of silence, and an answer is written only when the request,
the turnaround and the answer itself would have taken their time on the wire.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
import tty
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from firmware.modbus_rtu import Slave, char_time_s, frame_gap_s

MAX_FRAME_BYTES = 256


@dataclass(frozen=True)
class Framing:
    """Baud rate and character framing, e.g. 9600 8N1."""

    baud: int = 9600
    parity: str = "N"
    stopbits: int = 1
    turnaround_s: float = 0.0

    @property
    def bits_per_char(self) -> int:
        return 1 + 8 + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_s(self) -> float:
        return char_time_s(self.baud, self.bits_per_char)

    @property
    def gap_s(self) -> float:
        return frame_gap_s(self.baud, self.bits_per_char)


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


def serve(
    line: PtyLine,
    slaves: Sequence[Slave],
    framing: Framing,
    running: Callable[[], bool],
    on_idle: Callable[[], None] = lambda: None,
    idle_s: float = 0.05,
) -> None:
    """Answer requests on `line` until `running()` is false; call `on_idle` in between."""
    fd = line.master
    buf = bytearray()
    first_byte_at = 0.0
    while running():
        timeout = framing.gap_s if buf else idle_s
        ready, _, _ = select.select([fd], [], [], timeout)
        if ready:
            try:
                chunk = os.read(fd, MAX_FRAME_BYTES)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the other end is closed for a moment
                time.sleep(idle_s)
                continue
            if not buf:
                first_byte_at = time.monotonic()
            buf += chunk
            if len(buf) > MAX_FRAME_BYTES:  # garbage: no valid frame is this long
                buf.clear()
            continue
        if not buf:
            on_idle()
            continue
        frame = bytes(buf)
        buf.clear()
        # On a real line the request ends len(frame) characters after its first byte and
        # the device sees the silence after it: it samples its values then.
        heard_at = first_byte_at + framing.char_s * len(frame) + framing.gap_s
        _sleep_until(heard_at)
        for slave in slaves:
            answer = slave.handle(frame)
            if answer is not None:
                reply = bytes(answer)
                _sleep_until(heard_at + framing.turnaround_s + framing.char_s * len(reply))
                _write_all(fd, reply)
                break
        on_idle()


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 0.1)
            continue
        view = view[n:]

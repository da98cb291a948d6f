"""The emulated dongle on a pseudo-terminal: bytes in, its lines out at the serial speed.

A pseudo-terminal moves bytes instantly; here every line the dongle prints is written no
earlier than its real-time delay (the radio, the meter) and no faster than the line's
baud rate allows (10 bits a character), in the order printed, as from a UART.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable

from firmware.emulator.line import PtyLine, write_all
from firmware.emulator.wisun.dongle import EmulatedDongle

log = logging.getLogger("mlg.emulator.wisun")

READ_MAX = 4096


class Outbound:
    """Bytes queued for the host, each with the earliest real time it may start."""

    def __init__(self, baud: int) -> None:
        self.char_s = 10.0 / baud
        self._queue: deque[tuple[float, bytes]] = deque()
        self._last_due = 0.0
        self._free_at = 0.0  # when the line has sent what was written
        self._rx_done = 0.0  # when the bytes from the host have all arrived
        self._lock = threading.Lock()
        self.written = 0
        """Bytes sent to the host so far."""

    def heard(self, n: int) -> None:
        """`n` bytes came from the host: nothing answers them before their last one has
        crossed the line (a pseudo-terminal delivers them at once)."""
        with self._lock:
            now = time.monotonic()
            self._rx_done = max(self._rx_done, now) + self.char_s * n
            self._last_due = max(self._last_due, self._rx_done)

    def emit(self, data: bytes, delay_s: float) -> None:
        with self._lock:  # the dongle acts once the host's last byte is in
            due = max(max(time.monotonic(), self._rx_done) + delay_s, self._last_due)
            self._last_due = due
            self._queue.append((due, data))

    def due(self, now: float) -> tuple[bytes | None, float]:
        """The next bytes ready to write at `now`, or None and the seconds until they are."""
        with self._lock:
            if not self._queue:
                return None, 0.05
            start, data = self._queue[0]
            ready = max(start, self._free_at) + self.char_s * len(data)
            if now < ready:
                return None, ready - now
            self._queue.popleft()
            self._free_at = ready
            self.written += len(data)
            return data, 0.0


def serve_dongle(
    line: PtyLine,
    dongle: EmulatedDongle,
    out: Outbound,
    running: Callable[[], bool],
    lock: threading.Lock,
) -> None:
    """Run `dongle` on `line` until `running()` is false."""
    fd = line.master
    while running():
        data, wait = out.due(time.monotonic())
        if data is not None:
            try:
                write_all(fd, data, timeout_s=1.0)
            except OSError:
                pass  # nobody has the port open: lost, as from a UART
            continue
        ready, _, _ = select.select([fd], [], [], min(wait, 0.02))
        if ready:
            try:
                chunk = os.read(fd, READ_MAX)
            except BlockingIOError:
                continue
            except OSError:  # EIO: the other end is closed for a moment
                time.sleep(0.05)
                continue
            with lock:
                out.heard(len(chunk))
                dongle.feed(chunk)
        with lock:
            dongle.tick()

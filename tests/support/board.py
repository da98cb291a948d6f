"""A MicroPython board without hardware: the real interpreter's REPL (the WebAssembly
port under Node, `tests/mpy/repl.mjs`) behind a pseudo-terminal, which mpremote opens as
it opens a board's USB serial port. Nothing is emulated but the USB wire: the REPL, raw
REPL, filesystem and hashlib are MicroPython's own. A fault on that wire can be asked
for (`Corrupt`): one byte changed on its way to the board, as a bad cable would.
"""

from __future__ import annotations

import os
import pty
import subprocess
import threading
import tty
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Corrupt:
    """Once `after` has gone by on the wire to the board, the next byte `old` becomes
    `new` (once)."""

    after: bytes
    old: int
    new: int
    armed: bool = False
    done: bool = False
    _tail: bytes = b""

    def __call__(self, data: bytes) -> bytes:
        if self.done:
            return data
        start = 0
        if not self.armed:
            seen = self._tail + data
            at = seen.find(self.after)
            self._tail = seen[-(len(self.after) - 1) :]
            if at < 0:
                return data
            self.armed = True
            start = max(0, at + len(self.after) - len(seen) + len(data))
        i = data.find(bytes([self.old]), start)
        if i < 0:
            return data
        self.done = True
        return data[:i] + bytes([self.new]) + data[i + 1 :]


class PtyBoard:
    """`path` is the board's serial port (a /dev/pts/N) while the context is open;
    `sent` counts the bytes the host has sent to the board."""

    def __init__(
        self, files: Sequence[tuple[Path, str]] = (), corrupt: Corrupt | None = None
    ) -> None:
        self.corrupt = corrupt
        self.sent = 0
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.proc = subprocess.Popen(
            ["node", str(ROOT / "tests" / "mpy" / "repl.mjs"), *(f"{h}:{b}" for h, b in files)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
        )
        self._threads = [
            threading.Thread(target=self._to_board, daemon=True),
            threading.Thread(target=self._from_board, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _to_board(self) -> None:
        assert self.proc.stdin is not None
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:
                return
            if not data:
                return
            self.sent += len(data)
            if self.corrupt is not None:
                data = self.corrupt(data)
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                return

    def _from_board(self) -> None:
        assert self.proc.stdout is not None
        while True:
            data = self.proc.stdout.read1(4096)
            if not data:
                return
            try:
                os.write(self.master, data)
            except OSError:
                return

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        os.close(self.slave)
        os.close(self.master)

    def __enter__(self) -> PtyBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

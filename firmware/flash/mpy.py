"""A MicroPython board on its USB serial line, through mpremote's `SerialTransport` (the
library mpremote itself runs on): open the port, take the raw REPL, run small scripts,
hash, write and rename files, and hand the board back with a soft reset.

Every failure becomes a `BoardError` that says what to do. The plain raw REPL is used,
never raw-paste mode: every MicroPython build has it, including the event-driven REPL of
the WebAssembly port the tests run, whose raw-paste mode blocks on input it cannot read;
it costs a few seconds per deployment. On an RP2040 the adapter's watchdog (8 s, which
nothing can stop) keeps running once the loop is interrupted, so the session feeds it
while it works.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import io
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import serial
import serial.tools.list_ports
from mpremote.transport import TransportError, TransportExecError
from mpremote.transport_serial import SerialTransport

from ledger_node.shared.errors import MeterledgerError

log = logging.getLogger("mlg.flash.board")

PICO_VID = 0x2E8A
"""USB vendor id of Raspberry Pi (the Pico's MicroPython enumerates with it)."""
FEED_EVERY_S = 2.0
"""How often the session feeds an RP2040's watchdog (its timeout is 8 s)."""
CHUNK = 256
"""Bytes per raw-REPL write command (mpremote's own default)."""

_IDENTITY = """\
import sys, os
i = sys.implementation
try:
    import machine, binascii
    uid = binascii.hexlify(machine.unique_id()).decode()
except Exception:
    uid = None
try:
    s = os.statvfs('/')
    free = s[0] * s[3]
except Exception:
    free = None
print(repr((sys.platform, getattr(i, '_machine', ''), i.version[:3], uid, free)))
"""


class BoardError(MeterledgerError):
    """The board could not be reached or did not do what it was asked; says what to do."""


@dataclass(frozen=True)
class Identity:
    """What the board says it is."""

    platform: str
    """`sys.platform`: rp2 on a Pico."""
    machine: str
    """`sys.implementation._machine`, e.g. "Raspberry Pi Pico with RP2040"."""
    micropython: str
    """MicroPython's version, e.g. "1.27.0"."""
    unique_id: str | None
    """`machine.unique_id()` in hex (the RP2040's flash id); None without `machine`."""
    free_bytes: int | None
    """Free space on its filesystem, bytes (None when it cannot tell)."""


def find_port(port: str) -> str:
    """`port` itself, or for "auto" the one Raspberry Pi Pico on USB."""
    if port != "auto":
        return port
    found = [str(p.device) for p in serial.tools.list_ports.comports() if p.vid == PICO_VID]
    if len(found) == 1:
        return found[0]
    if not found:
        raise BoardError(
            "no Raspberry Pi Pico on USB (vendor id 2e8a): plug it in (a data cable, not a "
            "charging-only one), or name its port, e.g. /dev/ttyACM0"
        )
    raise BoardError(f"several Picos on USB ({', '.join(found)}): name the one to flash")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


class Board:
    """A session with the board at `port`, in its raw REPL until `close`."""

    def __init__(self, port: str, timeout_s: float) -> None:
        if not os.path.exists(port):
            raise BoardError(
                f"no board at {port}: check the USB cable, then `ls /dev/ttyACM*` (or give `auto`)"
            )
        if not os.access(port, os.R_OK | os.W_OK):
            raise BoardError(
                f"no permission to open {port}: add yourself to its group "
                "(`sudo usermod -aG dialout $USER`, then log in again)"
            )
        self.port = port
        self._fed = 0.0
        self._rp2 = False
        said = io.StringIO()
        try:
            with contextlib.redirect_stdout(said):  # mpremote prints what it could not parse
                # A finite read timeout: on a pseudo-terminal mpremote reads without
                # polling first, and would wait forever for a device that never answers.
                self.transport = SerialTransport(port, baudrate=115200, timeout=timeout_s)
        except TransportError:
            raise BoardError(
                f"cannot open {port}: another program (mpremote, screen, Thonny, a serial "
                "console) may hold it; close it and run again"
            ) from None
        self.transport.use_raw_paste = False
        try:
            with contextlib.redirect_stdout(said):
                self.transport.enter_raw_repl(soft_reset=True, timeout_overall=timeout_s)
        except (TransportError, serial.SerialException, OSError):
            log.debug("the device said: %r", said.getvalue())
            self.transport.close()
            raise BoardError(
                f"the device at {port} did not answer as MicroPython's raw REPL within "
                f"{timeout_s:g} s: is MicroPython on it (hold BOOTSEL while plugging the Pico "
                "in, then copy MicroPython's UF2 to the drive that appears)? Is it the right "
                "port?"
            ) from None
        try:
            self.ident = self._identity()
        except BoardError:
            self.close(restart=False)
            raise

    # -- running code ----------------------------------------------------------------
    def run(self, code: str, what: str) -> bytes:
        """Run `code` on the board; its output. `what` names the step in errors."""
        self.keep_alive()
        try:
            out: bytes = self.transport.exec(code)
        except TransportExecError as exc:
            raise BoardError(f"{what}: the board said: {_last_line(exc.error_output)}") from None
        except (TransportError, serial.SerialException, OSError) as exc:
            raise BoardError(
                f"{what}: the board stopped answering ({exc}): check the cable and run "
                "again (files already verified are skipped)"
            ) from None
        return out

    def eval(self, code: str, what: str) -> Any:
        """The Python literal the last line `code` prints."""
        out = self.run(code, what).decode("utf-8", "replace").strip().splitlines()
        try:
            return ast.literal_eval(out[-1])
        except (IndexError, ValueError, SyntaxError):
            raise BoardError(f"{what}: unexpected answer {out!r}") from None

    def keep_alive(self) -> None:
        """Feed an RP2040's watchdog, at most every `FEED_EVERY_S`."""
        now = time.monotonic()
        if not self._rp2 or now - self._fed < FEED_EVERY_S:
            return
        self._fed = now
        try:
            self.transport.exec("import machine\nmachine.WDT(timeout=8000).feed()")
        except TransportError as exc:
            raise BoardError(f"feeding the board's watchdog: {exc}") from None

    # -- what the board is -----------------------------------------------------------
    def _identity(self) -> Identity:
        platform, mach, version, uid, free = self.eval(_IDENTITY, "reading the board's identity")
        self._rp2 = platform == "rp2"
        self.keep_alive()
        return Identity(platform, mach, ".".join(map(str, version)), uid, free)

    # -- files -----------------------------------------------------------------------
    def sha256(self, path: str) -> str | None:
        """The file's SHA-256 (hex) computed on the board, None when it does not exist."""
        code = (
            "import hashlib\nh = hashlib.sha256()\nb = bytearray(%d)\n"
            "try:\n f = open(%r, 'rb')\nexcept OSError:\n f = None\n"
            "if f:\n while True:\n  n = f.readinto(b)\n  if not n: break\n"
            "  h.update(memoryview(b)[:n])\n f.close()\n"
            "print(repr(h.digest() if f else None))"
        ) % (CHUNK, path)
        digest = self.eval(code, f"hashing {path}")
        return digest.hex() if isinstance(digest, bytes) else None

    def listdir(self, path: str) -> list[tuple[str, bool]] | None:
        """(name, is a folder) of each entry of `path`; None when it does not exist."""
        code = (
            "import os\ntry:\n print(repr([(e[0], e[1] == 0x4000) for e in os.ilistdir(%r)]))\n"
            "except OSError:\n print('None')"
        ) % path
        listing: list[tuple[str, bool]] | None = self.eval(code, f"listing {path}")
        return listing

    def mkdir(self, path: str) -> None:
        self.run("import os\ntry:\n os.mkdir(%r)\nexcept OSError:\n pass" % path, f"mkdir {path}")

    def remove(self, path: str) -> None:
        self.run("import os\nos.remove(%r)" % path, f"removing {path}")

    def rmtree(self, path: str) -> None:
        """Remove the folder `path` and everything in it."""
        for name, folder in self.listdir(path) or []:
            if folder:
                self.rmtree(f"{path}/{name}")
            else:
                self.remove(f"{path}/{name}")
        self.run("import os\nos.rmdir(%r)" % path, f"removing {path}")

    def put(self, path: str, data: bytes) -> None:
        """Write `data` to `path` all at once: to `path.new` first, verified by its SHA-256
        on the board, then renamed over `path`. A copy that arrives changed is removed,
        `path` keeps what it held, and BoardError says so."""
        tmp = path + ".new"
        try:
            self.transport.fs_writefile(
                tmp, data, chunk_size=CHUNK, progress_callback=lambda *_: self.keep_alive()
            )
        except (TransportError, OSError) as exc:
            raise BoardError(
                f"writing {path}: {exc}: check the cable and run again (verified files are skipped)"
            ) from None
        want = hashlib.sha256(data).hexdigest()
        got = self.sha256(tmp)
        if got != want:
            self.remove(tmp)
            raise BoardError(
                f"hash mismatch: {path} arrived changed on the board (sha256 {got} instead "
                f"of {want}); it was not installed. The USB link or the board's flash is "
                "faulty: try another cable or port and run again"
            )
        self.run(
            "import os\ntry:\n os.rename(%r, %r)\nexcept OSError:\n os.remove(%r)\n"
            " os.rename(%r, %r)" % (tmp, path, path, tmp, path),
            f"installing {path}",
        )

    # -- the end ---------------------------------------------------------------------
    def close(self, restart: bool) -> bool:
        """Leave the raw REPL and, with `restart`, soft-reset the board so that its
        main.py starts; whether the board confirmed the restart."""
        confirmed = False
        try:
            self.transport.exit_raw_repl()
            if restart:
                self.transport.serial.write(b"\x04")
                got = self.transport.read_until(1, b"soft reboot\r\n", timeout_overall=5)
                confirmed = got.endswith(b"soft reboot\r\n")
        except (TransportError, serial.SerialException, OSError) as exc:
            log.warning("leaving the board's REPL: %s", exc)
        finally:
            with contextlib.suppress(OSError, serial.SerialException):
                self.transport.close()
        return confirmed

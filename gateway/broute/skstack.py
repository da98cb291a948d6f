"""A Wi-SUN dongle driven with SKSTACK IP text commands over a serial port.

Both dialects: the BP35A1 (and the Tessera RL7023, which speaks it) and the BP35C0/C2,
whose SKSCAN, SKSENDTO, EVENT and ERXUDP lines carry an extra side (and an LQI) field.
Every line the dongle prints is size-limited before it is parsed; a line that does not
parse is counted (`garbled`) and skipped. ERXUDP payloads are read in ASCII hex (`WOPT
01`, set once when `ROPT` says binary: the setting is kept in the dongle's flash). The B-route
ID and password go to the dongle only and are never logged: a logged command is masked.
Times here are real seconds (the serial line's), not the gateway's clock.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass

import serial

from gateway.errors import BusError, PortError

log = logging.getLogger("mlg.gateway.broute")

DIALECTS = ("bp35a1", "bp35c0")
MAX_LINE = 4096
"""Longest line accepted from the dongle (an ERXUDP of the largest frame is ~2.6 kB)."""
SECRET = ("SKSETRBID", "SKSETPWD")


class DongleFail(BusError):
    """The dongle answered FAIL ERnn to a command."""

    def __init__(self, command: str, code: str) -> None:
        super().__init__(f"dongle refused {command.split(maxsplit=1)[0]}: FAIL {code}")
        self.code = code


@dataclass(frozen=True)
class Pan:
    """A beacon found by an active scan."""

    channel: int
    pan_id: int
    mac: str
    lqi: int


@dataclass(frozen=True)
class Udp:
    """One ERXUDP: sender address, ports and payload."""

    src: str
    src_port: int
    dst_port: int
    data: bytes


@dataclass(frozen=True)
class Event:
    """One EVENT line: number (hex, as printed) and sender."""

    num: int
    src: str
    param: int | None = None


def mask(command: str) -> str:
    """`command` as it may be logged: credentials replaced."""
    return command.split(maxsplit=1)[0] + " ****" if command.startswith(SECRET) else command


class Dongle:
    """One dongle on `port` at `baud`, speaking `dialect`."""

    def __init__(self, port: str, baud: int, dialect: str, command_timeout_s: float = 5.0) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dongle dialect must be one of {DIALECTS}")
        self.port = port
        self.baud = baud
        self.dialect = dialect
        self.command_timeout_s = command_timeout_s
        self._ser: serial.Serial | None = None
        self._buf = bytearray()
        self.events: deque[Event] = deque(maxlen=256)
        self.udp: deque[Udp] = deque(maxlen=256)
        self.garbled = 0
        self.reopens = 0

    @property
    def where(self) -> str:
        return self.port

    @property
    def c0(self) -> bool:
        return self.dialect == "bp35c0"

    def open(self) -> None:
        """Open the port (once) and set the dongle up: ASCII payloads."""
        if self._ser is not None:
            return
        try:
            self._ser = serial.Serial(self.port, self.baud, timeout=0.05, write_timeout=2)
        except (serial.SerialException, OSError) as exc:
            raise PortError(f"cannot open the Wi-SUN dongle at {self.port}: {exc}") from None
        self._buf.clear()
        self._write(b"\r\n")
        self._drain(0.2)
        try:
            mode = self.command("ROPT", until="OK")
            if not mode[-1].endswith("01"):
                log.warning("dongle at %s prints UDP payloads in binary: WOPT 01 (kept)", self.port)
                self.command("WOPT 01")
        except DongleFail as exc:
            if exc.code != "ER04":
                raise
            log.info("dongle at %s has no ROPT: assuming ASCII payloads", self.port)

    def close(self) -> None:
        if self._ser is not None:
            try:
                self._ser.close()
            finally:
                self._ser = None

    def reopen(self) -> None:
        self.close()
        self.reopens += 1
        self.open()

    # -- lines ---------------------------------------------------------------------------
    def _write(self, data: bytes) -> None:
        if self._ser is None:
            raise PortError(f"the Wi-SUN dongle at {self.port} is not open")
        try:
            self._ser.write(data)
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise PortError(f"Wi-SUN dongle at {self.port} lost: {exc}") from None

    def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.readline(deadline) is not None:
            pass
        self._buf.clear()

    def readline(self, deadline: float) -> str | None:
        """The next line (without CRLF) before `deadline` (monotonic s), or None."""
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                raw = bytes(self._buf[:end])
                del self._buf[: end + 2]
                try:
                    return raw.decode("ascii")
                except UnicodeDecodeError:
                    self.garbled += 1
                    continue
            if len(self._buf) > MAX_LINE:
                self.garbled += 1
                log.debug("dropping %d bytes without a line end", len(self._buf))
                self._buf.clear()
            if self._ser is None:
                raise PortError(f"the Wi-SUN dongle at {self.port} is not open")
            try:
                waiting = self._ser.in_waiting
                if not waiting and time.monotonic() >= deadline:
                    return None
                chunk = self._ser.read(max(1, waiting))
            except (serial.SerialException, OSError) as exc:
                self.close()
                raise PortError(f"Wi-SUN dongle at {self.port} lost: {exc}") from None
            self._buf += chunk

    def _take(self, line: str) -> bool:
        """Keep an EVENT or ERXUDP line for later; True if it was one."""
        parts = line.split()
        if not parts:
            return False
        try:
            if parts[0] == "EVENT" and len(parts) >= 3:
                num = int(parts[1], 16)
                param = None
                if num == 0x21:
                    param = int(parts[4 if self.c0 else 3], 16)
                self.events.append(Event(num, parts[2], param))
                return True
            if parts[0] == "ERXUDP":
                n = 11 if self.c0 else 9
                if len(parts) != n:
                    raise ValueError(f"{len(parts)} fields")
                data = bytes.fromhex(parts[-1])
                if len(data) != int(parts[-2], 16):
                    raise ValueError("length")
                self.udp.append(Udp(parts[1], int(parts[3], 16), int(parts[4], 16), data))
                return True
        except (ValueError, IndexError):
            self.garbled += 1
            log.debug("garbled %s line skipped", parts[0])
            return True
        return False

    def command(
        self, text: str, until: str = "OK", timeout_s: float | None = None, payload: bytes = b""
    ) -> list[str]:
        """Send `text` (and a binary `payload`); return the lines up to the one starting with
        `until`. `DongleFail` on FAIL, `BusError` when nothing comes in time."""
        log.debug(">>> %s", mask(text))
        self._write(text.encode() + (b" " + payload if payload else b"\r\n"))
        deadline = time.monotonic() + (timeout_s or self.command_timeout_s)
        lines: list[str] = []
        echo = text.split(maxsplit=1)[0]
        while True:
            line = self.readline(deadline)
            if line is None:
                raise BusError(f"dongle at {self.port}: no answer to {echo}")
            if not line or line.startswith(echo) or self._take(line):
                continue
            if line.startswith("FAIL"):
                raise DongleFail(text, line[5:].strip())
            lines.append(line)
            if line.startswith(until):
                return lines

    def pump(self, seconds: float, until_udp: bool = False) -> None:
        """Read lines for `seconds` (or, `until_udp`, until an ERXUDP came), keeping events
        and ERXUDPs."""
        deadline = time.monotonic() + seconds
        while not (until_udp and self.udp):
            line = self.readline(deadline)
            if line is None:
                return
            if line and not self._take(line):
                log.debug("<<< %s (ignored)", line[:80])

    def wait_event(self, nums: set[int], seconds: float) -> Event | None:
        """The first kept or new EVENT among `nums` within `seconds` (others stay kept)."""
        deadline = time.monotonic() + seconds
        while True:
            for ev in list(self.events):
                if ev.num in nums:
                    self.events.remove(ev)
                    return ev
            if time.monotonic() >= deadline:
                return None
            self.pump(min(0.05, max(deadline - time.monotonic(), 0)))

    # -- the commands ---------------------------------------------------------------------
    def set_credentials(self, rbid: str, password: str) -> None:
        self.command(f"SKSETRBID {rbid}")
        self.command(f"SKSETPWD {len(password):X} {password}")

    def scan(self, duration: int = 6) -> Pan | None:
        """Active scan on every channel; the first PAN that answers, or None."""
        self.events.clear()
        side = " 0" if self.c0 else ""
        self.command(f"SKSCAN 2 FFFFFFFF {duration}{side}")
        # 28 channels, each 9.6 ms × (2**duration + 1), and slack.
        deadline = time.monotonic() + 0.0096 * (2**duration + 1) * 28 * 2 + 5
        desc: dict[str, str] = {}
        while True:
            line = self.readline(deadline)
            if line is None:
                raise BusError(f"dongle at {self.port}: scan did not end")
            if line.startswith("EVENT 22"):
                break
            key, sep, value = line.strip().partition(":")
            if sep and line.startswith("  "):
                desc[key] = value
            elif line and not line.startswith("EPANDESC"):
                self._take(line)
        if not {"Channel", "Pan ID", "Addr"} <= desc.keys():
            return None
        try:
            return Pan(
                int(desc["Channel"], 16),
                int(desc["Pan ID"], 16),
                desc["Addr"],
                int(desc.get("LQI", "0"), 16),
            )
        except ValueError:
            self.garbled += 1
            return None

    def link_local(self, mac: str) -> str:
        return self.command(f"SKLL64 {mac}", until="FE80")[-1].strip()

    def join(self, pan: Pan, ip6: str, timeout_s: float = 40.0) -> bool:
        """PANA authentication with the meter: True on EVENT 25, False on EVENT 24."""
        self.command(f"SKSREG S2 {pan.channel:02X}")
        self.command(f"SKSREG S3 {pan.pan_id:04X}")
        self.events.clear()
        self.command(f"SKJOIN {ip6}")
        ev = self.wait_event({0x24, 0x25}, timeout_s)
        if ev is None:
            raise BusError(f"dongle at {self.port}: PANA did not finish in {timeout_s:.0f} s")
        return ev.num == 0x25

    def sendto(self, ip6: str, data: bytes) -> None:
        side = " 0" if self.c0 else ""
        self.command(f"SKSENDTO 1 {ip6} 0E1A 1{side} {len(data):04X}", payload=data)

    def terminate(self) -> None:
        try:
            self.command("SKTERM")
        except BusError as exc:
            log.debug("SKTERM: %s", exc)

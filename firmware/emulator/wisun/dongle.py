"""An emulated Wi-SUN dongle with a smart meter in radio range, driven with SKSTACK IP.

Prints what the ROHM dongles print: the command's echo, `OK` or `FAIL ERnn`, `EVENT nn`
lines, `EPANDESC` blocks, and `ERXUDP` lines (payload in ASCII hex after `WOPT 01`, raw
bytes in the factory setting) — in the BP35A1 dialect, or the BP35C0/C2 one whose
SKSCAN/SKSENDTO take a side and whose EVENT/ERXUDP lines carry side (and LQI) fields.
The meter's beacon answers a scan only with the right B-route ID; PANA (SKJOIN) ends in
EVENT 25 with the right password, EVENT 24 with a wrong one. Faults on demand (each a
rate per occasion): no beacon, PANA refused, re-authentication failing at the session's
expiry, lost UDP answers, garbled lines. Output is queued with a real-time delay; the
line module writes it at the serial line's speed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from firmware.emulator.wisun.smartmeter import SmartMeter
from gateway.broute import echonet
from gateway.broute.echonet import EchonetError, Frame
from ledger_node.shared.clock import Clock

log = logging.getLogger("mlg.emulator.wisun")

DIALECTS = ("bp35a1", "bp35c0")
FAULT_KINDS = ("no_beacon", "pana_refused", "reauth_fail", "lost", "garbled")
MAX_COMMAND = 512
"""Longest command line accepted (SKSENDTO's binary payload comes on top)."""
DONGLE_MAC = "001D129012345678"
METER_MAC = "C0F9450040ABCDEF"
CHANNEL, PAN_ID = 0x21, 0x8888
DEFAULT_ID = "00112233445566778899AABBCCDDEEFF"
DEFAULT_PASSWORD = "0123456789AB"  # noqa: S105 (the emulator's test meter)
"""The emulated meter's B-route ID and password unless others are given (test values)."""


def link_local(mac: str) -> str:
    """The IPv6 link-local address of a MAC (EUI-64, universal/local bit flipped)."""
    b = bytearray.fromhex(mac)
    b[0] ^= 0x02
    groups = [b[i : i + 2].hex().upper() for i in range(0, 8, 2)]
    return "FE80:0000:0000:0000:" + ":".join(groups)


@dataclass(frozen=True)
class WisunFaults:
    """Rates of each fault (0..1) and the timing of the link."""

    rates: dict[str, float] = field(default_factory=dict)
    session_lifetime_s: float = 0.0
    """Emulator-clock seconds a PANA session lasts before the dongle re-authenticates (0:
    for ever)."""
    scan_s: float = 0.2
    """Real seconds a scan takes (a real dongle: ~18 s at duration 6)."""
    latency_s: float = 0.02
    """Real seconds the meter takes to answer, besides the airtime."""
    radio_kbps: float = 100.0
    """The Wi-SUN link's rate: each UDP frame's airtime (with ~60 bytes of headers)."""

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            if kind not in FAULT_KINDS:
                raise ValueError(f"unknown Wi-SUN fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"Wi-SUN fault {kind}: rate must be between 0 and 1")
        if self.session_lifetime_s < 0 or self.scan_s < 0 or self.latency_s < 0:
            raise ValueError("session lifetime, scan time and latency must be >= 0")
        if self.radio_kbps <= 0:
            raise ValueError("the radio rate must be positive")

    def airtime_s(self, payload: int) -> float:
        return (payload + 60) * 8 / (self.radio_kbps * 1000.0)


Emit = Callable[[bytes, float], None]
"""Queue bytes for the host after a real delay (s)."""


class EmulatedDongle:
    def __init__(
        self,
        meter: SmartMeter,
        clock: Clock,
        emit: Emit,
        dialect: str = "bp35c0",
        rbid: str = DEFAULT_ID,
        password: str = DEFAULT_PASSWORD,
        faults: WisunFaults | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if dialect not in DIALECTS:
            raise ValueError(f"dongle dialect must be one of {DIALECTS}")
        self.meter = meter
        self.clock = clock
        self.emit = emit
        self.dialect = dialect
        self.faults = faults or WisunFaults()
        self.rng = rng or random.Random()  # noqa: S311 (fault draws, not secrets)
        self._rbid, self._password = rbid, password
        self._set_id = self._set_pwd = ""
        self.ascii = False  # the factory setting: binary payloads
        self.echo = True
        self.me = link_local(DONGLE_MAC)
        self.peer = link_local(METER_MAC)
        self.joined = False
        self.session_end = 0.0
        self.next_inf = 0.0
        self.counts = dict.fromkeys((*FAULT_KINDS, "scans", "joins", "sent", "answered"), 0)
        self._buf = bytearray()
        self.received = 0
        """Bytes from the host so far."""

    @property
    def c0(self) -> bool:
        return self.dialect == "bp35c0"

    def _side(self) -> str:
        return " 0" if self.c0 else ""

    def _draw(self, kind: str) -> bool:
        if self.rng.random() < self.faults.rates.get(kind, 0.0):
            self.counts[kind] += 1
            return True
        return False

    def _line(self, text: str, delay_s: float = 0.0) -> None:
        data = text.encode() + b"\r\n"
        if self._draw("garbled"):
            cut = self.rng.randrange(1, max(len(data) - 2, 2))
            data = data[:cut] + bytes([self.rng.randrange(0x80, 0x100)]) + data[cut + 1 :]
        self.emit(data, delay_s)

    def _event(self, num: int, delay_s: float = 0.0, param: str = "") -> None:
        addr = self.me if num in (0x20, 0x22) else self.peer
        self._line(f"EVENT {num:02X} {addr}{self._side()}{' ' + param if param else ''}", delay_s)

    # -- input -----------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes from the host: run every complete command."""
        self.received += len(data)
        self._buf += data
        while True:
            if self._buf.startswith(b"SKSENDTO "):
                if not self._sendto():
                    return
                continue
            end = min(
                (i for i in (self._buf.find(b"\r"), self._buf.find(b"\n")) if i >= 0), default=-1
            )
            if end < 0:
                if len(self._buf) > MAX_COMMAND:
                    self._buf.clear()
                    self._line("FAIL ER09")
                return
            raw = bytes(self._buf[:end])
            del self._buf[: end + 1]
            if raw:
                self._command(raw)

    def _sendto(self) -> bool:
        """SKSENDTO handle ip port sec [side] len DATA: False until all of it is here."""
        fields = 7 if self.c0 else 6
        pos, start = -1, 0
        for _ in range(fields):
            pos = self._buf.find(b" ", start)
            if pos < 0 or b"\r" in self._buf[:pos]:
                if pos < 0 and len(self._buf) <= MAX_COMMAND and b"\r" not in self._buf:
                    return False
                self._reject_line()
                return True
            start = pos + 1
        header = self._buf[:pos].decode("ascii", "replace")
        parts = header.split()
        try:
            length = int(parts[-1], 16)
        except ValueError:
            self._reject_line()
            return True
        if len(self._buf) < pos + 1 + length:
            return False
        data = bytes(self._buf[pos + 1 : pos + 1 + length])
        del self._buf[: pos + 1 + length]
        if self._buf.startswith(b"\r\n"):
            del self._buf[:2]
        if self.echo:
            self._line(header + " ")
        self._send_udp(parts, data)
        return True

    def _reject_line(self) -> None:
        end = self._buf.find(b"\r")
        del self._buf[: end + 1 if end >= 0 else len(self._buf)]
        self._line("FAIL ER06")

    # -- commands --------------------------------------------------------------------------
    def _command(self, raw: bytes) -> None:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            self._line("FAIL ER09")
            return
        if self.echo:
            self._line(text)
        parts = text.split()
        name, args = parts[0], parts[1:]
        handler = getattr(self, "_cmd_" + name.lower(), None)
        if handler is None or not name.isalnum():
            self._line("FAIL ER04")
            return
        try:
            handler(args)
        except (ValueError, IndexError):
            self._line("FAIL ER06")

    def _ok(self) -> None:
        self._line("OK")

    def _cmd_skver(self, args: list[str]) -> None:
        self._line("EVER 1.5.2" if self.c0 else "EVER 1.2.10")
        self._ok()

    def _cmd_skappver(self, args: list[str]) -> None:
        self._line("EAPPVER rev26e")
        self._ok()

    def _cmd_skreset(self, args: list[str]) -> None:
        self.joined = False
        self._ok()

    def _cmd_skinfo(self, args: list[str]) -> None:
        side = "0" if self.c0 else "FFFE"
        self._line(f"EINFO {self.me} {DONGLE_MAC} {CHANNEL:02X} {PAN_ID:04X} {side}")
        self._ok()

    def _cmd_ropt(self, args: list[str]) -> None:
        self._line(f"OK {1 if self.ascii else 0:02d}")

    def _cmd_wopt(self, args: list[str]) -> None:
        if args[0] not in ("00", "01"):
            raise ValueError
        self.ascii = args[0] == "01"
        self._ok()

    def _cmd_sksreg(self, args: list[str]) -> None:
        reg, value = args[0].upper(), args[1]
        int(value, 16)
        if reg == "SFE":
            self.echo = value != "0"
        self._ok()

    def _cmd_sksetrbid(self, args: list[str]) -> None:
        self._set_id = args[0]
        self._ok()

    def _cmd_sksetpwd(self, args: list[str]) -> None:
        n = int(args[0], 16)
        if len(args[1]) != n:
            raise ValueError
        self._set_pwd = args[1]
        self._ok()

    def _cmd_skll64(self, args: list[str]) -> None:
        self._line(link_local(args[0]))

    def _cmd_skscan(self, args: list[str]) -> None:
        if len(args) < (4 if self.c0 else 3):
            raise ValueError
        self.counts["scans"] += 1
        self._ok()
        t = self.faults.scan_s
        beacon = self._set_id == self._rbid and not self._draw("no_beacon")
        if beacon:
            self._event(0x20, t / 2)
            lines = [
                "EPANDESC",
                f"  Channel:{CHANNEL:02X}",
                "  Channel Page:09",
                f"  Pan ID:{PAN_ID:04X}",
                f"  Addr:{METER_MAC}",
                "  LQI:E1",
                *(["  Side:0"] if self.c0 else []),
                f"  PairID:{self._rbid[-8:]}",
            ]
            for line in lines:
                self._line(line, t / 2)
        self._event(0x22, t)

    def _cmd_skjoin(self, args: list[str]) -> None:
        if args[0] != self.peer:
            raise ValueError
        self.counts["joins"] += 1
        self._ok()
        self._event(0x21, 0.01, "02")
        good = self._set_id == self._rbid and self._set_pwd == self._password
        if good and not self._draw("pana_refused"):
            self._start_session()
            self._event(0x25, 0.05)
        else:
            self.joined = False
            self._event(0x24, 0.05)

    def _cmd_skterm(self, args: list[str]) -> None:
        self._ok()
        self._event(0x27 if self.joined else 0x28, 0.01)
        self.joined = False

    def _start_session(self) -> None:
        now = self.clock.now()
        self.joined = True
        life = self.faults.session_lifetime_s
        self.session_end = now + life if life else float("inf")
        self.next_inf = self.meter.last_boundary(now) + 1800.0

    # -- UDP -------------------------------------------------------------------------------
    def _send_udp(self, parts: list[str], data: bytes) -> None:
        self.counts["sent"] += 1
        ip, port = parts[2], int(parts[3], 16)
        if not self.joined or ip != self.peer:
            self._event(0x21, 0.01, "01")  # no session: the send fails
            self._ok()
            return
        air = self.faults.airtime_s(len(data))
        self._event(0x21, air, "00")
        self._ok()
        if port != echonet.PORT:
            return
        try:
            request = Frame.decode(data)
        except EchonetError:
            return
        answer = self.meter.answer(request)
        if answer is not None:
            self._udp(answer.encode(), air + self.faults.latency_s)

    def _udp(self, payload: bytes, delay_s: float) -> None:
        if self._draw("lost"):
            return
        self.counts["answered"] += 1
        delay = delay_s + self.faults.airtime_s(len(payload))
        port = f"{echonet.PORT:04X}"
        if self.c0:
            head = (
                f"ERXUDP {self.peer} {self.me} {port} {port} {METER_MAC} E1 1 0 {len(payload):04X} "
            )
        else:
            head = f"ERXUDP {self.peer} {self.me} {port} {port} {METER_MAC} 1 {len(payload):04X} "
        if self.ascii:
            self._line(head + payload.hex().upper(), delay)
        else:
            self.emit(head.encode() + payload + b"\r\n", delay)

    def tick(self) -> None:
        """Time-driven behaviour: the INF after each boundary, the session's expiry."""
        if not self.joined:
            return
        now = self.clock.now()
        if now >= self.next_inf:
            boundary = self.meter.last_boundary(now)
            self.next_inf = boundary + 1800.0
            self._udp(self.meter.notification(boundary).encode(), self.faults.latency_s)
        if now >= self.session_end:
            self._event(0x29)
            if self._draw("reauth_fail"):
                self.joined = False
                self._event(0x24, 0.05)
            else:
                self._start_session()
                self._event(0x25, 0.05)

"""One Wi-SUN line of the emulator: a pseudo-terminal, the dongle on it, the meter behind
it, and the thread that serves them."""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, field
from pathlib import Path

from firmware.emulator.dr import ControlledLoad
from firmware.emulator.line import PtyLine
from firmware.emulator.wisun.dongle import (
    DEFAULT_ID,
    DEFAULT_PASSWORD,
    DIALECTS,
    EmulatedDongle,
    WisunFaults,
)
from firmware.emulator.wisun.line import Outbound, serve_dongle
from firmware.emulator.wisun.smartmeter import SmartMeter
from gateway.broute import echonet
from ledger_node.shared.clock import Clock

log = logging.getLogger("mlg.emulator.wisun")


@dataclass(frozen=True)
class WisunSpec:
    """The dongle's dialect and baud rate, the meter's B-route ID and password, its
    counter's scale (0xE1 unit code, 0xD3 coefficient, 0xD7 digits), the link's faults."""

    dialect: str = "bp35c0"
    baud: int = 115200
    rbid: str = DEFAULT_ID
    password: str = DEFAULT_PASSWORD
    unit_code: int = 0x01
    coefficient: int = 1
    digits: int = 6
    faults: WisunFaults = field(default_factory=WisunFaults)

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"dongle must be one of {', '.join(DIALECTS)}")
        if self.unit_code not in echonet.UNITS_KWH:
            raise ValueError(f"unit code 0x{self.unit_code:02X} is not an 0xE1 code")
        if not 1 <= self.digits <= 8 or not 1 <= self.coefficient <= 999_999:
            raise ValueError("digits must be 1..8 and the coefficient 1..999999")
        if not 1200 <= self.baud <= 921_600:
            raise ValueError("baud rate out of 1200..921600")


@dataclass
class WisunOnLine:
    """The meter as the ground-truth record sees it."""

    line: str
    unit: int
    meter: SmartMeter


class WisunLine:
    def __init__(
        self,
        name: str,
        spec: WisunSpec,
        load: ControlledLoad,
        clock: Clock,
        anchor: float,
        origin_wh: float,
        link: Path | None,
        seed: int,
    ) -> None:
        self.name = name
        self.spec = spec
        self.meter = SmartMeter(
            load, clock, anchor, origin_wh, spec.unit_code, spec.coefficient, spec.digits
        )
        self.out = Outbound(spec.baud)
        self.dongle = EmulatedDongle(
            self.meter,
            clock,
            self.out.emit,
            spec.dialect,
            spec.rbid,
            spec.password,
            spec.faults,
            random.Random(seed),  # noqa: S311 (fault draws, not secrets)
        )
        self.pty = PtyLine(link)
        self.meters = [WisunOnLine(name, 1, self.meter)]
        self._lock = threading.Lock()
        self._running = True
        self._thread: threading.Thread | None = None

    def describe(self) -> str:
        return (
            f"line {self.name}: {self.pty.path} ({self.pty.device}, {self.spec.baud} baud):"
            f" Wi-SUN dongle {self.spec.dialect}, B-route smart meter"
        )

    def start(self) -> None:
        self._thread = threading.Thread(
            target=serve_dongle,
            args=(self.pty, self.dongle, self.out, lambda: self._running, self._lock),
            name=f"mlg-wisun-{self.name}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.pty.close()

    def report(self) -> None:
        shown = ", ".join(f"{k} {v}" for k, v in self.dongle.counts.items() if v) or "nothing"
        log.info("line %s (Wi-SUN): %d meter requests; %s", self.name, self.meter.requests, shown)

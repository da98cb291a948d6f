"""An emulated Wi-SUN dongle and B-route meter served on a real pseudo-terminal in this
process, and the credentials files that go with it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from firmware.emulator.dr import ControlledLoad
from firmware.emulator.profiles import Constant
from firmware.emulator.wisun.dongle import DEFAULT_ID, DEFAULT_PASSWORD, WisunFaults
from firmware.emulator.wisun.station import WisunLine, WisunSpec
from gateway.broute.credentials import Credentials, write_credentials
from ledger_node.shared.clock import Clock

RIGHT = Credentials(DEFAULT_ID, DEFAULT_PASSWORD)
WRONG_PASSWORD = Credentials(DEFAULT_ID, "BA9876543210")


def credentials_file(path: Path, creds: Credentials = RIGHT) -> Path:
    return write_credentials(path, creds)


@contextmanager
def wisun_line(
    clock: Clock,
    dialect: str = "bp35c0",
    watts: float = 1200.0,
    faults: WisunFaults | None = None,
    origin_wh: float = 1_000_000.0,
    seed: int = 1,
    **spec: int,
) -> Iterator[WisunLine]:
    """A dongle and meter on a pseudo-terminal (`line.pty.device`) until the block ends;
    `spec` sets `WisunSpec` fields (unit_code, digits, coefficient, baud)."""
    load = ControlledLoad(Constant(watts), 0.0, (), 9 * 3600.0)
    line = WisunLine(
        "wisun",
        WisunSpec(dialect=dialect, faults=faults or WisunFaults(), **spec),  # type: ignore[arg-type]
        load,
        clock,
        clock.now(),
        origin_wh,
        None,
        seed,
    )
    line.start()
    try:
        yield line
    finally:
        line.close()


class SteppedClock:
    """A clock the test moves (`set`); `wait` waits a moment of real time."""

    def __init__(self, t: float) -> None:
        self.t = t
        self._lock = threading.Lock()

    def set(self, t: float) -> None:
        with self._lock:
            self.t = t

    def now(self) -> float:
        with self._lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        threading.Event().wait(0.01)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(0.01)

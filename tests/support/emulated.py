"""Helpers for the emulator tests: an emulator running in this process, and a clock that
stands still until the test moves it (an injectable `Clock`, as every component takes)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import serial
from pymodbus.client import ModbusSerialClient

from firmware.emulator.config import EmulatorSpec
from firmware.emulator.runner import Emulator
from ledger_node.shared.clock import Clock, FixedClock

T0 = 1_800_000_030.0
"""A fixed instant (UTC s), 30 s into a minute slot."""


class StillClock(FixedClock):
    """Time stands at `t` until the test sets it; `wait` lets the emulator's threads run
    for a moment instead of moving time on."""

    def __init__(self, t: float = T0) -> None:
        super().__init__(t)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(0.01)


@contextmanager
def running(spec: EmulatorSpec, clock: Clock) -> Iterator[Emulator]:
    """The emulator of `spec` serving in threads of this process until the block ends."""
    emulator = Emulator(spec, clock)
    stop = threading.Event()
    ticker = threading.Thread(target=emulator.run_until, args=(stop,), daemon=True)
    emulator.start()
    ticker.start()
    try:
        yield emulator
    finally:
        stop.set()
        ticker.join(timeout=5)
        emulator.close()


def client(device: str, parity: str, baud: int = 9600) -> ModbusSerialClient:
    """pymodbus over `device` at `baud` 8`parity`1.

    A pseudo-terminal has no parity bits, and recent Linux kernels answer EINVAL to a
    `tcsetattr` that asks for parity and changes nothing else. pymodbus opens the port and
    then reconfigures it (its inter-byte timeout), which fails that way at 8E1; so the port
    is opened here with pyserial, framing and timeouts in one call, and handed to pymodbus,
    which then does every transaction.
    """
    c = ModbusSerialClient(port=device, baudrate=baud, parity=parity, timeout=2, retries=1)
    c.socket = serial.Serial(
        device,
        baud,
        parity=parity,
        timeout=2,
        write_timeout=2,
        inter_byte_timeout=c.inter_byte_timeout,
    )
    return c

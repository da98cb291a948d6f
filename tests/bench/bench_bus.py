"""Modbus RTU bus throughput through the emulator's wire timing: pymodbus (the gateway's
library) reading single 2-register values and 80-register blocks over a pseudo-terminal
at 9600 and 19200 baud, against the RTU ceiling for the same framing.

Ceiling (brief, section 4): 11-bit characters (8E1), a 3.5-character gap after every
frame, zero device turnaround. One 2-register read is an 8-byte request and a 9-byte
answer plus two gaps, 24 character times (27.5 ms at 9600 baud); an 80-register block
is 8 + 165 bytes plus two gaps, 180 character times (206 ms at 9600).
"""

from __future__ import annotations

import time

from firmware.emulator.config import EmulatorSpec, LineSpec, MeterSpec
from firmware.emulator.line import Framing, PtyLine
from ledger_node.shared.clock import SystemClock
from tests.bench.result import Figure, Result
from tests.support.emulated import client, running

SECONDS = 3.0
CASES = (
    ("single 2-register reads", 0x0048, 2),
    ("80-register blocks", 0x0000, 80),
)


def _ceiling_per_s(framing: Framing, registers: int) -> float:
    """Reads per second: request, answer and a gap after each, nothing else."""
    return 1.0 / ((8 + 5 + 2 * registers) * framing.char_s + 2 * framing.gap_s)


def run() -> list[Result]:
    results = []
    for baud in (9600, 19200):
        framing = Framing(baud, "E", 1)
        spec = EmulatorSpec(lines=(LineSpec("bench", (MeterSpec(1, "sdm630"),), framing),))
        with running(spec, SystemClock()) as emu:
            endpoint = emu.endpoints[0][1]
            assert isinstance(endpoint, PtyLine)
            modbus = client(endpoint.device, "E", baud)
            try:
                for name, address, count in CASES:
                    modbus.read_input_registers(address, count=count, device_id=1)  # warm up
                    reads = 0
                    started = time.monotonic()
                    while time.monotonic() - started < SECONDS:
                        rr = modbus.read_input_registers(address, count=count, device_id=1)
                        if rr.isError():
                            raise RuntimeError(f"read failed: {rr}")
                        reads += 1
                    rate = reads / (time.monotonic() - started)
                    ceiling = _ceiling_per_s(framing, count)
                    results.append(
                        Result(
                            name=f"bus.{baud}.{'single' if count == 2 else 'block80'}",
                            figures={
                                "reads per second": Figure(rate, "read/s"),
                                "registers per second": Figure(rate * count, "reg/s"),
                            },
                            limit_name=f"RTU ceiling, {framing}",
                            limit=Figure(ceiling, "read/s"),
                            primary="reads per second",
                            goal=0.9,
                            notes=f"{name}, pymodbus over the emulator's wire timing",
                        )
                    )
            finally:
                modbus.close()
    return results

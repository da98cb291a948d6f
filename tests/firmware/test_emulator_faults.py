"""Each fault kind is observable from the client side at its configured rate, and the
client sees exactly the faults the emulator counted.

A plain RTU client (pyserial on the pseudo-terminal) classifies every answer: valid,
silent, bad CRC, exception, noise before a valid frame, slow, an energy value far too
high (jump) or lower than before (counter reset). Over Modbus TCP, pymodbus sees the
exception responses and the silences.
"""

from __future__ import annotations

import math
import struct
import time
from collections import Counter

import pytest
import serial
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from firmware.crc import check, crc16
from firmware.emulator.config import EmulatorSpec, LineSpec, MeterSpec
from firmware.emulator.faults import KINDS, FaultRates
from firmware.emulator.line import Framing, PtyLine
from ledger_node.shared.clock import SystemClock
from tests.support.emulated import running

RATE = 0.04
N = 300
SLOW_S = 0.25
FIRST_BYTE_S = 0.5
QUIET_S = 0.02


def _request(unit: int) -> bytes:
    body = bytes([unit, 4, 0, 0x48, 0, 2])  # import energy, 2 registers
    crc = crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


def _receive(port: serial.Serial) -> tuple[bytes, float]:
    """The bytes answering a request just sent, and when the first arrived (s after)."""
    sent = time.monotonic()
    port.timeout = FIRST_BYTE_S
    data = port.read(1)
    if not data:
        return b"", math.inf
    latency = time.monotonic() - sent
    port.timeout = QUIET_S
    data += port.read(8)
    if len(data) == 9 and check(data):
        return data, latency
    while chunk := port.read(64):  # an exception, a bad CRC or noise: read to the silence
        data += chunk
    return data, latency


def _energy(frame: bytes) -> float:
    value: float = struct.unpack(">f", frame[3:7])[0]
    return value


def test_every_fault_kind_is_seen_by_the_client_at_its_rate() -> None:
    rates = FaultRates(rates=dict.fromkeys(KINDS, RATE), slow_s=SLOW_S, jump_wh=1e7)
    meter = MeterSpec(1, "sdm120", "constant:36000", faults=rates)
    spec = EmulatorSpec(lines=(LineSpec("l", (meter,), Framing(115200)),), seed=20261126)
    seen: Counter[str] = Counter()
    with running(spec, SystemClock()) as emu:
        endpoint = emu.endpoints[0][1]
        assert isinstance(endpoint, PtyLine)
        port = serial.Serial(endpoint.device, 115200, timeout=FIRST_BYTE_S)
        last = None  # the last energy value without a fault, kWh
        try:
            for _ in range(N):
                port.reset_input_buffer()
                port.write(_request(1))
                data, latency = _receive(port)
                if not data:
                    seen["silent"] += 1
                    continue
                if latency >= SLOW_S:
                    seen["slow"] += 1
                if len(data) == 5 and check(data) and data[1] == 0x84:
                    seen["exception"] += 1
                    continue
                if len(data) == 9 and not check(data):
                    seen["crc"] += 1
                    continue
                if len(data) > 9 and check(data[-9:]):
                    seen["garbage"] += 1
                    data = data[-9:]
                assert len(data) == 9 and check(data), data.hex()
                value = _energy(data)
                if last is not None and value > last + 5000:
                    seen["jump"] += 1
                    continue
                if last is not None and value < last:
                    seen["reset"] += 1
                last = value
        finally:
            port.close()
        counts = emu.meters[0].faults.counts  # type: ignore[union-attr]
    for kind in ("silent", "exception", "crc", "garbage", "jump", "reset"):
        assert seen[kind] == counts[kind], f"{kind}: client saw {seen[kind]}, emulator {counts}"
    # A slow answer is late by construction; a loaded machine may delay another one too.
    assert counts["slow"] <= seen["slow"] <= counts["slow"] + 2
    sigma = math.sqrt(N * RATE * (1 - RATE))
    for kind in KINDS:
        assert abs(counts[kind] - N * RATE) <= 4 * sigma, f"{kind}: {counts[kind]} of {N}"
        assert counts[kind] > 0, kind


def test_faults_over_modbus_tcp_seen_by_pymodbus() -> None:
    rates = FaultRates(rates={"exception": 0.3, "silent": 0.2}, exception_code=6)
    meter = MeterSpec(5, "sdm630", "constant:5000", faults=rates)
    spec = EmulatorSpec(lines=(LineSpec("tcp", (meter,), tcp=("127.0.0.1", 0)),), seed=7)
    seen: Counter[str] = Counter()
    with running(spec, SystemClock()) as emu:
        host, port = emu.endpoints[0][1].path.split(":")
        client = ModbusTcpClient(host, port=int(port), timeout=0.3, retries=0)
        assert client.connect()
        try:
            for _ in range(60):
                try:
                    rr = client.read_input_registers(0x34, count=2, device_id=5)
                except ModbusIOException:
                    seen["silent"] += 1
                    client.close()
                    assert client.connect()
                    continue
                if rr.isError():
                    assert rr.exception_code == 6
                    seen["exception"] += 1
                else:
                    assert client.convert_from_registers(
                        rr.registers, client.DATATYPE.FLOAT32
                    ) == pytest.approx(5000.0)
        finally:
            client.close()
        counts = emu.meters[0].faults.counts  # type: ignore[union-attr]
    assert seen["exception"] == counts["exception"] > 0
    assert seen["silent"] == counts["silent"] > 0

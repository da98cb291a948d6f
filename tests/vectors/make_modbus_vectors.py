"""Write the Modbus RTU known-answer vectors in tests/vectors/modbus/.

Run from the repository root: `.venv/bin/python tests/vectors/make_modbus_vectors.py`.
Every frame (requests, answers, exception answers) is built by pymodbus, the gateway's
library, from the register contents and behaviour the firmware specifies, so the
vectors are an independent statement of what the firmware must answer; only deliberately
malformed frames are assembled by hand (with pymodbus's CRC). The firmware's slave must
reproduce each answer byte for byte, under MicroPython and under CPython
(tests/mpy/fw_vectors.py).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU
from pymodbus.pdu.bit_message import (
    ReadCoilsRequest,
    ReadCoilsResponse,
    WriteSingleCoilRequest,
    WriteSingleCoilResponse,
)
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)

OUT = Path(__file__).parent / "modbus"
UNIT = 17
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE = 1, 2, 3

_FRAMER = FramerRTU(DecodePDU(False))


def frame(pdu: ModbusPDU) -> str:
    return _FRAMER.buildFrame(pdu).hex()


def raw(body: bytes) -> str:
    """A hand-made frame: `body` with its CRC (low byte first)."""
    return (body + FramerRTU.compute_CRC(body).to_bytes(2, "big")).hex()


def exception(fc: int, code: int, unit: int = UNIT) -> str:
    return frame(ExceptionResponse(fc, code, device_id=unit))


def case(name: str, request: str, response: str = "", note: str = "") -> dict[str, str]:
    out = {"name": name, "request": request, "response": response}
    if note:
        out["note"] = note
    return out


def f32(value: float) -> list[int]:
    """float32 big-endian, high word first, as the SDM120 and the adapter store it."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


# -- the Modbus slave over a plain register bank ------------------------------------------
INPUT = [0x4366, 0x8000, 0x0000, 0x0001, 0xFFFF, 0x1234, 0xABCD, 0x0042]
HOLDING = [0x0001, 0x0060, 0x0000, 0x03E8]
COILS = [1, 0, 1, 1, 0, 0, 0, 0, 1, 1]


def slave_cases() -> list[dict[str, str]]:
    u = UNIT
    cases = [
        case(
            "read input registers",
            frame(ReadInputRegistersRequest(dev_id=u, address=0, count=8)),
            frame(ReadInputRegistersResponse(dev_id=u, registers=INPUT)),
        ),
        case(
            "read one input register in the middle",
            frame(ReadInputRegistersRequest(dev_id=u, address=5, count=1)),
            frame(ReadInputRegistersResponse(dev_id=u, registers=INPUT[5:6])),
        ),
        case(
            "read holding registers",
            frame(ReadHoldingRegistersRequest(dev_id=u, address=1, count=3)),
            frame(ReadHoldingRegistersResponse(dev_id=u, registers=HOLDING[1:4])),
        ),
        case(
            "read coils, 10 bits in 2 bytes",
            frame(ReadCoilsRequest(dev_id=u, address=0, count=10)),
            frame(ReadCoilsResponse(dev_id=u, bits=[bool(c) for c in COILS])),
        ),
        case(
            "write single coil on",
            frame(WriteSingleCoilRequest(dev_id=u, address=1, bits=[True])),
            frame(WriteSingleCoilResponse(dev_id=u, address=1, bits=[True])),
        ),
        case(
            "the coil reads back on",
            frame(ReadCoilsRequest(dev_id=u, address=0, count=3)),
            frame(ReadCoilsResponse(dev_id=u, bits=[True, True, True])),
        ),
        case(
            "write single coil off",
            frame(WriteSingleCoilRequest(dev_id=u, address=0, bits=[False])),
            frame(WriteSingleCoilResponse(dev_id=u, address=0, bits=[False])),
        ),
        case(
            "write single register",
            frame(WriteSingleRegisterRequest(dev_id=u, address=2, registers=[0xBEEF])),
            frame(WriteSingleRegisterResponse(dev_id=u, address=2, registers=[0xBEEF])),
        ),
        case(
            "write multiple registers",
            frame(WriteMultipleRegistersRequest(dev_id=u, address=0, registers=[7, 8])),
            frame(WriteMultipleRegistersResponse(dev_id=u, address=0, count=2)),
        ),
        case(
            "the writes read back",
            frame(ReadHoldingRegistersRequest(dev_id=u, address=0, count=4)),
            frame(ReadHoldingRegistersResponse(dev_id=u, registers=[7, 8, 0xBEEF, 0x03E8])),
        ),
        case(
            "broadcast write register: executed, never answered",
            frame(WriteSingleRegisterRequest(dev_id=0, address=3, registers=[0x0320])),
        ),
        case(
            "broadcast write coil: executed, never answered",
            frame(WriteSingleCoilRequest(dev_id=0, address=9, bits=[False])),
        ),
        case(
            "the broadcast writes read back",
            frame(ReadHoldingRegistersRequest(dev_id=u, address=3, count=1)),
            frame(ReadHoldingRegistersResponse(dev_id=u, registers=[0x0320])),
        ),
        case(
            "the broadcast coil reads back",
            frame(ReadCoilsRequest(dev_id=u, address=8, count=2)),
            frame(ReadCoilsResponse(dev_id=u, bits=[True, False])),
        ),
        case(
            "broadcast read: never answered",
            frame(ReadInputRegistersRequest(dev_id=0, address=0, count=2)),
        ),
        case(
            "broadcast with an illegal function: never answered",
            raw(bytes([0, 0x2B, 0x0E, 0x01, 0x00])),
        ),
        case(
            "another unit: ignored",
            frame(ReadInputRegistersRequest(dev_id=u + 1, address=0, count=2)),
        ),
        case(
            "bad CRC: ignored",
            frame(ReadInputRegistersRequest(dev_id=u, address=0, count=2))[:-2] + "00",
        ),
        case(
            "truncated frame: ignored",
            frame(ReadInputRegistersRequest(dev_id=u, address=0, count=2))[:-4],
        ),
        case("too short to be a frame: ignored", "11"),
        case(
            "illegal function 0x2B",
            raw(bytes([u, 0x2B, 0x0E, 0x01, 0x00])),
            exception(0x2B, ILLEGAL_FUNCTION),
        ),
        case(
            "illegal function 0x02 (discrete inputs)",
            raw(bytes([u, 0x02, 0, 0, 0, 1])),
            exception(0x02, ILLEGAL_FUNCTION),
        ),
        case(
            "read past the input registers",
            frame(ReadInputRegistersRequest(dev_id=u, address=7, count=2)),
            exception(0x04, ILLEGAL_ADDRESS),
        ),
        case(
            "read at address 0xFFFF",
            frame(ReadHoldingRegistersRequest(dev_id=u, address=0xFFFF, count=1)),
            exception(0x03, ILLEGAL_ADDRESS),
        ),
        case(
            "read coils past the end",
            frame(ReadCoilsRequest(dev_id=u, address=9, count=2)),
            exception(0x01, ILLEGAL_ADDRESS),
        ),
        case(
            "write a coil past the end",
            frame(WriteSingleCoilRequest(dev_id=u, address=10, bits=[True])),
            exception(0x05, ILLEGAL_ADDRESS),
        ),
        case(
            "write a register past the end",
            frame(WriteSingleRegisterRequest(dev_id=u, address=4, registers=[1])),
            exception(0x06, ILLEGAL_ADDRESS),
        ),
        case(
            "read zero registers",
            raw(bytes([u, 0x04, 0, 0, 0, 0])),
            exception(0x04, ILLEGAL_VALUE),
        ),
        case(
            "read 126 registers (the limit is 125)",
            raw(bytes([u, 0x03, 0, 0, 0, 126])),
            exception(0x03, ILLEGAL_VALUE),
        ),
        case(
            "write coil with a value other than 0x0000 or 0xFF00",
            raw(bytes([u, 0x05, 0, 0, 0x12, 0x34])),
            exception(0x05, ILLEGAL_VALUE),
        ),
        case(
            "write multiple registers, byte count disagrees with count",
            raw(bytes([u, 0x10, 0, 0, 0, 2, 3, 0, 1, 0])),
            exception(0x10, ILLEGAL_VALUE),
        ),
        case(
            "write multiple registers, frame shorter than its byte count",
            raw(bytes([u, 0x10, 0, 0, 0, 2, 4, 0, 1])),
            exception(0x10, ILLEGAL_VALUE),
        ),
        case(
            "read request with trailing bytes",
            raw(bytes([u, 0x04, 0, 0, 0, 1, 0])),
            exception(0x04, ILLEGAL_VALUE),
        ),
    ]
    return cases


# -- the adapter firmware: its register map and the checks on its holding registers -------
ADAPTER_UNIT = 1


def adapter_cases() -> list[dict[str, str]]:
    """A fresh adapter (no counter or settings file), its clock standing still."""
    u = ADAPTER_UNIT
    missing, relay_on = 0x0001, 0x0040
    return [
        case(
            "default settings: unit 1, 9600 baud, no parity, 1000 pulses/kWh, 10 ms, 0 Wh",
            frame(ReadHoldingRegistersRequest(dev_id=u, address=0, count=7)),
            frame(ReadHoldingRegistersResponse(dev_id=u, registers=[1, 96, 0, 1000, 10, 0, 0])),
        ),
        case(
            "status: no counter file was found at boot",
            frame(ReadInputRegistersRequest(dev_id=u, address=0x0180, count=1)),
            frame(ReadInputRegistersResponse(dev_id=u, registers=[missing])),
        ),
        case(
            "set the count to the meter's display, 1234 Wh",
            frame(WriteMultipleRegistersRequest(dev_id=u, address=5, registers=[0, 1234])),
            frame(WriteMultipleRegistersResponse(dev_id=u, address=5, count=2)),
        ),
        case(
            "SDM120 import energy register, kWh float32",
            frame(ReadInputRegistersRequest(dev_id=u, address=0x0048, count=2)),
            frame(ReadInputRegistersResponse(dev_id=u, registers=f32(1.234))),
        ),
        case(
            "SDM120 power register: 0 W before two pulses",
            frame(ReadInputRegistersRequest(dev_id=u, address=0x000C, count=2)),
            frame(ReadInputRegistersResponse(dev_id=u, registers=f32(0.0))),
        ),
        case(
            "set the count below the present one: refused, never backwards",
            frame(WriteMultipleRegistersRequest(dev_id=u, address=5, registers=[0, 1000])),
            exception(0x10, ILLEGAL_VALUE, u),
        ),
        case(
            "half of the energy register: refused",
            frame(WriteSingleRegisterRequest(dev_id=u, address=6, registers=[2000])),
            exception(0x06, ILLEGAL_VALUE, u),
        ),
        case(
            "unit id 248: refused",
            frame(WriteSingleRegisterRequest(dev_id=u, address=0, registers=[248])),
            exception(0x06, ILLEGAL_VALUE, u),
        ),
        case(
            "9700 baud: refused",
            frame(WriteSingleRegisterRequest(dev_id=u, address=1, registers=[97])),
            exception(0x06, ILLEGAL_VALUE, u),
        ),
        case(
            "parity 3: refused",
            frame(WriteSingleRegisterRequest(dev_id=u, address=2, registers=[3])),
            exception(0x06, ILLEGAL_VALUE, u),
        ),
        case(
            "0 pulses per kWh: refused",
            frame(WriteSingleRegisterRequest(dev_id=u, address=3, registers=[0])),
            exception(0x06, ILLEGAL_VALUE, u),
        ),
        case(
            "a block write with one bad value changes nothing",
            frame(WriteMultipleRegistersRequest(dev_id=u, address=3, registers=[800, 31])),
            exception(0x10, ILLEGAL_VALUE, u),
        ),
        case(
            "800 pulses per kWh",
            frame(WriteSingleRegisterRequest(dev_id=u, address=3, registers=[800])),
            frame(WriteSingleRegisterResponse(dev_id=u, address=3, registers=[800])),
        ),
        case(
            "settings read back; the count is kept across the new pulse value",
            frame(ReadHoldingRegistersRequest(dev_id=u, address=0, count=7)),
            frame(ReadHoldingRegistersResponse(dev_id=u, registers=[1, 96, 0, 800, 10, 0, 1234])),
        ),
        case(
            "DR relay on (coil 0)",
            frame(WriteSingleCoilRequest(dev_id=u, address=0, bits=[True])),
            frame(WriteSingleCoilResponse(dev_id=u, address=0, bits=[True])),
        ),
        case(
            "status shows the relay",
            frame(ReadInputRegistersRequest(dev_id=u, address=0x0180, count=1)),
            frame(ReadInputRegistersResponse(dev_id=u, registers=[missing | relay_on])),
        ),
        case(
            "there is no coil 1",
            frame(WriteSingleCoilRequest(dev_id=u, address=1, bits=[True])),
            exception(0x05, ILLEGAL_ADDRESS, u),
        ),
        case(
            "read past the adapter's input registers",
            frame(ReadInputRegistersRequest(dev_id=u, address=0x0186, count=3)),
            exception(0x04, ILLEGAL_ADDRESS, u),
        ),
        case(
            "DR relay off",
            frame(WriteSingleCoilRequest(dev_id=u, address=0, bits=[False])),
            frame(WriteSingleCoilResponse(dev_id=u, address=0, bits=[False])),
        ),
        case(
            "coil 0 reads back off",
            frame(ReadCoilsRequest(dev_id=u, address=0, count=1)),
            frame(ReadCoilsResponse(dev_id=u, bits=[False])),
        ),
    ]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    suites: dict[str, dict[str, Any]] = {
        "slave.json": {
            "description": "The Modbus RTU slave over a plain register bank, cases in order"
            " (writes change what later reads see).",
            "unit": UNIT,
            "bank": {"input": INPUT, "holding": HOLDING, "coils": COILS},
            "cases": slave_cases(),
        },
        "adapter.json": {
            "description": "The adapter firmware from a fresh flash (no counter or settings"
            " file), its clock standing still; cases in order.",
            "unit": ADAPTER_UNIT,
            "cases": adapter_cases(),
        },
    }
    for name, suite in suites.items():
        suite["generated_by"] = "tests/vectors/make_modbus_vectors.py (frames built by pymodbus)"
        (OUT / name).write_text(json.dumps(suite, indent=1) + "\n")
        print(f"wrote {OUT / name}: {len(suite['cases'])} cases")


if __name__ == "__main__":
    main()

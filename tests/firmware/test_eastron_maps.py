"""The Eastron register maps as the emulator serves them, read by an independent client:
pymodbus's own requests and decoders against the TOML tables parsed with `tomllib` (not the
gateway's table loader, planner or driver), over a real pseudo-terminal at 9600 8N1.

Every register of each model's table answers with the datasheet's type and a value within
its plausible range, the values are consistent with each other, an address the model does
not have (or part of a float) gets exception 02, a read over the model's limit exception
03, and the gateway's block plan stays within that limit and is answered whole.
"""

from __future__ import annotations

import math
import struct
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from pymodbus.client import ModbusSerialClient

from firmware.emulator.config import EmulatorSpec, LineSpec, MeterSpec
from firmware.emulator.line import PtyLine
from firmware.emulator.meter import EmulatedMeter
from gateway.bus import ModbusBus
from gateway.config import BusConfig
from gateway.meters import MeterDriver, load_model, plan_blocks
from tests.firmware.conftest import ROOT, f32
from tests.support.emulated import StillClock, client, running

MODELS = ("sdm120", "sdm630", "sdm72", "sdm230")
UNITS = {name: n for n, name in enumerate(MODELS, start=1)}


def _table(model: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / "gateway" / "meters" / f"{model}.toml").read_text())


@pytest.fixture(scope="module")
def line() -> Iterator[tuple[ModbusSerialClient, StillClock, dict[int, EmulatedMeter], str]]:
    clock = StillClock()
    meters = tuple(
        MeterSpec(UNITS[m], m, "household:9000", energy_start_wh=12_345_678.0) for m in MODELS
    )
    spec = EmulatorSpec(lines=(LineSpec("rs485", meters),))
    with running(spec, clock) as emu:
        clock.t += 3 * 3600.0 + 17.0  # three hours of load: demand and maxima are set
        endpoint = emu.endpoints[0][1]
        assert isinstance(endpoint, PtyLine)
        modbus = client(endpoint.device, "N")
        by_unit = {m.unit: m.meter for m in emu.meters}
        assert all(isinstance(m, EmulatedMeter) for m in by_unit.values())
        try:
            yield modbus, clock, by_unit, endpoint.device  # type: ignore[misc]
        finally:
            modbus.close()


def _read(modbus: ModbusSerialClient, unit: int, table: str, address: int, count: int) -> Any:
    fn = modbus.read_input_registers if table == "input" else modbus.read_holding_registers
    return fn(address, count=count, device_id=unit)


@pytest.mark.parametrize("model", MODELS)
def test_every_register_reads_with_its_type_within_its_range(
    model: str, line: tuple[ModbusSerialClient, StillClock, dict[int, EmulatedMeter], str]
) -> None:
    modbus, clock, meters, _ = line
    unit = UNITS[model]
    doc = _table(model)
    meter = meters[unit]
    want = {**meter.quantities(clock.now()), **meter.holding_values(clock.now())}
    got: dict[str, float] = {}
    for row in doc["registers"]:
        table = row.get("table", doc["table"])
        rr = _read(modbus, unit, table, row["address"], row["words"])
        assert not rr.isError(), f"{model} {row['name']}: {rr}"
        assert len(rr.registers) == row["words"]
        kind = ModbusSerialClient.DATATYPE[row["type"].upper()]
        value = ModbusSerialClient.convert_from_registers(rr.registers, kind)
        assert isinstance(value, float if row["type"] == "float32" else int), row["name"]
        assert math.isfinite(value), row["name"]
        scaled = value * row["scale"]
        assert row.get("min", -math.inf) <= scaled <= row.get("max", math.inf), (
            f"{model} {row['name']} = {scaled} {row['unit']}"
        )
        raw = want[row["name"]] / row["scale"]
        assert value == (f32(raw) if row["type"] == "float32" else round(raw)), row["name"]
        got[row["name"]] = scaled
    _consistent(model, got, unit)


def _close(a: float, b: float, magnitude: float) -> bool:
    """Equal within float32 rounding of values of about `magnitude`."""
    return abs(a - b) <= 4 * magnitude * 2**-23


def _consistent(model: str, q: dict[str, float], unit: int) -> None:
    phases = ["_l1", "_l2", "_l3"] if "voltage_l3" in q else [""]
    for ph in phases:
        v, i, p, pf = (q[f"{k}{ph}"] for k in ("voltage", "current", "power", "power_factor"))
        assert _close(p, v * i * pf, p), (model, ph)
        assert 200 < v < 260 and 0 < pf <= 1
    assert _close(q["total_energy"], q["import_energy"] + q["export_energy"], q["total_energy"])
    assert q["node"] == unit and q["baud_rate"] == 2 and q["parity_stop"] == 0
    if len(phases) == 3:
        assert _close(q["power"], sum(q[f"power{ph}"] for ph in phases), q["power"])
        assert all(q[f"voltage_{a}_{b}"] > 380 for a, b in (("l1", "l2"), ("l2", "l3")))
    if "import_energy_l1" in q:
        parts = sum(q[f"import_energy{ph}"] for ph in phases)
        assert _close(parts, q["import_energy"], q["import_energy"])
    if "net_energy" in q:
        assert q["net_energy"] == q["import_energy"] - q["export_energy"]
    if "total_energy_t1" in q:
        assert q["total_energy_t1"] + q["total_energy_t2"] == q["total_energy"]
    if "power_demand" in q:
        assert q["power_demand_max"] >= q["power_demand"] > 0
    assert q.get("demand_time", 60) == 60  # three hours in: a whole demand period


def _unmodelled(doc: dict[str, Any], table: str) -> list[tuple[int, int]]:
    """Reads that touch an address the model does not have: a gap, past the map, half a
    float, a read ending inside a float."""
    rows = [r for r in doc["registers"] if r.get("table", doc["table"]) == table]
    used = {r["address"] + k for r in rows for k in range(r["words"])}
    gap = next(a for a in range(0, 0x10000, 2) if a not in used and a + 1 not in used)
    last = max(r["address"] + r["words"] for r in rows)
    floats = [r for r in rows if r["type"] == "float32"]
    first = floats[0]["address"]
    return [(gap, 2), (last, 2), (first + 1, 2), (first, 1), (first, 3)]


@pytest.mark.parametrize("model", MODELS)
def test_an_address_the_model_does_not_have_gets_exception_02(
    model: str, line: tuple[ModbusSerialClient, StillClock, dict[int, EmulatedMeter], str]
) -> None:
    modbus, _, _, _ = line
    unit = UNITS[model]
    doc = _table(model)
    for table in ("input", "holding"):
        for address, count in _unmodelled(doc, table):
            rr = _read(modbus, unit, table, address, count)
            assert rr.isError(), f"{model} {table} {address:#06x}+{count} answered"
            assert rr.exception_code == 2, (table, address, count)
    # More registers than the meter allows in one read: exception 03.
    rr = _read(modbus, unit, "input", 0, doc["max_block"] + 2)
    assert rr.isError() and rr.exception_code == 3


def test_reserved_registers_inside_a_read_are_zero_and_settings_take_writes(
    line: tuple[ModbusSerialClient, StillClock, dict[int, EmulatedMeter], str],
) -> None:
    modbus, _, meters, _ = line
    unit = UNITS["sdm630"]
    rr = _read(modbus, unit, "input", 0x002A, 6)  # average volts, reserved 0x2C-0x2D, 0x2E
    assert not rr.isError() and rr.registers[2:4] == [0, 0] and rr.registers[0:2] != [0, 0]

    def words(value: float) -> list[int]:
        raw = struct.pack(">f", value)
        return [int.from_bytes(raw[:2], "big"), int.from_bytes(raw[2:], "big")]

    # A setting within its range is kept (and used: the demand period), one outside it, or
    # a read-only one, is refused with 03 and changes nothing.
    assert not modbus.write_registers(0x0002, words(15.0), device_id=unit).isError()
    assert meters[unit].settings["demand_period"] == 15.0
    for address, value in ((0x0002, 61.0), (0x0002, math.nan), (0x000A, 4.0)):
        rr = modbus.write_registers(address, words(value), device_id=unit)
        assert rr.isError() and rr.exception_code == 3
    rr = modbus.write_registers(0xFC00, [0, 1], device_id=unit)  # the serial number
    assert rr.isError() and rr.exception_code == 3
    rr = modbus.write_registers(0x0004, words(1.0), device_id=unit)  # reserved
    assert rr.isError() and rr.exception_code == 2
    assert meters[unit].settings["demand_period"] == 15.0
    assert not modbus.write_registers(0x0002, words(60.0), device_id=unit).isError()


@pytest.mark.parametrize("model", MODELS)
def test_the_block_plan_respects_each_models_read_limit_and_is_answered_whole(
    model: str, line: tuple[ModbusSerialClient, StillClock, dict[int, EmulatedMeter], str]
) -> None:
    modbus, _, _, device = line
    table = load_model(model)
    doc = _table(model)
    assert table.max_block == doc["max_block"] <= 80
    blocks = plan_blocks(table.registers, table.max_block)
    assert all(b.count <= doc["max_block"] for b in blocks)
    assert all({r.table for r in b.registers} == {b.table} for b in blocks)
    modbus.close()  # the gateway's own bus takes the line for a moment
    bus = ModbusBus(BusConfig(name="b", port=device, baud=9600, timeout_s=2.0))
    try:
        driver = MeterDriver(table)
        values = driver.read(bus, UNITS[model])
    finally:
        bus.close()
        modbus.connect()
    assert set(values) == {r.name for r in table.registers}
    assert driver.refused == set() and driver.blocks == blocks  # no read was refused


def test_float32_energy_steps() -> None:
    """The README's figure: above 8,192 kWh a float32 kWh register moves in steps of
    2**-10 kWh = 0.9765625 Wh, above 16,384 kWh in 1.953125 Wh."""

    def step_wh(kwh: float) -> float:
        (bits,) = struct.unpack(">I", struct.pack(">f", kwh))
        (nxt,) = struct.unpack(">f", struct.pack(">I", bits + 1))
        return (nxt - f32(kwh)) * 1000

    assert step_wh(8191.9) == 0.48828125
    assert step_wh(8192.0) == step_wh(16383.0) == 0.9765625
    assert step_wh(16384.0) == 1.953125
    assert step_wh(1000.0) == 0.06103515625
    assert step_wh(100_000.0) == 7.8125

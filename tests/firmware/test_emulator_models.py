"""pymodbus (the gateway's library) reads every quantity of the emulated SDM120 and SDM630
over a real pseudo-terminal, 9600 baud 8N1 and 8E1, and gets exactly the model's values;
the values are consistent with each other and with the load.

At 8E1 the client is opened by `tests.support.emulated.client` (see there why).
"""

from __future__ import annotations

import math
import time

import pytest
from pymodbus.client import ModbusSerialClient

from firmware.emulator.config import EmulatorSpec, LineSpec, MeterSpec
from firmware.emulator.dr import ControlledLoad
from firmware.emulator.line import Framing, PtyLine
from firmware.emulator.meter import EmulatedMeter
from firmware.emulator.profiles import household
from gateway.meters import MeterModel, load_model, plan_blocks
from tests.firmware.conftest import f32
from tests.support.emulated import T0, StillClock, client, running


def _read_all(client: ModbusSerialClient, unit: int, model: MeterModel) -> dict[str, float]:
    values: dict[str, float] = {}
    for block in plan_blocks(model.registers, model.max_block):
        read = (
            client.read_input_registers if block.table == "input" else client.read_holding_registers
        )
        rr = read(block.address, count=block.count, device_id=unit)
        assert not rr.isError(), rr
        for reg in block.registers:
            words = rr.registers[reg.address - block.address :][: reg.words]
            values[reg.name] = reg.decode(words, model.big_word_first)
    return values


@pytest.mark.parametrize("parity", ["N", "E"])
def test_pymodbus_reads_every_quantity_equal_to_the_model(parity: str) -> None:
    clock = StillClock()
    spec = EmulatorSpec(
        lines=(
            LineSpec(
                "rs485",
                (
                    MeterSpec(1, "sdm120", "constant:2300"),
                    MeterSpec(7, "sdm630", "household:9000", energy_start_wh=123_456_789.0),
                ),
                Framing(9600, parity, 1),
            ),
        ),
    )
    with running(spec, clock) as emu:
        endpoint = emu.endpoints[0][1]
        assert isinstance(endpoint, PtyLine)
        modbus = client(endpoint.device, parity)
        try:
            for m in emu.meters:
                meter = m.meter
                assert isinstance(meter, EmulatedMeter)
                model = meter.model
                got = _read_all(modbus, m.unit, model)
                want = {**meter.quantities(clock.now()), **meter.holding_values(clock.now())}
                assert set(got) == {r.name for r in model.registers}
                for reg in model.registers:
                    raw = want[reg.name] / reg.scale
                    expected = (f32(raw) if reg.type == "float32" else round(raw)) * reg.scale
                    assert got[reg.name] == expected, f"{model.name} {reg.name}"
        finally:
            modbus.close()


def _consistent(q: dict[str, float], phases: list[str], power_w: float) -> None:
    total = 0.0
    for ph in phases:
        v, i, p, pf = (q[f"{k}{ph}"] for k in ("voltage", "current", "power", "power_factor"))
        assert math.isclose(p, v * i * pf, rel_tol=1e-12), ph
        s, r = q[f"apparent_power{ph}"], q[f"reactive_power{ph}"]
        assert math.isclose(s, v * i, rel_tol=1e-12)
        assert math.isclose(s * s, p * p + r * r, rel_tol=1e-9)
        assert 0 < pf <= 1 and 200 < v < 260
        total += p
    assert math.isclose(q["power"], power_w, rel_tol=1e-12)
    assert math.isclose(total, power_w, rel_tol=1e-12)


def test_quantities_are_consistent_and_energy_is_the_integral_of_power() -> None:
    clock = StillClock()
    load = ControlledLoad(household(6000, 9 * 3600))
    three = EmulatedMeter(load_model("sdm630"), load, clock, T0, 1000.0)
    one = EmulatedMeter(load_model("sdm120"), load, clock, T0, 1000.0)
    for hour in range(0, 48, 5):
        t = T0 + hour * 3600 + 123.4
        p = load.power_w(t)
        q3 = three.quantities(t)
        _consistent(q3, ["_l1", "_l2", "_l3"], p)
        assert math.isclose(
            q3["apparent_power"], sum(q3[f"apparent_power_l{n}"] for n in (1, 2, 3))
        )
        assert math.isclose(q3["power_factor"], q3["power"] / q3["apparent_power"])
        assert math.isclose(q3["current_sum"], sum(q3[f"current_l{n}"] for n in (1, 2, 3)))
        _consistent(one.quantities(t), [""], p)
        # Energy: the exact integral of the power (checked against a midpoint sum).
        n = 2000
        step = (t - T0) / n
        numeric = sum(load.power_w(T0 + (k + 0.5) * step) for k in range(n)) * step / 3600
        assert math.isclose(q3["import_energy"] - 1000.0, numeric, rel_tol=1e-5)
        assert q3["total_energy"] == q3["import_energy"] + q3["export_energy"]


def test_answers_take_their_time_on_the_wire() -> None:
    """A lower bound only (the emulator sleeps at least this long), so a loaded machine
    cannot make it fail: request + 3.5-character gap + answer at 9600 baud 8E1."""
    framing = Framing(9600, "E", 1)
    spec = EmulatorSpec(lines=(LineSpec("l", (MeterSpec(1, "sdm120"),), framing),))
    with running(spec, StillClock()) as emu:
        endpoint = emu.endpoints[0][1]
        assert isinstance(endpoint, PtyLine)
        modbus = client(endpoint.device, "E")
        try:
            modbus.read_input_registers(0x48, count=2, device_id=1)
            started = time.monotonic()
            rr = modbus.read_input_registers(0x00, count=80, device_id=1)
            elapsed = time.monotonic() - started
        finally:
            modbus.close()
    assert not rr.isError()
    wire = (8 + 5 + 160) * framing.char_s + framing.gap_s
    assert elapsed >= wire, f"{elapsed:.4f} s < {wire:.4f} s on the wire"

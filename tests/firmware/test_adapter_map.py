"""The adapter's register map: the firmware's `INPUT_MAP` and gateway/meters/adapter.toml
agree row for row, and the gateway's table decodes what the firmware (run by the emulator
on CPython) serves over a pseudo-terminal, DR relay included."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pymodbus.client import ModbusSerialClient

from firmware import adapter as fw
from firmware.emulator.config import EmulatorSpec, LineSpec, MeterSpec
from firmware.emulator.line import PtyLine
from firmware.emulator.s0 import EmulatedAdapter
from gateway.meters import load_model, plan_blocks
from tests.firmware.conftest import ROOT, f32
from tests.support.emulated import StillClock, running


def test_firmware_map_and_gateway_table_agree() -> None:
    model = load_model("adapter")
    table = {(r.name, r.address, r.words, r.type, r.scale) for r in model.registers}
    firmware = {(n, a, w, t, float(s)) for n, a, w, t, s in fw.INPUT_MAP}
    assert table == firmware
    assert model.table == "input" and model.big_word_first
    assert all(r.address + r.words <= fw.N_INPUT for r in model.registers)
    raw = tomllib.loads((ROOT / "gateway" / "meters" / "adapter.toml").read_text())
    assert raw["dr_coil"] == fw.DR_COIL


def test_gateway_table_decodes_what_the_firmware_serves(tmp_path: Path) -> None:
    clock = StillClock()
    meter = MeterSpec(
        3, "adapter", "constant:3600", energy_start_wh=5000.0, dr_drop=0.5, pulses_per_kwh=1000
    )
    spec = EmulatorSpec(lines=(LineSpec("l", (meter,)),), state_dir=tmp_path)
    model = load_model("adapter")
    with running(spec, clock) as emu:
        endpoint = emu.endpoints[0][1]
        adapter = emu.meters[0].meter
        assert isinstance(endpoint, PtyLine) and isinstance(adapter, EmulatedAdapter)
        client = ModbusSerialClient(port=endpoint.device, baudrate=9600, timeout=2, retries=1)
        assert client.connect()
        try:

            def read() -> dict[str, float]:
                values = {}
                for block in plan_blocks(model.registers, model.max_block):
                    rr = client.read_input_registers(block.address, count=block.count, device_id=3)
                    assert not rr.isError(), rr
                    for reg in block.registers:
                        words = rr.registers[reg.address - block.address :][: reg.words]
                        values[reg.name] = reg.decode(words, model.big_word_first)
                return values

            # 3600 W since the start of the slot (30 s before the emulator started), and
            # 100 s more: 1 Wh and one pulse per second.
            clock.t += 100.5
            first = read()
            assert first["pulses"] == 130 == adapter.counter.pulses
            assert adapter.energy_uwh() == 5130 * 10**6
            assert first["import_energy"] == f32(5.130) * 1000
            assert first["power"] == 3600.0
            assert first["status"] == fw.counter_store.MISSING  # a fresh flash
            assert first["flash_writes"] == adapter.store.writes >= 1
            # The DR relay (coil 0) halves the load: 50 Wh in the next 100 s.
            assert not client.write_coil(0, True, device_id=3).isError()
            clock.t += 100.0
            second = read()
            assert int(second["status"]) & fw.RELAY_ON
            assert second["import_energy"] == f32(5.180) * 1000
            assert second["power"] == 1800.0
            assert adapter.load.relay_on(clock.t)
        finally:
            client.close()
    # A clean stop stores the exact count: the next run resumes from it.
    with running(spec, clock) as emu:
        adapter = emu.meters[0].meter
        assert isinstance(adapter, EmulatedAdapter)
        assert adapter.energy_uwh() == 5180 * 10**6
        assert adapter.status() == 0

"""Register tables, decoders, block planning, and the generic driver's fallback to smaller
reads against a device on a real pseudo-terminal that refuses large blocks."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from firmware.modbus_rtu import Slave
from firmware.registers import ILLEGAL_VALUE, INPUT, RegisterBank
from gateway.bus import ModbusBus
from gateway.config import BusConfig
from gateway.meters import MeterDriver, builtin_models, load_model, plan_blocks, split
from gateway.meters.decode import encode_float32, float32, int16, int32, uint32
from tests.support.gateway import DeviceServer


def test_decoders() -> None:
    assert float32([0x4479, 0xC000]) == 999.0
    assert float32([0xC000, 0x4479], big_word_first=False) == 999.0
    assert math.isnan(float32([0x7FC0, 0x0000]))
    assert float32(encode_float32(1234.5, False), False) == 1234.5
    assert int16([0xFFFF]) == -1 and int16([0x7FFF]) == 32767
    assert uint32([0x0001, 0x0000]) == 65536 and uint32([0x0000, 0x0001], False) == 65536
    assert int32([0xFFFF, 0xFFFE]) == -2


def test_every_builtin_table_has_the_energy_register_and_plans_within_its_limit() -> None:
    models = builtin_models()
    assert {"sdm120", "sdm630", "adapter"} <= set(models)
    for model in models.values():
        assert model.register("import_energy").unit == "Wh"
        blocks = plan_blocks(model.registers, model.max_block)
        assert all(b.count <= model.max_block for b in blocks)
        covered = [r.name for b in blocks for r in b.registers]
        assert sorted(covered) == sorted(r.name for r in model.registers)
    sdm630 = load_model("sdm630")
    # 86 input registers from 0x0000 to 0x017D in four reads of at most the meter's 80
    # registers (not 86 single reads), and its 17 settings in three reads of the holding
    # table: each read within one table.
    assert [(b.table, b.address, b.count) for b in plan_blocks(sdm630.registers, 80)] == [
        ("holding", 0x0000, 0x26),
        ("holding", 0x0056, 4),
        ("holding", 0xFC00, 2),
        ("input", 0x0000, 80),
        ("input", 0x0050, 0x1C),
        ("input", 0x00C8, 0x46),
        ("input", 0x014E, 0x30),
    ]
    # A meter that allows only 40 registers per read gets the same quantities in more reads,
    # each within its limit.
    small = plan_blocks(sdm630.registers, 40)
    assert all(b.count <= 40 for b in small) and len(small) == 10
    assert sorted(r.name for b in small for r in b.registers) == sorted(
        r.name for r in sdm630.registers
    )
    # Registers far apart are not merged: the gap would cost more on the wire than a read.
    assert len(plan_blocks(sdm630.registers, 80, max_gap=2)) > 3
    assert load_model("adapter").dr_coil == 0


def test_split_halves_a_block_between_registers() -> None:
    (block,) = plan_blocks(load_model("sdm120").registers[:4], 80)
    halves = split(block)
    assert [len(h.registers) for h in halves] == [2, 2]
    assert halves[0].address == 0 and halves[1].address == 0x0C
    assert split(split(halves[0])[0]) == split(halves[0])[:1]


SDM630_INPUT = [r for r in load_model("sdm630").registers if r.table == "input"]


class PickyBank(RegisterBank):
    """SDM630-like input registers that refuse reads of more than `limit` registers, and
    refuse `frequency` (0x46) altogether, as some firmware does."""

    def __init__(self, limit: int) -> None:
        super().__init__(max(r.end for r in SDM630_INPUT), 0, 0)
        self.limit = limit
        self.reads: list[tuple[int, int]] = []
        for i, reg in enumerate(SDM630_INPUT):
            hi, lo = encode_float32(float(i + 1))
            self.input[2 * reg.address : 2 * reg.address + 4] = bytes(
                (hi >> 8, hi & 255, lo >> 8, lo & 255)
            )

    def offset(self, kind: int, address: int, count: int) -> int:
        if kind == INPUT:
            self.reads.append((address, count))
            if count > self.limit or address <= 0x46 < address + count:
                return -1  # answered as illegal address
        return super().offset(kind, address, count)


class PickySlave(Slave):
    def _reply_exception(self, unit: int, fc: int, code: int):  # type: ignore[no-untyped-def]
        return super()._reply_exception(unit, fc, code if code != 2 else ILLEGAL_VALUE)


def test_the_driver_falls_back_to_smaller_reads_and_remembers(tmp_path: Path) -> None:
    bank = PickyBank(limit=20)
    server = DeviceServer([PickySlave(5, bank)], tmp_path / "bus")
    bus = ModbusBus(BusConfig(name="b", port=str(tmp_path / "bus"), baud=19200, timeout_s=1.0))
    try:
        driver = MeterDriver(load_model("sdm630"), [r.name for r in SDM630_INPUT])
        values = driver.read(bus, 5)
        expected = {r.name: float(i + 1) * r.scale for i, r in enumerate(SDM630_INPUT)}
        del expected["frequency"]
        assert values == expected
        assert driver.refused == {"frequency"}
        assert all(b.count <= 20 for b in driver.blocks)
        first = len(bank.reads)
        assert driver.read(bus, 5) == expected
        # The second read uses the learned plan: no refused block except the lone register.
        assert len(bank.reads) - first == len(driver.blocks)
    finally:
        bus.close()
        server.close()


def test_an_energy_register_without_a_known_range_is_not_range_checked() -> None:
    reg = load_model("sdm120").register("import_energy")
    assert reg.in_range(1e9) and not reg.in_range(-1.0)
    freq = load_model("sdm120").register("frequency")
    assert not freq.in_range(20.0)
    with pytest.raises(KeyError):
        load_model("sdm120").register("nope")


class TimedSlave(Slave):
    """Notes when each request addressed to it arrives (monotonic s)."""

    def __init__(self, unit: int, bank: RegisterBank, log: list[tuple[float, int]]) -> None:
        super().__init__(unit, bank)
        self.log = log

    def handle(self, frame: bytes):  # type: ignore[no-untyped-def]
        if frame and frame[0] == self.unit_id:
            self.log.append((time.monotonic(), self.unit_id))
        return super().handle(frame)


def test_the_bus_pauses_when_it_switches_unit_ids(tmp_path: Path) -> None:
    arrivals: list[tuple[float, int]] = []
    slaves = [TimedSlave(u, PickyBank(limit=125), arrivals) for u in (1, 2)]
    server = DeviceServer(slaves, tmp_path / "bus")
    cfg = BusConfig(name="b", port=str(tmp_path / "bus"), baud=19200, unit_pause_s=0.2)
    bus = ModbusBus(cfg)
    try:
        for unit in (1, 1, 2, 2, 1):
            bus.read(unit, "input", 0x48, 2)
    finally:
        bus.close()
        server.close()
    units = [u for _, u in arrivals]
    assert units == [1, 1, 2, 2, 1]
    # The line is quiet for at least the pause before another unit is addressed.
    switches = [arrivals[i][0] - arrivals[i - 1][0] for i in (2, 4)]
    assert all(gap >= 0.2 for gap in switches), switches

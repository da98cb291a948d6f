"""An emulated Eastron meter: a register bank whose values follow a load in (injected) time.

The register layout is the gateway's register table for the model (input and holding), so
the gateway reads the emulator exactly as it reads the real meter, and the values are
those of `firmware.emulator.electrics`. Like the meter, it answers exception 02 (illegal
data address) to a read or write that does not start and end on one of the model's
registers (an address the model does not have, or part of a float), 03 (illegal data
value) to a read of more registers than the model allows at once or a setting written out
of its range; reserved registers inside a read are zero. Settings start at the datasheet's
defaults (the unit id, baud rate and parity at the line's) and keep what is written.
"""

from __future__ import annotations

import math

from firmware.crc import check
from firmware.emulator.dr import ControlledLoad
from firmware.emulator.electrics import (
    SINGLE_PHASE,
    THREE_PHASE,
    Phase,
    measurements,
    phase_voltage,
)
from firmware.modbus_rtu import Slave
from firmware.registers import COIL, HOLDING, ILLEGAL_VALUE, INPUT, RegisterBank
from gateway.meters import MeterModel, Register
from gateway.meters.decode import DECODERS, encode
from ledger_node.shared.clock import Clock

SERIAL_BASE = 26_000_000
"""Emulated serial numbers: this plus the unit id."""
SOFTWARE_VERSION = 0x0102
COMPUTED = frozenset(
    {"demand_time", "system_voltage", "system_power", "running_time"}
    | {"serial_number", "software_version"}
)
"""Holding registers the meter computes or was made with."""
READ_ONLY = COMPUTED | {"meter_code", "pulse_led_mode"}
"""Holding registers the datasheets mark read only: a write is refused (03)."""
BAUD_CODES = {2400: 0, 4800: 1, 9600: 2, 19200: 3, 38400: 4, 1200: 5}
PARITY_CODES = {("N", 1): 0, ("E", 1): 1, ("O", 1): 2, ("N", 2): 3}
"""Eastron's codes for the line's settings (the same in every SDM datasheet)."""


class EmulatedMeter(RegisterBank):
    """`model`'s registers over `load`: energy `origin_wh` at `anchor` (UTC s) plus the
    load's integral. With `dr_coil`, coil 0 switches the load's DR relay. `line` holds
    the unit id, baud rate, parity and stop bits its settings report."""

    def __init__(
        self,
        model: MeterModel,
        load: ControlledLoad,
        clock: Clock,
        anchor: float,
        origin_wh: float = 0.0,
        dr_coil: bool = False,
        line: tuple[int, int, str, int] = (1, 9600, "N", 1),
    ) -> None:
        sizes = {
            table: max((r.end for r in model.registers if r.table == table), default=0)
            for table in ("input", "holding")
        }
        super().__init__(sizes["input"], sizes["holding"], 1 if dr_coil else 0)
        self.model = model
        self.load = load
        self.clock = clock
        self.anchor = anchor
        self.origin_wh = origin_wh
        self.unit = line[0]
        self._reset_wh = 0.0  # a counter reset subtracts what was counted before it
        self._jump_wh = 0.0  # added to the next answer only
        self.phases: tuple[Phase, ...] = (
            THREE_PHASE if any(r.name.endswith("_l3") for r in model.registers) else SINGLE_PHASE
        )
        self._starts = {(r.table, r.address): r for r in model.registers}
        self._ends = {(r.table, r.end) for r in model.registers}
        self._max_demand = (math.floor(anchor / 60.0), 0.0)  # (minute, highest demand so far)
        self.settings = self._initial_settings(line)
        values = {**self.quantities(anchor), **self.holding_values(anchor)}
        missing = {r.name for r in model.registers} - set(values)
        if missing:
            raise ValueError(f"the emulator has no model for {model.name}'s {sorted(missing)}")

    @property
    def model_name(self) -> str:
        return self.model.name

    def energy_wh(self, t: float) -> float:
        """Cumulative energy consumed by time `t`, Wh (the ground truth)."""
        return self.origin_wh + self.load.energy_wh(self.anchor, t)

    def demand_w(self, t: float) -> float:
        """Mean power over the demand period before `t` (the power itself if it is 0), W."""
        period_s = 60.0 * self.settings.get("demand_period", 60.0)
        if period_s <= 0:
            return self.load.power_w(t)
        return self.load.energy_wh(t - period_s, t) * 3600.0 / period_s

    def demand_max_w(self, t: float) -> float:
        """The highest demand at each whole minute since the anchor, and now."""
        minute, highest = self._max_demand
        if minute * 60.0 > t:  # asked about an earlier time: start again
            minute, highest = math.floor(self.anchor / 60.0), 0.0
        while (minute + 1) * 60.0 <= t:
            minute += 1
            highest = max(highest, self.demand_w(minute * 60.0))
        self._max_demand = (minute, highest)
        return max(highest, self.demand_w(t))

    def quantities(self, t: float) -> dict[str, float]:
        """Every measured quantity the model may have, consistent with each other at `t`."""
        energy = self.energy_wh(t) - self._reset_wh + self._jump_wh
        return measurements(
            self.phases, t, self.load.power_w(t), energy, self.demand_w(t), self.demand_max_w(t)
        )

    def holding_values(self, t: float) -> dict[str, float]:
        """The settings, and the holding registers the meter computes, at `t`."""
        three = len(self.phases) == 3
        volts = sum(phase_voltage(ph, n, t) for n, ph in enumerate(self.phases, 1)) / len(
            self.phases
        )
        elapsed_min = max(t - self.anchor, 0.0) / 60.0
        values = dict(self.settings)
        values.update(
            demand_time=min(elapsed_min, self.settings.get("demand_period", 60.0)),
            system_voltage=volts,
            system_power=volts * self.settings.get("system_current", 0.0) * (3 if three else 1),
            running_time=elapsed_min / 60.0,
            serial_number=float(SERIAL_BASE + self.unit),
            software_version=float(SOFTWARE_VERSION),
        )
        return values

    def _initial_settings(self, line: tuple[int, int, str, int]) -> dict[str, float]:
        unit, baud, parity, stopbits = line
        settings = {
            r.name: r.default if r.default is not None else (r.min or 0.0)
            for r in self.model.registers
            if r.table == "holding" and r.name not in COMPUTED
        }
        wanted = {
            "node": unit,
            "baud_rate": BAUD_CODES.get(baud),
            "parity_stop": PARITY_CODES.get((parity, stopbits)),
        }
        for name, value in wanted.items():
            if name in settings and value is not None and self.model.register(name).in_range(value):
                settings[name] = float(value)
        return settings

    def tick(self) -> None:
        """Nothing to do between requests: the registers are computed when read."""

    def close(self) -> None:
        """Nothing to store."""

    # -- faults on demand ----------------------------------------------------------------
    def jump(self, wh: float) -> None:
        """The next answer's energy registers read `wh` high (a glitch), then normal again."""
        self._jump_wh = wh

    def reset_counter(self) -> None:
        """The energy registers restart from 0 now, as after a meter's counter reset."""
        self._reset_wh = self.energy_wh(self.clock.now())

    # -- register bank hooks -------------------------------------------------------------
    def offset(self, kind: int, address: int, count: int) -> int:
        """Byte offset of a read or write that starts and ends on the model's registers of
        that table; -1 (exception 02) for anything else."""
        if kind == COIL:
            return super().offset(kind, address, count)
        table = "input" if kind == INPUT else "holding"
        if (table, address) not in self._starts or (table, address + count) not in self._ends:
            return -1
        return 2 * address

    def refresh(self) -> None:
        t = self.clock.now()
        values = {**self.quantities(t), **self.holding_values(t)}
        self._jump_wh = 0.0
        for reg in self.model.registers:
            self._store(reg, values[reg.name])

    def _store(self, reg: Register, value: float) -> None:
        bank = self.input if reg.table == "input" else self.holding
        words = encode(reg.type, value / reg.scale, self.model.big_word_first)
        bank[2 * reg.address : 2 * reg.end] = b"".join(w.to_bytes(2, "big") for w in words)

    def check_holding(self, address: int, words: list[int]) -> int:
        """One setting at a time, within its range; the computed ones are read only."""
        reg = self._starts.get(("holding", address))
        if reg is None or reg.words != len(words) or reg.name in READ_ONLY:
            return ILLEGAL_VALUE
        value = DECODERS[reg.type][1](words, self.model.big_word_first) * reg.scale
        if not math.isfinite(value) or not reg.in_range(value):
            return ILLEGAL_VALUE
        return 0

    def written(self, kind: int, address: int, count: int) -> None:
        if kind == COIL:
            self.load.set_relay(self.clock.now(), bool(self.coils[0]))
        elif kind == HOLDING:
            reg = self._starts[("holding", address)]
            words = [
                int.from_bytes(self.holding[2 * a : 2 * a + 2], "big")
                for a in range(address, address + count)
            ]
            self.settings[reg.name] = DECODERS[reg.type][1](words, self.model.big_word_first)


class EastronSlave(Slave):
    """The firmware's slave in front of an emulated meter: a read of more registers than
    the model allows at once is refused with exception 03, as the meter refuses it."""

    def __init__(self, unit_id: int, meter: EmulatedMeter) -> None:
        super().__init__(unit_id, meter)
        self.max_block = meter.model.max_block

    def handle(self, frame: bytes) -> memoryview | None:
        if (
            len(frame) == 8
            and frame[0] == self.unit_id
            and frame[1] in (3, 4)
            and (frame[4] << 8 | frame[5]) > self.max_block
            and check(frame)
        ):
            self.frames += 1
            return self._reply_exception(self.unit_id, frame[1], ILLEGAL_VALUE)
        return super().handle(frame)

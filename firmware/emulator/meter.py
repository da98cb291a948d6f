"""An emulated Eastron meter: a register bank whose values follow a load in (injected) time.

The register layout is the gateway's register table for the model, so the gateway reads
the emulator exactly as it reads the real meter. The quantities are consistent with each
other: per phase, power = voltage × current × power factor, apparent power = voltage ×
current, reactive power = √(S² − P²); totals are the phase sums; the import energy
register is the exact integral of the power from an anchor instant, so the ground truth
per slot is exact too.
"""

from __future__ import annotations

import math

from firmware.emulator.dr import ControlledLoad
from firmware.registers import COIL, RegisterBank
from gateway.meters import MeterModel
from gateway.meters.decode import encode_float32
from ledger_node.shared.clock import Clock

NOMINAL_VOLTAGE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0
# Per phase: share of the total power, power factor, voltage offset (V).
PHASES = ((0.40, 0.95, 0.0), (0.35, 0.92, 1.2), (0.25, 0.98, -0.8))
SINGLE_PHASE = ((1.0, 0.95, 0.0),)


class EmulatedMeter(RegisterBank):
    """`model`'s registers over `load`: energy `origin_wh` at `anchor` (UTC s) plus the
    load's integral. With `dr_coil`, coil 0 switches the load's DR relay."""

    def __init__(
        self,
        model: MeterModel,
        load: ControlledLoad,
        clock: Clock,
        anchor: float,
        origin_wh: float = 0.0,
        dr_coil: bool = False,
    ) -> None:
        size = max(r.address + r.words for r in model.registers)
        is_input = model.table == "input"
        super().__init__(size if is_input else 0, 0 if is_input else size, 1 if dr_coil else 0)
        for reg in model.registers:
            if reg.type != "float32":
                raise ValueError(f"emulated {model.name}: {reg.name} is {reg.type}, not float32")
        self.model = model
        self.load = load
        self.clock = clock
        self.anchor = anchor
        self.origin_wh = origin_wh
        self._reset_wh = 0.0  # a counter reset subtracts what was counted before it
        self._jump_wh = 0.0  # added to the next answer only
        self.phases = (
            PHASES if any(r.name.endswith("_l3") for r in model.registers) else (SINGLE_PHASE)
        )
        missing = {r.name for r in model.registers} - set(self.quantities(anchor))
        if missing:
            raise ValueError(f"the emulator has no model for {model.name}'s {sorted(missing)}")
        self._words = self.input if is_input else self.holding

    @property
    def model_name(self) -> str:
        return self.model.name

    def energy_wh(self, t: float) -> float:
        """Cumulative energy consumed by time `t`, Wh (the ground truth)."""
        return self.origin_wh + self.load.energy_wh(self.anchor, t)

    def quantities(self, t: float) -> dict[str, float]:
        """Every quantity the model may have, consistent with each other at time `t`."""
        total_p = self.load.power_w(t)
        q: dict[str, float] = {}
        sums = {"power": 0.0, "apparent_power": 0.0, "reactive_power": 0.0, "current": 0.0}
        volts = []
        for n, (share, pf_load, dv) in enumerate(self.phases, start=1):
            v = NOMINAL_VOLTAGE_V + dv + 1.5 * math.sin(2 * math.pi * t / 97.0 + n)
            p = total_p * share
            pf = pf_load if p > 0 else 1.0
            i = p / (v * pf)
            s = v * i
            phase = {
                "voltage": v,
                "current": i,
                "power": p,
                "apparent_power": s,
                "reactive_power": math.sqrt(max(s * s - p * p, 0.0)),
                "power_factor": pf,
            }
            for key, value in phase.items():
                q[f"{key}_l{n}"] = value
            for key in sums:
                sums[key] += phase[key]
            volts.append(v)
        if len(self.phases) == 1:
            q.update({k.removesuffix("_l1"): v for k, v in q.items()})
        else:
            q["voltage_avg"] = sum(volts) / len(volts)
            q["current_sum"] = sums["current"]
            for key in ("power", "apparent_power", "reactive_power"):
                q[key] = sums[key]
            q["power_factor"] = sums["power"] / sums["apparent_power"] if sums["power"] else 1.0
        energy = self.energy_wh(t) - self._reset_wh + self._jump_wh
        q.update(
            frequency=NOMINAL_FREQUENCY_HZ + 0.02 * math.sin(2 * math.pi * t / 31.0),
            import_energy=energy,
            export_energy=0.0,
            total_energy=energy,
        )
        return q

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
    def refresh(self) -> None:
        values = self.quantities(self.clock.now())
        self._jump_wh = 0.0
        for reg in self.model.registers:
            hi, lo = encode_float32(values[reg.name] / reg.scale, self.model.big_word_first)
            offset = 2 * reg.address
            self._words[offset : offset + 4] = bytes((hi >> 8, hi & 0xFF, lo >> 8, lo & 0xFF))

    def written(self, kind: int, address: int, count: int) -> None:
        if kind == COIL:
            self.load.set_relay(self.clock.now(), bool(self.coils[0]))

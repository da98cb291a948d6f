"""An emulated meter: a register bank whose values follow a load profile in (injected) time.

The register layout is the gateway's register table for the model, so the gateway reads
the emulator exactly as it reads the real meter. Cumulative energy is the exact integral
of the profile from an anchor instant, so the ground truth per slot is exact too.
"""

from __future__ import annotations

import math

from firmware.emulator.profiles import Profile
from firmware.registers import RegisterBank
from gateway.meters import MeterModel
from gateway.meters.decode import encode_float32
from ledger_node.clock import Clock

NOMINAL_VOLTAGE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0
POWER_FACTOR = 0.95


class EmulatedMeter(RegisterBank):
    """`model`'s registers, live: energy `origin_wh` at `anchor` (UTC s) plus the profile."""

    def __init__(
        self,
        model: MeterModel,
        profile: Profile,
        clock: Clock,
        anchor: float,
        origin_wh: float = 0.0,
    ) -> None:
        size = max(r.address + r.words for r in model.registers)
        is_input = model.table == "input"
        super().__init__(size if is_input else 0, 0 if is_input else size, 0)
        for reg in model.registers:
            if reg.type != "float32":
                raise ValueError(f"emulated {model.name}: {reg.name} is {reg.type}, not float32")
        self.model = model
        self.profile = profile
        self.clock = clock
        self.anchor = anchor
        self.origin_wh = origin_wh
        self._words = self.input if is_input else self.holding

    def energy_wh(self, t: float) -> float:
        """Cumulative import energy at time `t`, Wh."""
        return self.origin_wh + self.profile.energy_wh(self.anchor, t)

    def quantities(self, t: float) -> dict[str, float]:
        """Every quantity the model has, consistent with each other at time `t`."""
        power = self.profile.power_w(t)
        voltage = NOMINAL_VOLTAGE_V + 1.5 * math.sin(2 * math.pi * t / 97.0)
        pf = POWER_FACTOR if power > 0 else 1.0
        energy = self.energy_wh(t)
        return {
            "voltage": voltage,
            "current": power / (voltage * pf),
            "power": power,
            "power_factor": pf,
            "frequency": NOMINAL_FREQUENCY_HZ + 0.02 * math.sin(2 * math.pi * t / 31.0),
            "import_energy": energy,
            "export_energy": 0.0,
            "total_energy": energy,
        }

    def refresh(self) -> None:
        values = self.quantities(self.clock.now())
        for reg in self.model.registers:
            hi, lo = encode_float32(values[reg.name] / reg.scale, self.model.big_word_first)
            offset = 2 * reg.address
            self._words[offset : offset + 4] = bytes((hi >> 8, hi & 0xFF, lo >> 8, lo & 0xFF))

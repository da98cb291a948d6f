"""What an emulated Eastron meter measures: every quantity of the SDM models' input registers,
computed from one load and consistent with each other.

Per phase: power = voltage × current × power factor, apparent power = voltage × current,
reactive power = √(S² − P²), phase angle = acos(PF); totals are the phase sums; the line
to line voltages and the neutral current are the phasor differences and sum (phases 120°
apart, each current lagging its voltage by its phase angle). The import energy is the exact
integral of the power (the ground truth); each phase's share of it, and the reactive and
apparent energies, follow from the phase's share and power factor. Energy is only imported
(the loads consume), so total = import + export and net = import − export hold exactly.
Demand is the mean power over the demand period before `t`; its maximum is the highest of
those at each whole minute since the meter started.
"""

from __future__ import annotations

import cmath
import math
from dataclasses import dataclass

NOMINAL_VOLTAGE_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0


@dataclass(frozen=True)
class Phase:
    """One phase's share of the total power, the load's power factor and the voltage's
    offset from nominal (V); its voltage THD and current THD (%) are fixed."""

    share: float
    pf: float
    dv: float
    voltage_thd: float
    current_thd: float

    @property
    def mean_voltage(self) -> float:
        return NOMINAL_VOLTAGE_V + self.dv


THREE_PHASE = (
    Phase(0.40, 0.95, 0.0, 1.9, 9.5),
    Phase(0.35, 0.92, 1.2, 2.1, 11.0),
    Phase(0.25, 0.98, -0.8, 1.7, 7.5),
)
SINGLE_PHASE = (Phase(1.0, 0.95, 0.0, 1.9, 9.5),)
ANGLES = (0.0, -2 * math.pi / 3, 2 * math.pi / 3)
"""Each phase voltage's angle (rad)."""


def phase_voltage(phase: Phase, n: int, t: float) -> float:
    """Phase `n`'s (1-based) voltage at `t`, V: its mean with a slow ±1.5 V swing."""
    return phase.mean_voltage + 1.5 * math.sin(2 * math.pi * t / 97.0 + n)


def _neutral(currents: list[float], pfs: list[float]) -> float:
    """|Σ I∠(θ − φ)|: the neutral current of phase currents lagging their voltages."""
    phasors = zip(ANGLES, currents, pfs, strict=True)
    return abs(sum((cmath.rect(i, angle - math.acos(pf)) for angle, i, pf in phasors), start=0j))


def _line_to_line(a: float, b: float) -> float:
    """|Va − Vb| for phase voltages 120° apart."""
    return math.sqrt(a * a + b * b + a * b)


def measurements(
    phases: tuple[Phase, ...],
    t: float,
    power_w: float,
    energy_wh: float,
    demand_w: float,
    demand_max_w: float,
) -> dict[str, float]:
    """Every quantity at `t` for a total power `power_w`, import energy `energy_wh` (as the
    registers show it), mean power over the demand period `demand_w` and its highest
    `demand_max_w`. Names as in gateway/meters/*.toml; single-phase names lose `_l1`."""
    q: dict[str, float] = {}
    sums = dict.fromkeys(("power", "apparent_power", "reactive_power", "current"), 0.0)
    energy = dict.fromkeys(("reactive", "apparent", "charge"), 0.0)
    volts, amps, pfs, demand_amps = [], [], [], []
    for n, ph in enumerate(phases, start=1):
        v = phase_voltage(ph, n, t)
        p = power_w * ph.share
        pf = ph.pf if p > 0 else 1.0
        i = p / (v * pf)
        s = v * i
        tan_phi = math.tan(math.acos(ph.pf))
        share_wh = energy_wh * ph.share
        phase = {
            "voltage": v,
            "current": i,
            "power": p,
            "apparent_power": s,
            "reactive_power": math.sqrt(max(s * s - p * p, 0.0)),
            "power_factor": pf,
            "phase_angle": math.degrees(math.acos(pf)),
            "voltage_thd": ph.voltage_thd,
            "current_thd": ph.current_thd,
            "import_energy": share_wh,
            "export_energy": 0.0,
            "total_energy": share_wh,
            "import_reactive_energy": share_wh * tan_phi,
            "export_reactive_energy": 0.0,
            "total_reactive_energy": share_wh * tan_phi,
            "current_demand": demand_w * ph.share / (ph.mean_voltage * ph.pf),
            "current_demand_max": demand_max_w * ph.share / (ph.mean_voltage * ph.pf),
        }
        for key, value in phase.items():
            q[f"{key}_l{n}"] = value
        for key in sums:
            sums[key] += phase[key]
        energy["reactive"] += share_wh * tan_phi
        energy["apparent"] += share_wh / ph.pf
        energy["charge"] += share_wh / (ph.mean_voltage * ph.pf)
        volts.append(v)
        amps.append(i)
        pfs.append(pf)
        demand_amps.append(phase["current_demand"])
    total_pf = sums["power"] / sums["apparent_power"] if sums["power"] else 1.0
    apparent_per_w = sum(ph.share / ph.pf for ph in phases)
    q.update(
        voltage_avg=sum(volts) / len(volts),
        current_sum=sums["current"],
        current_avg=sums["current"] / len(phases),
        power=sums["power"],
        apparent_power=sums["apparent_power"],
        reactive_power=sums["reactive_power"],
        power_factor=total_pf,
        power_factor_inverted=-total_pf,
        phase_angle=math.degrees(math.acos(total_pf)),
        frequency=NOMINAL_FREQUENCY_HZ + 0.02 * math.sin(2 * math.pi * t / 31.0),
        import_energy=energy_wh,
        export_energy=0.0,
        total_energy=energy_wh,
        net_energy=energy_wh,
        import_reactive_energy=energy["reactive"],
        export_reactive_energy=0.0,
        total_reactive_energy=energy["reactive"],
        apparent_energy=energy["apparent"],
        charge=energy["charge"],
        import_power=max(sums["power"], 0.0),
        export_power=max(-sums["power"], 0.0),
        power_demand=demand_w,
        power_demand_max=demand_max_w,
        import_power_demand=max(demand_w, 0.0),
        import_power_demand_max=demand_max_w,
        export_power_demand=0.0,
        export_power_demand_max=0.0,
        apparent_power_demand=demand_w * apparent_per_w,
        apparent_power_demand_max=demand_max_w * apparent_per_w,
        voltage_thd_avg=sum(ph.voltage_thd for ph in phases) / len(phases),
        current_thd_avg=sum(ph.current_thd for ph in phases) / len(phases),
    )
    if len(phases) == 1:
        q.update({k.removesuffix("_l1"): v for k, v in q.items() if k.endswith("_l1")})
        q["current_demand"] = q["current_demand_l1"]
        q["current_demand_max"] = q["current_demand_max_l1"]
    else:
        max_amps = [q[f"current_demand_max_l{n}"] for n in (1, 2, 3)]
        load_pfs = [ph.pf for ph in phases]
        pairs = (("l1_l2", 0, 1), ("l2_l3", 1, 2), ("l3_l1", 2, 0))
        for name, a, b in pairs:
            q[f"voltage_{name}"] = _line_to_line(volts[a], volts[b])
            thd = (phases[a].voltage_thd + phases[b].voltage_thd) / 2
            q[f"voltage_thd_{name}"] = thd
        q["voltage_ll_avg"] = sum(q[f"voltage_{name}"] for name, _, _ in pairs) / 3
        q["voltage_thd_ll_avg"] = sum(q[f"voltage_thd_{name}"] for name, _, _ in pairs) / 3
        q["neutral_current"] = _neutral(amps, pfs)
        q["neutral_current_demand"] = _neutral(demand_amps, load_pfs)
        q["neutral_current_demand_max"] = _neutral(max_amps, load_pfs)
    # Resettable counters (never reset here) and the two tariffs (all energy in the first).
    for key in ("total_energy", "import_energy", "export_energy", "total_reactive_energy"):
        q[f"resettable_{key}"] = q[key]
    for key in (
        "total_energy",
        "import_energy",
        "export_energy",
        "total_reactive_energy",
        "import_reactive_energy",
        "export_reactive_energy",
        "import_power_demand_max",
        "export_power_demand_max",
        "power_demand_max",
        "current_demand_max",
    ):
        if key in q:
            q[f"{key}_t1"] = q[key]
            q[f"{key}_t2"] = 0.0
    return q

"""Load profiles and DR response: exact energy integrals (against fine midpoint sums),
the household curve's shape, CSV profiles, and the load dropping while the DR relay is
on or a window is open."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from firmware.emulator.dr import ControlledLoad, parse_window
from firmware.emulator.profiles import DAY_S, Profile, household, parse_profile, read_csv

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC, 17:00 JST


def numeric_wh(p: Profile, t0: float, t1: float) -> float:
    """Midpoint sum over half seconds (the spans here are whole half seconds, and the steps
    change on whole seconds, so no sample straddles a step)."""
    n = round((t1 - t0) * 2)
    return sum(p.power_w(t0 + (k + 0.5) / 2) for k in range(n)) / 2 / 3600


@pytest.mark.parametrize(
    "spec", ["constant:1500", "steps:100,2000,50", "household:4000", "household"]
)
def test_energy_is_the_exact_integral(spec: str) -> None:
    profile = parse_profile(spec, 60)
    for t0, span in [(T0, 59.0), (T0 + 7.5, 3 * 3600.0), (T0 - 1000, 2.5 * DAY_S)]:
        exact = profile.energy_wh(t0, t0 + span)
        assert exact == pytest.approx(numeric_wh(profile, t0, t0 + span), rel=1e-6)
        # Additive over a split point: slot energies add up to the register's advance.
        mid = t0 + span / 3
        assert profile.energy_wh(t0, mid) + profile.energy_wh(mid, t0 + span) == pytest.approx(
            exact, rel=1e-12
        )


def test_household_curve_peaks_in_the_evening_in_local_time() -> None:
    curve = household(3000, 9 * 3600)
    day = math.floor((T0 + 9 * 3600) / DAY_S) * DAY_S - 9 * 3600  # local midnight, UTC
    by_hour = [curve.power_w(day + h * 3600) for h in range(24)]
    assert max(by_hour) == 3000 == by_hour[19]
    assert min(by_hour) < 0.2 * 3000 and by_hour.index(min(by_hour)) in (2, 3)
    assert curve.energy_wh(day, day + DAY_S) == pytest.approx(numeric_wh(curve, day, day + DAY_S))


def test_csv_profile_holds_each_level_until_the_next_row(tmp_path: Path) -> None:
    path = tmp_path / "day.csv"
    path.write_text("seconds,watts\n0,100\n3600,400\n7200,0\n")
    p = read_csv(path, 0.0)
    midnight = math.floor(T0 / DAY_S) * DAY_S
    assert p.power_w(midnight + 3599) == 100 and p.power_w(midnight + 3600) == 400
    assert p.energy_wh(midnight, midnight + DAY_S) == pytest.approx(100 + 400)
    for bad, message in [
        ("0,100\n10,-5\n", "export is not modelled"),
        ("5,100\n", "start at 0"),
        ("0,100\n0,5\n", "increase"),
        ("0,abc\n", "not numbers"),
        ("0,1,2\n", "seconds,watts"),
    ]:
        path.write_text(bad)
        with pytest.raises(ValueError, match=message):
            read_csv(path, 0.0)
    with pytest.raises(ValueError, match="cannot read profile"):
        read_csv(tmp_path / "missing.csv", 0.0)


def test_dr_relay_and_windows_drop_the_load_exactly() -> None:
    base = parse_profile("constant:3600", 60)  # 1 Wh per second
    load = ControlledLoad(base, 0.25, (parse_window("17:30-17:40"),), 9 * 3600)
    # T0 is 17:00 JST. Relay on from +100 s to +400 s; the window is +1800..+2400 s.
    load.set_relay(T0 + 100, True)
    load.set_relay(T0 + 400, False)
    assert load.power_w(T0 + 50) == 3600 and load.power_w(T0 + 200) == 2700
    assert load.power_w(T0 + 2000) == 2700 and load.power_w(T0 + 2500) == 3600
    assert load.energy_wh(T0, T0 + 3600) == pytest.approx(3600 - 0.25 * (300 + 600))
    # The relay inside the window drops the load once, not twice.
    load.set_relay(T0 + 1900, True)
    load.set_relay(T0 + 2000, False)
    assert load.power_w(T0 + 1950) == 2700
    assert load.energy_wh(T0, T0 + 3600) == pytest.approx(3600 - 0.25 * (300 + 600))
    # A window running past midnight, and an absolute one.
    assert parse_window("23:00-01:00").end == 3600
    assert not parse_window(f"{T0:.0f}-{T0 + 60:.0f}").daily
    for bad in ["17:00", "25:00-26:00", "18:00-18:00", "5-3", "a-b"]:
        with pytest.raises(ValueError, match="bad DR window"):
            parse_window(bad)

"""`mlg-node as-csv`: an AS report CSV from the real emulator's ground truth (its short
slots summed into the report's) and from meter data exports (cumulative readings in JST
without offset, interpolated at the boundaries; per-interval energies), which the AS
report command then takes; and clear errors for what it cannot read."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from ledger_node.interfaces.as_csv import parse_as_csv
from tests.conftest import run_module


def _as_csv(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_module("ledger_node.interfaces.cli", "as-csv", *args, cwd=cwd, timeout_s=60)


def test_ground_truth_of_the_emulator_becomes_an_as_report(tmp_path: Path) -> None:
    # Two meters at one site: 3600 W (1 Wh a second) and 7200 W (2 Wh a second), 1 s slots.
    args = ["--meter", "1:sdm120:constant:3600", "--meter", "2:sdm120:constant:7200"]
    args += ["--link", str(tmp_path / "meterA"), "--truth", "truth.csv", "--slot-seconds", "1"]
    args += ["--clock-scale", "20"]
    with subprocess.Popen(
        [sys.executable, "-m", "firmware.emulator.cli", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        time.sleep(1.5)  # about 30 emulated seconds
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    done = _as_csv("--truth", "site1=truth.csv", "--slot-s", "4", "--out", "as.csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    slots = parse_as_csv((tmp_path / "as.csv").read_text())  # what `as-report` takes
    # Whatever the boundaries' fractions, each whole 4 s slot holds 4 + 8 Wh.
    assert len(slots) >= 4 and set(slots.values()) == {12}, slots
    assert all(s % 4 == 0 for s in slots)
    assert sorted(slots) == list(range(min(slots), max(slots) + 1, 4))
    # A window: only its slots; a slot only partly in the truth (the first) is left out.
    first = min(slots)
    window = _as_csv(
        "--truth", "site1=truth.csv", "--slot-s", "4", "--start", str(first),
        "--end", str(first + 8), cwd=tmp_path,
    )  # fmt: skip
    assert window.returncode == 0, window.stderr
    assert parse_as_csv(window.stdout) == {first: 12, first + 4: 12}
    assert "2 slots of site1" in window.stderr


def test_meter_exports_cumulative_in_local_time_and_per_interval(tmp_path: Path) -> None:
    # A register read every 20 minutes in JST (no offset written), slots of 30 minutes:
    # 2026-01-14 00:00 JST is 2026-01-13T15:00Z = 1768316400.
    (tmp_path / "m1.csv").write_text(
        "time,import_kwh\n"
        "2026/01/14 00:00:00,100.000\n"
        "2026/01/14 00:20:00,100.400\n"
        "2026/01/14 00:40:00,100.500\n"
        "2026/01/14 01:00:00,101.100\n"
    )
    # Per 15 minutes, in UTC with offsets, in Wh.
    (tmp_path / "m2.csv").write_text(
        "start,wh\n"
        "2026-01-13T15:00:00+00:00,10\n"
        "2026-01-13T15:15:00+00:00,20\n"
        "2026-01-13T15:30:00+00:00,30\n"
        "2026-01-13T15:45:00+00:00,40\n"
    )
    t0 = 1_768_316_400
    cumulative = ["--time-column", "time", "--energy-column", "import_kwh"]
    one = _as_csv("--export", "site1=m1.csv", *cumulative, "--slot-s", "1800", cwd=tmp_path)
    assert one.returncode == 1 and "no UTC offset: give --utc-offset-h" in one.stderr
    one = _as_csv(
        "--export", "site1=m1.csv", *cumulative, "--utc-offset-h", "9", "--slot-s", "1800",
        cwd=tmp_path,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr
    # 00:30 lies between 100.400 (00:20) and 100.500 (00:40): 100.450 kWh.
    assert parse_as_csv(one.stdout) == {t0: 450, t0 + 1800: 650}
    per_interval = ["--export-kind", "interval", "--time-column", "start", "--energy-column"]
    two = _as_csv("--export", "site2=m2.csv", *per_interval, "wh", "--unit", "wh", cwd=tmp_path)
    assert two.returncode == 1 and "intervals of 900 s do not fit 60 s slots" in two.stderr
    two = _as_csv(
        "--export", "site2=m2.csv", *per_interval, "wh", "--unit", "wh", "--slot-s", "1800",
        cwd=tmp_path,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr
    assert parse_as_csv(two.stdout) == {t0: 30, t0 + 1800: 70}
    # A missing column is named with the columns there are; no source at all is refused.
    bad = _as_csv("--export", "site2=m2.csv", "--slot-s", "1800", cwd=tmp_path)
    assert bad.returncode == 1 and "no column 'time' (columns: start, wh)" in bad.stderr
    none = _as_csv("--slot-s", "1800", cwd=tmp_path)
    assert none.returncode == 1 and "give at least one --truth" in none.stderr
    truthless = _as_csv("--truth", "site1=m1.csv", cwd=tmp_path)
    assert truthless.returncode == 1 and "is no ground-truth CSV" in truthless.stderr

"""hw/: the systemd units pass systemd's own checks (`systemd-analyze verify`: no unknown
key, no key in the wrong section; `security`: exposure at most 2.0 of 10), start the
commands the package installs, and every bill of materials is well-formed CSV with a part
number on each electrical part."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNITS = sorted((ROOT / "hw" / "systemd").glob("*.service"))
BOMS = [ROOT / "hw" / "gateway" / "bom.csv", ROOT / "hw" / "pico-adapter" / "bom.csv"]


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is missing: run `make test` (apt-get install systemd)")
    return subprocess.run(
        ["systemd-analyze", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_a_unit_passes_systemds_checks(unit: Path, tmp_path: Path) -> None:
    if unit.name.endswith("@.service"):  # a template: checked as one of its instances
        instance = tmp_path / unit.name.replace("@.", "@fe1.")
        shutil.copy(unit, instance)
        unit = instance
    done = _analyze("verify", "--man=no", str(unit))
    complaints = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        # The package is not installed here, as on a device before first boot.
        if line.strip() and "is not executable: No such file or directory" not in line
    ]
    assert complaints == []
    secure = _analyze("security", "--offline=true", "--threshold=20", str(unit))
    assert secure.returncode == 0, secure.stdout[-800:]


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_a_unit_starts_a_command_of_ours(unit: Path) -> None:
    line = next(x for x in unit.read_text().splitlines() if x.startswith("ExecStart="))
    command, sub, *args = line.removeprefix("ExecStart=").split()
    module = {"mlg-node": "ledger_node.interfaces.cli", "mlg-gateway": "gateway.cli"}
    name = Path(command).name
    assert name in module, name
    helped = subprocess.run(
        [sys.executable, "-m", module[name], sub, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert helped.returncode == 0, helped.stderr
    assert args[0] in helped.stdout  # -c
    assert all(a in helped.stdout for a in args if a.startswith("--"))  # --role, --name


@pytest.mark.parametrize("bom", BOMS, ids=lambda p: p.parent.name)
def test_a_bill_of_materials_has_a_part_number_per_part(bom: Path) -> None:
    with bom.open(newline="") as f:
        rows = list(csv.reader(f))
    header, parts = rows[0], rows[1:]
    assert {"ref", "qty", "part", "manufacturer", "part number"} <= set(header)
    assert parts
    for row in parts:
        assert len(row) == len(header), row
        item = dict(zip(header, row, strict=True))
        assert item["qty"].isdigit(), item
        if item["ref"] != "-":  # a mechanical part any make of fits
            assert item["part number"].strip() not in ("", "-"), item

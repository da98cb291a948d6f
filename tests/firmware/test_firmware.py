"""The board code under the real MicroPython interpreter (the WebAssembly port, run by
Node) and under CPython: the same scripts (tests/mpy/fw_*.py) on the same files.

The scripts drive the firmware's logic the way the board does (Modbus frames in,
simulated S0 interrupts, reboots by building a new adapter over the same flash
directory) and raise on the first difference; each ends with a `PASS` line naming the
interpreter that ran it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.firmware.conftest import MPY, ROOT, micropython

VECTORS = sorted((ROOT / "tests" / "vectors" / "modbus").glob("*.json"))
SCRIPTS: dict[str, list[Path]] = {
    "fw_vectors.py": VECTORS,
    "fw_pulses.py": [],
    "fw_store.py": [],
    "fw_runner.py": [],
    "fw_pinmap.py": [ROOT / "hw" / "pico-adapter" / "pins.json"],
}


def _cpython(script: Path, files: list[Path], tmp: Path) -> subprocess.CompletedProcess[str]:
    for f in [script, *files]:
        shutil.copy(f, tmp / f.name)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, script.name],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp,
        env=env,
    )


@pytest.mark.parametrize("interpreter", ["micropython", "cpython"])
@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_firmware_script(name: str, interpreter: str, tmp_path: Path) -> None:
    script = MPY / name
    files = [MPY / "check.py", *SCRIPTS[name]]
    if interpreter == "micropython":
        result = micropython(script, *files)
    else:
        result = _cpython(script, files, tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    passed = [line for line in result.stdout.splitlines() if line.startswith("PASS ")]
    assert len(passed) == 1, output
    assert passed[0].endswith(" " + interpreter), output

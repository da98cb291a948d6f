"""The firmware area's helpers: the repository's root, the real MicroPython interpreter,
and what a float32 register holds."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MPY = ROOT / "tests" / "mpy"
"""The scripts run under MicroPython, and `run.mjs`, which runs them."""


def micropython(script: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    """`script` under the real MicroPython interpreter (its WebAssembly port, under Node),
    with the firmware package and `files` in its filesystem."""
    if not (ROOT / "node_modules" / "@micropython").is_dir() or shutil.which("node") is None:
        pytest.fail("the MicroPython interpreter is not installed: run `make test`")
    return subprocess.run(
        ["node", str(MPY / "run.mjs"), str(script), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


def f32(value: float) -> float:
    """`value` as a float32 register holds it."""
    result: float = struct.unpack(">f", struct.pack(">f", value))[0]
    return result

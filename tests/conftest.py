"""What every area uses: a real Mosquitto on a free loopback port, and our command lines
run as child processes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ledger_node.localnet.broker import Broker, find_mosquitto


@contextmanager
def mosquitto(workdir: Path) -> Iterator[Broker]:
    """Mosquitto for the block, its files in `workdir`; its log must show no error."""
    if find_mosquitto() is None:
        pytest.fail("Mosquitto is not installed: run `make test`, which installs it")
    b = Broker(workdir).start()
    try:
        yield b
    finally:
        b.stop()
    log = b.log_path.read_text()
    assert "Error" not in log, f"broker log shows errors:\n{log}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto for one test."""
    with mosquitto(tmp_path / "broker") as b:
        yield b


def run_module(
    module: str, *args: str, cwd: Path | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m module ARGS` in `cwd`, its output captured as text; its exit code is the
    caller's to check."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )

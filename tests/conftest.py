"""Fixtures of every area: a real Mosquitto on a free loopback port."""

from __future__ import annotations

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

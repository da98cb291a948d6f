"""Shared fixtures: a real Mosquitto on a free loopback port, started per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_node.localnet.broker import Broker, find_mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    if find_mosquitto() is None:
        pytest.fail("Mosquitto is not installed: run `make test`, which installs it")
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()
    log = b.log_path.read_text()
    assert "Error" not in log, f"broker log shows errors:\n{log}"

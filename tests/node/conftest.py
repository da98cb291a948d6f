"""The node area's fixture: figure 7's nodes as processes, fed by simulated gateways."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ledger_node.localnet.broker import Broker
from tests.support.sim import SimNet


@contextmanager
def fig7_nodes(work: Path, broker_port: int, **kw: Any) -> Iterator[SimNet]:
    """The TSO's, AC(1)'s and RA(1)'s nodes running (`LocalNet` options in `kw`), every
    site registered by its RA and every simulated gateway holding its epoch key."""
    sim = SimNet(work, broker_port, ("tso", "ac1", "ra1"), **kw)
    try:
        sim.net.start()
        sim.register()
        sim.take_epoch_keys(3)
        yield sim
    finally:
        sim.net.stop()


@pytest.fixture
def fig7(tmp_path: Path, broker: Broker) -> Iterator[SimNet]:
    with fig7_nodes(tmp_path, broker.port) as sim:
        yield sim

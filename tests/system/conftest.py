"""The system area's fixture: the demo's chain, shared by the tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger_node.localnet.chain import Chain
from tests.conftest import mosquitto
from tests.support.demo import NODES, SITES

SLOT_S = 60
SPEED = 30.0


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """The demo's figure 7 chain, shared by the tests of a module that use it. Readings
    are accepted for ten slots after their slot, so that the nodes can be stopped for a
    while without the gateways' batches turning late."""
    work = tmp_path_factory.mktemp("chain")
    with mosquitto(work / "broker") as broker:
        c = Chain(work, broker.port, SLOT_S, SPEED, SITES, NODES, late_after_s=10 * SLOT_S)
        try:
            c.start()
            yield c
        finally:
            c.stop()

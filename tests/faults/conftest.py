"""The fault suite's fixture: a `Rig` per scenario, stopped whatever happens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.rig import Rig


@pytest.fixture
def make_rig(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., Rig]]:
    """`make_rig(**options)`: a `Rig` in this test's folder, named after the test."""
    rigs: list[Rig] = []

    def make(**options: Any) -> Rig:
        rig = Rig(tmp_path / f"rig{len(rigs)}", request.node.name, **options)
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        rig.close()

"""Scenario 7: shredding a site's current epoch while its readings flow: the TSO starts
the next epoch at once, the gateway takes it and goes on sealing (nothing stored as
shredded after the shred), and the shredded data key's bytes are nowhere on disk (the
gateway's state, every node's database with its WAL, the broker's store)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger_node.localnet.wait import wait_until
from tests.faults.rig import Rig, sizes

pytestmark = pytest.mark.slow


def _epoch_keys(state: Path) -> dict[int, bytes]:
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        return {int(e): bytes(k) for e, k in db.execute("SELECT epoch, key FROM epoch_keys")}
    finally:
        db.close()


@sizes({"shreds": 1}, {"shreds": 4})
def test_shredding_the_current_epoch_keeps_readings_flowing_and_leaves_no_key(
    make_rig: Callable[..., Rig], size: dict[str, Any]
) -> None:
    rig = make_rig()
    rig.start()
    chain, net = rig.chain, rig.net
    state = rig.gateway_dbs["gw-site1"]
    shredded: list[bytes] = []
    wait_until(chain.common_slots, 60, "a first slot", alive=chain.check_alive)
    for epoch in range(size["shreds"]):
        key = wait_until(lambda e=epoch: _epoch_keys(state).get(e), 30, f"epoch {epoch}'s key")
        shredded.append(key)
        before = len(rig.tap.snapshot())
        t = time.monotonic()
        net.post("tso", "/api/shred", {"site": "site1", "epoch": epoch})
        wait_until(
            lambda e=epoch: chain.gateway_status("site1")["daemon"]["epoch"] == e + 1,
            60,
            f"the gateway sealing with epoch {epoch + 1}",
            alive=chain.check_alive,
        )
        took = time.monotonic() - t

        def sealed_with_new(epoch: int = epoch, before: int = before) -> bool:
            batches = rig.tap.snapshot()
            new = [m for v in batches.values() for m in v.values() if m.epoch == epoch + 1]
            return len(new) >= 2 and len(batches) > before

        wait_until(sealed_with_new, 60, "batches under the new epoch", alive=chain.check_alive)
        rig.figure(
            f"shred of epoch {epoch}: the gateway sealed with epoch {epoch + 1} {took:.1f} s later"
        )
    findings = rig.finish()
    for node in net.nodes:
        assert findings.held[node] == findings.batches
    # Batches sealed after each shred are under the new epoch: none is stored as shredded
    # beyond those sealed with the old key before the shred reached the gateway.
    keys = _epoch_keys(state)
    assert not set(keys) & set(range(size["shreds"])), f"shredded epochs kept: {sorted(keys)}"
    files = [p for p in rig.work.rglob("*") if p.is_file()]
    scanned = 0
    for path in files:
        data = path.read_bytes()
        scanned += len(data)
        for key in shredded:
            assert key not in data, f"a shredded key is still in {path}"
    rig.figure(
        f"{len(shredded)} shredded keys looked for in {len(files)} files ({scanned} bytes): none"
    )

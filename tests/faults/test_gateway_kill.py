"""Scenario 3: a gateway killed (SIGKILL) again and again at random points: nothing
lost, no seq reused, every slot reported once with the meter's energy."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger_node.localnet.wait import wait_until
from tests.faults.rig import Rig, energy_against_truth, sizes

pytestmark = pytest.mark.slow


def _boots(state: Path) -> int:
    """The gateway's boot counter, from its state database."""
    if not state.exists():
        return 0
    db = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key='boot'").fetchone()
    except sqlite3.OperationalError:  # being created
        return 0
    finally:
        db.close()
    return int(row[0]) if row else 0


@sizes({"kills": 6}, {"kills": 50})
def test_a_gateway_killed_at_random_points_loses_nothing_and_reuses_no_seq(
    make_rig: Callable[..., Rig], size: dict[str, Any]
) -> None:
    rig = make_rig()
    rig.start()
    chain = rig.chain
    wait_until(chain.common_slots, 60, "a first slot", alive=chain.check_alive)
    rng = random.Random(20261126)
    started = time.monotonic()
    state = rig.gateway_dbs["gw-site1"]
    for k in range(size["kills"]):
        proc = chain.procs["gateway-site1"]
        wait_until(lambda k=k: _boots(state) == k + 1, 30, "the boot", alive=chain.check_alive)
        if k % 3 == 2:
            # Just after a batch went out: between store, publish and confirm.
            seen = len(rig.tap.snapshot())
            wait_until(
                lambda s=seen: len(rig.tap.snapshot()) > s,
                30,
                "a new batch",
                alive=chain.check_alive,
            )
            time.sleep(rng.uniform(0.0, 0.05))
        else:
            time.sleep(rng.uniform(0.0, 3.0))  # anywhere: start-up, read, seal, store
        assert proc.poll() is None, (rig.work / "gateway-site1.log").read_text()[-3000:]
        proc.kill()
        proc.wait()
        chain.start_gateway("site1")
    killing = time.monotonic() - started
    wait_until(lambda: _boots(state) == size["kills"] + 1, 30, "the last boot")
    boots = chain.gateway_status("site1")["daemon"]["boot"]
    rig.figure(f"{size['kills']} SIGKILLs in {killing:.0f} s; the gateway booted {boots} times")
    assert boots == size["kills"] + 1
    # A few slots after the last kill, then the after-check.
    wait_until(
        lambda: len(chain.common_slots()) >= 3, 60, "slots after the kills", alive=chain.check_alive
    )
    rig.finish()
    slots, exact, worst = energy_against_truth(rig)
    rig.figure(f"energy: {slots} slots, {exact} equal to the truth, run sums off by {worst} Wh")
    assert worst == 0

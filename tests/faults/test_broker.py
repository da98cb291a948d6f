"""Scenario 1: the broker stopped for a while with its persistence deleted, then
restarted: nothing lost or duplicated, the gateways' backlog drained."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ledger_node.localnet.wait import wait_until
from tests.faults.rig import SPEED, Rig, energy_against_truth, sizes

pytestmark = pytest.mark.slow


@sizes({"outages": 1, "down_s": 8.0}, {"outages": 3, "down_s": 150.0})
def test_broker_down_with_its_store_deleted_loses_and_duplicates_nothing(
    make_rig: Callable[..., Rig], size: dict[str, Any]
) -> None:
    down_s = size["down_s"]
    # Readings are taken until well after the outage (sim seconds).
    rig = make_rig(persistence=True, late_after_s=int(3 * down_s * SPEED) + 120)
    rig.start()
    chain = rig.chain
    wait_until(chain.common_slots, 60, "a first slot", alive=chain.check_alive)
    for n in range(size["outages"]):
        before = chain.gateway_status("site1")["outbox"]["next_seq"]
        rig.broker.stop(kill=True)
        store = rig.work / "broker" / "mosquitto.db"
        deleted = store.stat().st_size if store.exists() else 0
        store.unlink(missing_ok=True)
        time.sleep(down_s)
        during = chain.gateway_status("site1")["outbox"]
        rig.broker.start()
        up = time.monotonic()
        wait_until(
            lambda d=during: (
                (chain.gateway_status("site1")["outbox"]["last_confirmed_seq"] or -1)
                >= d["next_seq"] - 1
            ),
            120,
            "the backlog to drain",
            alive=chain.check_alive,
        )
        rig.figure(
            f"outage {n + 1}: broker down {down_s:.0f} s, {deleted} bytes of store deleted; "
            f"{during['next_seq'] - before} batches sealed meanwhile (outbox depth "
            f"{during['depth']}); drained {time.monotonic() - up:.1f} s after the restart"
        )
        assert during["next_seq"] > before, "the gateway kept sealing while the broker was away"
    findings = rig.finish()
    assert not findings.refused, "nothing refused: every batch counts"
    slots, exact, worst = energy_against_truth(rig)
    rig.figure(f"energy: {slots} slots, {exact} equal to the truth, run sums off by {worst} Wh")
    # A slot whose polls came late on a busy machine is estimated (flagged, checked by
    # energy_against_truth) and may split energy otherwise; the run's sum is exact.
    assert worst == 0
    log = (rig.work / "gateway-site1.log").read_text()
    assert "disconnected from broker" in log and "session new" in log

"""Scenario 5: clock skew. A gateway's system clock stepped an hour ahead, back, an hour
behind and back (`--clock-skew-file`); a node's clock an hour behind, then fixed. Each
raises its alarm while it lasts (the gateway from the nodes' signed times, the node from
its peers' checkpoints; one node's wrong clock alarms nowhere else), no energy is lost or
put in another slot, and once the clocks are right every node holds every batch and the
totals equal the truth."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ledger_node.localnet.wait import wait_until
from tests.faults.rig import SLOT_S, SPEED, Rig, energy_against_truth, sizes

pytestmark = pytest.mark.slow


def _gateway_alarms(rig: Rig) -> list[str]:
    return list(rig.chain.gateway_status("site1")["daemon"]["alarms"])


def _energy_equals_truth(rig: Rig, exact_slots: bool = True) -> None:
    findings = rig.finish(settle_s=120)
    for node in rig.net.nodes:
        assert findings.held[node] == findings.batches, f"{node} lacks batches: {findings}"
    for node in rig.net.nodes:
        slots, exact, worst = energy_against_truth(rig, node)
        rig.figure(f"energy at {node}: {slots} slots, {exact} equal to the truth, off {worst} Wh")
        assert worst == 0, f"{node}: the run's energy is off the truth by {worst} Wh"
        if exact_slots:
            assert exact == slots, f"{node}: {slots - exact} slots differ from the truth"


# In make soak only (make test's time): tests/system/test_end_to_end.py has a gateway an hour
# off at boot and stepped while it runs.
@sizes(None, {"slots": 10, "cycles": 3})
def test_a_gateways_clock_stepped_an_hour_either_way_loses_no_energy(
    make_rig: Callable[..., Rig], size: dict[str, Any]
) -> None:
    rig = make_rig(late_after_s=(size["slots"] + 12) * SLOT_S)
    skew = rig.work / "gw-skew"
    skew.write_text("0")
    rig.start({"site1": ["--clock-skew-file", str(skew)]})
    chain = rig.chain
    wait_until(chain.common_slots, 60, "a first slot", alive=chain.check_alive)
    for cycle in range(size["cycles"]):
        for step in (3600, -3600):
            skew.write_text(str(step))  # NTP, or an operator, steps the clock
            t = time.monotonic()
            wait_until(
                lambda: any(a.startswith("clock_skew") for a in _gateway_alarms(rig)),
                30,
                "the gateway's clock_skew alarm",
                alive=chain.check_alive,
            )
            rig.figure(
                f"cycle {cycle + 1}: gateway clock {step:+d} s: clock_skew alarm after "
                f"{time.monotonic() - t:.1f} s"
            )
            time.sleep(size["slots"] * SLOT_S / SPEED)
            skew.write_text("0")
            wait_until(
                lambda: not any(a.startswith("clock_skew") for a in _gateway_alarms(rig)),
                30,
                "the alarm to clear",
                alive=chain.check_alive,
            )
        assert chain.gateway_status("site1")["daemon"]["clock_steps"] == 4 * (cycle + 1)
    _energy_equals_truth(rig)


@pytest.mark.soak  # ~50 s even small: make test has its alarm (tests/node/test_peer_time.py)
@pytest.mark.timeout(1500)
@pytest.mark.parametrize("size", [{"slots": 10}], ids=["soak"])
def test_a_nodes_clock_an_hour_behind_is_flagged_and_loses_no_energy(
    make_rig: Callable[..., Rig], size: dict[str, Any]
) -> None:
    # Three nodes: with one peer a node cannot tell whose clock is wrong (both alarm).
    rig = make_rig(late_after_s=(size["slots"] + 12) * SLOT_S, nodes=("tso", "ac1", "ra1"))
    skew = rig.work / "node-skew"
    skew.write_text("0")
    rig.start()
    chain, net = rig.chain, rig.net
    net.stop_node("ra1")
    net.start_node("ra1", "--clock-skew-file", str(skew))
    wait_until(chain.common_slots, 60, "a first slot", alive=chain.check_alive)

    def node_alarms() -> dict[str, Any]:
        return dict(net.get("ra1", "/api/status")["alarms"])

    skew.write_text("-3600")  # the gateway's batches look an hour early to ra1
    t = time.monotonic()
    # ra1 sees from its peers' signed checkpoints that its own clock is off.
    wait_until(
        lambda: "clock_skew" in node_alarms(), 60, "ra1's clock_skew", alive=chain.check_alive
    )
    rig.figure(
        f"node ra1 clock -3600 s: clock_skew after {time.monotonic() - t:.1f} s"
        f" ({net.get('ra1', '/api/status')['clock']['skew_s']:+.0f} s); ra1's alarms"
        f" {node_alarms()}, the gateway's {_gateway_alarms(rig)}"
    )
    time.sleep(size["slots"] * SLOT_S / SPEED)
    # One node's wrong clock moves no other clock: the gateway kept its time (its other
    # confirming node agrees with it), and the other nodes raised nothing.
    assert not any(a.startswith("clock_skew") for a in _gateway_alarms(rig))
    for node in net.nodes:
        if node != "ra1":
            assert "clock_skew" not in net.get(node, "/api/status")["alarms"], node
    skew.write_text("0")
    wait_until(lambda: "clock_skew" not in node_alarms(), 60, "ra1's alarm to end")
    # ra1 takes the batches it refused as `future` when the gateway sends them again.
    _energy_equals_truth(rig)

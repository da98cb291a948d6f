"""Scenario 9: key rotation and a site moving to another RA in the middle of a DR
command. Site1 (its real gateway) moves from RA(1) to RA(2), both of AC(1), during the
window of a command to AC(1): the TSO starts the site's next epoch (the rotation), the
gateway takes it, and nothing is lost: every batch on every node, every slot equal to the
truth, every slot of the window in AC(1)'s result with the site's true energy. Visibility
as specified before and after: RA(1) reads the old epoch's readings and not the new, RA(2)
the new and not the old, and no blinding of the new epoch is anywhere in RA(1)'s
database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ledger_node.ledger.store import connect
from ledger_node.localnet.wait import wait_until
from tests.faults.rig import SLOT_S, Rig, command_declared_by_ra1, energy_against_truth, sizes
from tests.support.sim import db_bytes

pytestmark = pytest.mark.slow

COMMAND = "dr-move"


# In make soak only (make test's time): tests/system/test_end_to_end.py has the move without a
# command.
@sizes(None, {"window": 20})
def test_a_site_moving_ra_with_a_new_epoch_during_a_command_loses_nothing(
    make_rig: Callable[..., Rig], size: dict[str, Any]
) -> None:
    rig = make_rig(nodes=("tso", "ra1", "ra2"))
    rig.start()
    chain, net = rig.chain, rig.net
    wait_until(chain.common_slots, 60, "a first slot", alive=chain.check_alive)
    start = (int(chain.sim_now()) // SLOT_S + 2) * SLOT_S
    end = start + size["window"] * SLOT_S
    command_declared_by_ra1(net, COMMAND, start, end, 30, 60)
    # Half-way through the window, the site moves.
    middle = start + size["window"] // 2 * SLOT_S
    wait_until(
        lambda: chain.sim_now() >= middle, 60, "the window's middle", alive=chain.check_alive
    )
    net.post("tso", "/api/site-moves", {"site": "site1", "ra": "ra2"})
    wait_until(
        lambda: chain.gateway_status("site1")["daemon"]["epoch"] == 1,
        30,
        "the gateway sealing with epoch 1",
        alive=chain.check_alive,
    )
    wait_until(
        lambda: chain.sim_now() >= end + 2 * SLOT_S,
        120,
        "the window's end",
        alive=chain.check_alive,
    )
    wait_until(
        lambda: {s for _, s in chain.totals("tso")} >= set(range(start, end, SLOT_S)),
        60,
        "the window's slots at the TSO",
        alive=chain.check_alive,
    )
    findings = rig.finish()
    for node in net.nodes:
        assert findings.held[node] == findings.batches, f"{node} lacks batches: {findings}"
    slots, exact, worst = energy_against_truth(rig)
    rig.figure(f"energy at tso: {slots} slots, {exact} equal to the truth, off {worst} Wh")
    assert worst == 0  # a differing slot must be flagged (energy_against_truth)
    epochs = {}
    for node in net.nodes:
        db = connect(net.db(node), readonly=True)
        try:
            epochs[node] = dict(
                db.execute(
                    "SELECT b.slot, b.epoch FROM batches b JOIN readings r ON r.pos = b.pos"
                    " WHERE b.site = 'site1'"
                ).fetchall()
            )
            if node == "tso":
                result = dict(
                    db.execute(
                        "SELECT slot, actual_wh FROM results"
                        " WHERE command=? AND kind='ac' AND scope='ac1'",
                        (COMMAND,),
                    ).fetchall()
                )
            if node == "ra2":
                blindings = [bytes(r) for (r,) in db.execute("SELECT r FROM readings")]
        finally:
            db.close()
    read = {n: sorted(set(e.values())) for n, e in epochs.items()}
    cut = min(s for s, e in epochs["tso"].items() if e == 1)
    rig.figure(
        f"moved at {middle - start} s into a {end - start} s window; epoch 1 from slot "
        f"+{cut - start} s; epochs read: {read}; slots read: "
        f"{ {n: len(e) for n, e in epochs.items()} }"
    )
    assert read == {"tso": [0, 1], "ra1": [0], "ra2": [1]}
    assert set(epochs["ra1"]) == {s for s, e in epochs["tso"].items() if e == 0}
    assert set(epochs["ra2"]) == {s for s, e in epochs["tso"].items() if e == 1}
    assert start < cut < end, "the rotation fell inside the window"
    truth = chain.truth(range(start, end, SLOT_S))
    window = {s: truth[("site1", s)] for s in range(start, end, SLOT_S)}
    rig.figure(f"AC(1)'s result over the window at the TSO: {result}; truth {window}")
    assert result == window
    old_ra = db_bytes(net.db("ra1"))
    assert blindings and not [r for r in blindings if r in old_ra]

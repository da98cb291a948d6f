"""Privacy on figure 7's node processes: each node decrypts exactly the groups it may read,
and its database holds no secret of the others (simulated gateways, tests/support/sim.py).
A site that moves to another RA, with a real gateway, is in tests/system/test_end_to_end.py."""

from __future__ import annotations

import base64

import pytest

from ledger_node.localnet.wait import wait_until
from ledger_node.wire import ReadingsBatch, open_body, parse
from tests.support.sim import SimNet, db_bytes

pytestmark = pytest.mark.slow

FIG7_READS = {"tso": {"site1", "site2", "site3"}, "ac1": {"site1", "site2"}, "ra1": {"site1"}}


def test_figure7_each_node_decrypts_exactly_its_groups(fig7: SimNet) -> None:
    slots = [fig7.last_slot() - 60 * k for k in (2, 1, 0)]
    items = [fig7.batch(site, slot) for slot in slots for site in fig7.RAS]
    fig7.publish(items)
    fig7.wait_accepted(("tso", "ac1", "ra1"), len(items))
    for node, sites in FIG7_READS.items():
        expected = {(site, slot) for site in sites for slot in slots}
        wait_until(
            lambda n=node, e=expected: set(fig7.totals(n)) == e,  # type: ignore[misc]
            30,
            f"{node} decrypts {sites}",
            alive=fig7.net.check_alive,
        )
        totals = fig7.totals(node)
        for gw in fig7.gateways.values():
            for raw, payload in gw.sealed:
                if gw.site in sites:
                    batch = open_body(parse(raw))
                    assert isinstance(batch, ReadingsBatch)
                    wh = sum(r.wh for r in payload.readings)
                    assert totals[(gw.site, batch.slot_start)] == wh
        status = fig7.status(node)
        assert {g["site"] for g in status["groups"]} == sites
        assert status["log"]["size"] == 1 + 3 + 3 + len(items)  # every node keeps every batch
    fig7.net.stop()
    for node, sites in FIG7_READS.items():
        raw_db = db_bytes(fig7.net.db(node))
        for gw in fig7.gateways.values():
            for _, payload in gw.sealed:
                for reading in payload.readings:
                    secrets = (reading.blinding, base64.b64encode(reading.blinding))
                    present = [s in raw_db for s in secrets]
                    if gw.site in sites:
                        assert present[0], f"{node} should hold the readings of {gw.site}"
                    else:
                        assert not any(present), f"{node}'s database holds a {gw.site} secret"
                assert payload.to_bytes() not in raw_db

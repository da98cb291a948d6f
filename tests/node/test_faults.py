"""Node processes on a real Mosquitto under faults, fed by simulated gateways
(tests/support/sim.py): a changed byte in a database is named by `verify`, and bad input
is refused with its reasons and changes nothing. (A node killed during ingest is the
fault suite's scenario 2, tests/faults/test_node_kill.py.)"""

from __future__ import annotations

import pytest

from ledger_node.localnet.wait import wait_until
from ledger_node.shared.keys import Identity
from ledger_node.wire import SiteRegistration, parse
from tests.support.sim import SimGateway, SimNet

pytestmark = pytest.mark.slow


def test_a_changed_byte_in_the_database_is_named_by_verify(fig7: SimNet) -> None:
    items = [fig7.batch("site2", fig7.last_slot() - 60 * k) for k in range(4)]
    fig7.publish(items)
    fig7.wait_accepted(("ac1",), len(items))
    fig7.net.stop_node("ac1")
    ok = fig7.net.cli("ac1", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    target = items[2][1]
    envelope = parse(target)
    db = fig7.net.db("ac1")
    data = bytearray(db.read_bytes())
    at = data.find(envelope.body)
    assert at >= 0, "the batch should be in the database file"
    data[at + 20] ^= 0x01
    db.write_bytes(bytes(data))
    bad = fig7.net.cli("ac1", "verify")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    entry = next(line for line in bad.stdout.splitlines() if line.startswith("BAD:"))
    assert envelope.txid.hex()[:16] in entry
    assert "readings by gw-site2" in entry
    assert "does not hash to its txid" in entry


def test_bad_input_is_refused_with_reasons_and_changes_nothing(fig7: SimNet) -> None:
    slot = fig7.last_slot()
    good = [fig7.batch("site1", slot - 60 * k) for k in (3, 2, 1)]
    fig7.publish(good)
    fig7.wait_accepted(("tso",), 3)
    totals = wait_until(
        lambda: len(fig7.totals("tso")) == 3 and fig7.totals("tso"),
        30,
        "decrypted",
        alive=fig7.net.check_alive,
    )
    before = fig7.status("tso")

    topic = good[0][0]
    gw = fig7.gateways["site1"]
    forged_gw = type(gw)(type(gw.identity).generate("gw-site1"), "site1", gw.meters, dict(gw.keys))
    forged = forged_gw.batch(slot, {"m1": 1, "m2": 1})
    late = gw.batch(slot - 3 * 3600, {"m1": 1, "m2": 1})
    unknown_meter = gw.batch(slot, {"m1": 1, "m9": 1})
    envelope = bytearray(good[1][1])
    envelope[-1] ^= 1
    fig7.publish(
        [
            (topic, good[0][1], False),  # replayed
            (topic, forged, False),  # signed with another key under the gateway's name
            (topic, bytes(envelope), False),  # signature bit flipped
            (topic, b"\x00garbage", False),  # malformed
            (topic, good[2][1][:-10], False),  # truncated
            (topic, b"ML\x01" + bytes(70_000), False),  # oversized
            (topic, late, False),  # for a slot that closed long ago
            (topic, unknown_meter, False),  # a meter the site did not register
        ]
    )
    wanted = {
        "replay": 1,
        "bad_signature": 2,
        "malformed": 1,
        "truncated": 1,
        "oversize": 1,
        "late": 1,
        "not_allowed": 1,
    }

    def refused() -> dict[str, int]:
        got = fig7.status("tso")["refused"]
        base = before["refused"]
        return {k: got.get(k, 0) - base.get(k, 0) for k in wanted}

    wait_until(lambda: refused() == wanted, 30, f"refusals {wanted}", alive=fig7.net.check_alive)
    after = fig7.status("tso")
    assert after["log"] == before["log"], "refused input must not change the log"
    assert fig7.totals("tso") == totals
    log = fig7.net.log_path("tso").read_text()
    for reason in wanted:
        if reason != "replay":
            assert f"refused ({reason})" in log

    # Reordered: a registry fact ahead of its author's order is held until the one before
    # it arrives, then both apply, in order.
    facts = {}
    for n, site in ((2, "site1b"), (3, "site1c")):
        gw_key = SimGateway(Identity.generate(f"gw-{site}"), site, ("m1",)).gateway_key()
        facts[n] = fig7.net.sign("ra1", SiteRegistration("ra1", n, site, gw_key, ("m1",)))
    fig7.publish([("mlg/v1/facts/site/ra1/3", facts[3], True)])
    wait_until(
        lambda: fig7.status("tso")["held"] == 1, 30, "fact 3 held", alive=fig7.net.check_alive
    )
    sites = {s["site"] for s in fig7.net.get("tso", "/api/registry")["sites"]}
    assert sites == {"site1", "site2", "site3"}
    fig7.publish([("mlg/v1/facts/site/ra1/2", facts[2], True)])
    wait_until(
        lambda: fig7.status("tso")["held"] == 0, 30, "held fact applied", alive=fig7.net.check_alive
    )
    sites = {s["site"] for s in fig7.net.get("tso", "/api/registry")["sites"]}
    assert sites == {"site1", "site1b", "site1c", "site2", "site3"}

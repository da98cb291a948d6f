"""Node processes on a real Mosquitto under faults, fed by simulated gateways
(tests/support/sim.py): a node killed during ingest catches up from its peers, a changed
byte in a database is named by `verify`, and bad input is refused with its reasons and
changes nothing."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ledger_node.ledger.store import connect
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.keys import Identity
from ledger_node.wire import SiteRegistration, parse
from tests.node.conftest import fig7_nodes
from tests.support.sim import SimGateway, SimNet

pytestmark = pytest.mark.slow


def _drop_session(port: int, client_id: str) -> None:
    """Make the broker forget a client's session and queued messages (as a broker restart
    without persistence would): the node must then get what it missed from its peers."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect("127.0.0.1", port, clean_start=True, properties=props)
    client.loop_start()
    time.sleep(0.3)
    client.disconnect()
    client.loop_stop()


def _closed_digests(db_path: Path) -> dict[int, tuple[int, bytes]]:
    db = connect(db_path, readonly=True)
    try:
        return {
            slot: (n, bytes(d))
            for slot, n, d in db.execute(
                "SELECT slot, digest_count, digest FROM slots WHERE digest IS NOT NULL"
            )
        }
    finally:
        db.close()


def test_node_killed_during_ingest_catches_up_from_peers(tmp_path: Path, broker: Broker) -> None:
    with fig7_nodes(
        tmp_path,
        broker.port,
        speed=20.0,
        late_after_s=240,
        checkpoint_every_s=0.5,
        sync_every_s=1.0,
    ) as sim:
        sent: list[int] = []
        stop = threading.Event()

        def gateways() -> None:
            while not stop.is_set():
                slot = sim.last_slot()
                sim.publish([sim.batch(site, slot) for site in sim.RAS])
                sent.append(slot)
                time.sleep(0.05)

        publisher = threading.Thread(target=gateways)
        publisher.start()
        try:
            for _ in range(4):
                time.sleep(1.5)
                sim.net.stop_node("ra1", signal.SIGKILL)
                _drop_session(broker.port, "node-ra1")
                time.sleep(0.5)
                sim.net.start_node("ra1")
        finally:
            stop.set()
            publisher.join()
        total = 3 * len(sent)
        sim.wait_accepted(("tso", "ac1"), total)
        wait_until(
            lambda: sim.accepted("ra1") >= total, 60, "ra1 catches up", alive=sim.net.check_alive
        )
        assert sim.status("ra1")["log"]["size"] == sim.status("tso")["log"]["size"]
        fetched = sum(p["fetched"] for p in sim.status("ra1")["peers"])
        assert fetched > 0, "the killed node should have fetched what it missed from peers"
        # Every slot closes; the digests then agree with the node that never stopped.
        last_close = max(sent) + 60 + 240
        wait_until(
            lambda: sim.sim_now() > last_close + 5, 60, "slots close", alive=sim.net.check_alive
        )
        slots = set(sent)

        def closed(node: str) -> dict[int, tuple[int, bytes]]:
            got = _closed_digests(sim.net.db(node))
            return {s: d for s, d in got.items() if s in slots}

        wait_until(
            lambda: len(closed("ra1")) == len(slots),
            30,
            "ra1 closes every slot",
            alive=sim.net.check_alive,
        )
        wait_until(
            lambda: len(closed("tso")) == len(slots),
            30,
            "tso closes every slot",
            alive=sim.net.check_alive,
        )
        assert closed("ra1") == closed("tso")
        done = sim.net.cli("ra1", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "OK:" in done.stdout


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

"""Several node processes on a real Mosquitto, fed by simulated gateways that seal real
batches with the wire types (tests/support/sim.py): privacy, recovery, tampering, bad input,
shredding, proofs and status. A membership change with a real gateway is in
tests/system/test_end_to_end.py."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ledger_node.ledger.store import connect
from ledger_node.localnet.broker import Broker
from ledger_node.network.genesis import load_genesis
from ledger_node.shared.keys import Identity
from ledger_node.wire import (
    DrDeclaration,
    EpochKey,
    HighWaterMark,
    ReadingsBatch,
    SiteRegistration,
    open_body,
    open_message,
    parse,
)
from tests.support.sim import SimGateway, SimNet, db_bytes, retained

pytestmark = pytest.mark.slow

FIG7_READS = {"tso": {"site1", "site2", "site3"}, "ac1": {"site1", "site2"}, "ra1": {"site1"}}


@pytest.fixture
def fig7(tmp_path: Path, broker: Broker) -> Iterator[SimNet]:
    sim = SimNet(tmp_path, broker.port, ("tso", "ac1", "ra1"))
    try:
        sim.net.start()
        sim.register()
        sim.take_epoch_keys(3)
        yield sim
    finally:
        sim.net.stop()


def _totals(sim: SimNet, node: str) -> dict[tuple[str, int], int]:
    return {(r["site"], r["slot"]): r["wh"] for r in sim.net.get(node, "/api/totals")}


def _wait_accepted(sim: SimNet, nodes: tuple[str, ...], count: int) -> None:
    for node in nodes:
        sim.net.wait_for(lambda n=node: sim.accepted(n) >= count, 30, f"{node} accepts {count}")  # type: ignore[misc]


def test_figure7_each_node_decrypts_exactly_its_groups(fig7: SimNet) -> None:
    slots = [fig7.last_slot() - 60 * k for k in (2, 1, 0)]
    items = [fig7.batch(site, slot) for slot in slots for site in fig7.RAS]
    fig7.publish(items)
    _wait_accepted(fig7, ("tso", "ac1", "ra1"), len(items))
    for node, sites in FIG7_READS.items():
        expected = {(site, slot) for site in sites for slot in slots}
        fig7.net.wait_for(
            lambda n=node, e=expected: set(_totals(fig7, n)) == e,  # type: ignore[misc]
            30,
            f"{node} decrypts {sites}",
        )
        totals = _totals(fig7, node)
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
    sim = SimNet(
        tmp_path,
        broker.port,
        ("tso", "ac1", "ra1"),
        speed=20.0,
        late_after_s=240,
        checkpoint_every_s=0.5,
        sync_every_s=1.0,
    )
    try:
        sim.net.start()
        sim.register()
        sim.take_epoch_keys(3)
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
        _wait_accepted(sim, ("tso", "ac1"), total)
        sim.net.wait_for(lambda: sim.accepted("ra1") >= total, 60, "ra1 catches up")
        assert sim.status("ra1")["log"]["size"] == sim.status("tso")["log"]["size"]
        fetched = sum(p["fetched"] for p in sim.status("ra1")["peers"])
        assert fetched > 0, "the killed node should have fetched what it missed from peers"
        # Every slot closes; the digests then agree with the node that never stopped.
        last_close = max(sent) + 60 + 240
        sim.net.wait_for(lambda: sim.sim_now() > last_close + 5, 60, "slots close")
        slots = set(sent)

        def closed(node: str) -> dict[int, tuple[int, bytes]]:
            got = _closed_digests(sim.net.db(node))
            return {s: d for s, d in got.items() if s in slots}

        sim.net.wait_for(lambda: len(closed("ra1")) == len(slots), 30, "ra1 closes every slot")
        sim.net.wait_for(lambda: len(closed("tso")) == len(slots), 30, "tso closes every slot")
        assert closed("ra1") == closed("tso")
        done = sim.net.cli("ra1", "verify")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "OK:" in done.stdout
    finally:
        sim.net.stop()


def test_a_changed_byte_in_the_database_is_named_by_verify(fig7: SimNet) -> None:
    items = [fig7.batch("site2", fig7.last_slot() - 60 * k) for k in range(4)]
    fig7.publish(items)
    _wait_accepted(fig7, ("ac1",), len(items))
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
    _wait_accepted(fig7, ("tso",), 3)
    totals = fig7.net.wait_for(
        lambda: len(_totals(fig7, "tso")) == 3 and _totals(fig7, "tso"), 30, "decrypted"
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

    fig7.net.wait_for(lambda: refused() == wanted, 30, f"refusals {wanted}")
    after = fig7.status("tso")
    assert after["log"] == before["log"], "refused input must not change the log"
    assert _totals(fig7, "tso") == totals
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
    fig7.net.wait_for(lambda: fig7.status("tso")["held"] == 1, 30, "fact 3 held")
    sites = {s["site"] for s in fig7.net.get("tso", "/api/registry")["sites"]}
    assert sites == {"site1", "site2", "site3"}
    fig7.publish([("mlg/v1/facts/site/ra1/2", facts[2], True)])
    fig7.net.wait_for(lambda: fig7.status("tso")["held"] == 0, 30, "held fact applied")
    sites = {s["site"] for s in fig7.net.get("tso", "/api/registry")["sites"]}
    assert sites == {"site1", "site1b", "site1c", "site2", "site3"}


def _wait_sim(sim: SimNet, t: float) -> None:
    sim.net.wait_for(lambda: sim.sim_now() >= t, 60, f"simulated time {t}")


def test_contract_results_checks_and_shredding(tmp_path: Path, broker: Broker) -> None:
    sim = SimNet(tmp_path, broker.port, ("tso", "ac1", "ra1"), speed=20.0)
    try:
        sim.net.start()
        sim.register()
        sim.take_epoch_keys(3)
        start = (int(sim.sim_now()) // 60 + 2) * 60
        command = {
            "id": "c1",
            "start": start,
            "end": start + 120,
            "slot_s": 60,
            "gate_closure": start,
            "price_yen_per_kwh": 20,
            "targets": {"ac1": 100},
        }
        sim.net.post("tso", "/api/commands", command)
        sim.net.wait_for(lambda: sim.net.get("ra1", "/api/commands"), 30, "the command at ra1")
        sim.net.post("ra1", "/api/declarations", {"command": "c1", "sites": {"site1": 400}})
        sim.net.publish_fact("ra2", DrDeclaration("ra2", "c1", 1, (("site2", (350,)),)))
        _wait_sim(sim, start + 120)
        sim.publish(
            [
                sim.batch(site, slot, {"m1": 100 + i, "m2": 150})
                for i, slot in enumerate((start, start + 60))
                for site in ("site1", "site2", "site3")
            ]
        )
        # After gate closure a declaration is refused, with its reason.
        late = sim.net.cli("ra1", "declare", "--command", "c1", "--site", "site1=1")
        assert late.returncode == 1 and "gate_closed" in late.stderr, late.stderr

        def settled(node: str) -> list[dict[str, object]]:
            rows = sim.net.get(node, "/api/results?command=c1")["results"]
            done = [r for r in rows if r["reported"] == r["declared"] == 2 or r["kind"] == "ac"]
            return rows if len(rows) == len(done) and any(r["actual_wh"] for r in rows) else []

        tso = sim.net.wait_for(lambda: settled("tso"), 30, "results on the TSO's node")
        by = {(r["slot"], r["kind"], r["scope"]): r for r in tso}
        assert set(by) == {
            (s, k, o)
            for s in (start, start + 60)
            for k, o in (("ra", "ra1"), ("ra", "ra2"), ("ac", "ac1"))
        }
        first = by[(start, "ac", "ac1")]
        assert first["actual_wh"] == 250 + 250  # site1 and site2, two meters each
        assert first["baseline_wh"] == 750 and first["delivered_wh"] == 250
        assert first["contract"] == "dr-1" and first["target_wh"] == 100
        rewards = sim.net.get("tso", "/api/results?command=c1")["rewards"]
        assert rewards == [
            {
                "ac": "ac1",
                "command": "c1",
                "contract": "dr-1",
                "credited_wh": 200,
                "penalised_wh": 0,
                "price_yen_per_kwh": 20,
                "reward_yen": 4,
                "shortfall_wh": 0,
            }
        ]
        ra1 = sim.net.wait_for(lambda: settled("ra1"), 30, "results on RA(1)'s node")
        assert [r for r in ra1 if r["scope"] == "ra1"] == [r for r in tso if r["scope"] == "ra1"]
        assert {r["scope"] for r in ra1} == {"ra1"}  # RA(1) cannot settle what it cannot read

        # RA(1) checks AC(1)'s total from public data; a total with a reading left out or
        # altered fails.
        def check(result: dict[str, object]) -> str:
            path = tmp_path / "result.json"
            path.write_text(json.dumps(result))
            done = sim.net.cli("ra1", "check-total", str(path))
            return "OK" if done.returncode == 0 else done.stderr

        assert check(first) == "OK"
        total = dict(first["total"])  # type: ignore[call-overload]
        assert "leaves out" in check({**first, "total": {**total, "refs": total["refs"][1:]}})
        assert "altered" in check({**first, "total": {**total, "v_wh": total["v_wh"] + 1}})

        # Shred site1's epoch 0: unreadable on every replica, hashes and totals stay.
        secret = sim.gateways["site1"].sealed[0][1].readings[0].blinding
        assert secret in db_bytes(sim.net.db("tso"))
        sim.net.post("tso", "/api/shred", {"site": "site1", "epoch": 0})
        for node in ("tso", "ac1", "ra1"):
            sim.net.wait_for(
                lambda n=node: sim.status(n)["shredded"] == [{"site": "site1", "epoch": 0}],  # type: ignore[misc]
                30,
                f"{node} shreds",
            )
            assert not [r for r in sim.net.get(node, "/api/totals") if r["site"] == "site1"]
        assert sim.net.get("tso", "/api/results?command=c1")["results"] == tso
        assert check(first) == "OK"
        assert retained(broker.port, "mlg/v1/facts/epoch_key/tso/site1/#", 1, 2.0) == []
        sim.net.stop()
        for node in ("tso", "ac1", "ra1"):
            assert secret not in db_bytes(sim.net.db(node)), f"{node} still holds site1 data"
            done = sim.net.cli(node, "verify")
            assert done.returncode == 0, done.stdout + done.stderr
    finally:
        sim.net.stop()


def _mlg(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger_node.interfaces.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_proofs_status_and_high_water_marks(fig7: SimNet, tmp_path: Path) -> None:
    items = [fig7.batch(site, fig7.last_slot() - 60 * k) for k in (1, 0) for site in fig7.RAS]
    fig7.publish(items)
    _wait_accepted(fig7, ("tso", "ac1", "ra1"), len(items))
    size = 1 + 3 + 3 + len(items)

    def cosigned() -> bool:
        cp = fig7.status("tso")["checkpoint"] or {}
        return cp.get("size") == size and len(cp["cosigners"]) == 2

    fig7.net.wait_for(cosigned, 30, "a checkpoint co-signed by both peers")

    # An inclusion proof under the signed checkpoint, checked by a separate command.
    txid = parse(items[0][1]).txid.hex()
    proof = fig7.net.cli("tso", "prove", txid)
    assert proof.returncode == 0, proof.stderr
    doc = json.loads(proof.stdout)
    assert (doc["leaf_index"], doc["tree_size"]) == (7, size) and doc["checkpoint"]
    path = tmp_path / "proof.json"
    path.write_text(proof.stdout)
    pub = str(tmp_path / "keys" / "tso.key.pub")
    ok = _mlg("check-proof", str(path), "--node-key", pub)
    assert ok.returncode == 0 and ok.stdout.startswith("OK:"), ok.stdout + ok.stderr
    for field, value in (
        ("proof", [doc["proof"][0][:-2] + "00", *doc["proof"][1:]]),
        ("leaf_index", 8),
        ("root", "00" * 32),
    ):
        path.write_text(json.dumps({**doc, field: value}))
        bad = _mlg("check-proof", str(path))
        assert bad.returncode == 1, field
    other = str(tmp_path / "keys" / "ac1.key.pub")
    path.write_text(proof.stdout)
    assert _mlg("check-proof", str(path), "--node-key", other).returncode == 1

    # A consistency proof between two sizes of the log.
    cons = fig7.net.cli("tso", "consistency", "--from", "5")
    assert cons.returncode == 0, cons.stderr
    path.write_text(cons.stdout)
    assert _mlg("check-proof", str(path)).returncode == 0
    path.write_text(cons.stdout.replace(json.loads(cons.stdout)["old_root"], "11" * 32))
    assert _mlg("check-proof", str(path)).returncode == 1

    # Status, in a terminal and as JSON.
    text = fig7.net.cli("tso", "status")
    assert text.returncode == 0, text.stderr
    assert "node tso (tso)" in text.stdout
    assert f"log: {size} entries" in text.stdout
    assert "readable here: site1#0, site2#0, site3#0" in text.stdout
    assert "co-signed by ac1" in text.stdout and "ra1" in text.stdout
    assert "gw-site1" in text.stdout and "last seq 1" in text.stdout
    status = json.loads(fig7.net.cli("ra1", "status", "--json").stdout)
    assert status["role"] == "ra" and [g["site"] for g in status["groups"]] == ["site1"]
    assert {p["peer"] for p in status["peers"]} == {"tso", "ac1"}
    assert status["accepted"]["readings"] == len(items)

    # Each node publishes, per gateway, a signed high-water mark the gateway can trust.
    marks = retained(fig7.port, "mlg/v1/hwm/+/gw-site1", 3)
    keys = {
        n: Identity.load(tmp_path / "keys" / f"{n}.key").signing_key.verify_key
        for n in ("tso", "ac1", "ra1")
    }
    opened = [open_message(raw, keys)[1] for raw in marks]
    assert {m.by for m in opened} == {"tso", "ac1", "ra1"}  # type: ignore[attr-defined]
    for mark in opened:
        assert isinstance(mark, HighWaterMark)
        assert (mark.gateway, mark.next, mark.above) == ("gw-site1", 2, ())


def test_authoring_commands_go_through_the_running_nodes(fig7: SimNet, tmp_path: Path) -> None:
    net = fig7.net
    ra4 = Identity.generate("ra4")
    ra4_pub = ra4.save(tmp_path / "ra4.key")
    gw = Identity.generate("gw-site9")
    gw_pub = gw.save(tmp_path / "gw-site9.key")

    def ok(node: str, *args: str) -> str:
        done = net.cli(node, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "org_add accepted" in ok(
        "tso", "org-add", "--pub", str(ra4_pub), "--role", "ra", "--ac", "ac1"
    )
    ok("ra1", "site", "--site", "site9", "--gateway", str(gw_pub), "--meter", "m2", "--meter", "m1")
    ok("tso", "site-move", "--site", "site9", "--to", "ra4")
    ok(
        "tso",
        "command",
        "--id",
        "c7",
        "--start",
        "2030-01-01T09:00:00+09:00",
        "--end",
        "2030-01-01T10:00:00+09:00",
        "--gate-closure",
        "2030-01-01T08:00:00+09:00",
        "--price",
        "20",
        "--target",
        "ac1=500",
    )
    # Refused with the reason: an RA may not move a site; a time without its offset.
    refused = net.cli("ra1", "site-move", "--site", "site9", "--to", "ra1")
    assert refused.returncode == 1 and "refused (not_allowed)" in refused.stderr
    naive = net.cli(
        "tso",
        "command",
        "--id",
        "c8",
        "--start",
        "2030-01-01T09:00:00",
        "--end",
        "2030-01-01T10:00:00",
        "--gate-closure",
        "2030-01-01T08:00:00",
        "--price",
        "1",
        "--target",
        "ac1=1",
    )
    assert naive.returncode == 1 and "offset" in naive.stderr

    def registered() -> bool:
        registry = net.get("ac1", "/api/registry")
        site9 = [s for s in registry["sites"] if s["site"] == "site9"]
        return bool(site9) and site9[0]["ra"] == "ra4" and site9[0]["meters"] == ["m1", "m2"]

    net.wait_for(registered, 30, "site9 moved to ra4 on ac1's node")
    commands = net.wait_for(lambda: net.get("ac1", "/api/commands"), 30, "c7 at ac1")
    assert commands[0]["id"] == "c7" and commands[0]["start"] == 1893456000
    ok("tso", "org-remove", "--id", "ra4")
    net.wait_for(
        lambda: (
            not [
                o
                for o in net.get("ra1", "/api/registry")["orgs"]
                if o["id"] == "ra4" and o["active"]
            ]
        ),
        30,
        "ra4 removed",
    )
    # The TSO started a new epoch of site9 without ra4: ra4 cannot read what comes next.

    def site9_epochs() -> list[EpochKey]:
        keys = retained(fig7.port, "mlg/v1/facts/epoch_key/tso/site9/+", 1)
        return sorted((open_body(parse(raw)) for raw in keys), key=lambda k: k.epoch)  # type: ignore[attr-defined, no-any-return]

    epochs = net.wait_for(
        lambda: [k for k in site9_epochs() if k.members == ("ac1", "tso")], 30, "new epoch"
    )
    assert epochs[-1].gateway == "gw-site9"
    assert all("ra4" not in {w.to for w in k.wrapped} for k in epochs)
    stopped = net.cli("ra1", "org-add", "--pub", str(ra4_pub), "--role", "ra", "--ac", "ac1")
    assert stopped.returncode == 1 and "refused" in stopped.stderr  # only the TSO adds
    for command in ("run", "status", "verify", "prove", "genesis", "declare", "shred"):
        assert _mlg(command, "--help").returncode == 0


def test_genesis_from_the_command_line(tmp_path: Path) -> None:
    for name in ("tso", "ac1", "ra1"):
        assert _mlg("keygen", "--id", name, "--out", str(tmp_path / f"{name}.key")).returncode == 0
    out = tmp_path / "genesis.mlg"
    made = _mlg(
        "genesis",
        "--key",
        str(tmp_path / "tso.key"),
        "--network",
        "jp-east",
        "--org",
        f"{tmp_path / 'ac1.key.pub'}:ac",
        "--org",
        f"{tmp_path / 'ra1.key.pub'}:ra:ac1",
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    _, genesis = load_genesis(out)
    assert [(o.id, o.role, o.ac) for o in genesis.orgs] == [
        ("ac1", "ac", None),
        ("ra1", "ra", "ac1"),
        ("tso", "tso", None),
    ]
    assert genesis.contract == "dr-1"
    again = _mlg("genesis", "--key", str(tmp_path / "tso.key"), "--network", "x", "--out", str(out))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    bad = _mlg(
        "genesis",
        "--key",
        str(tmp_path / "tso.key"),
        "--network",
        "x",
        "--org",
        "nowhere.pub:ra",
        "--out",
        str(tmp_path / "g2.mlg"),
    )
    assert bad.returncode == 1

"""A node past one machine: its tables on a real PostgreSQL, verifying front-ends sharing
its readings through an MQTT 5 shared subscription on a real Mosquitto, one elected
sequencer and a standby; every part a process, killed with SIGKILL where the test says."""

from __future__ import annotations

import dataclasses
import re
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from ledger_node.ledger.store import connect, counters
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.network import LocalNet
from ledger_node.localnet.postgres import Postgres
from ledger_node.localnet.wait import wait_until
from ledger_node.network.witness import slot_digest
from ledger_node.wire import ReadingsBatch, SiteRegistration, open_body, parse
from tests.conftest import mosquitto, run_module
from tests.support.sim import SimGateway
from tests.support.stream import Item, batches, ingest_net, registrations, sim_gateways

GATEWAYS = 40


def _frontend(net: LocalNet, name: str) -> None:
    net.start_node("ra1", "--role", "frontend", "--name", name, label=f"ra1-{name}")


def _subscribed(net: LocalNet, *names: str) -> None:
    """Wait until each front-end has subscribed (a batch published before would find no
    subscriber and be gone)."""
    for name in names:
        log = net.log_path(f"ra1-{name}")
        wait_until(
            lambda log=log: log.exists() and "connected (session" in log.read_text(),
            30,
            f"front-end {name} connected",
            alive=net.check_alive,
        )
    time.sleep(0.5)  # its SUBSCRIBE follows the CONNACK


def _accepted(net: LocalNet) -> int:
    with closing(connect(_store(net), readonly=True)) as db:
        return counters(db).get("accepted:readings", 0)


def _store(net: LocalNet) -> Path | str:
    text = net.config("ra1").read_text()
    for line in text.splitlines():
        if line.startswith("database = "):
            return line.split('"')[1]
    return net.db("ra1")


def _registered(net: LocalNet) -> None:
    wait_until(
        lambda: len(net.get("ra1", "/api/registry")["sites"]) == GATEWAYS,
        60,
        "the gateways' sites",
        alive=net.check_alive,
    )


def _all_in(net: LocalNet, n: int, timeout_s: float = 120) -> None:
    wait_until(
        lambda: _accepted(net) >= n, timeout_s, f"{n} batches admitted", alive=net.check_alive
    )


def _exactly_once(net: LocalNet, items: list[Item]) -> None:
    """Every batch in the log once, none twice, the queue empty, `verify` passing."""
    with closing(connect(_store(net), readonly=True)) as db:
        rows = db.execute("SELECT gateway, seq FROM batches").fetchall()
        assert len(rows) == len(items) == len(set(rows))
        logged = db.execute("SELECT COUNT(*) FROM log WHERE type='readings'").fetchone()[0]
        assert logged == len(items)
        assert db.execute("SELECT COUNT(*) FROM queue").fetchone()[0] == 0
    done = run_module("ledger_node.interfaces.cli", "verify", "-c", str(net.config("ra1")))
    assert done.returncode == 0, done.stdout + done.stderr


def _attacked(net: LocalNet, gateways: list[SimGateway], url: str) -> None:
    """Garbage, a stranger's batch and a gateway's batch for another site, on the readings
    topics: each refused by a front-end with its reason, counted, never queued; the
    front-ends keep running."""
    stranger = sim_gateways("x", 1, 4)[0]
    forged = stranger.batch(gateways[0].seq * 60, {m: 1 for m in stranger.meters})
    wrong_site = gateways[1].batch(0, {m: 1 for m in gateways[1].meters})
    g0 = gateways[0]
    topic = f"mlg/v1/readings/{g0.site}/{g0.name}"
    net.publish([(topic, b"\x00garbage", False), (topic, forged, False)])
    other = f"mlg/v1/readings/{gateways[1].site}/{gateways[1].name}"
    net.publish([(other, _resited(wrong_site, g0.site, gateways[1]), False)])

    def refused() -> dict[str, int]:
        with closing(connect(url, readonly=True)) as db:
            return {k: v for k, v in counters(db).items() if k.startswith("refused:")}

    got = wait_until(lambda: len(refused()) >= 3 and refused(), 20, "three refusals")
    assert set(got) == {"refused:malformed", "refused:unknown_signer", "refused:not_allowed"}
    assert all(n == 1 for n in got.values()), got
    net.check_alive()


def _newcomer(net: LocalNet, n: int) -> None:
    """A gateway registered while the front-ends run: its first batch is taken (they read
    the registry again when a registry fact was applied)."""
    (gw,) = sim_gateways("new", 1, 4)
    reg = SiteRegistration("ra2", n, gw.site, gw.gateway_key(), gw.meters)
    net.publish([(f"mlg/v1/facts/site/ra2/{n}", net.sign("ra2", reg), True)])
    before = _accepted(net)
    wait_until(
        lambda: any(s["site"] == gw.site for s in net.get("ra1", "/api/registry")["sites"]),
        20,
        "the new site",
    )
    batch = gw.batch(int(time.time()) // 60 * 60 - 60, {m: 5 for m in gw.meters})
    net.publish([(f"mlg/v1/readings/{gw.site}/{gw.name}", batch, False)])
    wait_until(lambda: _accepted(net) == before + 1, 20, "the newcomer's batch")


def _resited(raw: bytes, site: str, gw: SimGateway) -> bytes:
    """`gw`'s batch `raw` made again for `site` (not its registered one), signed by it."""
    batch = open_body(parse(raw))
    assert isinstance(batch, ReadingsBatch)
    return dataclasses.replace(batch, site=site).seal(gw.identity)


def _status_page(net: LocalNet) -> str:
    """The status screen of RA(1)'s node as an operator sees it, logged in by a link."""
    net.add_operator("ra1", "op", "a long enough password")
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    opener.open(net.login_link("ra1", "op"), timeout=10).read()
    with opener.open(f"http://127.0.0.1:{net.api_port('ra1')}/status", timeout=10) as r:
        return str(r.read().decode())


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    return postgres.create_database()


def test_two_frontends_and_a_sequencer_log_every_batch_once_as_one_sqlite_node_does(
    tmp_path: Path, broker: Broker, pg_url: str
) -> None:
    gateways = sim_gateways("f", GATEWAYS, 4)
    with mosquitto(tmp_path / "broker-b") as broker_b:
        pg = ingest_net(tmp_path / "pg", broker.port, pg_url)
        lite = ingest_net(tmp_path / "lite", broker_b.port)
        try:
            for net in (pg, lite):
                net.publish(registrations(net, gateways))
            pg.start_node("ra1", "--role", "sequencer")
            lite.start()
            wait_until(pg._api_up("ra1"), 30, "the sequencer's API", alive=pg.check_alive)
            for net in (pg, lite):
                _registered(net)
            _frontend(pg, "fe1")
            _frontend(pg, "fe2")
            _subscribed(pg, "fe1", "fe2")
            items = batches(gateways, 25, time.time())
            for net in (pg, lite):
                net.publish(items)
            for net in (pg, lite):
                _all_in(net, len(items))
            fe = pg.get("ra1", "/api/status")["frontends"]
            assert (fe["live"], fe["queued"]) == (2, 0), fe
            assert "frontends_down" not in pg.get("ra1", "/api/status")["alarms"]
            page = _status_page(pg)  # the operator's screen, in Japanese
            assert "フロントエンド" in page and "node-ra1-fe2" in page, page
            time.sleep(1.0)  # anything more (a duplicate) would show now
            _exactly_once(pg, items)
            with closing(connect(pg_url, readonly=True)) as db:
                assert counters(db).get("refused:replay", 0) == 0
                slots = [r[0] for r in db.execute("SELECT DISTINCT slot FROM batches")]
            assert len(slots) == 25
            with (
                closing(connect(pg_url, readonly=True)) as a,
                closing(connect(lite.db("ra1"), readonly=True)) as b,
            ):
                for slot in slots:
                    assert slot_digest(a, slot) == slot_digest(b, slot)
            _attacked(pg, gateways, pg_url)
            _newcomer(pg, len(gateways) + 1)
            # The broker split the stream: each front-end queued a share of it.
            for name in ("fe1", "fe2"):
                pg.stop_node(f"ra1-{name}")
                log = pg.log_path(f"ra1-{name}").read_text()
                queued = int(log.rsplit("stopping: ", 1)[1].split()[0])
                assert 0 < queued < len(items), (name, queued)
            # No front-end left: the operator sees it.
            wait_until(
                lambda: "frontends_down" in pg.get("ra1", "/api/status")["alarms"],
                15,
                "the frontends_down alarm",
            )
            text = run_module("ledger_node.interfaces.cli", "status", "-c", str(pg.config("ra1")))
            assert "front-ends: 0 live: node-ra1-fe1" in text.stdout, text.stdout
        finally:
            pg.stop()
            lite.stop()


@pytest.fixture
def publishing() -> Iterator[list[threading.Thread]]:
    threads: list[threading.Thread] = []
    yield threads
    for t in threads:
        t.join(timeout=30)


def test_killed_sequencer_and_frontend_lose_nothing_and_sequence_nothing_twice(
    tmp_path: Path, broker: Broker, pg_url: str
) -> None:
    """SIGKILL the sequencer during ingest: the standby takes over. SIGKILL a front-end
    while batches flow: the batches its broker session holds reach the other front-end."""
    gateways = sim_gateways("k", GATEWAYS, 4)
    net = ingest_net(tmp_path, broker.port, pg_url)
    try:
        net.publish(registrations(net, gateways))
        net.start_node("ra1", "--role", "sequencer", label="ra1")
        wait_until(net._api_up("ra1"), 30, "the sequencer's API", alive=net.check_alive)
        _registered(net)
        net.start_node("ra1", "--role", "sequencer", label="ra1-standby")
        standby_log = net.log_path("ra1-standby")
        wait_until(
            lambda: standby_log.exists() and "standby" in standby_log.read_text(),
            30,
            "the standby waiting",
            alive=net.check_alive,
        )
        _frontend(net, "fe1")
        _frontend(net, "fe2")
        _subscribed(net, "fe1", "fe2")
        items = batches(gateways, 60, time.time())
        third = len(items) // 3
        net.publish(items[:third])
        wait_until(lambda: _accepted(net) > 50, 60, "ingest under way", alive=net.check_alive)
        net.stop_node("ra1", signal.SIGKILL)
        wait_until(
            lambda: "elected" in standby_log.read_text(), 30, "the standby elected", step=0.1
        )
        net.publish(items[third : 2 * third])
        net.stop_node("ra1-fe1", signal.SIGKILL)
        net.publish(items[2 * third :])
        _all_in(net, len(items), timeout_s=120)
        time.sleep(1.0)
        _exactly_once(net, items)
        fe2 = net.log_path("ra1-fe2").read_text()
        assert "adopting its broker session" in fe2, fe2[-2000:]
        ended = wait_until(
            lambda: re.search(
                r"drained and ended \((\d+) batches", net.log_path("ra1-fe2").read_text()
            ),
            30,
            "the adopted session ended",
        )
        assert int(ended.group(1)) > 0  # what the dead front-end's session held came through
    finally:
        net.stop()

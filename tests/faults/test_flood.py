"""Scenario 6: a flood of facts from unknown signers (thousands, through the broker)
while a DR command runs on real node processes. Every legitimate fact counts on every
node: the TSO's command, RA(1)'s and RA(2)'s declarations (RA(2)'s sent early, before the
command reached anyone, in the thick of the flood), the gateways' readings, RA(1)'s and
AC(1)'s AS reports; the contract settles the same on every node; and every stranger's
fact is either held in its bounded pool or refused as `pending_full`, counted."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ledger_node.ledger.store import connect
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.keys import Identity
from ledger_node.shared.mqtt import DEFAULT_PREFIX
from ledger_node.wire import AsReport, DrDeclaration, Message
from ledger_node.wire.topics import Topics
from tests.faults.rig import check_after, command_declared_by_ra1, keep_figures, sizes
from tests.faults.tap import Tap
from tests.node.conftest import fig7_nodes

pytestmark = pytest.mark.slow

COMMAND = "dr-flood"
SLOT_S = 60


def _strangers_facts(n: int) -> list[tuple[str, bytes]]:
    """`n` facts claimed by as many signers no node knows: declarations for the running
    command and AS reports for it, on their fact topics."""
    topics = Topics(DEFAULT_PREFIX)
    out = []
    for i in range(n):
        who = Identity.generate(f"x{i}")
        message: Message = (
            DrDeclaration(who.name, COMMAND, 1, (("site1", (1,)),))
            if i % 2
            else AsReport(who.name, COMMAND, 1, ((0, 1),))
        )
        out.append((topics.fact(message), message.seal(who)))
    return out


def _flood(port: int, facts: list[tuple[str, bytes]], spread_s: float) -> float:
    """Publish `facts` at QoS 1, spread over about `spread_s`; seconds taken."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    t = time.monotonic()
    try:
        infos = []
        for k, (topic, raw) in enumerate(facts):
            infos.append(client.publish(topic, raw, qos=1))
            if k % 50 == 49:
                time.sleep(spread_s * 50 / len(facts))
        for info in infos:
            info.wait_for_publish(timeout=60)
    finally:
        client.disconnect()
        client.loop_stop()
    return time.monotonic() - t


def _rows(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    db = connect(db_path, readonly=True)
    try:
        return [tuple(r) for r in db.execute(sql)]
    finally:
        db.close()


def _counters(db_path: Path) -> dict[str, int]:
    return {str(k): int(v) for k, v in _rows(db_path, "SELECT name, count FROM counters")}


# In make soak only (make test's time): tests/node/test_ledger.py has the held pools against
# 1,100 strangers' facts.
@sizes(None, {"strangers": 8000})
def test_a_flood_of_unknown_signers_during_a_command_crowds_out_no_legitimate_fact(
    tmp_path: Path, broker: Broker, size: dict[str, Any]
) -> None:
    lines: list[str] = []

    def figure(text: str) -> None:
        lines.append(f"[flood {size['strangers']}] {text}")
        print(lines[-1], flush=True)

    t = time.monotonic()
    facts = _strangers_facts(size["strangers"])
    figure(f"{len(facts)} facts signed by as many strangers in {time.monotonic() - t:.1f} s")
    with fig7_nodes(
        tmp_path, broker.port, speed=20.0, late_after_s=240, checkpoint_every_s=0.5
    ) as sim:
        net = sim.net
        keys = {gw.name: gw.identity.signing_key.verify_key for gw in sim.gateways.values()}
        tap = Tap(broker.port, keys)
        stop = threading.Event()
        slots: set[int] = set()

        def gateways() -> None:
            published = -1
            while not stop.is_set():
                slot = sim.last_slot()
                if slot != published:
                    sim.publish([sim.batch(site, slot) for site in sim.RAS])
                    slots.add(slot)
                    published = slot
                time.sleep(0.2)

        publisher = threading.Thread(target=gateways)
        publisher.start()
        flooding: list[float] = []
        flood = threading.Thread(target=lambda: flooding.append(_flood(broker.port, facts, 3.0)))
        try:
            start = (int(sim.sim_now()) // SLOT_S + 2) * SLOT_S
            end = start + 2 * SLOT_S
            flood.start()
            # RA(2) declares before the command reached anyone: held for it, among strangers.
            net.publish_fact("ra2", DrDeclaration("ra2", COMMAND, 1, (("site2", (300,)),)))
            time.sleep(0.5)
            command_declared_by_ra1(net, COMMAND, start, end, 100, 400)
            flood.join()
            figure(f"the flood took {flooding[0]:.1f} s at the broker")
            # The window passes; the gateways' readings for it come in.
            wait_until(lambda: sim.last_slot() >= end, 60, "the window's end")
            report = [{"slot": s, "wh": 250} for s in range(start, end, SLOT_S)]
            for org in ("ra1", "ac1"):
                net.post(org, "/api/as-reports", {"command": COMMAND, "slots": report})
        finally:
            stop.set()
            publisher.join()
            flood.join()

        def settled(node: str) -> bool:
            db = net.db(node)
            return (
                len(_rows(db, "SELECT 1 FROM declarations")) == 2
                and len(_rows(db, "SELECT 1 FROM as_reports")) == 2
                and not _rows(db, "SELECT 1 FROM unsettled_commands")
                and not _rows(db, "SELECT 1 FROM unsettled_slots")
                and bool(_rows(db, f"SELECT 1 FROM results WHERE slot >= {end - SLOT_S}"))
            )

        for node in net.nodes:
            wait_until(lambda n=node: settled(n), 60, f"{node} settles", alive=net.check_alive)
        try:
            findings = check_after(
                net,
                {},
                tap,
                figure,
                below={gw.name: gw.seq for gw in sim.gateways.values()},
                min_closed=len(slots),
                alive=net.check_alive,
            )
        finally:
            tap.close()
            keep_figures(lines)
        assert not findings.refused
        results = {}
        for node in net.nodes:
            db = net.db(node)
            facts_held = {
                "commands": _rows(db, "SELECT id, pos > 0 FROM commands"),
                "declarations": _rows(db, "SELECT command, ra, rev FROM declarations ORDER BY ra"),
                "as_reports": _rows(db, "SELECT command, author FROM as_reports ORDER BY author"),
            }
            assert facts_held == {
                "commands": [(COMMAND, 1)],
                "declarations": [(COMMAND, "ra1", 1), (COMMAND, "ra2", 1)],
                "as_reports": [(COMMAND, "ac1"), (COMMAND, "ra1")],
            }, node
            results[node] = _rows(db, "SELECT * FROM results ORDER BY command, slot, kind, scope")
            c = _counters(db)
            held, full = c.get("held:unknown_signer", 0), c.get("refused:pending_full", 0)
            figure(
                f"{node}: {held} strangers' facts held (the unknown pool), {full} refused "
                f"pending_full; {len(results[node])} result rows; accepted "
                f"{ {k[9:]: v for k, v in sorted(c.items()) if k.startswith('accepted:')} }"
            )
            assert held + full == len(facts), f"{node}: {held} + {full} of {len(facts)} counted"
            assert full > 0 and c.get("held:unknown_command", 0) >= 1  # RA(2)'s, early
        # What two nodes both compute is equal, row for row.
        tso = {r[:4]: r for r in results["tso"]}
        for node in ("ac1", "ra1"):
            mine = {r[:4]: r for r in results[node]}
            assert mine and all(tso[k] == row for k, row in mine.items()), node
        assert _rows(net.db("tso"), "SELECT ac FROM rewards") == [("ac1",)]

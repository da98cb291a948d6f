"""Scenario 2: a node killed with SIGKILL again and again while batches pour in (its
broker session dropped each time, so that it must fetch what it missed from its peers):
it catches up, and its slot digests equal those of the nodes never interrupted."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ledger_node.localnet.broker import Broker
from ledger_node.localnet.wait import wait_until
from tests.faults.rig import check_after, keep_figures, sizes
from tests.faults.tap import Tap
from tests.node.conftest import fig7_nodes

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


@sizes({"kills": 4}, {"kills": 20})
def test_a_node_killed_during_ingest_catches_up_with_equal_digests(
    tmp_path: Path, broker: Broker, size: dict[str, Any]
) -> None:
    lines: list[str] = []

    def figure(text: str) -> None:
        lines.append(f"[node-kill {size['kills']}] {text}")
        print(lines[-1], flush=True)

    with fig7_nodes(
        tmp_path, broker.port, speed=20.0, late_after_s=240, checkpoint_every_s=0.5
    ) as sim:
        keys = {gw.name: gw.identity.signing_key.verify_key for gw in sim.gateways.values()}
        tap = Tap(broker.port, keys)
        stop = threading.Event()
        sent = [0]
        slots: set[int] = set()

        def gateways() -> None:
            while not stop.is_set():
                slot = sim.last_slot()
                sim.publish([sim.batch(site, slot) for site in sim.RAS])
                sent[0] += 3
                slots.add(slot)
                time.sleep(0.05)

        publisher = threading.Thread(target=gateways)
        publisher.start()
        started = time.monotonic()
        try:
            for _ in range(size["kills"]):
                time.sleep(1.5)
                sim.net.stop_node("ra1", signal.SIGKILL)
                _drop_session(broker.port, "node-ra1")
                time.sleep(0.5)
                sim.net.start_node("ra1")
        finally:
            stop.set()
            publisher.join()
        figure(
            f"{size['kills']} SIGKILLs of ra1 in {time.monotonic() - started:.0f} s while "
            f"{sent[0]} batches were published"
        )
        caught = time.monotonic()
        wait_until(
            lambda: sim.accepted("ra1") >= sent[0], 90, "ra1 catches up", alive=sim.net.check_alive
        )
        fetched = sum(p["fetched"] for p in sim.status("ra1")["peers"])
        figure(f"ra1 caught up {time.monotonic() - caught:.1f} s later, {fetched} from its peers")
        assert fetched > 0, "the killed node fetched what it missed from its peers"
        try:
            findings = check_after(
                sim.net,
                {},
                tap,
                figure,
                below={gw.name: gw.seq for gw in sim.gateways.values()},
                min_closed=len(slots),  # every slot the batches were for
                alive=sim.net.check_alive,
            )
        finally:
            tap.close()
            keep_figures(lines)
        assert not findings.refused

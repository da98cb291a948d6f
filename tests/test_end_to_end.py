"""Meter to ledger over a real pseudo-terminal and a real Mosquitto, no fakes on the way."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ledger_node.broker import Broker
from ledger_node.demo import GATEWAY, SITE, Chain
from ledger_node.store import Store
from ledger_node.wire import seal

SLOT_S = 60
SPEED = 30.0

pytestmark = pytest.mark.slow


@pytest.fixture
def chain(tmp_path: Path, broker: Broker) -> Iterator[Chain]:
    c = Chain(tmp_path, broker.port, SLOT_S, SPEED)
    c.start()
    yield c
    c.stop()


def _assert_equal_to_truth(chain: Chain, count: int) -> None:
    rows = chain.wait_for_slots(count)
    assert len(rows) >= count, f"only {len(rows)} slots reached the node"
    slots = [r.slot for r in rows]
    truth = chain.truth_by_slot(slots)
    assert slots == list(range(slots[0], slots[0] + SLOT_S * len(slots), SLOT_S)), "gap"
    for row in rows:
        assert row.meters == 1
        assert row.flagged == 0
        # The step profile keeps every boundary value an integer Wh: exact equality.
        assert row.wh == truth.get(row.slot), f"slot {row.slot}: {row.wh} != {truth.get(row.slot)}"


def test_node_totals_equal_the_emulator_ground_truth(chain: Chain) -> None:
    _assert_equal_to_truth(chain, 4)


def _publish(port: int, topic: str, payloads: list[bytes]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    for payload in payloads:
        client.publish(topic, payload, qos=1).wait_for_publish(timeout=5)
    client.disconnect()
    client.loop_stop()


def test_bad_messages_are_rejected_counted_and_harmless(chain: Chain, broker: Broker) -> None:
    before = chain.wait_for_slots(2)
    assert len(before) >= 2
    body = (
        b'{"box":"","epoch":0,"gw":"gw-site1","meters":[],"seq":999999,'
        b'"site":"site1","slot":0,"slot_s":60,"type":"readings","v":1}'
    )
    forged = seal(body, GATEWAY, nacl.signing.SigningKey.generate())
    topic = f"mlg/v1/readings/{SITE}/{GATEWAY}"
    _publish(broker.port, topic, [b"\x00garbage", forged, b"ML\x01" + bytes(70_000)])
    deadline = time.monotonic() + 10
    rejections: dict[str, int] = {}
    while time.monotonic() < deadline:
        store = Store(chain.node_db)
        rejections = store.rejections()
        store.close()
        if sum(rejections.values()) >= 3:
            break
        time.sleep(0.1)
    assert rejections == {"malformed": 1, "bad_signature": 1, "oversize": 1}
    node_log = chain.log("node")
    for reason in ("malformed", "bad_signature", "oversize"):
        assert f"rejected ({reason})" in node_log
    # The node keeps running, valid data keeps arriving, and what it had stays intact.
    chain.check_alive()
    after = chain.wait_for_slots(len(before) + 2)
    assert len(after) >= len(before) + 2
    assert after[: len(before)] == before
    _assert_equal_to_truth(chain, len(after))


def test_demo_command_reports_agreement(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ledger_node.demo", "--slots", "3", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all 3 slot totals agree with the ground truth" in result.stdout
    table = [line for line in result.stdout.splitlines() if line.startswith("20")]
    assert len(table) == 3 and all(" = " in line for line in table), result.stdout

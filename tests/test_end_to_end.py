"""Meters to ledgers over real pseudo-terminals and a real Mosquitto, no fakes on the way:
three emulated meters, their gateways, and the TSO, AC(1) and RA(1) nodes (the demo's
chain)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import nacl.signing
import pytest

from ledger_node.broker import Broker
from ledger_node.demo import NODES, READS, Chain
from ledger_node.wire import seal

SLOT_S = 60
SPEED = 30.0

pytestmark = pytest.mark.slow


@pytest.fixture
def chain(tmp_path: Path, broker: Broker) -> Iterator[Chain]:
    c = Chain(tmp_path, broker.port, SLOT_S, SPEED)
    try:
        c.start_emulators()
        c.start_nodes()
        c.register_sites()
        c.start_gateways()
        yield c
    finally:
        c.stop()


def _assert_equal_to_truth(chain: Chain, count: int) -> list[int]:
    slots = chain.wait_for_slots(count)
    assert len(slots) >= count, f"only {len(slots)} slots reached every node"
    truth = chain.truth(slots)
    for node in NODES:
        held = chain.totals(node)
        assert {site for site, _ in held} == READS[node], f"{node} reads {set(held)}"
        for slot in slots:
            for site in READS[node]:
                # The step profiles keep every boundary value a whole Wh: exact equality.
                assert held[(site, slot)] == truth.get((site, slot)), (node, site, slot)
    return slots


def test_bad_messages_are_rejected_counted_and_harmless(chain: Chain, broker: Broker) -> None:
    before = _assert_equal_to_truth(chain, 2)
    body = (
        b'{"box":"","epoch":0,"gw":"gw-site1","meters":[],"seq":999999,'
        b'"site":"site1","slot":0,"slot_s":60,"type":"readings","v":1}'
    )
    forged = seal(body, "gw-site1", nacl.signing.SigningKey.generate())
    topic = "mlg/v1/readings/site1/gw-site1"
    chain.net.publish(
        [(topic, p, False) for p in (b"\x00garbage", forged, b"ML\x01" + bytes(70_000))]
    )
    wanted = {"malformed": 1, "bad_signature": 1, "oversize": 1}

    def refused() -> dict[str, int]:
        got = chain.net.get("tso", "/api/status")["refused"]
        return {k: v for k, v in got.items() if k in wanted}

    deadline = time.monotonic() + 20
    while refused() != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    assert refused() == wanted
    log = chain.net.log_path("tso").read_text()
    for reason in wanted:
        assert f"refused ({reason})" in log
    # The node keeps running, valid data keeps arriving, and what it had stays intact.
    after = _assert_equal_to_truth(chain, len(before) + 2)
    assert after[: len(before)] == before


def test_demo_command_reports_agreement(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ledger_node.demo", "--slots", "3", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "all 3 slot totals agree with the ground truth" in out
    table = [line for line in out.splitlines() if " site" in line and line.rstrip().endswith("=")]
    assert len(table) == 9, out  # 3 slots x 3 sites
    assert "RA(1) AS report vs ledger, slot by slot: equal, equal, equal" in out
    assert "checks AC(1)'s total: OK" in out

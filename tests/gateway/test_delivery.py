"""Losing nothing: the gateway against a broker that goes away (and forgets everything)
and against SIGKILL at random points; a real Mosquitto, the emulator on a real
pseudo-terminal, and a subscriber that acts as a ledger node (dedupes by (gateway, seq)
and publishes signed high-water marks, which are what confirms a batch)."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from firmware.emulator.truth import read_truth
from gateway.config_file import MeterEntry
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.clock import ScaledClock
from ledger_node.shared.keys import Identity
from tests.conftest import run_module
from tests.support.gateway import (
    Collector,
    Emulator,
    GatewayProcess,
    clock_args,
    gateway_config,
    make_keys,
    public_key,
)

pytestmark = pytest.mark.slow
SLOT_S = 30
PROFILES = ["1:sdm120:steps:1200,2400,4800", "2:adapter:steps:720,3600"]


def _setup(work: Path, port: int, speed: float) -> tuple[list[str], Emulator, Collector]:
    keys = make_keys(work, "tso")
    origin = time.time()
    clock = clock_args(speed, origin)
    link = work / "rs485-0"
    emulator = Emulator(work, link, PROFILES, clock, SLOT_S)
    meters = [MeterEntry("m1", 1), MeterEntry("m2", 2, "adapter")]
    confirm = {"confirm_nodes": [public_key("tso")], "quorum": 1, "retry_s": 2}
    gateway_config(work, port, {"rs485-0": str(link)}, meters, SLOT_S, **confirm)
    node = Identity.load(keys / "tso.key")
    return clock, emulator, Collector(port, keys, node=node, clock=ScaledClock(speed, origin))


def _status(work: Path) -> dict:  # type: ignore[type-arg]
    out = run_module("gateway.cli", "status", "-c", str(work / "gateway.toml"), "--json")
    assert out.returncode in (0, 1), out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _all_confirmed(work: Path, collector: Collector) -> bool:
    outbox = _status(work)["outbox"]
    return outbox["depth"] == 0 and collector.seqs() == list(range(outbox["next_seq"]))


def _check_nothing_lost_or_doubled(work: Path, collector: Collector) -> None:
    seqs = collector.seqs()
    assert seqs == list(range(len(seqs))), "a seq is missing"
    assert not collector.equivocations, f"seqs reused: {collector.equivocations}"
    readings = collector.readings()
    truth: dict[tuple[int, int], float] = {
        (int(r["unit"]), int(r["slot_start"])): float(r["energy_wh"])
        for r in read_truth(work / "truth.csv")
    }
    per_meter: dict[str, list[int]] = defaultdict(list)
    for (meter, slot), rows in readings.items():
        assert len(rows) == 1, f"{meter} slot {slot} reported {len(rows)} times: {rows}"
        per_meter[meter].append(slot)
    for meter, unit in (("m1", 1), ("m2", 2)):
        slots = sorted(per_meter[meter])
        assert len(slots) >= 3
        assert slots == list(range(slots[0], slots[-1] + SLOT_S, SLOT_S)), f"{meter}: a slot lost"
        # Estimated slots may split energy differently from the truth, but the sum over an
        # unbroken run telescopes to the register's advance: never a wrong total.
        total = sum(readings[(meter, s)][0][1] for s in slots)
        assert total == round(sum(truth[(unit, s)] for s in slots)), meter


def test_broker_outages_lose_nothing_and_duplicate_nothing(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", persistence=True).start()
    clock, emulator, collector = _setup(tmp_path, broker.port, 10.0)
    gateway = GatewayProcess(tmp_path, clock)
    gateway.start()
    try:
        wait_until(lambda: len(collector.seqs()) >= 2, 60, "two batches")
        broker.stop()  # a clean stop: it saves its state
        time.sleep(SLOT_S / 10 * 2)  # two slots sealed while the broker is away
        broker.start()
        seen = len(collector.seqs())
        wait_until(lambda: len(collector.seqs()) >= seen + 3, 60, "batches after the restart")
        broker.stop(kill=True)
        (tmp_path / "broker" / "mosquitto.db").unlink(missing_ok=True)  # all its state gone
        time.sleep(SLOT_S / 10 * 2)
        broker.start()
        seen = len(collector.seqs())
        wait_until(lambda: len(collector.seqs()) >= seen + 3, 60, "batches after the wipe")
        wait_until(lambda: _all_confirmed(tmp_path, collector), 60, "the outbox to drain")
        assert gateway.alive(), gateway.log()[-3000:]
        _check_nothing_lost_or_doubled(tmp_path, collector)
        log = gateway.log()
        assert "disconnected from broker" in log and "session new" in log
    finally:
        gateway.stop()
        collector.close()
        emulator.stop()
        broker.stop()


def test_sigkill_at_random_points_loses_no_batch_and_reuses_no_seq(
    tmp_path: Path, broker: Broker
) -> None:
    clock, emulator, collector = _setup(tmp_path, broker.port, 10.0)
    gateway = GatewayProcess(tmp_path, clock)
    rng = random.Random(20261126)
    kills = 0
    try:
        for round_ in range(8):
            gateway.start()
            if round_ % 2:
                # Kill just after a batch was published: between store, publish and confirm.
                seen = len(collector.seqs())
                wait_until(lambda: len(collector.seqs()) > seen, 60, "a new batch")  # noqa: B023
                time.sleep(rng.uniform(0.0, 0.05))
            else:
                time.sleep(rng.uniform(0.2, 4.0))  # anywhere in read → seal → store → publish
            assert gateway.alive(), gateway.log()[-3000:]
            gateway.kill()
            kills += 1
        gateway.start()
        seen = len(collector.seqs())
        wait_until(lambda: len(collector.seqs()) >= seen + 3, 60, "batches after the last kill")
        wait_until(lambda: _all_confirmed(tmp_path, collector), 60, "the outbox to drain")
        _check_nothing_lost_or_doubled(tmp_path, collector)
        assert _status(tmp_path)["daemon"]["boot"] == kills + 1
    finally:
        gateway.stop()
        collector.close()
        emulator.stop()

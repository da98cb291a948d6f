"""Ledger node: ingest through Mosquitto, resident memory, bytes stored, decryption.

Ingest: many simulated gateways' batches wait at the broker for the node's persistent
session; the node process is started and drains them (verify, log, Merkle, commit, then
PUBACK). Its steady-state rate (10 %..90 % of the run, from its own counters) is compared
with the slower of two limits measured in the same run: a bare Ed25519 verification loop
over the same envelopes, and a bare paho subscriber process draining the same messages
from the same broker. The node is not a member of the benchmark sites' groups, so this is
the path every node runs for every batch; decryption (members only, after the PUBACK) is
measured on its own against a bare loop of Pedersen commitments over the same readings.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ledger_node.ledger import Ledger, LedgerSettings, author_epochs, open_sealed
from ledger_node.ledger.store import connect, counters
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.clock import FixedClock
from ledger_node.shared.keys import Identity
from ledger_node.wire import SiteRegistration, parse, pedersen
from tests.bench.node_core import core_costs
from tests.bench.result import Figure, Result
from tests.support.sim import sign
from tests.support.stream import batches, ingest_net, registrations, sim_gateways

GATEWAYS = 50
BATCHES = 12_000
METERS = 4
OPEN_BATCHES = 1_000
CORE_BATCHES = 4_000
"""Batches admitted in process to measure one core's share of each step."""
PRIVATE_TX_PER_S = (55.0, 450.0)
"""Published private-transaction rates of Quorum/Tessera and Fabric private data."""
MEMORY_GOAL_MB = 250.0
STORED_GOAL = 1.3
"""Bytes stored per reading, at most this many times the envelope's bytes on the wire."""


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _db_bytes(path: Path) -> int:
    """The database's size once its WAL is copied in (what stays on disk)."""
    if not path.exists():
        return 0
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def _pages_by_name(path: Path) -> dict[str, int]:
    """Bytes of pages per table and index (SQLite's dbstat), the WAL copied in first."""
    _db_bytes(path)
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
    finally:
        db.close()


def where_bytes_go(
    before: dict[str, int], after: dict[str, int], readings: int
) -> dict[str, float]:
    """Bytes per reading that each table and index grew by (those of 1 B or more)."""
    grew = {name: (size - before.get(name, 0)) / readings for name, size in after.items()}
    return {name: b for name, b in sorted(grew.items(), key=lambda kv: -kv[1]) if b >= 1.0}


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _bare_subscriber(port: int, count: int | None) -> dict[str, float]:
    """Prepare the bare subscriber's session (`count` None) or drain `count` messages:
    its rate and CPU µs a message."""
    args = [
        sys.executable,
        "-m",
        "tests.bench.bare_subscriber",
        "--port",
        str(port),
        "--client-id",
        "bench-bare",
    ]
    args += ["--prepare"] if count is None else ["--count", str(count)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True)
    return {} if count is None else {k: float(v) for k, v in json.loads(done.stdout).items()}


def _ingest(work: Path, broker: Broker) -> tuple[dict[str, float], dict[str, float]]:
    """The ingest figures, and the bytes per reading each table and index grew by."""
    net = ingest_net(work, broker.port, checkpoint_every_s=5.0)
    gateways = sim_gateways("b", GATEWAYS, METERS)
    net.publish(registrations(net, gateways))
    net.start()
    wait_until(
        lambda: len(net.get("ra1", "/api/registry")["sites"]) == GATEWAYS,
        60,
        "sites",
        alive=net.check_alive,
    )
    net.stop()  # its session stays at the broker and queues what is published now
    _bare_subscriber(broker.port, None)
    print(f"   sealing {BATCHES} batches of {METERS} meters from {GATEWAYS} gateways", flush=True)
    items = batches(gateways, BATCHES // GATEWAYS, time.time())
    net.publish(items)
    assert broker.proc is not None
    broker_cpu = _cpu_s(broker.proc.pid)
    bare_sub = _bare_subscriber(broker.port, len(items))
    broker_us = 1e6 * (_cpu_s(broker.proc.pid) - broker_cpu) / len(items)
    db_path = net.db("ra1")
    size_before = _db_bytes(db_path)
    pages_before = _pages_by_name(db_path)
    base = counters(connect(db_path, readonly=True)).get("accepted:readings", 0)
    proc = net.start_node("ra1")
    samples: list[tuple[float, int, float]] = []
    peak = 0.0
    deadline = time.monotonic() + 600
    reader = None
    while time.monotonic() < deadline:
        if reader is None and db_path.exists():
            reader = connect(db_path, readonly=True)
        done = 0 if reader is None else counters(reader).get("accepted:readings", 0) - base
        samples.append((time.perf_counter(), done, _cpu_s(proc.pid)))
        peak = max(peak, _rss_mb(proc.pid))
        if done >= len(items):
            break
        time.sleep(0.05)
    if reader is not None:
        reader.close()
    net.stop()
    n = len(items)
    lo = next(s for s in samples if s[1] >= 0.1 * n)
    hi = next(s for s in samples if s[1] >= 0.9 * n)
    rate = (hi[1] - lo[1]) / (hi[0] - lo[0])
    node_us = 1e6 * (hi[2] - lo[2]) / (hi[1] - lo[1])
    envelopes = [parse(raw) for _, raw, _ in items]
    keys = {gw.name: gw.identity.signing_key.verify_key for gw in gateways}
    start = time.perf_counter()
    for env in envelopes:
        keys[env.signer].verify(env.body, env.signature)
    bare_verify = n / (time.perf_counter() - start)
    wire = sum(len(raw) for _, raw, _ in items) / (n * METERS)
    stored = (_db_bytes(db_path) - size_before) / (n * METERS)
    tables = where_bytes_go(pages_before, _pages_by_name(db_path), n * METERS)
    core = core_costs(work, gateways, [raw for _, raw, _ in items[:CORE_BATCHES]], time.time())
    return {
        "rate": rate,
        "bare_verify": bare_verify,
        "bare_subscriber": bare_sub["rate"],
        "paho_us": bare_sub["cpu_us"],
        "broker_us": broker_us,
        "node_us": node_us,
        **core,
        "rss_mb": peak,
        "wire_per_reading": wire,
        "stored_per_reading": stored,
    }, tables


def _open(work: Path) -> dict[str, float]:
    """A member node (the TSO's ledger, in process) opens and checks sealed batches."""
    tso = Identity.generate("tso")
    from ledger_node.network.genesis import make_genesis  # noqa: PLC0415 - bench-only set-up

    ra = Identity.generate("ra1")
    ac = Identity.generate("ac1")
    genesis = make_genesis(tso, "bench", [(ac.public, "ac", None), (ra.public, "ra", "ac1")])
    db = connect(work / "member.sqlite")
    ledger = Ledger(db, tso, FixedClock(time.time()), LedgerSettings(late_after_s=30 * 86_400))
    gateways = sim_gateways("m", GATEWAYS, METERS)
    with ledger.transaction():
        ledger.start(genesis)
        for n, gw in enumerate(gateways, start=1):
            reg = SiteRegistration("ra1", n, gw.site, gw.gateway_key(), gw.meters)
            ledger.admit(sign(ra, reg), "mqtt")
        for key in author_epochs(ledger):
            for gw in gateways:
                gw.take_epoch_key(key)
    items = batches(gateways, OPEN_BATCHES // GATEWAYS, time.time())
    size_before = _db_bytes(work / "member.sqlite")
    with ledger.transaction():
        for _, raw, _ in items:
            assert ledger.admit(raw, "mqtt").ok
    start = time.perf_counter()
    opened = 0
    while True:
        with ledger.transaction():
            done = open_sealed(ledger, 256)
        if not done:
            break
        opened += done
    elapsed = time.perf_counter() - start
    readings = [r for gw in gateways for _, payload in gw.sealed for r in payload.readings]
    start = time.perf_counter()
    for r in readings:
        pedersen.commit(r.wh, r.blinding)
    bare = len(readings) / (time.perf_counter() - start)
    db.close()
    stored = (_db_bytes(work / "member.sqlite") - size_before) / len(readings)
    return {"rate": opened * METERS / elapsed, "bare": bare, "stored_per_reading": stored}


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="mlg-bench-node-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker").start()
        try:
            ingest, tables = _ingest(work, broker)
        finally:
            broker.stop()
        member = _open(work)
    limit_name, limit = min(
        ("bare Ed25519 verify loop", ingest["bare_verify"]),
        ("bare paho subscriber (QoS 1)", ingest["bare_subscriber"]),
        key=lambda x: x[1],
    )
    rate = ingest["rate"]
    lo, hi = PRIVATE_TX_PER_S
    gil_bound = 1e6 / (ingest["paho_us"] + ingest["writer_us"])
    parts = ("broker_us", "paho_us", "check_us", "writer_us")
    two_core = 2e6 / sum(ingest[p] for p in parts)
    return [
        Result(
            name="node.ingest",
            figures={
                "batches per second": Figure(rate, "batch/s"),
                "readings per second": Figure(rate * METERS, "reading/s"),
                "bare Ed25519 verify loop": Figure(ingest["bare_verify"], "verify/s"),
                "bare paho subscriber": Figure(ingest["bare_subscriber"], "msg/s"),
                "Quorum/Tessera, Fabric private tx": Figure(hi, "tx/s (55..450)"),
                "ours / their best": Figure(rate / hi, "x"),
            },
            limit_name=limit_name,
            limit=Figure(limit, "batch/s"),
            primary="batches per second",
            goal=0.7,
            notes=(
                f"{BATCHES} batches of {METERS} meters from {GATEWAYS} gateways, queued at "
                f"Mosquitto, drained by a node process; published private-transaction rates "
                f"are {lo:g}..{hi:g}/s"
            ),
        ),
        Result(
            name="node.ingest_cpu",
            figures={
                "node process, all threads": Figure(ingest["node_us"], "µs CPU/batch"),
                "broker, delivering to a subscriber": Figure(ingest["broker_us"], "µs CPU/batch"),
                "bare paho subscriber": Figure(ingest["paho_us"], "µs CPU/batch"),
                "Ed25519 check (in process)": Figure(ingest["check_us"], "µs/batch"),
                "admission with the check (in process)": Figure(ingest["admit_us"], "µs/batch"),
                "writer, verified elsewhere (in process)": Figure(ingest["writer_us"], "µs/batch"),
                "GIL bound 1/(paho + writer)": Figure(gil_bound, "batch/s"),
                "two-core bound": Figure(two_core, "batch/s"),
            },
            limit_name="bare Ed25519 verify loop",
            limit=Figure(ingest["bare_verify"], "batch/s"),
            primary="two-core bound",
            notes=(
                "where one batch's CPU goes; the two-core bound is 2 s / (broker + paho + "
                "check + writer): the most any split of the work over two cores shared with "
                "the broker could drain"
            ),
        ),
        Result(
            name="node.resident_memory",
            figures={"peak RSS during ingest": Figure(ingest["rss_mb"], "MB")},
            limit_name="goal",
            limit=Figure(MEMORY_GOAL_MB, "MB"),
            primary="peak RSS during ingest",
            higher_is_better=False,
            goal=1.0,
        ),
        Result(
            name="node.storage",
            figures={
                "bytes stored per reading (ciphertext only)": Figure(
                    ingest["stored_per_reading"], "B"
                ),
                "bytes stored per reading (member node)": Figure(member["stored_per_reading"], "B"),
                **{f"  of which {name}": Figure(b, "B") for name, b in tables.items()},
            },
            limit_name="envelope bytes per reading on the wire",
            limit=Figure(ingest["wire_per_reading"], "B"),
            primary="bytes stored per reading (ciphertext only)",
            higher_is_better=False,
            goal=round(1 / STORED_GOAL, 2),
            notes=(
                f"log entry, Merkle nodes, indexes (the ciphertext-only node's, by SQLite's "
                f"dbstat); a member also keeps the decrypted readings; goal: at most "
                f"{STORED_GOAL:g}x the wire bytes"
            ),
        ),
        Result(
            name="node.open_readings",
            figures={
                "readings decrypted and checked per second": Figure(member["rate"], "reading/s")
            },
            limit_name="bare Pedersen commitment loop",
            limit=Figure(member["bare"], "commit/s"),
            primary="readings decrypted and checked per second",
            goal=0.8,
            notes="members only, after the PUBACK; each reading must open its commitment",
        ),
    ]

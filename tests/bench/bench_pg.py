"""A node past one machine: its tables on PostgreSQL (fsync on), verifying front-ends
sharing the readings through Mosquitto, one sequencer; with one and with two front-ends.

For each: the broker is loaded with the stream while the front-ends are stopped (their
sessions queue it); then (1) the front-ends alone drain it into the database's queue
(the sequencer stopped): front-end batches/s; (2) the sequencer alone admits the queue:
sequencer batches/s; (3) a second stream, everything running: end-to-end batches/s. The
limit is the bare Ed25519 verification loop measured in the same run. On this 2-core
machine the broker, PostgreSQL, the front-ends and the sequencer share the two cores.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger_node.ledger.store import connect, counters
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.network import LocalNet
from ledger_node.localnet.postgres import Postgres
from ledger_node.localnet.wait import wait_until
from ledger_node.wire import parse
from tests.bench.bench_node import where_bytes_go
from tests.bench.result import Figure, Result
from tests.support.sim import SimGateway
from tests.support.stream import Item, batches, ingest_net, registrations, sim_gateways

GATEWAYS = 50
METERS = 4
PER_GATEWAY = 120
"""Batches per gateway in each stream (6,000 in all)."""


def _rate(count: Callable[[], int], n: int, alive: Callable[[], object]) -> float:
    """Batches/s between 10 % and 90 % of `n` by `count` (polled every 50 ms)."""
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        alive()
        done = count()
        samples.append((time.perf_counter(), done))
        if done >= n:
            break
        time.sleep(0.05)
    lo = next(s for s in samples if s[1] >= 0.1 * n)
    hi = next(s for s in samples if s[1] >= 0.9 * n)
    return (hi[1] - lo[1]) / (hi[0] - lo[0])


def _frontends(net: LocalNet, n: int) -> None:
    for i in range(1, n + 1):
        net.start_node("ra1", "--role", "frontend", "--name", f"fe{i}", label=f"fe{i}")


def _stop_frontends(net: LocalNet, n: int) -> None:
    for i in range(1, n + 1):
        net.stop_node(f"fe{i}")


def _measure(work: Path, broker: Broker, pg: Postgres, n_fe: int) -> dict[str, Any]:
    url = pg.create_database(f"bench{n_fe}")
    net = ingest_net(work / f"fe{n_fe}", broker.port, url, checkpoint_every_s=5.0)
    gateways = sim_gateways(f"p{n_fe}-", GATEWAYS, METERS)
    net.publish(registrations(net, gateways))
    db = connect(url, readonly=True)

    def queued() -> int:
        return int(db.execute("SELECT COUNT(*) FROM queue").fetchone()[0])

    def accepted() -> int:
        return counters(db).get("accepted:readings", 0)

    def relations() -> dict[str, int]:
        """Bytes of each table and index (TOAST included), the queue left out."""
        rows = db.execute(
            "SELECT c.relname, pg_relation_size(c.oid) + CASE WHEN c.reltoastrelid = 0"
            " THEN 0 ELSE pg_total_relation_size(c.reltoastrelid) END FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'"
            " AND c.relkind IN ('r', 'i') AND c.relname NOT LIKE 'queue%'"
        ).fetchall()
        return {name: int(b) for name, b in rows}

    def size() -> int:
        """The database's bytes, less the transient queue's (its rows are deleted as they
        are admitted; VACUUM gives their space to the next ones)."""
        row = db.execute(
            "SELECT pg_database_size(current_database()) - pg_total_relation_size('queue')"
        ).fetchone()
        return int(row[0])

    try:
        net.start_node("ra1", "--role", "sequencer")
        wait_until(
            lambda: len(net.get("ra1", "/api/registry")["sites"]) == GATEWAYS,
            60,
            "sites",
            alive=net.check_alive,
        )
        _frontends(net, n_fe)  # their sessions join the shared subscription
        for i in range(1, n_fe + 1):
            log = net.log_path(f"fe{i}")
            wait_until(lambda log=log: "connected (session" in log.read_text(), 30, "connected")
        time.sleep(0.5)
        _stop_frontends(net, n_fe)
        net.stop_node("ra1")
        first = batches(gateways, PER_GATEWAY // 2, time.time())
        second = batches(gateways, PER_GATEWAY // 2, time.time() - 86_400)
        n = len(first)
        print(f"   {n_fe} front-end(s): 2 streams of {n} batches", flush=True)
        net.publish(first)
        size_before, rel_before = size(), relations()
        _frontends(net, n_fe)
        fe_rate = _rate(queued, n, net.check_alive)
        _stop_frontends(net, n_fe)
        net.start_node("ra1", "--role", "sequencer")
        seq_rate = _rate(accepted, n, net.check_alive)
        stored = (size() - size_before) / (n * METERS)
        tables = where_bytes_go(rel_before, relations(), n * METERS)
        net.publish(second)
        _frontends(net, n_fe)
        e2e_rate = _rate(lambda: accepted() - n, n, net.check_alive)
        wire = sum(len(raw) for _, raw, _ in first) / (n * METERS)
    finally:
        db.close()
        net.stop()
    return {
        "frontends": fe_rate,
        "sequencer": seq_rate,
        "e2e": e2e_rate,
        "stored": stored,
        "tables": tables,
        "wire": wire,
        "bare": _bare_verify(first, gateways),
    }


def _bare_verify(items: list[Item], gateways: list[SimGateway]) -> float:
    envelopes = [parse(raw) for _, raw, _ in items]
    keys = {gw.name: gw.identity.signing_key.verify_key for gw in gateways}
    start = time.perf_counter()
    for env in envelopes:
        keys[env.signer].verify(env.body, env.signature)
    return len(envelopes) / (time.perf_counter() - start)


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="mlg-bench-pg-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker").start()
        pg = Postgres().start()  # a folder of its own: the postgres user must reach it
        try:
            one = _measure(work, broker, pg, 1)
            two = _measure(work, broker, pg, 2)
        finally:
            pg.stop()
            broker.stop()
    bare = max(one["bare"], two["bare"])
    shared = "the broker, PostgreSQL, the front-ends and the sequencer share 2 cores"
    return [
        Result(
            name=f"node.pg.{k}frontend",
            figures={
                "end to end, batches per second": Figure(r["e2e"], "batch/s"),
                "front-ends alone": Figure(r["frontends"], "batch/s"),
                "front-ends alone per front-end": Figure(r["frontends"] / k, "batch/s"),
                "per front-end / bare verify loop": Figure(r["frontends"] / k / bare, "x"),
                "sequencer alone": Figure(r["sequencer"], "batch/s"),
                "bare Ed25519 verify loop": Figure(bare, "verify/s"),
            },
            limit_name="bare Ed25519 verify loop",
            limit=Figure(bare, "batch/s"),
            primary="end to end, batches per second",
            notes=f"{GATEWAYS} gateways of {METERS} meters; {shared}",
        )
        for k, r in ((1, one), (2, two))
    ] + [
        Result(
            name="node.pg.frontend_scaling",
            figures={
                "two front-ends / one (front-ends alone)": Figure(
                    two["frontends"] / one["frontends"], "x"
                )
            },
            limit_name="two cores",
            limit=Figure(2.0, "x"),
            primary="two front-ends / one (front-ends alone)",
            notes=shared,
        ),
        Result(
            name="node.pg.storage",
            figures={
                "bytes stored per reading (ciphertext only)": Figure(one["stored"], "B"),
                **{f"  of which {name}": Figure(b, "B") for name, b in one["tables"].items()},
            },
            limit_name="envelope bytes per reading on the wire",
            limit=Figure(one["wire"], "B"),
            primary="bytes stored per reading (ciphertext only)",
            higher_is_better=False,
            notes="the database's size (less the transient queue's) before and after a stream",
        ),
    ]

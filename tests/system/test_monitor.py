"""`mlg-monitor` against the demo's chain on a real Mosquitto: every gateway alive at
first; then a seq gap (a gateway whose state skipped three seqs), a dead gateway (killed,
its last will published by the broker) and garbage refused by the nodes, each reported by
`--once --json` with the broker's counters and exit code 1; its Prometheus endpoint
serves the same numbers, and so do a node's and a gateway's own endpoints."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ledger_node.localnet.broker import free_port
from ledger_node.localnet.chain import Chain
from ledger_node.localnet.network import terminate
from ledger_node.localnet.wait import wait_until
from tests.conftest import mosquitto, run_module
from tests.support.demo import NODES, SITES
from tests.system.conftest import SLOT_S, SPEED

pytestmark = pytest.mark.slow

METRICS: dict[str, int] = {}
"""The metrics ports of the TSO's node and of gw-site1."""


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """The demo's chain, the TSO's node and gw-site1 serving Prometheus metrics."""
    work = tmp_path_factory.mktemp("chain")
    with mosquitto(work / "broker") as broker:
        c = Chain(work, broker.port, SLOT_S, SPEED, SITES, NODES, late_after_s=10 * SLOT_S)
        METRICS.update({"tso": free_port(), "gw-site1": free_port()})
        for path, port in (
            (c.net.config("tso"), METRICS["tso"]),
            (c.gateway_config("site1"), METRICS["gw-site1"]),
        ):
            path.write_text(path.read_text() + f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
        try:
            c.start()
            yield c
        finally:
            c.stop()


def _config(work: Path, port: int) -> Path:
    """Limits in the chain's clock (30x): dead after 40 real s, skew beyond 4 real s."""
    path = work / "monitor.toml"
    path.write_text(
        f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n\n'
        f"[monitor]\ndead_after_s = {40 * SPEED}\nmax_skew_s = {4 * SPEED}\n"
    )
    return path


def _once(chain: Chain) -> tuple[int, dict[str, Any]]:
    done = run_module(
        "ledger_node.interfaces.monitor.cli",
        "-c",
        str(_config(chain.work, chain.broker_port)),
        "--once",
        "--json",
        "--wait",
        "2",
        *chain.net.clock_args,
    )
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


def _gateways(report: dict[str, Any]) -> dict[str, Any]:
    return {g["gateway"]: g for g in report["gateways"]}


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_monitor_sees_liveness_gaps_refusals_and_the_broker(chain: Chain) -> None:
    gateways = {f"gw-{site}" for site in chain.sites}

    def all_alive() -> dict[str, Any] | None:
        _, report = _once(chain)
        g = _gateways(report)
        ready = (
            g.keys() >= gateways
            and all(g[n]["alive"] and g[n]["outbox_depth"] is not None for n in gateways)
            and {n["node"] for n in report["nodes"]} == set(chain.nodes)
            # $SYS counters come every 10 s
            and (report["broker"]["clients_connected"] or 0) >= len(gateways) + len(chain.nodes)
        )
        return report if ready else None

    report = wait_until(all_alive, 60, "every gateway and node reported", alive=chain.check_alive)
    assert report["broker"]["connected"]
    assert report["broker"]["clients_connected"] >= len(gateways) + len(chain.nodes)
    assert report["broker"]["messages_received"] > 0
    for g in _gateways(report).values():
        assert set(g["marks"]) == set(chain.nodes)

    # Garbage on a readings topic: every node refuses it and counts it.
    chain.net.publish([("mlg/v1/readings/site1/gw-site1", b"\x00garbage", False)])
    # A seq gap: gw-site2's state skips three seqs (as if three batches were lost).
    terminate(chain.procs.pop("gateway-site2"))
    db = sqlite3.connect(chain.work / "gateway-site2" / "state.sqlite")
    with db:
        db.execute("UPDATE meta SET value = value + 3 WHERE key = 'next_seq'")
    db.close()
    chain.start_gateway("site2")
    # A dead gateway: killed, so the broker publishes its last will.
    terminate(chain.procs.pop("gateway-site3"), signal.SIGKILL)

    def troubles() -> dict[str, Any] | None:
        code, report = _once(chain)
        g = _gateways(report)
        gaps = {n: m["seq_gap"] for n, m in g["gw-site2"]["marks"].items()}
        refused = {n["node"]: n["refused"].get("malformed", 0) for n in report["nodes"]}
        ready = (
            code == 1
            and not g["gw-site3"]["alive"]
            and gaps == dict.fromkeys(chain.nodes, 3)
            and all(refused.values())
        )
        return report if ready else None

    report = wait_until(troubles, 60, "the gap, the dead gateway and the refusals")
    g = _gateways(report)
    assert g["gw-site3"]["state"] == "offline" and g["gw-site3"]["reason"] == "connection lost"
    assert g["gw-site1"]["alive"] and g["gw-site2"]["alive"]
    assert any("gw-site3: offline" in a for a in report["alarms"])
    assert any("gw-site2: node tso misses 3 seqs" in a for a in report["alarms"])

    # The Prometheus endpoint: the same numbers.
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledger_node.interfaces.monitor.cli",
            "-c",
            str(_config(chain.work, chain.broker_port)),
            "--headless",
            "--metrics",
            f"127.0.0.1:{port}",
            *chain.net.clock_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        gap_labels = [(("gateway", "gw-site2"), ("node", n)) for n in chain.nodes]

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            m = _scrape(port)  # once the monitor has seen every node's mark of gw-site2
            seen = all(("mlg_monitor_mark_seq_gap", labels) in m for labels in gap_labels)
            return m if m.get(("mlg_monitor_alarms", ())) and seen else None

        metrics = wait_until(scraped, 30, "metrics")
    finally:
        terminate(proc)
    assert metrics[("mlg_monitor_gateway_alive", (("gateway", "gw-site3"),))] == 0
    for name, g in _gateways(report).items():  # liveness and boot counter of each gateway
        labels = (("gateway", name),)
        assert metrics[("mlg_monitor_gateway_alive", labels)] == g["alive"], name
        assert metrics[("mlg_monitor_gateway_boot", labels)] == g["boot"], name
    for node in chain.nodes:
        labels = (("gateway", "gw-site2"), ("node", node))
        assert metrics[("mlg_monitor_mark_seq_gap", labels)] == 3
        refused = next(n for n in report["nodes"] if n["node"] == node)["refused"]
        assert refused  # the garbage at least
        for reason, count in refused.items():  # every refusal count the JSON gave
            key = ("mlg_monitor_node_refused_total", (("node", node), ("reason", reason)))
            assert metrics[key] == count, (node, reason)
    assert metrics[("mlg_monitor_broker_clients_connected", ())] >= len(chain.nodes)
    assert metrics[("mlg_monitor_broker_connected", ())] == 1

    # The TSO's node and gw-site1 serve their own metrics: the numbers their status gives.
    node = _scrape(METRICS["tso"])
    tso = chain.net.get("tso", "/api/status")
    key = ("mlg_node_refused_total", (("node", "tso"), ("reason", "malformed")))
    assert node[key] == tso["refused"]["malformed"]
    gw = _scrape(METRICS["gw-site1"])
    status = chain.gateway_status("site1")
    assert gw[("mlg_gateway_boot", (("gateway", "gw-site1"),))] == status["daemon"]["boot"]
    assert gw[("mlg_gateway_broker_connected", (("gateway", "gw-site1"),))] == 1
    polls = gw[
        (
            "mlg_gateway_meter_polls_total",
            (("bus", "rs485-0"), ("gateway", "gw-site1"), ("meter", "m1")),
        )
    ]
    assert polls >= 1

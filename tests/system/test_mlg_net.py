"""`mlg-net` with the seed paper's topology (`paper.toml`: the TSO; AC(1) with RA(1) and
RA(2); AC(2) with RA(3); one site each), as processes with a real Mosquitto, emulators on
pseudo-terminals and gateways, at 30x: `init` writes every file, `up` runs it, and the
paper's figure 6 comes out on the nodes (AC(1), five one-minute slots of 4, 3, 5, 10 and
2 kWh, the ledger's totals equal to AC(1)'s AS report made from the emulators' ground
truth) and figure 7's visibility holds, with RA(2) and RA(3) running no node: their
registrations and RA(2)'s declaration are signed offline and published. `status` shows
every part; Ctrl-C stops them all. And `up --tls` runs the demo's topology over the TLS
broker set-up `init` wrote."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import ledger_node.localnet.net as net_package
from ledger_node.localnet import free_port, wait_until
from ledger_node.localnet.demo_scenario import TOPOLOGY
from ledger_node.localnet.net.probe import common_slots, gateway_doc, totals, truth
from ledger_node.localnet.net.run import Lab, api_get
from ledger_node.localnet.net.topology import load_topology
from tests.conftest import run_module

pytestmark = pytest.mark.slow

FIGURE_6_KWH = [4, 3, 5, 10, 2]


def _mlg(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_module("ledger_node.interfaces.cli", *args, cwd=out, timeout_s=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_papers_network_from_init_to_figures_6_and_7(tmp_path: Path) -> None:
    topology = tmp_path / "paper.toml"
    text = (Path(net_package.__file__).parent / "paper.toml").read_text()
    port = free_port()
    topology.write_text(text.replace("port = 1883", f"port = {port}"))
    init = run_module("ledger_node.localnet.net.cli", "init", str(topology), cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    out = tmp_path / "paper"
    assert init.stdout.strip() == str(out)
    assert (out / "keys" / "ra2.key").stat().st_mode & 0o777 == 0o600
    for made in ("genesis.mlg", "tso/node.toml", "gateway-site2.toml", "broker/mosquitto.conf"):
        assert (out / made).exists(), made
    assert (out / "systemd" / "mlg-node-ac1.service").exists()
    assert not (out / "ra2").exists()  # RA(2) runs no node
    # RA(2) on its own machine: its own key only, the others' public keys as given.
    own = tmp_path / "ra2-machine"
    alone = run_module(
        "ledger_node.localnet.net.cli", "init", str(topology), "--org", "ra2", "--dir",
        str(own), "--pub", str(out / "keys"),
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    assert (own / "keys" / "ra2.key").exists() and not (own / "keys" / "tso.key").exists()
    assert (own / "keys" / "tso.key.pub").exists() and (own / "gateway-site2.toml").exists()

    up = subprocess.Popen(
        [sys.executable, "-m", "ledger_node.localnet.net.cli", "up", str(topology)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert up.stdout is not None
        lines = [up.stdout.readline() for _ in range(4)]
        assert "logs in" in lines[-1], "".join(lines) + (up.stderr.read() if up.poll() else "")
        _figures(tmp_path, out, port)
        status = run_module("ledger_node.localnet.net.cli", "status", str(topology), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        doc = json.loads(status.stdout)
        assert set(doc["nodes"]) == {"tso", "ac1", "ra1"}
        assert all(g["outbox"]["confirmed"] > 0 for g in doc["gateways"].values())
    finally:
        up.send_signal(signal.SIGINT)
        _, err = up.communicate(timeout=60)
    assert up.returncode == 0, err
    assert "stopping the network" in err
    assert "mlg-net: sites registered\nmlg-net: gateways started" in err, err  # its progress
    assert not (out / "lab" / "meter-site1-rs485-0").exists()  # the emulators cleaned up


def _figures(tmp_path: Path, out: Path, port: int) -> None:
    clock = json.loads((out / "lab" / "clock.json").read_text())
    clock_args = ["--clock-scale", repr(clock["scale"]), "--clock-origin", repr(clock["origin"])]
    now = clock["origin"] + (time.time() - clock["origin"]) * clock["scale"]
    # Figure 6's cycle starts every 5 minutes; the gate closes at the window's start, at
    # least 240 clock seconds (8 s here) away: time for the declarations on a busy machine.
    start = (int(now) + 240) // 300 * 300 + 300
    end = start + 300
    _mlg(
        out, "command", "-c", "tso/node.toml", "--id", "fig6", "--start", str(start),
        "--end", str(end), "--gate-closure", str(start), "--price", "20",
        "--target", "ac1=6000", *clock_args,
    )  # fmt: skip
    wait_until(lambda: api_get(out, "ra1", "/api/commands"), 30, "the command at RA(1)")
    _mlg(out, "declare", "-c", "ra1/node.toml", "--command", "fig6", "--site", "site1=3000")
    # RA(2) runs no node: it signs its declaration with its key and publishes it.
    broker = ["--broker", f"127.0.0.1:{port}"]
    signed = tmp_path / "ra2-fig6.mlg"
    _mlg(
        out, "sign", "declare", "--command", "fig6", "--site", "site2=5000",
        "--key", "keys/ra2.key", *broker, "--out", str(signed),
    )  # fmt: skip
    _mlg(out, "publish", str(signed), *broker)
    slots = list(range(start, end, 60))

    def ac1_totals(node: str) -> list[tuple[int, int]] | None:
        doc = api_get(out, node, "/api/results?command=fig6&scope=ac1")
        # Every declared meter in: a total over part of them is not yet the slot's.
        got = {
            r["slot"]: (r["actual_wh"], r["flagged"])
            for r in doc["results"]
            if r["reported"] == r["declared"]
        }
        return [got[s] for s in slots] if all(s in got for s in slots) else None

    budget = (end + 120 - now) / clock["scale"] + 60
    figure = [kwh * 1000 for kwh in FIGURE_6_KWH]
    for node in ("tso", "ac1"):
        rows = wait_until(lambda n=node: ac1_totals(n), budget, f"AC(1)'s totals on {node}")  # type: ignore[misc]
        totals_rows = rows
        totals = [wh for wh, _ in rows]
        if not any(flagged for _, flagged in rows):
            assert totals == figure, (node, rows)
        else:  # a poll late on a busy machine: that slot is estimated, and says so
            assert sum(totals) == sum(figure), (node, rows)
            for (wh, flagged), want in zip(rows, figure, strict=True):
                assert wh == want or flagged, (node, rows)
    # AC(1)'s aggregation system: its AS report from the emulators' ground truth.
    wait_until(
        lambda: _truth_has(out, end - 60), 30, "the emulators' truth of the window's last slot"
    )
    as_csv = out / "ac1-fig6.csv"
    _mlg(
        out, "as-csv", "--truth", "site1=lab/truth-site1.csv", "--truth",
        "site2=lab/truth-site2.csv", "--start", str(start), "--end", str(end),
        "--out", str(as_csv),
    )  # fmt: skip
    _mlg(out, "as-report", "-c", "ac1/node.toml", "--command", "fig6", "--csv", str(as_csv))

    def compared() -> list[dict[str, Any]] | None:
        rows = api_get(out, "tso", "/api/reconciliation?command=fig6&org=ac1")
        return rows if len(rows) == 5 and all(r["as_wh"] is not None for r in rows) else None

    rows = wait_until(compared, 30, "AC(1)'s AS report on the TSO's node")
    as_report = [(r["ledger_wh"], r["as_wh"], r["status"]) for r in rows]
    flags = [flagged for _, flagged in totals_rows]
    for (ledger_wh, as_wh, status), flagged, want in zip(as_report, flags, figure, strict=True):
        assert as_wh == want, as_report  # the truth: figure 6 exactly
        assert (ledger_wh, status) == (want, "equal") or flagged, as_report
    # Figure 7: the TSO reads every site, AC(1) its RAs' two, RA(1) its own.
    reads = {"tso": {"site1", "site2", "site3"}, "ac1": {"site1", "site2"}, "ra1": {"site1"}}
    for node, sites in reads.items():
        groups = {g["site"] for g in api_get(out, node, "/api/status")["groups"]}
        totals = {t["site"] for t in api_get(out, node, "/api/totals")}
        assert groups == totals == sites, (node, groups, totals)
    shutil.rmtree(tmp_path / "ra2-machine", ignore_errors=True)


def _truth_has(out: Path, slot: int) -> bool:
    return all(
        f",{slot}," in (out / "lab" / f"truth-{s}.csv").read_text() for s in ("site1", "site2")
    )


def test_up_runs_over_the_tls_broker_set_up_init_wrote(tmp_path: Path) -> None:
    """`up --tls` on the demo's topology: Mosquitto runs `init`'s broker/ set-up (TLS,
    client certificates only, the ACL) on loopback; every node, gateway and organisation
    without a node connects with its own certificate. The readings reach every node equal
    to the truth, the nodes' marks reach the gateways through the ACL, and the broker
    refuses nobody."""
    topology = tmp_path / "demo.toml"
    port = free_port()
    topology.write_text(TOPOLOGY.read_text().replace("port = 1883", f"port = {port}"))
    init = run_module("ledger_node.localnet.net.cli", "init", str(topology), cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    out = tmp_path / "demo"
    up = subprocess.Popen(
        [sys.executable, "-m", "ledger_node.localnet.net.cli", "up", str(topology), "--tls"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lab = Lab(load_topology(topology), out, tls=True)  # to look at what runs
    try:
        assert up.stdout is not None
        first = up.stdout.readline()
        assert f"broker 127.0.0.1:{port} (TLS, client certificates)" in first, first + (
            up.stderr.read() if up.poll() is not None else ""
        )
        slots = wait_until(
            lambda: (s := common_slots(lab)) and len(s) >= 2 and s, 90, "two slots at every node"
        )
        real = truth(lab, slots)
        for node in lab.topo.nodes:
            held = totals(out, node)
            for site in lab.topo.reads(node):
                assert held[(site, slots[0])] == real[(site, slots[0])], (node, site)
        for site in lab.topo.sites:
            wait_until(
                lambda s=site: gateway_doc(out, s)["outbox"]["confirmed"] >= 2,  # type: ignore[misc]
                30,
                f"gw-{site}'s batches confirmed by the nodes' marks",
            )
    finally:
        up.send_signal(signal.SIGINT)
        _, err = up.communicate(timeout=60)  # and closes the pipes
    assert up.returncode == 0, err
    conf = (out / "lab" / "broker" / "mosquitto.conf").read_text()
    assert "require_certificate true" in conf and f"listener {port} 127.0.0.1" in conf
    log = (out / "lab" / "broker" / "broker.log").read_text()
    assert "not authorised" not in log.lower() and "denied" not in log.lower(), log[-2000:]

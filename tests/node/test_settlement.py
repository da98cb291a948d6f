"""The DR contract on figure 7's node processes: results and rewards through the API, a
declaration after gate closure refused, AC(1)'s total checked by RA(1) from public data,
and shredding an epoch on every replica."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger_node.localnet.broker import Broker
from ledger_node.localnet.postgres import Postgres
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.clock import utc_text
from ledger_node.wire import AsReport, DrDeclaration, EpochKey, open_body, parse
from tests.node.conftest import fig7_nodes
from tests.support.sim import SimNet, db_bytes, retained

pytestmark = pytest.mark.slow


def _wait_sim(sim: SimNet, t: float) -> None:
    wait_until(lambda: sim.sim_now() >= t, 60, f"simulated time {t}", alive=sim.net.check_alive)


def _csv(tmp_path: Path, start: int) -> Path:
    """RA(1)'s AS report: site1's two meters, 100 + 150 and 101 + 150 Wh."""
    path = tmp_path / "ra1-as.csv"
    path.write_text(f"slot,wh\n{start},250\n{start + 60},251\n")
    return path


@pytest.fixture
def databases(postgres: Postgres) -> dict[str, str]:
    """The TSO's and AC(1)'s nodes on PostgreSQL beside RA(1)'s on SQLite: the contract,
    checkpoints, slot digests, anti-entropy and shredding alike on either store (the
    system tests run every node on SQLite)."""
    return {node: postgres.create_database() for node in ("tso", "ac1")}


def test_contract_results_checks_and_shredding(
    tmp_path: Path, broker: Broker, databases: dict[str, str], postgres: Postgres
) -> None:
    with fig7_nodes(tmp_path, broker.port, speed=20.0, databases=databases) as sim:
        start = (int(sim.sim_now()) // 60 + 2) * 60
        command = {
            "id": "c1",
            "start": start,
            "end": start + 120,
            "slot_s": 60,
            "gate_closure": start,
            "price_yen_per_kwh": 20,
            "targets": {"ac1": 100},
        }
        sim.net.post("tso", "/api/commands", command)
        wait_until(
            lambda: sim.net.get("ra1", "/api/commands"),
            30,
            "the command at ra1",
            alive=sim.net.check_alive,
        )
        sim.net.post("ra1", "/api/declarations", {"command": "c1", "sites": {"site1": 400}})
        sim.net.publish_fact("ra2", DrDeclaration("ra2", "c1", 1, (("site2", (350,)),)))
        # Before the window opens: every slot open, and no reward (it was -4 yen: no
        # delivered reduction yet looked like a final shortfall).
        early = wait_until(
            lambda: [r for r in sim.net.get("tso", "/api/results?command=c1")["results"]],
            30,
            "the declarations settled",
            alive=sim.net.check_alive,
        )
        before = sim.net.get("tso", "/api/results?command=c1")
        assert before["window"]["state"] == "before" and before["rewards"] == []
        assert {r["state"] for r in early} == {"open"}
        text = sim.net.cli("tso", "results", "--command", "c1", *sim.net.clock_args)
        assert text.returncode == 0, text.stderr
        assert "not open yet" in text.stdout and "reward: none before the window" in text.stdout
        assert " yen" not in text.stdout
        _wait_sim(sim, start + 120)
        sim.publish(
            [
                sim.batch(site, slot, {"m1": 100 + i, "m2": 150})
                for i, slot in enumerate((start, start + 60))
                for site in ("site1", "site2", "site3")
            ]
        )
        # After gate closure a declaration is refused, with its reason and the closure.
        late = sim.net.cli("ra1", "declare", "--command", "c1", "--site", "site1=1")
        assert late.returncode == 1 and "gate_closed" in late.stderr, late.stderr
        assert f"after its gate closure at {utc_text(start)}" in late.stderr, late.stderr

        def settled(node: str) -> list[dict[str, object]]:
            rows = sim.net.get(node, "/api/results?command=c1")["results"]
            done = [r for r in rows if r["reported"] == r["declared"] == 2 or r["kind"] == "ac"]
            return rows if len(rows) == len(done) and any(r["actual_wh"] for r in rows) else []

        tso = wait_until(
            lambda: settled("tso"), 30, "results on the TSO's node", alive=sim.net.check_alive
        )
        by = {(r["slot"], r["kind"], r["scope"]): r for r in tso}
        assert set(by) == {
            (s, k, o)
            for s in (start, start + 60)
            for k, o in (("ra", "ra1"), ("ra", "ra2"), ("ac", "ac1"))
        }
        first = by[(start, "ac", "ac1")]
        assert first["actual_wh"] == 250 + 250  # site1 and site2, two meters each
        assert first["baseline_wh"] == 750 and first["delivered_wh"] == 250
        assert first["contract"] == "dr-1" and first["target_wh"] == 100
        rewards = sim.net.get("tso", "/api/results?command=c1")["rewards"]
        assert rewards == [
            {
                "ac": "ac1",
                "command": "c1",
                "contract": "dr-1",
                "credited_wh": 200,
                "penalised_wh": 0,
                "price_yen_per_kwh": 20,
                "reward_yen": 4,
                "shortfall_wh": 0,
                "state": "final",
            }
        ]
        assert {r["state"] for r in tso} == {"final"}
        # The CLI on the network's clock says the same; on the wall clock (behind the
        # network's, which runs 20 times faster) the window has not even opened.
        text = sim.net.cli("tso", "results", "--command", "c1", *sim.net.clock_args)
        assert "closed" in text.stdout and "reward ac1: 4 yen (final;" in text.stdout
        assert " open " not in text.stdout, text.stdout
        wall = sim.net.cli("tso", "results", "--command", "c1")
        assert "not open yet" in wall.stdout and "reward ac1" not in wall.stdout
        unknown = sim.net.cli("tso", "results", "--command", "c9")
        assert unknown.returncode == 1 and "no DR command c9" in unknown.stderr
        ra1 = wait_until(
            lambda: settled("ra1"), 30, "results on RA(1)'s node", alive=sim.net.check_alive
        )
        assert [r for r in ra1 if r["scope"] == "ra1"] == [r for r in tso if r["scope"] == "ra1"]
        assert {r["scope"] for r in ra1} == {"ra1"}  # RA(1) cannot settle what it cannot read

        # RA(1) checks AC(1)'s total from public data; a total with a reading left out or
        # altered fails.
        def check(result: dict[str, object]) -> str:
            path = tmp_path / "result.json"
            path.write_text(json.dumps(result))
            done = sim.net.cli("ra1", "check-total", str(path))
            return "OK" if done.returncode == 0 else done.stderr

        assert check(first) == "OK"
        total = dict(first["total"])  # type: ignore[call-overload]
        assert "leaves out" in check({**first, "total": {**total, "refs": total["refs"][1:]}})
        assert "altered" in check({**first, "total": {**total, "v_wh": total["v_wh"] + 1}})
        # What `results --json` prints, whole: every result in it checked, one line each.
        printed = sim.net.cli("tso", "results", "--command", "c1", "--json", *sim.net.clock_args)
        doc = json.loads(printed.stdout)
        path = tmp_path / "results.json"
        path.write_text(printed.stdout)
        whole = sim.net.cli("ra1", "check-total", str(path))
        assert whole.returncode == 0, whole.stderr
        assert whole.stdout.count("OK: ") == len(doc["results"]) == 6, whole.stdout
        doc["results"][2]["total"]["v_wh"] += 1
        path.write_text(json.dumps(doc))
        bad = sim.net.cli("ra1", "check-total", str(path))
        assert bad.returncode == 1 and "1 of 6 totals do not check" in bad.stderr
        assert bad.stdout.count("OK: ") == 5 and "BAD: " in bad.stdout
        path.write_text(json.dumps({"results": []}))
        assert "no results" in sim.net.cli("ra1", "check-total", str(path)).stderr

        # AS reports: RA(1)'s and AC(1)'s. On the TSO's node the reconciliation shows
        # every report without being asked for one; on RA(1)'s, AC(1)'s slots are not
        # readable there (not "missing").
        sim.net.cli("ra1", "as-report", "--command", "c1", "--csv", str(_csv(tmp_path, start)))
        sim.net.publish_fact("ac1", AsReport("ac1", "c1", 1, ((start, 500), (start + 60, 501))))

        def reports(node: str, query: str = "") -> list[dict[str, object]]:
            rows = sim.net.get(node, f"/api/reconciliation?command=c1{query}")
            return rows if {r["org"] for r in rows} >= {"ac1", "ra1"} or query else []

        tso_recon = wait_until(lambda: reports("tso"), 30, "both reports at the TSO")
        assert {(r["org"], r["slot"]): r["status"] for r in tso_recon} == {
            ("ac1", start): "equal",
            ("ac1", start + 60): "differs",
            ("ra1", start): "equal",
            ("ra1", start + 60): "equal",
        }
        ra1_recon = wait_until(lambda: reports("ra1", "&org=ac1"), 30, "AC(1)'s report at RA(1)")
        assert {r["status"] for r in ra1_recon} == {"not_readable"}
        assert {r["org"] for r in sim.net.get("ra1", "/api/reconciliation?command=c1")} == {"ra1"}

        # Shred site1's epoch 0: unreadable on every replica, hashes and totals stay.
        secret = sim.gateways["site1"].sealed[0][1].readings[0].blinding

        def on_disk(node: str) -> bytes:
            if node not in databases:
                return db_bytes(sim.net.db(node))
            return b"".join(p.read_bytes() for p in postgres.files(databases[node]))

        assert secret in on_disk("tso") and secret in on_disk("ra1")  # on either store
        sim.net.post("tso", "/api/shred", {"site": "site1", "epoch": 0})
        for node in ("tso", "ac1", "ra1"):
            wait_until(
                lambda n=node: sim.status(n)["shredded"] == [{"site": "site1", "epoch": 0}],  # type: ignore[misc]
                30,
                f"{node} shreds",
                alive=sim.net.check_alive,
            )
            assert not [r for r in sim.net.get(node, "/api/totals") if r["site"] == "site1"]
        assert sim.net.get("tso", "/api/results?command=c1")["results"] == tso
        assert check(first) == "OK"
        # The shredded epoch's wrapped key left the broker; the TSO started the next epoch
        # at once, so the site's readings go on.
        assert retained(broker.port, "mlg/v1/facts/epoch_key/tso/site1/0", 1, 2.0) == []
        (raw,) = retained(broker.port, "mlg/v1/facts/epoch_key/tso/site1/+", 1, 10.0)
        key = open_body(parse(raw))
        assert isinstance(key, EpochKey) and (key.site, key.epoch) == ("site1", 1)
        sim.net.stop()
        for node in ("tso", "ac1", "ra1"):
            assert secret not in on_disk(node), f"{node} still holds site1 data"
            done = sim.net.cli(node, "verify")
            assert done.returncode == 0, done.stdout + done.stderr

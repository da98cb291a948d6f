"""`mlg-node` against running nodes and on its own: inclusion and consistency proofs,
status, the signed high-water marks, authoring commands, and the genesis."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ledger_node.localnet.wait import wait_until
from ledger_node.network.genesis import load_genesis
from ledger_node.shared.keys import Identity
from ledger_node.wire import EpochKey, HighWaterMark, open_body, open_message, parse
from tests.conftest import run_module
from tests.support.sim import SimNet, retained

pytestmark = pytest.mark.slow


def _mlg(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("ledger_node.interfaces.cli", *args, timeout_s=60)


def test_proofs_status_and_high_water_marks(fig7: SimNet, tmp_path: Path) -> None:
    items = [fig7.batch(site, fig7.last_slot() - 60 * k) for k in (1, 0) for site in fig7.RAS]
    fig7.publish(items)
    fig7.wait_accepted(("tso", "ac1", "ra1"), len(items))
    size = 1 + 3 + 3 + len(items)

    def cosigned() -> bool:
        cp = fig7.status("tso")["checkpoint"] or {}
        return cp.get("size") == size and len(cp["cosigners"]) == 2

    wait_until(cosigned, 30, "a checkpoint co-signed by both peers", alive=fig7.net.check_alive)

    # An inclusion proof under the signed checkpoint, checked by a separate command.
    txid = parse(items[0][1]).txid.hex()
    proof = fig7.net.cli("tso", "prove", txid)
    assert proof.returncode == 0, proof.stderr
    doc = json.loads(proof.stdout)
    assert (doc["leaf_index"], doc["tree_size"]) == (7, size) and doc["checkpoint"]
    path = tmp_path / "proof.json"
    path.write_text(proof.stdout)
    pub = str(tmp_path / "keys" / "tso.key.pub")
    ok = _mlg("check-proof", str(path), "--node-key", pub)
    assert ok.returncode == 0 and ok.stdout.startswith("OK:"), ok.stdout + ok.stderr
    for field, value in (
        ("proof", [doc["proof"][0][:-2] + "00", *doc["proof"][1:]]),
        ("leaf_index", 8),
        ("root", "00" * 32),
    ):
        path.write_text(json.dumps({**doc, field: value}))
        bad = _mlg("check-proof", str(path))
        assert bad.returncode == 1, field
    other = str(tmp_path / "keys" / "ac1.key.pub")
    path.write_text(proof.stdout)
    assert _mlg("check-proof", str(path), "--node-key", other).returncode == 1

    # A consistency proof between two sizes of the log.
    cons = fig7.net.cli("tso", "consistency", "--from", "5")
    assert cons.returncode == 0, cons.stderr
    path.write_text(cons.stdout)
    assert _mlg("check-proof", str(path)).returncode == 0
    path.write_text(cons.stdout.replace(json.loads(cons.stdout)["old_root"], "11" * 32))
    assert _mlg("check-proof", str(path)).returncode == 1

    # Status, in a terminal and as JSON.
    text = fig7.net.cli("tso", "status")
    assert text.returncode == 0, text.stderr
    assert "node tso (tso)" in text.stdout
    assert f"log: {size} entries" in text.stdout
    assert "readable here: site1#0, site2#0, site3#0" in text.stdout
    assert "co-signed by ac1" in text.stdout and "ra1" in text.stdout
    assert "gw-site1" in text.stdout and "last seq 1" in text.stdout
    status = json.loads(fig7.net.cli("ra1", "status", "--json").stdout)
    assert status["role"] == "ra" and [g["site"] for g in status["groups"]] == ["site1"]
    assert {p["peer"] for p in status["peers"]} == {"tso", "ac1"}
    assert status["accepted"]["readings"] == len(items)

    # Each node publishes, per gateway, a signed high-water mark the gateway can trust.
    marks = retained(fig7.port, "mlg/v1/hwm/+/gw-site1", 3)
    keys = {
        n: Identity.load(tmp_path / "keys" / f"{n}.key").signing_key.verify_key
        for n in ("tso", "ac1", "ra1")
    }
    opened = [open_message(raw, keys)[1] for raw in marks]
    assert {m.by for m in opened} == {"tso", "ac1", "ra1"}  # type: ignore[attr-defined]
    for mark in opened:
        assert isinstance(mark, HighWaterMark)
        assert (mark.gateway, mark.next, mark.above) == ("gw-site1", 2, ())


def test_authoring_commands_go_through_the_running_nodes(fig7: SimNet, tmp_path: Path) -> None:
    net = fig7.net
    ra4 = Identity.generate("ra4")
    ra4_pub = ra4.save(tmp_path / "ra4.key")
    gw = Identity.generate("gw-site9")
    gw_pub = gw.save(tmp_path / "gw-site9.key")

    def ok(node: str, *args: str) -> str:
        done = net.cli(node, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    assert "org_add accepted" in ok(
        "tso", "org-add", "--pub", str(ra4_pub), "--role", "ra", "--ac", "ac1"
    )
    ok("ra1", "site", "--site", "site9", "--gateway", str(gw_pub), "--meter", "m2", "--meter", "m1")
    ok("tso", "site-move", "--site", "site9", "--to", "ra4")
    ok(
        "tso",
        "command",
        "--id",
        "c7",
        "--start",
        "2030-01-01T09:00:00+09:00",
        "--end",
        "2030-01-01T10:00:00+09:00",
        "--gate-closure",
        "2030-01-01T08:00:00+09:00",
        "--price",
        "20",
        "--target",
        "ac1=500",
    )
    # c7 left --slot-s at its default: the gateways' (60 s), not 1800 s.
    c7 = wait_until(
        lambda: net.get("tso", "/api/commands"), 30, "c7 at the TSO", alive=net.check_alive
    )
    assert c7[0]["slot_s"] == 60
    # Once site1's gateway sealed a batch (60 s slots), a command of 1800 s slots is taken
    # with a warning that it counts none of their readings; a time relative to the
    # network's clock is rounded up to a slot boundary.
    fig7.publish([fig7.batch("site1", fig7.last_slot())])
    fig7.wait_accepted(("tso",), 1)
    times = ["--start", "+2h", "--end", "+3h", "--gate-closure", "+90"]
    before = fig7.sim_now()  # the command's "now" is between these two
    long = net.cli(
        "tso",
        "command",
        "--id",
        "c30",
        "--slot-s",
        "1800",
        *times,
        "--price",
        "1",
        "--target",
        "ac1=1",
        *net.clock_args,
    )
    assert long.returncode == 0, long.stderr
    assert "warning: no registered gateway seals 1800 s slots" in long.stderr
    assert "60 s (1 gateways)" in long.stderr
    after = fig7.sim_now()
    c30 = next(c for c in net.get("tso", "/api/commands") if c["id"] == "c30")
    assert c30["start"] % 1800 == 0 and before + 7200 <= c30["start"] < after + 7200 + 1800
    assert c30["gate_closure"] - before >= 80 and c30["gate_closure"] - after <= 95
    short = net.cli(
        "tso",
        "command",
        "--id",
        "c60",
        *times,
        "--price",
        "1",
        "--target",
        "ac1=1",
        *net.clock_args,
    )
    assert short.returncode == 0 and "warning" not in short.stderr, short.stderr
    # Refused with the reason and why: an RA may not move a site; a time without its offset.
    refused = net.cli("ra1", "site-move", "--site", "site9", "--to", "ra1")
    assert refused.returncode == 1 and "refused (not_allowed): site_move by ra1" in refused.stderr
    assert "see the node's log" not in refused.stderr
    naive = net.cli(
        "tso",
        "command",
        "--id",
        "c8",
        "--start",
        "2030-01-01T09:00:00",
        "--end",
        "2030-01-01T10:00:00",
        "--gate-closure",
        "2030-01-01T08:00:00",
        "--price",
        "1",
        "--target",
        "ac1=1",
    )
    assert naive.returncode == 1 and "offset" in naive.stderr

    def registered() -> bool:
        registry = net.get("ac1", "/api/registry")
        site9 = [s for s in registry["sites"] if s["site"] == "site9"]
        return bool(site9) and site9[0]["ra"] == "ra4" and site9[0]["meters"] == ["m1", "m2"]

    wait_until(registered, 30, "site9 moved to ra4 on ac1's node", alive=net.check_alive)
    commands = wait_until(
        lambda: [c for c in net.get("ac1", "/api/commands") if c["id"] == "c7"],
        30,
        "c7 at ac1",
        alive=net.check_alive,
    )
    assert next(c for c in commands if c["id"] == "c7")["start"] == 1893456000
    ok("tso", "org-remove", "--id", "ra4")
    wait_until(
        lambda: (
            not [
                o
                for o in net.get("ra1", "/api/registry")["orgs"]
                if o["id"] == "ra4" and o["active"]
            ]
        ),
        30,
        "ra4 removed",
        alive=net.check_alive,
    )
    # The TSO started a new epoch of site9 without ra4: ra4 cannot read what comes next.

    def site9_epochs() -> list[EpochKey]:
        keys = retained(fig7.port, "mlg/v1/facts/epoch_key/tso/site9/+", 1)
        return sorted((open_body(parse(raw)) for raw in keys), key=lambda k: k.epoch)  # type: ignore[attr-defined, no-any-return]

    epochs = wait_until(
        lambda: [k for k in site9_epochs() if k.members == ("ac1", "tso")],
        30,
        "new epoch",
        alive=net.check_alive,
    )
    assert epochs[-1].gateway == "gw-site9"
    assert all("ra4" not in {w.to for w in k.wrapped} for k in epochs)
    stopped = net.cli("ra1", "org-add", "--pub", str(ra4_pub), "--role", "ra", "--ac", "ac1")
    assert stopped.returncode == 1 and "refused" in stopped.stderr  # only the TSO adds
    for command in ("run", "status", "verify", "prove", "genesis", "declare", "shred"):
        assert _mlg(command, "--help").returncode == 0


def test_genesis_from_the_command_line(tmp_path: Path) -> None:
    for name in ("tso", "ac1", "ra1"):
        assert _mlg("keygen", "--id", name, "--out", str(tmp_path / f"{name}.key")).returncode == 0
    out = tmp_path / "genesis.mlg"
    made = _mlg(
        "genesis",
        "--key",
        str(tmp_path / "tso.key"),
        "--network",
        "jp-east",
        "--org",
        f"{tmp_path / 'ac1.key.pub'}:ac",
        "--org",
        f"{tmp_path / 'ra1.key.pub'}:ra:ac1",
        "--out",
        str(out),
    )
    assert made.returncode == 0, made.stderr
    _, genesis = load_genesis(out)
    assert [(o.id, o.role, o.ac) for o in genesis.orgs] == [
        ("ac1", "ac", None),
        ("ra1", "ra", "ac1"),
        ("tso", "tso", None),
    ]
    assert genesis.contract == "dr-1"
    again = _mlg("genesis", "--key", str(tmp_path / "tso.key"), "--network", "x", "--out", str(out))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr
    bad = _mlg(
        "genesis",
        "--key",
        str(tmp_path / "tso.key"),
        "--network",
        "x",
        "--org",
        "nowhere.pub:ra",
        "--out",
        str(tmp_path / "g2.mlg"),
    )
    assert bad.returncode == 1

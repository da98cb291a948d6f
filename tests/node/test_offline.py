"""Authoring without a node, against figure 7's nodes and a real Mosquitto: RA(2), which
runs no node, signs a site registration and its declarations with its key (numbered
from its facts retained on the broker) and publishes them to the broker, where the nodes
take them; a signed fact handed to a node's API; and what is refused, with why."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ledger_node.localnet.wait import wait_until
from ledger_node.shared.keys import Identity
from tests.conftest import run_module
from tests.support.sim import SimNet

pytestmark = pytest.mark.slow


def _mlg(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("ledger_node.interfaces.cli", *args, timeout_s=60)


def test_an_ra_without_a_node_registers_and_declares(fig7: SimNet, tmp_path: Path) -> None:
    net = fig7.net
    broker = ["--broker", f"127.0.0.1:{fig7.port}"]
    ra2 = ["--key", str(tmp_path / "keys" / "ra2.key")]
    gw_pub = Identity.generate("gw-site5").save(tmp_path / "gw-site5.key")

    # RA(2) registered site2 as its registry fact n=1 (on the broker): site5 is its n=2.
    site = ["site", "--site", "site5", "--gateway", str(gw_pub), "--meter", "m1"]
    signed = _mlg("sign", *site, *ra2, *broker, "--out", str(tmp_path / "site5.mlg"))
    assert signed.returncode == 0, signed.stderr
    assert signed.stdout.strip().endswith(f"site by ra2 (n 2) signed into {tmp_path / 'site5.mlg'}")
    # Signing it again gives the same bytes: the file may be written again.
    again = _mlg("sign", *site, *ra2, "--n", "2", "--out", str(tmp_path / "site5.mlg"))
    assert again.returncode == 0, again.stderr
    published = _mlg("publish", str(tmp_path / "site5.mlg"), *broker)
    assert published.returncode == 0, published.stderr
    assert "published, retained, on mlg/v1/facts/site/ra2/2" in published.stdout

    def site5_on(node: str) -> bool:
        return any(
            s["site"] == "site5" and s["ra"] == "ra2"
            for s in net.get(node, "/api/registry")["sites"]
        )

    for node in ("tso", "ac1", "ra1"):
        wait_until(lambda n=node: site5_on(n), 30, f"site5 on {node}", alive=net.check_alive)  # type: ignore[misc]

    # The TSO's command (through its node, on the network's clock); RA(2) declares twice.
    issued = net.cli(
        "tso",
        "command",
        "--id",
        "c1",
        "--start",
        "+1h",
        "--end",
        "+2h",
        "--gate-closure",
        "+30m",
        "--price",
        "20",
        "--target",
        "ac1=100",
        *net.clock_args,
    )
    assert issued.returncode == 0, issued.stderr
    for rev, baseline in ((1, 300), (2, 320)):
        out = tmp_path / f"decl{rev}.mlg"
        done = _mlg(
            "sign",
            "declare",
            "--command",
            "c1",
            "--site",
            f"site2={baseline}",
            "--site",
            "site5=50",
            *ra2,
            *broker,
            "--out",
            str(out),
        )
        assert done.returncode == 0 and f"(rev {rev})" in done.stdout, done.stdout + done.stderr
        assert _mlg("publish", str(out), *broker).returncode == 0

        def declared(r: int = rev) -> bool:
            cmds = net.get("ac1", "/api/commands")
            return bool(cmds) and cmds[0]["declarations"].get("ra2", {}).get("rev") == r

        wait_until(declared, 30, f"ra2's revision {rev} at ac1", alive=net.check_alive)
    assert net.get("ac1", "/api/commands")[0]["declarations"]["ra2"]["sites"] == {
        "site2": [320],
        "site5": [50],
    }

    # A fact handed to a node's API: taken (and published on by the node), a replay, and
    # one the ledger refuses, with why.
    rev3 = tmp_path / "decl3.mlg"
    made = _mlg(
        "sign",
        "declare",
        "--command",
        "c1",
        "--site",
        "site2=330",
        *ra2,
        "--rev",
        "3",
        "--out",
        str(rev3),
    )
    assert made.returncode == 0, made.stderr
    taken = net.cli("tso", "publish", str(rev3))
    assert taken.returncode == 0 and ": accepted as entry " in taken.stdout, taken.stderr
    wait_until(
        lambda: net.get("ra1", "/api/commands")[0]["declarations"]["ra2"]["rev"] == 3,
        30,
        "revision 3, published by the TSO's node, at RA(1)'s",
        alive=net.check_alive,
    )
    replay = net.cli("tso", "publish", str(rev3))
    assert replay.returncode == 0 and ": replay" in replay.stdout, replay.stdout + replay.stderr
    move = tmp_path / "move.mlg"
    assert (
        _mlg(
            "sign",
            "site-move",
            "--site",
            "site5",
            "--to",
            "ra1",
            *ra2,
            "--n",
            "3",
            "--out",
            str(move),
        ).returncode
        == 0
    )
    refused = net.cli("tso", "publish", str(move))
    assert refused.returncode == 1 and "refused (not_allowed): site_move by ra2" in refused.stderr

    # Without a number and without a broker to read one from: it says how to get one.
    lost = _mlg("sign", *site, *ra2, "--out", str(tmp_path / "x.mlg"))
    assert lost.returncode == 1 and "give --n, or --broker/--mqtt" in lost.stderr
    assert not (tmp_path / "x.mlg").exists()
    other = _mlg(
        "sign",
        *site[:2],
        "site6",
        *site[3:],
        *ra2,
        "--n",
        "2",
        "--out",
        str(tmp_path / "site5.mlg"),
    )
    assert other.returncode == 1 and "refusing to overwrite" in other.stderr
    (tmp_path / "junk.mlg").write_bytes(b"not an envelope")
    junk = _mlg("publish", str(tmp_path / "junk.mlg"), *broker)
    assert junk.returncode == 1 and "is not a signed fact" in junk.stderr
    nowhere = _mlg("publish", str(rev3), "--broker", "127.0.0.1:1")
    assert nowhere.returncode == 1 and "cannot reach the broker" in nowhere.stderr

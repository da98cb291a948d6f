"""The demo's scenario: the brief's figure 7 (`net/demo.toml`: the TSO, AC(1) with RA(1)
and RA(2), AC(2) with RA(3); three consumer sites) and the seed paper's DR sequence on
it, scaled to the slot length.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import ledger_node.localnet.net as net_package
from ledger_node.localnet.net.probe import sim_now
from ledger_node.localnet.net.run import Lab, api_get, api_post
from ledger_node.localnet.net.topology import Topology, load_topology
from ledger_node.localnet.wait import wait_until

TOPOLOGY = Path(net_package.__file__).parent / "demo.toml"
"""The demo's network."""
CONTROLLED = "site1"
"""The site whose adapter meter has the DR relay."""
BASELINES = {"site2": 70}
"""Declared baselines, Wh per 60 s slot (scaled to the slot length); site1's is its load
without DR (`controlled_load_wh`)."""
TARGET_WH = 60
"""AC(1)'s target, Wh per 60 s slot (scaled to the slot length)."""
COMMAND = "dr-demo"
COMMAND_SLOTS = 3


def demo_topology(port: int, slot_s: int, speed: float, protocol: str = "5") -> Topology:
    """`demo.toml` with the broker on `port`, slots of `slot_s` seconds at `speed`x;
    readings are late two slots after their slot (so that slots close and the witnesses
    compare them quickly)."""
    topo = load_topology(TOPOLOGY)
    return replace(
        topo, port=port, slot_s=slot_s, speed=speed, late_after_s=2 * slot_s, protocol=protocol
    )


def per_slot(wh_per_minute: int, slot_s: int) -> int:
    """A figure given per 60 s slot, for slots of `slot_s` seconds (Wh)."""
    return wh_per_minute * slot_s // 60


def controlled_load_wh(topo: Topology) -> int:
    """Site1's load per slot without DR (Wh): its meter's `slots:WH` profile."""
    profile = topo.sites[CONTROLLED].meters[0].profile
    return round(float(profile.removeprefix("slots:")))


def baselines(topo: Topology) -> dict[str, int]:
    """The declared baselines for the topology's slot length (Wh)."""
    scaled = {site: per_slot(wh, topo.slot_s) for site, wh in BASELINES.items()}
    return {CONTROLLED: controlled_load_wh(topo), **scaled}


def issue_command(lab: Lab) -> int:
    """The TSO commands AC(1) for a window starting three slots from now, its gate closure;
    RA(1) declares through its node; RA(2), which runs none, has signed its declaration
    offline beforehand (its first: revision 1) and publishes it. Returns the window's first
    slot (UTC s)."""
    out, slot_s = lab.out, lab.topo.slot_s
    base = baselines(lab.topo)
    site2 = ["--command", COMMAND, "--site", f"site2={base['site2']}", "--rev", "1"]
    ra2 = lab.sign("ra2", "declare", *site2)
    start = (int(sim_now(out)) // slot_s + 3) * slot_s
    api_post(
        out,
        "tso",
        "/api/commands",
        {
            "id": COMMAND,
            "start": start,
            "end": start + COMMAND_SLOTS * slot_s,
            "slot_s": slot_s,
            "gate_closure": start,
            "price_yen_per_kwh": 20,
            "targets": {"ac1": per_slot(TARGET_WH, slot_s)},
        },
    )
    wait_until(
        lambda: api_get(out, "ra1", "/api/commands"),
        30,
        "the command at RA(1)",
        alive=lab.check_alive,
    )
    lab.publish("ra2", ra2)
    declared = {"command": COMMAND, "sites": {"site1": base["site1"]}}
    api_post(out, "ra1", "/api/declarations", declared)
    return start

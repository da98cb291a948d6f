"""The demo's scenario: the brief's figure 7 (the TSO, AC(1) with RA(1) and RA(2), AC(2)
with RA(3); three consumer sites) and the seed paper's DR sequence on it, scaled to the
slot length.
"""

from __future__ import annotations

from pathlib import Path

from ledger_node.localnet.chain import Chain, Site
from ledger_node.localnet.wait import wait_until
from ledger_node.wire import DrDeclaration

NODES = ("tso", "ac1", "ra1")
SITES = {
    "site1": Site("ra1", "adapter", "duty:4800", dr_drop=0.5),
    "site2": Site("ra2", "sdm120", "steps:1200,3600,2400,600,4800"),
    "site3": Site("ra3", "sdm120", "steps:3000,4200,1800,2400,3600"),
}
"""Site1: 4.8 kW for the middle half of each slot (40 Wh per 60 s slot), half of it
while the relay is on. Site2 and site3: one level per slot (W), changing mid-slot, so each
slot's energy is a whole number of Wh."""
BASELINES = {"site1": 40, "site2": 70}
"""Declared baselines, Wh per 60 s slot (scaled to the slot length): site1's is its load
without DR."""
TARGET_WH = 60
"""AC(1)'s target, Wh per 60 s slot (scaled to the slot length)."""


def per_slot(wh_per_minute: int, slot_s: int) -> int:
    """A figure given per 60 s slot, for slots of `slot_s` seconds (Wh)."""
    return wh_per_minute * slot_s // 60


COMMAND = "dr-demo"
COMMAND_SLOTS = 3


def demo_chain(
    work: Path, broker_port: int, slot_s: int, speed: float, protocol: str = "5"
) -> Chain:
    return Chain(work, broker_port, slot_s, speed, SITES, NODES, protocol=protocol)


def issue_command(chain: Chain) -> int:
    """The TSO commands AC(1) for a window starting two slots from now; RA(1) and RA(2)
    declare. Returns the window's first slot (UTC s)."""
    net, slot_s = chain.net, chain.slot_s
    start = (int(chain.sim_now()) // slot_s + 2) * slot_s
    net.post(
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
        lambda: net.get("ra1", "/api/commands"), 30, "the command at RA(1)", alive=chain.check_alive
    )
    baselines = {site: per_slot(wh, slot_s) for site, wh in BASELINES.items()}
    net.post(
        "ra1", "/api/declarations", {"command": COMMAND, "sites": {"site1": baselines["site1"]}}
    )
    net.publish_fact("ra2", DrDeclaration("ra2", COMMAND, 1, (("site2", (baselines["site2"],)),)))
    return start

"""`mlg-demo`: the brief's figure 7 on one machine, meter to ledger, at accelerated time,
through the seed paper's DR sequence.

Starts an MQTT broker on loopback; three consumer sites, each a meter on a
pseudo-terminal read by its own gateway; and the ledger nodes of the TSO, AC(1) and RA(1),
each as its own process with its own keys, config and database, exactly as in the field
(`chain.py`). The organisations: AC(1) bundles RA(1) (site1) and RA(2) (site2); AC(2)
has RA(3) (site3). Site1's meter is the adapter firmware counting the S0 pulses of a
controllable 4.8 kW load, with the DR relay its gateway switches; site2 and site3 have
emulated SDM120s. RA(1) registers site1 through its node's API; RA(2) and RA(3), which run
no node here, sign their registrations themselves. The TSO's node starts each site's
first epoch; the gateways seal with those keys and count a batch as delivered once two
nodes have committed it.

(1) The TSO issues a DR command to AC(1); (2) RA(1) and RA(2) declare their sites with
baselines, and site1's gateway switches the relay on for the window and off after it, so
the load really drops; (3) the readings, sealed and verified, are totalled on the nodes;
(4) the contract gives the delivered reduction and the reward. The demo prints each
slot's total per site on each node beside the emulators' ground truth (a dot where the
node cannot decrypt the site), the relay's switches as the gateway sealed them and the
load they shed, the contract's results per RA and AC, RA(1)'s AS report reconciled against
the ledger, RA(1)'s check of AC(1)'s total against the public commitments (it cannot read
site2), the witnesses' agreement and each gateway's outbox. Exit 0 when every total
equals the truth, every node decrypts exactly its groups, the relay switched at the
window's edges, site1's delivered reduction is the load it shed, and the checks pass; 1
otherwise. A total agrees with the truth within a reading's 1 Wh resolution; at the
default 60 s slots each is exact.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ledger_node.localnet.broker import Broker, BrokerError
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-demo",
        description=(
            "Run a broker, three meters (one the adapter firmware with a DR relay) with their "
            "gateways, and the TSO, AC(1) and RA(1) ledger nodes on this machine at "
            "accelerated time, through a DR command; print each node's slot totals beside "
            "the ground truth, the relay's switches, the DR results and the cross-checks."
        ),
    )
    p.add_argument("--slots", type=int, default=5, help="slots to wait for (5)")
    p.add_argument("--slot-seconds", type=int, default=60, help="slot length, s (60)")
    p.add_argument("--speed", type=float, default=30.0, help="time runs this much faster (30)")
    p.add_argument("--workdir", type=Path, help="keep keys, configs, logs and databases here")
    p.add_argument(
        "--broker",
        choices=("mosquitto", "amqtt"),
        default="mosquitto",
        help="broker to start (mosquitto, falling back to amqtt when absent)",
    )
    return p


def _hms(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))


def compare(chain: Chain, slots: list[int], window: list[int]) -> bool:
    """Print each node's totals per site and slot beside the truth; True if all agree
    within a reading's 1 Wh resolution and every node reads exactly its sites. `window`
    slots are marked with a star."""
    truth = chain.truth(slots)
    held = {node: chain.totals(node) for node in NODES}
    reads = {node: chain.reads(node) for node in NODES}
    print(f"\n{'slot (UTC)':<21}{'site':<7}{'truth Wh':>9}" + "".join(f"{n:>7}" for n in NODES))
    ok = True
    for slot in slots:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(slot))
        stamp += "*" if slot in window else ""
        for site in sorted(SITES):
            expected = truth.get((site, slot))
            cells, verdicts = [], []
            for node in NODES:
                value = held[node].get((site, slot))
                readable = site in reads[node]
                if value is None:
                    cells.append("·" if not readable else "?")
                    ok = ok and not readable
                    continue
                if not readable:
                    cells.append("LEAK")
                    ok = False
                    continue
                cells.append(str(value))
                # At 60 s slots every boundary value is a whole Wh (the SDM120 loads change
                # mid-slot, the adapter's pauses around boundaries): the totals are exact.
                diff = 1.0 if expected is None else abs(value - expected)
                verdicts.append("=" if diff < 1e-6 else ("≈" if diff < 1.0 else "≠"))
                ok = ok and diff < 1.0
            shown = "missing" if expected is None else f"{expected:.3f}"
            verdict = "≠" if "≠" in verdicts else ("≈" if "≈" in verdicts else "=")
            label = stamp if site == "site1" else ""
            row = "".join(f"{c:>7}" for c in cells)
            print(f"{label:<21}{site:<7}{shown:>9}{row}  {verdict}")
    if any(slot in window for slot in slots):
        print("* in the DR window")
    return ok


def show_control(chain: Chain, start: int) -> bool:
    """(2) DR control: the relay's switches as site1's gateway sealed them (decrypted on
    the TSO's node) and the load they shed (the emulator's truth). True if the relay went
    on in the window's first slot and off in the slot after it, and the load dropped
    during the window."""
    slot_s = chain.slot_s
    end = start + COMMAND_SLOTS * slot_s
    window = list(range(start, end, slot_s))

    def switched() -> list[dict[str, Any]]:
        rows = chain.net.get("tso", f"/api/control?command={COMMAND}")
        done = [r for r in rows if r["ok"]]
        return rows if {r["state"] for r in done} == {0, 1} else []

    actions = wait_until(
        switched, 30, "the relay's switches in the ledger", alive=chain.check_alive
    )
    print("\nDR control at site1 (sealed by gw-site1, decrypted on the TSO's node):")
    for a in actions:
        edge = f"window {'opens' if a['state'] else 'closes'} {_hms(start if a['state'] else end)}"
        print(
            f"  relay {'on ' if a['state'] else 'off'} at {_hms(a['t'])} UTC"
            f" ({'ok' if a['ok'] else 'NOT CONFIRMED by the adapter'}); {edge}"
        )
    on = min(a["t"] for a in actions if a["ok"] and a["state"] == 1)
    off = min(a["t"] for a in actions if a["ok"] and a["state"] == 0)
    ok = start <= on < start + slot_s and end <= off < end + slot_s
    truth = chain.truth([start - slot_s, *window, end])
    load = [round(truth[("site1", s)]) for s in [start - slot_s, *window, end]]
    print(
        f"site1's load (emulator truth): {load[0]} Wh in the slot before the window;"
        f" {', '.join(str(w) for w in load[1:-1])} during it; {load[-1]} after"
    )
    return ok and all(w < min(load[0], load[-1]) for w in load[1:-1])


def show_contract(chain: Chain, start: int) -> bool:
    """(3), (4): results, the delivered reduction against the load shed, the AS
    reconciliation and the public check of AC(1)'s total by RA(1)."""
    net = chain.net
    window = [start + i * chain.slot_s for i in range(COMMAND_SLOTS)]
    truth = chain.truth(window)
    csv_text = "slot,wh\n" + "".join(f"{s},{round(truth[('site1', s)])}\n" for s in window)
    csv_path = chain.work / "ra1-as-report.csv"
    csv_path.write_text(csv_text)
    done = net.cli("ra1", "as-report", "--command", COMMAND, "--csv", str(csv_path))
    if done.returncode != 0:
        print(f"mlg-demo: AS report refused: {done.stderr}", file=sys.stderr)
        return False

    def settled(node: str) -> bool:
        rows = net.get(node, f"/api/results?command={COMMAND}")["results"]
        return bool(rows) and all(r["reported"] == r["declared"] for r in rows if r["kind"] == "ra")

    # RA(1) reconciles against its own node's results: both must have every reading.
    for node in ("tso", "ra1"):
        wait_until(
            functools.partial(settled, node),
            30,
            f"the contract's results on {node}",
            alive=chain.check_alive,
        )
    target = per_slot(TARGET_WH, chain.slot_s)
    print(f"\nDR command {COMMAND} to AC(1), target {target} Wh per slot; on the TSO's node:")
    tso = net.get("tso", f"/api/results?command={COMMAND}")
    print(
        f"{'slot (UTC)':<12}{'scope':<9}{'actual Wh':>10}{'baseline':>10}{'delivered':>11}"
        f"{'meters':>8}"
    )
    for r in tso["results"]:
        scope = f"{r['kind']}:{r['scope']}"
        print(
            f"{_hms(r['slot']):<12}{scope:<9}{r['actual_wh']:>10}{r['baseline_wh']:>10}"
            f"{r['delivered_wh']:>11}{r['reported']:>6}/{r['declared']}"
        )
    for w in tso["rewards"]:
        print(
            f"reward {w['ac']} ({w['contract']}): {w['reward_yen']} yen at"
            f" {w['price_yen_per_kwh']} yen/kWh; credited {w['credited_wh']} Wh, shortfall"
            f" {w['shortfall_wh']} Wh, of which penalised {w['penalised_wh']} Wh"
        )
    # RA(1)'s delivered reduction is the load the relay shed: baseline minus the truth.
    ra1 = {r["slot"]: r["delivered_wh"] for r in tso["results"] if r["scope"] == "ra1"}
    baseline = per_slot(BASELINES["site1"], chain.slot_s)
    shed = {s: baseline - round(truth[("site1", s)]) for s in window}
    ok = ra1 == shed and all(v > 0 for v in shed.values())
    print(
        f"RA(1)'s delivered reduction per slot: {', '.join(str(ra1.get(s)) for s in window)} Wh;"
        f" shed by the relay (baseline - truth): {', '.join(str(shed[s]) for s in window)} Wh"
    )

    def reconciled() -> list[dict[str, Any]]:
        rows = net.get("ra1", f"/api/reconciliation?command={COMMAND}")
        return [r for r in rows if r["as_wh"] is not None and r["ledger_wh"] is not None]

    recon = wait_until(reconciled, 30, "RA(1)'s reconciliation", alive=chain.check_alive)
    statuses = {r["status"] for r in recon}
    print(f"RA(1) AS report vs ledger, slot by slot: {', '.join(r['status'] for r in recon)}")
    ok = ok and statuses == {"equal"}
    ac_total = next(r for r in tso["results"] if r["kind"] == "ac")
    path = chain.work / "ac1-total.json"
    path.write_text(json.dumps(ac_total))
    check = net.cli("ra1", "check-total", str(path))
    said = check.stdout.strip() or check.stderr.strip()
    print(f"RA(1), which cannot read site2, checks AC(1)'s total: {said}")
    return ok and check.returncode == 0


def show_witnesses(chain: Chain) -> bool:
    """Each node's log, who co-signed its latest checkpoint, and how its closed slots'
    digests compare with its peers' (after giving the witnesses a moment)."""

    def witnessed(node: str) -> bool:
        s = chain.net.get(node, "/api/status")
        cp = s["checkpoint"] or {}
        return (
            cp.get("size") == s["log"]["size"]
            and len(cp["cosigners"]) == len(NODES) - 1
            and all(p["slots_agree"] or p["slots_differ"] for p in s["peers"])
        )

    for node in NODES:
        with contextlib.suppress(TimeoutError, RuntimeError):  # shown as it stands
            wait_until(
                lambda n=node: witnessed(n),  # type: ignore[misc]
                20,
                f"{node}'s witnesses",
                alive=chain.check_alive,
            )
    ok = True
    for node in NODES:
        s = chain.net.get(node, "/api/status")
        cp = s["checkpoint"] or {}
        signers = ", ".join(c["witness"] for c in cp.get("cosigners", [])) or "nobody yet"
        agree = sum(p["slots_agree"] for p in s["peers"])
        differ = sum(p["slots_differ"] for p in s["peers"])
        ok = ok and differ == 0
        print(
            f"{node}: log {s['log']['size']} entries; checkpoint co-signed by {signers};"
            f" peers' closed slots agree {agree}, differ {differ}"
        )
    return ok


def show_gateways(chain: Chain) -> None:
    """Each gateway's epoch and outbox as `mlg-gateway status` reports them."""
    for site in SITES:
        doc = chain.gateway_status(site)
        o, d = doc["outbox"], doc["daemon"]
        marks = d.get("marks", {})
        nodes = ", ".join(f"{n} {marks.get(n, '-')}" for n in d["confirm"]["nodes"])
        print(
            f"{doc['gateway']}: sealing with epoch {d.get('epoch')}; outbox {o['depth']}"
            f" unconfirmed, {o['confirmed']} confirmed by the marks of {d['confirm']['quorum']}"
            f" of its nodes (next seq: {nodes})"
        )


def start_broker(work: Path, prefer: str) -> Broker:
    broker = Broker(work / "broker")
    try:
        return broker.start(prefer=prefer)
    except BrokerError as exc:
        if prefer != "mosquitto":
            raise
        print(f"mlg-demo: {exc}; trying amqtt", file=sys.stderr)
        return broker.start(prefer="amqtt")


def run_demo(args: argparse.Namespace, work: Path) -> int:
    broker = start_broker(work, args.broker)
    print(f"broker: {broker.kind} on 127.0.0.1:{broker.port}")
    protocol = "3.1.1" if broker.kind == "amqtt" else "5"  # amqtt speaks MQTT 3.1.1 only
    chain = demo_chain(work, broker.port, args.slot_seconds, args.speed, protocol)
    slot_s = args.slot_seconds
    try:
        chain.start_emulators()
        devices = {s: os.readlink(work / f"meter-{s}") for s in SITES}
        print(
            f"meters: site1 the adapter firmware counting a 4.8 kW load's S0 pulses, with the"
            f" DR relay, on {devices['site1']}; emulated SDM120s on {devices['site2']},"
            f" {devices['site3']}"
        )
        chain.start_nodes()
        print(f"nodes: {', '.join(NODES)}; registering sites (site1 by RA(1)'s API)")
        chain.register_sites()
        chain.start_gateways()
        start = issue_command(chain)
        end = start + COMMAND_SLOTS * slot_s
        print(
            f"gateways running: the TSO's epoch keys, confirmation by {chain.quorum} nodes'"
            f" marks; {slot_s} s slots at {args.speed:g}x; DR command {COMMAND} for"
            f" {_hms(start)}-{_hms(end)} UTC, declared by RA(1) (site1) and RA(2) (site2)"
        )
        slots = chain.wait_for_slots(
            args.slots, lambda n: print(f"  every node holds {n}/{args.slots} slots", flush=True)
        )
        if len(slots) < args.slots:
            print(
                f"mlg-demo: only {len(slots)} of {args.slots} slots reached every node;"
                f" logs are in {work}",
                file=sys.stderr,
            )
            return 1
        # The slot after the window carries the relay's off switch in its batch.
        wait_until(
            lambda: end in chain.common_slots(),
            (COMMAND_SLOTS + 5) * slot_s / args.speed + 45,
            "the command's window and the slot after it",
            alive=chain.check_alive,
        )
        window = list(range(start, end, slot_s))
        agree = compare(chain, slots[: args.slots], window)
        control_ok = show_control(chain, start)
        contract_ok = show_contract(chain, start)
        print()
        witnesses_ok = show_witnesses(chain)
        show_gateways(chain)
    finally:
        chain.stop()
        broker.stop()
    if agree and control_ok and contract_ok and witnesses_ok:
        print(
            f"\nall {args.slots} slot totals agree with the ground truth on every node that can"
            " read them; the relay shed the delivered reduction"
        )
        return 0
    print(f"\nmlg-demo: a check failed (see above); logs are in {work}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.slots < 1 or args.speed <= 0 or args.slot_seconds < 1:
        print("mlg-demo: --slots, --speed and --slot-seconds must be positive", file=sys.stderr)
        return 2
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run_demo(args, args.workdir.resolve())
    with tempfile.TemporaryDirectory(prefix="mlg-demo-") as tmp:
        return run_demo(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())

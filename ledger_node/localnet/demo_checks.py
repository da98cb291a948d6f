"""What the demo shows and checks once its slots have run: each slot's totals on each node
beside the emulators' ground truth, the relay's switches and the load they shed, the
contract's results and RA(1)'s reconciliation, the witnesses' agreement and the
gateways' outboxes. Each check prints its part and returns whether it passed.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import time
from typing import Any

from ledger_node.localnet.demo_scenario import (
    COMMAND,
    COMMAND_SLOTS,
    CONTROLLED,
    TARGET_WH,
    baselines,
    per_slot,
)
from ledger_node.localnet.net.probe import gateway_doc, totals, truth
from ledger_node.localnet.net.run import Lab, api_get
from ledger_node.localnet.wait import wait_until


def hms(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))


def compare(lab: Lab, slots: list[int], window: list[int]) -> bool:
    """Print each node's totals per site and slot beside the truth; True if all agree
    (`=`; `≈` within 2 Wh: a boundary a few hundredths of a second off, which the 30x clock
    makes watt-hours on a busy machine) and every node reads exactly its sites. `window`
    slots are marked with a star."""
    nodes = lab.topo.nodes
    expect = truth(lab, slots)
    held = {node: totals(lab.out, node) for node in nodes}
    reads = {node: set(lab.topo.reads(node)) for node in nodes}
    print(f"\n{'slot (UTC)':<21}{'site':<7}{'truth Wh':>9}" + "".join(f"{n:>7}" for n in nodes))
    ok = True
    for slot in slots:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(slot))
        stamp += "*" if slot in window else ""
        for site in sorted(lab.topo.sites):
            expected = expect.get((site, slot))
            cells, verdicts = [], []
            for node in nodes:
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
                verdicts.append("=" if diff < 1e-6 else ("≈" if diff <= 2.0 else "≠"))
                ok = ok and diff <= 2.0
            shown = "missing" if expected is None else f"{expected:.3f}"
            verdict = "≠" if "≠" in verdicts else ("≈" if "≈" in verdicts else "=")
            label = stamp if site == "site1" else ""
            row = "".join(f"{c:>7}" for c in cells)
            print(f"{label:<21}{site:<7}{shown:>9}{row}  {verdict}")
    if any(slot in window for slot in slots):
        print("* in the DR window")
    return ok


def show_control(lab: Lab, start: int) -> bool:
    """(2) DR control: the relay's switches as site1's gateway sealed them (decrypted on
    the TSO's node) and the load they shed (the emulator's truth). True if the relay went
    on in the window's first slot and off in the slot after it, and the load dropped
    during the window."""
    slot_s = lab.topo.slot_s
    end = start + COMMAND_SLOTS * slot_s
    window = list(range(start, end, slot_s))

    def switched() -> list[dict[str, Any]]:
        rows = api_get(lab.out, "tso", f"/api/control?command={COMMAND}")
        done = [r for r in rows if r["ok"]]
        return rows if {r["state"] for r in done} == {0, 1} else []

    actions = wait_until(switched, 30, "the relay's switches in the ledger", alive=lab.check_alive)
    print("\nDR control at site1 (sealed by gw-site1, decrypted on the TSO's node):")
    for a in actions:
        edge = f"window {'opens' if a['state'] else 'closes'} {hms(start if a['state'] else end)}"
        print(
            f"  relay {'on ' if a['state'] else 'off'} at {hms(a['t'])} UTC"
            f" ({'ok' if a['ok'] else 'NOT CONFIRMED by the adapter'}); {edge}"
        )
    on = min(a["t"] for a in actions if a["ok"] and a["state"] == 1)
    off = min(a["t"] for a in actions if a["ok"] and a["state"] == 0)
    ok = start <= on < start + slot_s and end <= off < end + slot_s
    real = truth(lab, [start - slot_s, *window, end])
    load = [round(real[(CONTROLLED, s)]) for s in [start - slot_s, *window, end]]
    print(
        f"site1's load (emulator truth): {load[0]} Wh in the slot before the window;"
        f" {', '.join(str(w) for w in load[1:-1])} during it; {load[-1]} after"
    )
    return ok and all(w < min(load[0], load[-1]) for w in load[1:-1])


def show_contract(lab: Lab, start: int) -> bool:
    """(3), (4): results, the delivered reduction against the load shed, the AS
    reconciliation (RA(1)'s AS report made from the emulator's ground truth by
    `mlg-node as-csv`) and the public check of AC(1)'s total by RA(1)."""
    out, slot_s = lab.out, lab.topo.slot_s
    window = [start + i * slot_s for i in range(COMMAND_SLOTS)]
    real = truth(lab, window)
    span = ["--slot-s", str(slot_s), "--start", str(start)]
    span += ["--end", str(start + COMMAND_SLOTS * slot_s)]
    source = f"{CONTROLLED}=lab/truth-{CONTROLLED}.csv"
    csv_path = out / "ra1-as-report.csv"
    done = lab.mlg("as-csv", "--truth", source, *span, "--out", str(csv_path), check=False)
    if done.returncode == 0:
        done = lab.mlg(
            "as-report", "-c", "ra1/node.toml", "--command", COMMAND, "--csv", str(csv_path),
            check=False,
        )  # fmt: skip
    if done.returncode != 0:
        print(f"mlg-demo: AS report refused: {done.stderr}", file=sys.stderr)
        return False

    def settled(node: str) -> bool:
        rows = api_get(out, node, f"/api/results?command={COMMAND}")["results"]
        return bool(rows) and all(r["reported"] == r["declared"] for r in rows if r["kind"] == "ra")

    # RA(1) reconciles against its own node's results: both must have every reading.
    for node in ("tso", "ra1"):
        wait_until(
            functools.partial(settled, node),
            30,
            f"the contract's results on {node}",
            alive=lab.check_alive,
        )
    target = per_slot(TARGET_WH, slot_s)
    print(f"\nDR command {COMMAND} to AC(1), target {target} Wh per slot; on the TSO's node:")
    tso = api_get(out, "tso", f"/api/results?command={COMMAND}")
    print(
        f"{'slot (UTC)':<12}{'scope':<9}{'actual Wh':>10}{'baseline':>10}{'delivered':>11}"
        f"{'meters':>8}"
    )
    for r in tso["results"]:
        scope = f"{r['kind']}:{r['scope']}"
        print(
            f"{hms(r['slot']):<12}{scope:<9}{r['actual_wh']:>10}{r['baseline_wh']:>10}"
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
    baseline = baselines(lab.topo)[CONTROLLED]
    shed = {s: baseline - round(real[(CONTROLLED, s)]) for s in window}
    ok = ra1 == shed and all(v > 0 for v in shed.values())
    print(
        f"RA(1)'s delivered reduction per slot: {', '.join(str(ra1.get(s)) for s in window)} Wh;"
        f" shed by the relay (baseline - truth): {', '.join(str(shed[s]) for s in window)} Wh"
    )

    def reconciled() -> list[dict[str, Any]]:
        rows = api_get(out, "ra1", f"/api/reconciliation?command={COMMAND}")
        return [r for r in rows if r["as_wh"] is not None and r["ledger_wh"] is not None]

    recon = wait_until(reconciled, 30, "RA(1)'s reconciliation", alive=lab.check_alive)
    statuses = {r["status"] for r in recon}
    print(f"RA(1) AS report vs ledger, slot by slot: {', '.join(r['status'] for r in recon)}")
    ok = ok and statuses == {"equal"}
    ac_total = next(r for r in tso["results"] if r["kind"] == "ac")
    path = out / "ac1-total.json"
    path.write_text(json.dumps(ac_total))
    check = lab.mlg("check-total", "-c", "ra1/node.toml", str(path), check=False)
    said = check.stdout.strip() or check.stderr.strip()
    print(f"RA(1), which cannot read site2, checks AC(1)'s total: {said}")
    return ok and check.returncode == 0


def show_witnesses(lab: Lab) -> bool:
    """Each node's log, who co-signed its latest checkpoint, and how its closed slots'
    digests compare with its peers' (after giving the witnesses a moment)."""
    nodes = lab.topo.nodes

    def witnessed(node: str) -> bool:
        s = api_get(lab.out, node, "/api/status")
        cp = s["checkpoint"] or {}
        return (
            cp.get("size") == s["log"]["size"]
            and len(cp["cosigners"]) == len(nodes) - 1
            and all(p["slots_agree"] or p["slots_differ"] for p in s["peers"])
        )

    for node in nodes:
        with contextlib.suppress(TimeoutError, RuntimeError):  # shown as it stands
            wait_until(
                lambda n=node: witnessed(n),  # type: ignore[misc]
                20,
                f"{node}'s witnesses",
                alive=lab.check_alive,
            )
    ok = True
    for node in nodes:
        s = api_get(lab.out, node, "/api/status")
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


def show_gateways(lab: Lab) -> None:
    """Each gateway's epoch and outbox as `mlg-gateway status` reports them."""
    for site in lab.topo.sites:
        doc = gateway_doc(lab.out, site)
        o, d = doc["outbox"], doc["daemon"]
        marks = d.get("marks", {})
        nodes = ", ".join(f"{n} {marks.get(n, '-')}" for n in d["confirm"]["nodes"])
        print(
            f"{doc['gateway']}: sealing with epoch {d.get('epoch')}; outbox {o['depth']}"
            f" unconfirmed, {o['confirmed']} confirmed by the marks of {d['confirm']['quorum']}"
            f" of its nodes (next seq: {nodes})"
        )

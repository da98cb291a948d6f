"""`mlg-demo`: the brief's figure 7 on one machine, meter to ledger, at accelerated time.

Starts an MQTT broker on loopback; three consumer sites, each an emulated SDM120 on a
pseudo-terminal read by its own gateway; and the ledger nodes of the TSO, AC(1) and RA(1),
each as its own process with its own keys, config and database, exactly as in the field.
The organisations: AC(1) bundles RA(1) (site1) and RA(2) (site2); AC(2) has RA(3)
(site3). RA(1) registers site1 through its node's API; RA(2) and RA(3), which run no node
here, sign their registrations themselves. The TSO's node starts each site's first epoch
(adopting the key file the demo's gateways still seal with).

The TSO issues a DR command to AC(1); RA(1) and RA(2) declare their sites with baselines.
When every node holds the wanted slots, the demo prints each slot's total per site on each
node beside the emulators' ground truth (a dot where the node cannot decrypt the site),
the contract's results per RA and AC, RA(1)'s AS report reconciled against the ledger,
RA(1)'s check of AC(1)'s total against the public commitments (it cannot read site2), and
the witnesses' agreement. Exit 0 when every total agrees within a reading's 1 Wh, every
node decrypts exactly its groups and the checks pass; 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from firmware.emulator.truth import read_truth
from ledger_node.broker import Broker, BrokerError
from ledger_node.keys import Identity
from ledger_node.localnet import FIGURE_7, LocalNet, adopted_group_keys
from ledger_node.wire import DrDeclaration, GatewayKey, SiteRegistration

NODES = ("tso", "ac1", "ra1")
SITES = {
    "site1": ("ra1", "steps:2400,1800,3000,6000,1200"),
    "site2": ("ra2", "steps:1200,3600,2400,600,4800"),
    "site3": ("ra3", "steps:3000,4200,1800,2400,3600"),
}
"""Site → its RA and its meter's load levels (W, one per slot, changing mid-slot, so each
slot's energy is a whole number of Wh)."""
READS = {"tso": {"site1", "site2", "site3"}, "ac1": {"site1", "site2"}, "ra1": {"site1"}}
"""Figure 7: which consumers each party sees."""
METER_UNIT = 1
BASELINES = {"site1": 80, "site2": 70}
"""Declared baselines, Wh per slot (at 60 s slots)."""
TARGET_WH = 60
COMMAND = "dr-demo"
COMMAND_SLOTS = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-demo",
        description=(
            "Run a broker, three emulated meters with their gateways, and the TSO, AC(1) and "
            "RA(1) ledger nodes on this machine at accelerated time; print each node's slot "
            "totals beside the ground truth, the DR results and the cross-checks."
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


class Chain:
    """Emulators, gateways and nodes as child processes in `work`, each logging to a file."""

    def __init__(
        self, work: Path, broker_port: int, slot_s: int, speed: float, protocol: str = "5"
    ) -> None:
        self.work = work
        self.slot_s = slot_s
        self.speed = speed
        self.broker_port = broker_port
        self.protocol = protocol
        keys = adopted_group_keys(work, sorted(SITES))
        self.net = LocalNet(
            work,
            broker_port,
            FIGURE_7,
            NODES,
            speed=speed,
            late_after_s=2 * slot_s,
            checkpoint_every_s=1.0,
            sync_every_s=2.0,
            protocol=protocol,
            adopt=keys,
            network="demo",
        )
        self.gateways: dict[str, Identity] = {}
        for site in SITES:
            path = work / "keys" / f"gw-{site}.key"
            if not path.exists():
                Identity.generate(f"gw-{site}").save(path)
            self.gateways[site] = Identity.load(path)
            self._gateway_config(site)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _gateway_config(self, site: str) -> None:
        (self.work / f"gateway-{site}.toml").write_text(
            f"""[gateway]
id = "gw-{site}"
site = "{site}"
key = "keys/gw-{site}.key"
state_dir = "gateway-{site}"
slot_seconds = {self.slot_s}

[seal]
group_key = "keys/{site}.group"

[mqtt]
host = "127.0.0.1"
port = {self.broker_port}
protocol = "{self.protocol}"

[[bus]]
name = "rs485-0"
port = "{self.work / f"meter-{site}"}"
baud = 9600
timeout_s = 0.3

[[meter]]
id = "m1"
bus = "rs485-0"
unit = {METER_UNIT}
model = "sdm120"
poll_seconds = 1.0
"""
        )

    def start_process(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.work / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, *args, *self.net.clock_args],
                cwd=self.work,
                stdout=log,
                stderr=log,
            )
        self.procs[name] = proc
        return proc

    def start_emulators(self) -> None:
        for site, (_, profile) in SITES.items():
            self.start_process(
                f"emulator-{site}",
                [
                    "-m",
                    "firmware.emulator.cli",
                    "--meter",
                    f"{METER_UNIT}:sdm120:{profile}",
                    "--link",
                    str(self.work / f"meter-{site}"),
                    "--truth",
                    f"truth-{site}.csv",
                    "--slot-seconds",
                    str(self.slot_s),
                ],
            )
        for site in SITES:
            device = self.work / f"meter-{site}"
            self.wait(device.exists, 10, "serial devices")

    def start_nodes(self) -> None:
        self.net.start()

    def start_gateways(self) -> None:
        for site in SITES:
            self.start_process(
                f"gateway-{site}",
                ["-m", "gateway.cli", "run", "-c", f"gateway-{site}.toml"],
            )

    def register_sites(self) -> None:
        """RA(1) through its node's API; RA(2) and RA(3) sign their own facts."""
        for site, (ra, _) in SITES.items():
            gw = self.gateways[site].public
            if ra in NODES:
                self.net.post(
                    ra,
                    "/api/sites",
                    {"site": site, "gateway": gw.to_json(), "meters": ["m1"]},
                )
            else:
                key = GatewayKey(gw.name, bytes(gw.verify_key), bytes(gw.box_key))
                self.net.publish_fact(ra, SiteRegistration(ra, 1, site, key, ("m1",)))
        for node in NODES:
            self.wait(self._holds_keys(node), 60, f"{node}'s epoch keys")

    def _holds_keys(self, node: str) -> Callable[[], bool]:
        return lambda: len(self.net.get(node, "/api/status")["groups"]) == len(READS[node])

    def issue_command(self) -> int:
        """The TSO commands AC(1) for a window starting two slots from now; RA(1) and RA(2)
        declare. Returns the window's first slot (UTC s)."""
        t = time.time()
        sim_now = self.net.origin + (t - self.net.origin) * self.speed
        start = (int(sim_now) // self.slot_s + 2) * self.slot_s
        self.net.post(
            "tso",
            "/api/commands",
            {
                "id": COMMAND,
                "start": start,
                "end": start + COMMAND_SLOTS * self.slot_s,
                "slot_s": self.slot_s,
                "gate_closure": start,
                "price_yen_per_kwh": 20,
                "targets": {"ac1": TARGET_WH},
            },
        )
        self.wait(lambda: self.net.get("ra1", "/api/commands"), 30, "the command at RA(1)")
        self.net.post(
            "ra1", "/api/declarations", {"command": COMMAND, "sites": {"site1": BASELINES["site1"]}}
        )
        self.net.publish_fact(
            "ra2", DrDeclaration("ra2", COMMAND, 1, (("site2", (BASELINES["site2"],)),))
        )
        return start

    def wait(self, check: Callable[[], Any], timeout_s: float, what: str) -> Any:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                value = check()
            except (OSError, ValueError, KeyError):
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise RuntimeError(f"waited {timeout_s} s for {what}; logs are in {self.work}")

    def check_alive(self) -> None:
        self.net.check_alive()
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.work / f"{name}.log").read_text()[-1500:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def totals(self, node: str) -> dict[tuple[str, int], int]:
        return {(r["site"], r["slot"]): r["wh"] for r in self.net.get(node, "/api/totals")}

    def common_slots(self) -> list[int]:
        """Slots that every node holds for every site it reads."""
        slots: set[int] | None = None
        for node in NODES:
            held = self.totals(node)
            for site in READS[node]:
                mine = {slot for s, slot in held if s == site}
                slots = mine if slots is None else slots & mine
        return sorted(slots or ())

    def wait_for_slots(
        self, count: int, on_progress: Callable[[int], None] = lambda n: None
    ) -> list[int]:
        """Wait until every node holds `count` common slots; the budget allows the
        unreported first slot and a slow machine."""
        deadline = time.monotonic() + (count + 4) * self.slot_s / self.speed + 45
        seen = -1
        slots: list[int] = []
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                slots = self.common_slots()
            except OSError:
                slots = []
            if len(slots) != seen:
                seen = len(slots)
                on_progress(seen)
            if len(slots) >= count:
                return slots
            time.sleep(0.3)
        return slots

    def truth(
        self, slots: Iterable[int] = (), timeout_s: float = 10.0
    ) -> dict[tuple[str, int], float]:
        """The emulators' true energy per (site, slot), Wh.

        Waits (up to `timeout_s`) until every site's emulator has written each of `slots`:
        an emulator writes a slot's row shortly after the slot ends, which can be after the
        ledger has it.
        """
        wanted = {(site, slot) for site in SITES for slot in slots}
        deadline = time.monotonic() + timeout_s
        while True:
            out: dict[tuple[str, int], float] = defaultdict(float)
            for site in SITES:
                path = self.work / f"truth-{site}.csv"
                if path.exists():
                    for row in read_truth(path):
                        out[(site, int(row["slot_start"]))] += float(row["energy_wh"])
            if wanted <= out.keys() or time.monotonic() > deadline:
                return dict(out)
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs.values()):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.net.stop()


def compare(chain: Chain, slots: list[int]) -> bool:
    """Print each node's totals per site and slot beside the truth; True if all agree and
    every node reads exactly its sites."""
    truth = chain.truth(slots)
    held = {node: chain.totals(node) for node in NODES}
    print(f"\n{'slot (UTC)':<21}{'site':<7}{'truth Wh':>9}" + "".join(f"{n:>7}" for n in NODES))
    ok = True
    for slot in slots:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(slot))
        for site in sorted(SITES):
            expected = truth.get((site, slot))
            cells, verdicts = [], []
            for node in NODES:
                value = held[node].get((site, slot))
                readable = site in READS[node]
                if value is None:
                    cells.append("·" if not readable else "?")
                    ok = ok and not readable
                    continue
                if not readable:
                    cells.append("LEAK")
                    ok = False
                    continue
                cells.append(str(value))
                if expected is None:
                    verdicts.append("?")
                    ok = False
                else:
                    diff = abs(value - expected)
                    verdicts.append("=" if diff < 1e-6 else ("≈" if diff < 1.0 else "≠"))
                    ok = ok and diff < 1.0
            shown = "missing" if expected is None else f"{expected:.3f}"
            verdict = "≠" if "≠" in verdicts else ("≈" if "≈" in verdicts else "=")
            label = stamp if site == "site1" else ""
            row = "".join(f"{c:>7}" for c in cells)
            print(f"{label:<21}{site:<7}{shown:>9}{row}  {verdict}")
    return ok


def show_contract(chain: Chain, start: int) -> bool:
    """Results, AS reconciliation and the public check of AC(1)'s total by RA(1)."""
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
        chain.wait(functools.partial(settled, node), 30, f"the contract's results on {node}")
    print(f"\nDR command {COMMAND} to AC(1), target {TARGET_WH} Wh per slot; on the TSO's node:")
    tso = net.get("tso", f"/api/results?command={COMMAND}")
    print(
        f"{'slot (UTC)':<12}{'scope':<9}{'actual Wh':>10}{'baseline':>10}{'delivered':>11}"
        f"{'meters':>8}"
    )
    for r in tso["results"]:
        stamp = time.strftime("%H:%M:%S", time.gmtime(r["slot"]))
        scope = f"{r['kind']}:{r['scope']}"
        print(
            f"{stamp:<12}{scope:<9}{r['actual_wh']:>10}{r['baseline_wh']:>10}"
            f"{r['delivered_wh']:>11}{r['reported']:>6}/{r['declared']}"
        )
    for w in tso["rewards"]:
        print(
            f"reward {w['ac']} ({w['contract']}): {w['reward_yen']} yen at"
            f" {w['price_yen_per_kwh']} yen/kWh; credited {w['credited_wh']} Wh, shortfall"
            f" {w['shortfall_wh']} Wh, of which penalised {w['penalised_wh']} Wh"
        )
    ok = True

    def reconciled() -> list[dict[str, Any]]:
        rows = net.get("ra1", f"/api/reconciliation?command={COMMAND}")
        return [r for r in rows if r["as_wh"] is not None and r["ledger_wh"] is not None]

    recon = chain.wait(reconciled, 30, "RA(1)'s reconciliation")
    statuses = {r["status"] for r in recon}
    print(f"RA(1) AS report vs ledger, slot by slot: {', '.join(r['status'] for r in recon)}")
    ok = ok and statuses == {"equal"}
    ac_total = next(r for r in tso["results"] if r["kind"] == "ac")
    path = chain.work / "ac1-total.json"
    path.write_text(json.dumps(ac_total))
    check = net.cli("ra1", "check-total", str(path))
    said = check.stdout.strip() or check.stderr.strip()
    print(f"RA(1), which cannot read site2, checks AC(1)'s total: {said}")
    ok = ok and check.returncode == 0
    return ok


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
        with contextlib.suppress(RuntimeError):  # shown as it stands
            chain.wait(lambda n=node: witnessed(n), 20, f"{node}'s witnesses")  # type: ignore[misc]
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
    chain = Chain(work, broker.port, args.slot_seconds, args.speed, protocol)
    try:
        chain.start_emulators()
        devices = ", ".join(os.readlink(work / f"meter-{s}") for s in SITES)
        print(f"meters: an emulated SDM120 per site on {devices}")
        chain.start_nodes()
        print(f"nodes: {', '.join(NODES)}; registering sites (site1 by RA(1)'s API)")
        chain.register_sites()
        chain.start_gateways()
        start = chain.issue_command()
        print(
            f"gateways running; {args.slot_seconds} s slots at {args.speed:g}x; "
            f"DR command {COMMAND} from {time.strftime('%H:%M:%S', time.gmtime(start))} UTC"
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
        last = start + (COMMAND_SLOTS - 1) * args.slot_seconds
        chain.wait(
            lambda: last in chain.common_slots(),
            (COMMAND_SLOTS + 4) * args.slot_seconds / args.speed + 45,
            "the command's window",
        )
        agree = compare(chain, slots[: args.slots])
        contract_ok = show_contract(chain, start)
        print()
        witnesses_ok = show_witnesses(chain)
    finally:
        chain.stop()
        broker.stop()
    if agree and contract_ok and witnesses_ok:
        print(
            f"\nall {args.slots} slot totals agree with the ground truth on every node that can"
            " read them"
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

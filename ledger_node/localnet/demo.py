"""`mlg-demo`: the brief's figure 7 on one machine, meter to ledger, at accelerated time,
through the seed paper's DR sequence.

The network is a topology file, `net/demo.toml`, run through `mlg-net`'s machinery: `init`
writes its keys, genesis and configs into the work folder (the broker on a free loopback
port), `Lab` runs it (an MQTT broker; three consumer sites, each a meter on a
pseudo-terminal read by its own gateway; the ledger nodes of the TSO, AC(1) and RA(1),
each as its own process with its own keys, config and database, exactly as in the
field). The organisations: AC(1) bundles RA(1) (site1) and RA(2) (site2); AC(2) has RA(3)
(site3). Site1's meter is the adapter firmware counting the S0 pulses of a controllable
4.8 kW load, with the DR relay its gateway switches; site2 and site3 have emulated
SDM120s. RA(1) registers site1 through its node; RA(2) and RA(3), which run no node here,
sign their registrations offline (`mlg-node sign`, `publish`). The TSO's node starts each
site's first epoch; the gateways seal with those keys and count a batch as delivered once
two nodes have committed it.

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

Each node gets an operator ("operator", a random password never shown); the demo ends
by printing each node's screens and a one-time login link for them. With `--keep` the
network keeps running and serving them until Ctrl-C (SIGINT) or SIGTERM, then stops.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ledger_node.localnet.broker import BrokerError, find_mosquitto, free_port
from ledger_node.localnet.demo_checks import (
    compare,
    hms,
    show_contract,
    show_control,
    show_gateways,
    show_witnesses,
)
from ledger_node.localnet.demo_scenario import (
    COMMAND,
    COMMAND_SLOTS,
    CONTROLLED,
    TOPOLOGY,
    controlled_load_wh,
    demo_topology,
    issue_command,
)
from ledger_node.localnet.net.files import init_network
from ledger_node.localnet.net.probe import common_slots, wait_for_slots
from ledger_node.localnet.net.run import Lab
from ledger_node.localnet.net.topology import Topology
from ledger_node.localnet.wait import serve_until_interrupted, wait_until
from ledger_node.shared.cli import EXIT_PIPE, run_cli
from ledger_node.wire import DEFAULT_SLOT_S

OPERATOR = "operator"
"""The operator the demo adds to every node (with a random password it never shows)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-demo",
        description=(
            "Run the network of ledger_node/localnet/net/demo.toml through mlg-net's machinery"
            " (a broker, three meters, one the adapter firmware with a DR relay, with their"
            " gateways, and the TSO, AC(1) and RA(1) ledger nodes) on this machine at"
            " accelerated time, through a DR command; print each node's slot totals beside"
            " the ground truth, the relay's switches, the DR results and the cross-checks;"
            " end with each node's screens and a one-time login link to them."
        ),
    )
    p.add_argument("--slots", type=int, default=5, help="slots to wait for (5)")
    p.add_argument(
        "--slot-seconds",
        type=int,
        default=DEFAULT_SLOT_S,
        help=f"slot length, s ({DEFAULT_SLOT_S})",
    )
    p.add_argument("--speed", type=float, default=30.0, help="time runs this much faster (30)")
    p.add_argument(
        "--workdir",
        type=Path,
        help="the network's folder (mlg-net init's keys and configs, lab/ and logs/ of up,"
        " the databases; default: a temporary folder, removed after a run that passes, kept"
        " after one that fails)",
    )
    p.add_argument(
        "--broker",
        choices=("mosquitto", "amqtt"),
        default="mosquitto",
        help="broker to start (mosquitto, falling back to amqtt when absent)",
    )
    p.add_argument(
        "--keep",
        action="store_true",
        help="after the run, keep the network running and its screens serving until Ctrl-C"
        " (SIGINT), then stop everything; the exit code is the run's all the same",
    )
    return p


def broker_kind(prefer: str) -> str:
    """The broker the demo starts: Mosquitto when asked for and installed, else amqtt."""
    if prefer == "mosquitto" and find_mosquitto() is None:
        print("mlg-demo: Mosquitto is not installed; starting amqtt", file=sys.stderr)
        return "amqtt"
    return prefer


def add_operators(lab: Lab) -> None:
    """An operator on every node, with a random password nobody sees: the demo's login
    links are the way in."""
    nodes = lab.topo.nodes
    with ThreadPoolExecutor(len(nodes)) as pool:  # each is a CLI run: together
        list(pool.map(lambda n: _operator_add(lab, n), nodes))


def _operator_add(lab: Lab, node: str) -> None:
    """`mlg-node operator-add` with a random password on stdin, never on a command line."""
    password = secrets.token_urlsafe(18)
    lab.mlg(
        "operator-add",
        OPERATOR,
        "--password-stdin",
        "-c",
        f"{node}/node.toml",
        stdin=password + "\n",
    )


def show_screens(lab: Lab, keep: bool) -> None:
    """Each node's screens and a one-time login link to them."""
    nodes = lab.topo.nodes
    with ThreadPoolExecutor(len(nodes)) as pool:
        links = list(
            pool.map(
                lambda n: lab.mlg("login-link", OPERATOR, "-c", f"{n}/node.toml").stdout.strip(),
                nodes,
            )
        )
    print(f"\nscreens (each link logs {OPERATOR} in once, within 15 minutes):")
    for node, link in zip(nodes, links, strict=True):
        print(f"  {node:<4} {link.split('/login/', 1)[0]}/   log in: {link}")
    if keep:
        print(f"  a new link: mlg-node login-link {OPERATOR} -c {lab.out}/NODE/node.toml")
    else:
        print("the network stops now; `mlg-demo --keep` serves the screens until Ctrl-C")


def _meters(lab: Lab) -> str:
    """Where the meters are, for the first lines of the demo's output."""
    devices = {
        s.id: os.readlink(lab.lab / f"meter-{s.id}-{s.lines[0].name}")
        for s in lab.topo.sites.values()
    }
    watts = controlled_load_wh(lab.topo) * 3600 / (lab.topo.slot_s / 2)
    others = ", ".join(d for s, d in devices.items() if s != CONTROLLED)
    return (
        f"meters: {CONTROLLED} the adapter firmware counting a {watts / 1000:g} kW load's S0"
        f" pulses, with the DR relay, on {devices[CONTROLLED]}; emulated SDM120s on {others}"
    )


def run_demo(args: argparse.Namespace, work: Path) -> int:
    kind = broker_kind(args.broker)
    protocol = "3.1.1" if kind == "amqtt" else "5"  # amqtt speaks MQTT 3.1.1 only
    topo = demo_topology(free_port(), args.slot_seconds, args.speed, protocol)
    init_network(topo, work, None, None)
    lab = Lab(topo, work, broker=kind)
    slot_s = topo.slot_s
    passed = False
    try:
        lab.up(lambda step: _progress(lab, step))
        add_operators(lab)
        start = issue_command(lab)
        end = start + COMMAND_SLOTS * slot_s
        print(
            f"DR command {COMMAND} for {hms(start)}-{hms(end)} UTC, declared by RA(1) (site1)"
            " and RA(2) (site2)"
        )
        slots = wait_for_slots(
            lab,
            args.slots,
            lambda n: print(f"  every node holds {n}/{args.slots} slots", flush=True),
        )
        if len(slots) < args.slots:
            print(
                f"mlg-demo: only {len(slots)} of {args.slots} slots reached every node;"
                f" logs are in {lab.logs}",
                file=sys.stderr,
            )
            return 1
        # The slot after the window carries the relay's off switch in its batch.
        wait_until(
            lambda: end in common_slots(lab),
            (COMMAND_SLOTS + 5) * slot_s / args.speed + 45,
            "the command's window and the slot after it",
            alive=lab.check_alive,
        )
        window = list(range(start, end, slot_s))
        agree = compare(lab, slots[: args.slots], window)
        control_ok = show_control(lab, start)
        contract_ok = show_contract(lab, start)
        print()
        witnesses_ok = show_witnesses(lab)
        show_gateways(lab)
        passed = agree and control_ok and contract_ok and witnesses_ok
        if passed:
            print(
                f"\nall {args.slots} slot totals agree with the ground truth on every node that"
                " can read them; the relay shed the delivered reduction"
            )
        else:
            print(
                f"\nmlg-demo: a check failed (see above); logs are in {lab.logs}", file=sys.stderr
            )
        show_screens(lab, args.keep)
        if args.keep:
            print("serving until Ctrl-C (SIGINT)", flush=True)
            serve_until_interrupted(lab.check_alive)
            print("stopping the network", flush=True)
    except (BrokerError, TimeoutError, RuntimeError) as exc:  # a part did not come up, or died
        print(f"mlg-demo: {exc}; logs are in {lab.logs}", file=sys.stderr)
        return 1
    finally:
        lab.stop()
    return 0 if passed else 1


def _progress(lab: Lab, step: str) -> None:
    """What `Lab.up` has done, as the demo tells it."""
    topo: Topology = lab.topo
    if step == "broker":
        print(
            f"network: {TOPOLOGY.name} through mlg-net; broker: {lab.broker.kind} on"
            f" 127.0.0.1:{topo.port}"
        )
    elif step == "nodes":
        print(_meters(lab))
        print(
            f"nodes: {', '.join(topo.nodes)}; registering sites (site1 by RA(1)'s node,"
            " site2 and site3 signed offline by RA(2) and RA(3))"
        )
    elif step == "gateways":
        print(
            f"gateways running: the TSO's epoch keys, confirmation by {min(2, len(topo.nodes))}"
            f" nodes' marks; {topo.slot_s} s slots at {topo.speed:g}x",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.slots < 1 or args.speed <= 0 or args.slot_seconds < 1:
        print("mlg-demo: --slots, --speed and --slot-seconds must be positive", file=sys.stderr)
        return 2
    if 86_400 % args.slot_seconds:
        print("mlg-demo: --slot-seconds must divide a day", file=sys.stderr)
        return 2
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run_cli("mlg-demo", lambda: run_demo(args, args.workdir.resolve()))
    work = Path(tempfile.mkdtemp(prefix="mlg-demo-"))
    code = run_cli("mlg-demo", lambda: run_demo(args, work))
    if code in (0, EXIT_PIPE):  # kept after a failure: its logs say why
        shutil.rmtree(work, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

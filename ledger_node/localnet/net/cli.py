"""`mlg-net`: a network from one topology file: `init` writes its keys and files, `up`
runs it on this machine, `status` shows every node and gateway at once."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from gateway import status as gateway_status
from ledger_node.interfaces import status as node_status
from ledger_node.localnet.broker import BrokerError
from ledger_node.localnet.net.files import init_network
from ledger_node.localnet.net.probe import gateway_doc
from ledger_node.localnet.net.run import Lab, api_get, clock_args, node_api
from ledger_node.localnet.net.topology import Topology, load_topology
from ledger_node.localnet.wait import serve_until_interrupted
from ledger_node.shared.cli import EXIT_FAILURE, EXIT_OK, run_cli, setup_logging
from ledger_node.shared.errors import MeterledgerError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-net",
        description="A meterledger network from one topology file (TOML): init writes every"
        " key, the genesis, node and gateway configs, the broker's set-up and systemd units;"
        " up runs it on this machine; status shows every node and gateway.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text, description=help_text)
        c.add_argument("topology", type=Path, help="the topology file (TOML)")
        c.add_argument(
            "-d", "--dir", type=Path, help="the network's folder (default: beside the topology)"
        )
        return c

    init = cmd("init", "write keys, genesis, node and gateway configs, broker set-up, units")
    init.add_argument("--org", help="only this organisation's key and files (its own machine)")
    init.add_argument("--pub", type=Path, help="a folder with the others' ORG.key.pub files")
    init.set_defaults(handler=_init)
    up = cmd("up", "run the network here (broker, nodes, emulators, gateways) until Ctrl-C")
    up.add_argument("--speed", type=float, help="time runs this much faster (the topology's)")
    up.add_argument("--for", dest="for_s", type=float, help="stop after this many real seconds")
    up.add_argument(
        "--tls",
        action="store_true",
        help="run over the broker set-up init wrote in broker/ (TLS, a client certificate"
        " for every node, gateway and organisation, its ACL), on loopback at the topology's port",
    )
    up.set_defaults(handler=_up)
    status = cmd("status", "every node and gateway of the running network, at once")
    status.add_argument("--json", action="store_true", help="as JSON")
    status.set_defaults(handler=_status)
    return p


def _folder(args: argparse.Namespace) -> Path:
    """The network's folder: --dir, or the topology's name beside it."""
    folder: Path = args.dir or args.topology.resolve().parent / args.topology.stem
    return folder.resolve()


def _init(args: argparse.Namespace, topo: Topology) -> int:
    out = _folder(args)
    out.mkdir(parents=True, exist_ok=True)
    for line in init_network(topo, out, args.org, args.pub):
        print(line, file=sys.stderr)
    print(out)
    return EXIT_OK


STEPS = {
    "broker": "broker started",
    "nodes": "nodes and emulators up",
    "sites": "sites registered",
    "gateways": "gateways started",
}
"""What `up` tells on standard error as `Lab.up` goes."""


def _up(args: argparse.Namespace, topo: Topology) -> int:
    if args.speed is not None:
        topo = Topology(**{**topo.__dict__, "speed": args.speed})
    out = _folder(args)
    lab = Lab(topo, out, tls=args.tls)
    try:
        lab.up(lambda step: print(f"mlg-net: {STEPS[step]}", file=sys.stderr, flush=True))
        nodes = ", ".join(f"{o} {node_api(out, o)}/" for o in topo.nodes)
        tls = " (TLS, client certificates)" if args.tls else ""
        print(f"network {topo.name} up at {topo.speed:g}x; broker 127.0.0.1:{topo.port}{tls}")
        print(f"nodes: {nodes}")
        print(f"clock options for mlg-node: {' '.join(clock_args(out))}")
        print(f"logs in {out / 'logs'}; Ctrl-C stops it", flush=True)
        serve_until_interrupted(lab.check_alive, args.for_s)
    except (BrokerError, RuntimeError, TimeoutError) as exc:
        print(f"mlg-net: {exc}; logs are in {out / 'logs'}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        print("stopping the network", file=sys.stderr, flush=True)
        lab.stop()
    return EXIT_OK


def gather_status(topo: Topology, out: Path) -> dict[str, Any]:
    """Each node's and gateway's status, or why it cannot be had."""
    nodes: dict[str, Any] = {}
    for org in topo.nodes:
        try:
            nodes[org] = api_get(out, org, "/api/status")
        except (OSError, ValueError) as exc:
            nodes[org] = {"error": f"not running ({exc})"}
    gateways: dict[str, Any] = {}
    for site in topo.sites.values():
        try:
            gateways[site.gateway] = gateway_doc(out, site.id)
        except (OSError, ValueError, sqlite3.Error, MeterledgerError) as exc:
            gateways[site.gateway] = {"error": str(exc)}
    return {"nodes": nodes, "gateways": gateways}


def _status(args: argparse.Namespace, topo: Topology) -> int:
    doc = gather_status(topo, _folder(args))
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    for kind, render in (("nodes", node_status.render), ("gateways", gateway_status.render)):
        for name, s in doc[kind].items():
            if not args.json:
                print(f"== {name}: {s['error']}" if "error" in s else f"== {name}\n{render(s)}")
    failed = any("error" in s for part in doc.values() for s in part.values())
    return EXIT_FAILURE if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_cli("mlg-net", lambda: args.handler(args, load_topology(args.topology)))


if __name__ == "__main__":
    sys.exit(main())

"""`mlg-node`: run a ledger node, inspect it, prove and verify its log, and author facts."""

from __future__ import annotations

import argparse
import getpass
import json
import signal
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path
from types import FrameType

from ledger_node.contract.dr1 import CONTRACT_VERSION
from ledger_node.interfaces import archive, as_sources, commands, offline, status
from ledger_node.interfaces.api import Api
from ledger_node.interfaces.broker import config as broker_config
from ledger_node.interfaces.client import call_node, node_url, write_address
from ledger_node.interfaces.readouts import check_total_cmd, read_json, results_cmd, totals_cmd
from ledger_node.interfaces.verify import verify
from ledger_node.interfaces.web import WebContext, WebServer
from ledger_node.interfaces.web.auth import Operators, ensure_token
from ledger_node.ledger import proofs
from ledger_node.ledger.store import connect
from ledger_node.network.config import NodeConfig, load_config
from ledger_node.network.frontend import FrontEnd
from ledger_node.network.genesis import make_genesis
from ledger_node.network.node import Node
from ledger_node.network.sequencer import elect
from ledger_node.shared.cli import (
    EXIT_FAILURE,
    EXIT_OK,
    add_clock_options,
    add_keygen_parser,
    clock_from,
    keygen,
    run_cli,
    setup_logging,
)
from ledger_node.shared.errors import MeterledgerError
from ledger_node.shared.keys import GroupKey, Identity, load_public

Parser = argparse.ArgumentParser
Handler = Callable[[argparse.Namespace], int]
Cmd = Callable[..., Parser]
"""`cmd(name, help, handler, config=True)`: a sub-command's parser."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-node",
        description=(
            "meterledger ledger node: verifies signed facts (registry, epoch keys, DR commands "
            "and declarations, readings), keeps them in a Merkle-hashed log, decrypts what its "
            "privacy groups allow, runs the DR aggregation contract and cross-checks its peers."
        ),
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, help_text: str, handler: Handler, config: bool = True) -> Parser:
        """A sub-command `name` that `main` runs with `handler`."""
        c: Parser = sub.add_parser(name, help=help_text, description=help_text)
        c.set_defaults(handler=handler)
        if config:
            c.add_argument("-c", "--config", type=Path, required=True, help="node TOML config")
        return c

    add_keygen_parser(sub, "node").set_defaults(handler=keygen)
    offline.add_parsers(sub)
    as_sources.add_parser(sub)
    _setup_parsers(cmd)
    _inspect_parsers(cmd)
    _author_parsers(cmd)
    broker_config.add_parser(cmd)
    archive.add_parsers(cmd)
    return p


def _setup_parsers(cmd: Cmd) -> None:
    g = cmd("genesis", "create the network's signed genesis file (the TSO, once)", _genesis, False)
    g.add_argument("--key", type=Path, required=True, help="the TSO's secret key file")
    g.add_argument("--network", required=True, help="network id, e.g. jp-east-1")
    g.add_argument(
        "--contract", default=CONTRACT_VERSION, help=f"contract version ({CONTRACT_VERSION})"
    )
    g.add_argument(
        "--org",
        action="append",
        default=[],
        metavar="PUB:ROLE[:AC]",
        help="an organisation: its .pub file, ac or ra, and an RA's AC (repeatable)",
    )
    g.add_argument("--out", type=Path, required=True, help="genesis file to create")
    gk = cmd(
        "group-key", "create a data key file for a gateway without ledger nodes", _group_key, False
    )
    gk.add_argument("--site", required=True, help="site id")
    gk.add_argument("--epoch", type=int, default=0, help="key epoch (0)")
    gk.add_argument("--out", type=Path, required=True, metavar="FILE", help="key file to create")
    run = cmd("run", "run the node until SIGTERM or SIGINT", _run)
    add_clock_options(run)
    run.add_argument(
        "--role",
        choices=("all", "sequencer", "frontend"),
        default="all",
        help="all: the whole node in one process (default); past one machine, with the"
        " tables on PostgreSQL: sequencer (admits the queue, serves the API; a second one"
        " waits as a standby) or frontend (verifies readings from a shared subscription"
        " into the queue; run several, on any machines)",
    )
    run.add_argument(
        "--name",
        default="fe1",
        help="a front-end's name, unique among the node's front-ends (its broker session"
        " is the node's client id with -NAME; restarted under the same name it takes its"
        " session back)",
    )
    op = cmd(
        "operator-add", "add an operator who logs in to the screens (or a new password)", _operator
    )
    op.add_argument("name", help="the operator's login name")
    op.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (no prompt)"
    )
    ln = cmd("login-link", "print a one-time login link for an operator (15 min)", _login_link)
    ln.add_argument("name", help="the operator's login name")


def _inspect_parsers(cmd: Cmd) -> None:
    st = cmd("status", "node, groups, log, checkpoint, peers, counts, gateways", _status)
    st.add_argument("--json", action="store_true", help="print JSON")
    add_clock_options(st)
    t = cmd("totals", "per-slot totals of the sites this node can read", totals_cmd)
    t.add_argument("--site", help="only this site")
    t.add_argument("--json", action="store_true", help="print JSON")
    r = cmd("results", "a DR command's results, rewards and AS reconciliation", results_cmd)
    r.add_argument("--command", dest="dr_command", required=True, help="DR command id")
    r.add_argument("--json", action="store_true", help="print JSON")
    add_clock_options(r)
    pr = cmd("prove", "print an inclusion proof of a transaction (JSON)", _prove)
    pr.add_argument("txid", help="transaction id (hex)")
    co = cmd("consistency", "print a consistency proof between two log sizes (JSON)", _consistency)
    co.add_argument("--from", dest="old", type=int, required=True, help="older size")
    co.add_argument("--to", dest="new", type=int, help="newer size (default: the log's size)")
    cp = cmd("check-proof", "check a proof printed by prove or consistency", _check_proof, False)
    cp.add_argument("proof", type=Path, help="proof file (- for stdin)")
    cp.add_argument("--node-key", type=Path, help="the node's .pub file: check its checkpoint too")
    ct = cmd(
        "check-total",
        "check a published result's Pedersen total against this node's data",
        check_total_cmd,
    )
    ct.add_argument(
        "result",
        type=Path,
        help="what `results --json` prints (every result in it is checked), or one of its"
        " results; - for stdin",
    )
    cmd("verify", "replay the log and re-check everything derived from it", _verify)


def _author_parsers(cmd: Cmd) -> None:
    for c in commands.COMMANDS:
        if c.verb is not None:
            p = cmd(c.verb, c.help + " (through the running node's API)", partial(_author, c))
            for a in c.args:
                p.add_argument(*a.flags, **a.options)
            if c.clock:
                add_clock_options(p)


# -- offline commands ----------------------------------------------------------------------------


def _genesis(args: argparse.Namespace) -> int:
    tso = Identity.load(args.key)
    members = []
    for spec in args.org:
        parts = spec.split(":")
        if len(parts) not in (2, 3) or parts[1] not in ("ac", "ra"):
            raise MeterledgerError(f"--org {spec!r}: expected PUB:ac or PUB:ra:AC")
        ac = parts[2] if len(parts) == 3 else None
        members.append((load_public(Path(parts[0])), parts[1], ac))
    raw = make_genesis(tso, args.network, members, args.contract)
    if args.out.exists():
        raise MeterledgerError(f"{args.out} exists; refusing to overwrite a genesis")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(raw)
    print(f"genesis of {args.network}: {len(members) + 1} organisations, contract {args.contract}")
    print(f"written to {args.out}; give the same file to every node")
    return EXIT_OK


def _group_key(args: argparse.Namespace) -> int:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    GroupKey.generate(args.site, args.epoch).save(args.out)
    print(f"group key for site {args.site} epoch {args.epoch}: {args.out} (mode 0600)")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    clock = clock_from(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.role == "frontend":
        frontend = FrontEnd(cfg, clock, args.name)
        frontend.start()
        try:
            frontend.run(stop)
        finally:
            frontend.stop()
        return EXIT_OK
    db = None
    if args.role == "sequencer":
        if cfg.database is None:
            raise MeterledgerError(
                'a sequencer needs the node\'s tables on PostgreSQL: [node] database = "postgresql://…"'
            )
        db = connect(cfg.database)
        if not elect(db, stop):
            return EXIT_OK
    node = Node(cfg, clock, db)
    server = None
    if cfg.api is not None:
        ctx = WebContext(
            Api(cfg.store, cfg.node_id, node, clock.now, cfg.late_after_s),
            ensure_token(cfg.token_path),
            _operators(cfg),
        )
        server = WebServer(ctx, *cfg.api, cfg.hosts)
        server.start()
        write_address(cfg.api_addr_path, cfg.api[0], server.port)
    node.start()
    try:
        node.run(stop)
    finally:
        if server is not None:
            server.stop()
            cfg.api_addr_path.unlink(missing_ok=True)
        node.stop()
    return EXIT_OK


def _operators(cfg: NodeConfig) -> Operators:
    return Operators(cfg.web_db_path, cfg.session_hours * 3600)


def _operator(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise MeterledgerError("the two passwords differ; nothing changed")
    with closing(_operators(cfg)) as ops:
        ops.add(args.name, password)
    print(f"operator {args.name} can log in to {cfg.node_id}'s screens")
    return EXIT_OK


def _login_link(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(_operators(cfg)) as ops:
        token = ops.login_link(args.name, time.time())
    print(node_url(cfg, f"/login/link?token={token}"))
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.store, readonly=True)) as db:
        s = status.gather(db, cfg.node_id, clock_from(args).now())
    print(json.dumps(s, indent=2, sort_keys=True) if args.json else status.render(s))
    return EXIT_OK


def _prove(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.store, readonly=True)) as db:
        doc = proofs.inclusion(db, cfg.node_id, proofs.parse_txid(args.txid))
    print(json.dumps(doc, indent=2))
    return EXIT_OK


def _consistency(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.store, readonly=True)) as db:
        print(json.dumps(proofs.consistency(db, cfg.node_id, args.old, args.new), indent=2))
    return EXIT_OK


def _check_proof(args: argparse.Namespace) -> int:
    doc = read_json(args.proof)
    key = load_public(args.node_key).verify_key if args.node_key else None
    print("OK: " + proofs.check(doc, key))
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    me = Identity.load(cfg.key_path)

    def progress(done: int, total: int) -> None:
        print(f"  replayed {done}/{total} entries", file=sys.stderr, flush=True)

    with closing(connect(cfg.store, readonly=True)) as db:
        report = verify(db, me, progress)
    for line in report.checked:
        print(f"checked: {line}")
    if report.ok:
        print(f"OK: {cfg.db_path} agrees with its log")
        return EXIT_OK
    for problem in report.problems:
        print(f"BAD: {problem}")
    return EXIT_FAILURE


# -- commands through the running node's API ------------------------------------------------------


def _author(command: commands.Command, args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    assert command.request is not None
    request = command.request(args)
    if not isinstance(request, commands.Request):
        request = commands.Request(json.dumps(request).encode())
    path = f"{command.route}?{request.query}" if request.query else command.route
    out = call_node(cfg, path, request.body, command.content)
    print(f"{out['type']} accepted as entry {out['pos']}, txid {out['txid']}")
    for warning in out.get("warnings", []):
        print(f"mlg-node: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    handler: Handler = args.handler
    return run_cli("mlg-node", lambda: handler(args))


if __name__ == "__main__":
    sys.exit(main())

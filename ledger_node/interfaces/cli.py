"""`mlg-node`: run a ledger node, inspect it, prove and verify its log, and author facts."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from types import FrameType
from typing import Any

from ledger_node.contract import settlement
from ledger_node.contract.dr1 import CONTRACT_VERSION, TotalCheckError
from ledger_node.interfaces import status
from ledger_node.interfaces.api import Api, ApiServer, totals
from ledger_node.interfaces.authoring import parse_as_csv, parse_time
from ledger_node.interfaces.verify import verify
from ledger_node.ledger import proofs
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import connect
from ledger_node.network.config import NodeConfig, load_config
from ledger_node.network.genesis import make_genesis
from ledger_node.network.node import Node
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

    def cmd(name: str, help_text: str, config: bool = True) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
        if config:
            c.add_argument("-c", "--config", type=Path, required=True, help="node TOML config")
        return c

    add_keygen_parser(sub, "node")
    _setup_parsers(cmd)
    _inspect_parsers(cmd)
    _author_parsers(cmd)
    return p


Cmd = Callable[..., argparse.ArgumentParser]


def _setup_parsers(cmd: Cmd) -> None:
    g = cmd("genesis", "create the network's signed genesis file (the TSO, once)", config=False)
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
    gk = cmd("group-key", "create a data key file for a gateway without ledger nodes", False)
    gk.add_argument("--site", required=True, help="site id")
    gk.add_argument("--epoch", type=int, default=0, help="key epoch (0)")
    gk.add_argument("--out", type=Path, required=True, metavar="FILE", help="key file to create")
    run = cmd("run", "run the node until SIGTERM or SIGINT")
    add_clock_options(run)


def _inspect_parsers(cmd: Cmd) -> None:
    st = cmd("status", "node, groups, log, checkpoint, peers, counts, gateways")
    st.add_argument("--json", action="store_true", help="print JSON")
    add_clock_options(st)
    t = cmd("totals", "per-slot totals of the sites this node can read")
    t.add_argument("--site", help="only this site")
    t.add_argument("--json", action="store_true", help="print JSON")
    r = cmd("results", "a DR command's results, rewards and AS reconciliation")
    r.add_argument("--command", dest="dr_command", required=True, help="DR command id")
    r.add_argument("--json", action="store_true", help="print JSON")
    pr = cmd("prove", "print an inclusion proof of a transaction (JSON)")
    pr.add_argument("txid", help="transaction id (hex)")
    co = cmd("consistency", "print a consistency proof between two log sizes (JSON)")
    co.add_argument("--from", dest="old", type=int, required=True, help="older size")
    co.add_argument("--to", dest="new", type=int, help="newer size (default: the log's size)")
    cp = cmd("check-proof", "check a proof printed by prove or consistency", config=False)
    cp.add_argument("proof", type=Path, help="proof file (- for stdin)")
    cp.add_argument("--node-key", type=Path, help="the node's .pub file: check its checkpoint too")
    ct = cmd("check-total", "check a published result's Pedersen total against this node's data")
    ct.add_argument(
        "result", type=Path, help="a result as JSON (one of `results --json`), - for stdin"
    )
    cmd("verify", "replay the log and re-check everything derived from it")


def _author_parsers(cmd: Cmd) -> None:
    def api_cmd(name: str, help_text: str) -> argparse.ArgumentParser:
        c: argparse.ArgumentParser = cmd(name, help_text + " (through the running node's API)")
        return c

    oa = api_cmd("org-add", "TSO: add an AC or an RA")
    oa.add_argument("--pub", type=Path, required=True, help="its .pub file")
    oa.add_argument("--role", choices=("ac", "ra"), required=True)
    oa.add_argument("--ac", help="an RA's AC")
    orm = api_cmd("org-remove", "TSO: remove an AC or an RA")
    orm.add_argument("--id", required=True)
    si = api_cmd("site", "RA: register (or update) one of its sites")
    si.add_argument("--site", required=True)
    si.add_argument("--gateway", type=Path, required=True, help="the gateway's .pub file")
    si.add_argument("--meter", action="append", required=True, help="meter id (repeatable)")
    sm = api_cmd("site-move", "TSO: move a site to another RA")
    sm.add_argument("--site", required=True)
    sm.add_argument("--to", required=True, help="the new RA")
    dc = api_cmd("command", "TSO: issue a DR command")
    dc.add_argument("--id", required=True)
    dc.add_argument("--start", required=True, help="UTC s or ISO 8601 with offset")
    dc.add_argument("--end", required=True, help="UTC s or ISO 8601 with offset")
    dc.add_argument("--slot-s", type=int, default=1800, help="slot length, s (1800)")
    dc.add_argument("--gate-closure", required=True, help="declarations accepted until then")
    dc.add_argument("--price", type=int, required=True, help="yen per kWh delivered")
    dc.add_argument(
        "--target", action="append", required=True, metavar="AC=WH", help="reduction per slot"
    )
    de = api_cmd("declare", "RA: declare the sites responding to a command, with baselines")
    de.add_argument("--command", dest="dr_command", required=True)
    de.add_argument(
        "--site", action="append", required=True, metavar="SITE=WH", help="baseline per slot"
    )
    ar = api_cmd("as-report", "RA/AC: submit the aggregation system's own totals (CSV)")
    ar.add_argument("--command", dest="dr_command", required=True)
    ar.add_argument("--csv", type=Path, required=True, help="header slot,wh (or slot,kwh)")
    sh = api_cmd("shred", "TSO: destroy an epoch's data key on every replica")
    sh.add_argument("--site", required=True)
    sh.add_argument("--epoch", type=int, required=True)


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
    node = Node(cfg, clock)
    server = None
    if cfg.api is not None:
        server = ApiServer(Api(cfg.db_path, cfg.node_id, node, clock.now), *cfg.api)
        server.start()
        _write_addr(cfg.api_addr_path, f"{cfg.api[0]}:{server.port}")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    node.start()
    try:
        node.run(stop)
    finally:
        if server is not None:
            server.stop()
            cfg.api_addr_path.unlink(missing_ok=True)
        node.stop()
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.db_path, readonly=True)) as db:
        s = status.gather(db, cfg.node_id, clock_from(args).now())
    print(json.dumps(s, indent=2, sort_keys=True) if args.json else status.render(s))
    return EXIT_OK


def _utc(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def _totals(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.db_path, readonly=True)) as db:
        rows = totals(db, args.site)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    print(f"{'site':<12} {'slot (UTC)':<17} {'Wh':>10} {'meters':>6} {'flagged':>7}")
    for row in rows:
        stamp = _utc(row["slot"])
        print(
            f"{row['site']:<12} {stamp:<17} {row['wh']:>10} {row['meters']:>6} {row['flagged']:>7}"
        )
    return EXIT_OK


def _results(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.db_path, readonly=True)) as db:
        rows = settlement.results(db, args.dr_command)
        rewards = settlement.rewards(db, args.dr_command)
        scopes = sorted({r["scope"] for r in rows})
        recon = {s: settlement.reconcile(db, args.dr_command, s) for s in scopes}
    if args.json:
        print(json.dumps({"results": rows, "rewards": rewards}, indent=2, sort_keys=True))
        return EXIT_OK
    if not rows:
        print(f"no results for {args.dr_command} on this node (not declared, or not readable here)")
        return EXIT_OK
    print(f"command {args.dr_command}, contract {rows[0]['contract']}")
    print(
        f"{'scope':<10} {'slot (UTC)':<17} {'BC Wh':>8} {'AS Wh':>8} {'':>2} {'baseline':>9}"
        f" {'delivered':>9} {'target':>7} {'meters':>7}"
    )
    for r in rows:
        as_row = next((x for x in recon[r["scope"]] if x.slot == r["slot"]), None)
        as_wh = "-" if as_row is None or as_row.as_wh is None else str(as_row.as_wh)
        mark = {"equal": "=", "differs": "≠"}.get(as_row.status if as_row else "", "")
        scope = f"{r['kind']}:{r['scope']}"
        print(
            f"{scope:<10} {_utc(r['slot']):<17} {r['actual_wh']:>8} {as_wh:>8}"
            f" {mark:>2} {r['baseline_wh']:>9} {r['delivered_wh']:>9} {r['target_wh']:>7}"
            f" {r['reported']:>3}/{r['declared']:<3}"
        )
    for w in rewards:
        print(
            f"reward {w['ac']}: {w['reward_yen']} yen (credited {w['credited_wh']} Wh, shortfall"
            f" {w['shortfall_wh']} Wh, penalised {w['penalised_wh']} Wh at"
            f" {w['price_yen_per_kwh']} yen/kWh)"
        )
    return EXIT_OK


def _prove(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.db_path, readonly=True)) as db:
        try:
            doc = proofs.inclusion(db, cfg.node_id, bytes.fromhex(args.txid))
        except ValueError:
            raise MeterledgerError("the txid must be hex") from None
    print(json.dumps(doc, indent=2))
    return EXIT_OK


def _consistency(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.db_path, readonly=True)) as db:
        print(json.dumps(proofs.consistency(db, cfg.node_id, args.old, args.new), indent=2))
    return EXIT_OK


def _read_json(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MeterledgerError(f"{path} is not JSON: {exc}") from None


def _check_proof(args: argparse.Namespace) -> int:
    doc = _read_json(args.proof)
    key = load_public(args.node_key).verify_key if args.node_key else None
    print("OK: " + proofs.check(doc, key))
    return EXIT_OK


def _check_total(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    result = _read_json(args.result)
    with closing(connect(cfg.db_path, readonly=True)) as db:
        check_result_cli(db, result)
    print(
        f"OK: {result['kind']} {result['scope']} slot {_utc(result['slot'])}: "
        f"{result['total']['v_wh']} Wh over {len(result['total']['refs'])} readings matches "
        "their public commitments"
    )
    return EXIT_OK


def check_result_cli(db: Any, result: Any) -> None:
    try:
        settlement.check_result(db, Registry(db), result)
    except (KeyError, TypeError) as exc:
        raise MeterledgerError(f"not a result document: missing {exc}") from None
    except TotalCheckError as exc:
        raise MeterledgerError(f"the total does not check: {exc}") from None


def _verify(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    me = Identity.load(cfg.key_path)

    def progress(done: int, total: int) -> None:
        print(f"  replayed {done}/{total} entries", file=sys.stderr, flush=True)

    with closing(connect(cfg.db_path, readonly=True)) as db:
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


def _write_addr(path: Path, addr: str) -> None:
    """Write the API's address for other commands (atomically: new file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(addr + "\n")
    tmp.replace(path)


def _api_url(cfg: NodeConfig, path: str) -> str:
    if cfg.api is None:
        raise MeterledgerError("api.listen is off in the config: these commands need the API")
    host, port = cfg.api
    if port == 0:  # any free port: the running node wrote the one it got
        try:
            host, _, text = cfg.api_addr_path.read_text().strip().rpartition(":")
            port = int(text)
        except (OSError, ValueError):
            raise MeterledgerError(
                f"api.listen has port 0 and {cfg.api_addr_path} names no port: is the node running?"
            ) from None
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - we connect, not listen
        host = "127.0.0.1"
    return f"http://{host}:{port}{path}"


def _post(cfg: NodeConfig, path: str, body: bytes, content_type: str = "application/json") -> Any:
    request = urllib.request.Request(  # noqa: S310 - http to the configured node only
        _api_url(cfg, path), data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            message = str(exc)
        raise MeterledgerError(message) from None
    except urllib.error.URLError as exc:
        raise MeterledgerError(
            f"cannot reach the node at {_api_url(cfg, '')}: {exc.reason}"
            " (is `mlg-node run` running?)"
        ) from None


def _author(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    c = args.command
    if c == "as-report":
        text = args.csv.read_text(encoding="utf-8-sig")
        parse_as_csv(text)  # refuse a bad file before sending it
        out = _post(cfg, f"/api/as-reports?command={args.dr_command}", text.encode(), "text/csv")
    else:
        path, body = _request(args)
        out = _post(cfg, path, json.dumps(body).encode())
    print(f"{out['type']} accepted as entry {out['pos']}, txid {out['txid']}")
    return EXIT_OK


def _request(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    c = args.command
    if c == "org-add":
        return "/api/orgs", {
            "public": load_public(args.pub).to_json(),
            "role": args.role,
            "ac": args.ac,
        }
    if c == "org-remove":
        return "/api/orgs/remove", {"id": args.id}
    if c == "site":
        gw = load_public(args.gateway).to_json()
        return "/api/sites", {"site": args.site, "gateway": gw, "meters": args.meter}
    if c == "site-move":
        return "/api/site-moves", {"site": args.site, "ra": args.to}
    if c == "command":
        targets = dict(_pair(t) for t in args.target)
        return "/api/commands", {
            "id": args.id,
            "start": parse_time(args.start),
            "end": parse_time(args.end),
            "slot_s": args.slot_s,
            "gate_closure": parse_time(args.gate_closure),
            "price_yen_per_kwh": args.price,
            "targets": targets,
        }
    if c == "declare":
        return "/api/declarations", {
            "command": args.dr_command,
            "sites": dict(_pair(s) for s in args.site),
        }
    if c == "shred":
        return "/api/shred", {"site": args.site, "epoch": args.epoch}
    raise AssertionError(c)


def _pair(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not value.isdigit():
        raise MeterledgerError(f"{text!r}: expected NAME=INTEGER")
    return name, int(value)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    handlers = {
        "keygen": keygen,
        "genesis": _genesis,
        "group-key": _group_key,
        "run": _run,
        "status": _status,
        "totals": _totals,
        "results": _results,
        "prove": _prove,
        "consistency": _consistency,
        "check-proof": _check_proof,
        "check-total": _check_total,
        "verify": _verify,
    }
    handler = handlers.get(args.command, _author)
    return run_cli("mlg-node", lambda: handler(args))


if __name__ == "__main__":
    sys.exit(main())

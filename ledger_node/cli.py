"""`mlg-node`: run a ledger node, and set it up."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from ledger_node.cli_common import (
    EXIT_OK,
    add_clock_options,
    add_keygen_parser,
    clock_from,
    keygen,
    run_cli,
    setup_logging,
)
from ledger_node.config import load_config
from ledger_node.ingest import Ingestor
from ledger_node.keys import GroupKey
from ledger_node.store import Store
from ledger_node.subscriber import Subscriber


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-node",
        description=(
            "meterledger ledger node: verifies signed readings from gateways, keeps them, "
            "decrypts those of its privacy groups and totals them per slot."
        ),
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_keygen_parser(sub, "node")
    gk = sub.add_parser(
        "group-key",
        help="create a site group's data key (mode 0600)",
        description="Create a privacy group's SecretBox data key for one site and epoch.",
    )
    gk.add_argument("--site", required=True, help="site id")
    gk.add_argument("--epoch", type=int, default=0, help="key epoch (0)")
    gk.add_argument("--out", type=Path, required=True, metavar="FILE", help="key file to create")
    run = sub.add_parser(
        "run",
        help="subscribe, verify, store and total until stopped (SIGTERM/SIGINT)",
        description="Run the node with the given config until SIGTERM or SIGINT.",
    )
    run.add_argument("-c", "--config", type=Path, required=True, help="node TOML config")
    add_clock_options(run)
    totals = sub.add_parser(
        "totals",
        help="print per-slot totals of the sites this node can read",
        description="Per site and slot: total Wh, meters reported, readings with flags.",
    )
    totals.add_argument("-c", "--config", type=Path, required=True, help="node TOML config")
    totals.add_argument("--site", action="append", help="only this site (repeatable)")
    totals.add_argument("--json", action="store_true", help="print JSON lines")
    return p


def _group_key(args: argparse.Namespace) -> int:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    GroupKey.generate(args.site, args.epoch).save(args.out)
    print(f"group key for site {args.site} epoch {args.epoch}: {args.out} (mode 0600)")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    store = Store(cfg.db_path)
    ingestor = Ingestor(
        store, cfg.gateways, cfg.group_keys, clock_from(args), cfg.max_message_bytes
    )
    subscriber = Subscriber(cfg.mqtt, ingestor, cfg.max_message_bytes)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    subscriber.start()
    try:
        stop.wait()
    finally:
        subscriber.stop()
        store.close()
    return EXIT_OK


def _totals(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    store = Store(cfg.db_path)
    try:
        rows = store.slot_totals(args.site)
    finally:
        store.close()
    if args.json:
        for row in rows:
            print(json.dumps(dataclasses.asdict(row)))
        return EXIT_OK
    print(f"{'site':<12} {'slot (UTC)':<20} {'Wh':>10} {'meters':>6} {'flagged':>7}")
    for row in rows:
        stamp = dt.datetime.fromtimestamp(row.slot, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(f"{row.site:<12} {stamp:<20} {row.wh:>10} {row.meters:>6} {row.flagged:>7}")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    handlers = {"keygen": keygen, "group-key": _group_key, "run": _run, "totals": _totals}
    return run_cli("mlg-node", lambda: handlers[args.command](args))


if __name__ == "__main__":
    sys.exit(main())

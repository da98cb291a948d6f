"""`mlg-gateway`: run the gateway, and set it up."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType

from gateway.config import load_config
from gateway.run import Gateway
from ledger_node.cli_common import (
    EXIT_OK,
    add_clock_options,
    add_keygen_parser,
    clock_from,
    keygen,
    run_cli,
    setup_logging,
)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-gateway",
        description=(
            "meterledger gateway: polls Modbus meters on slot boundaries, seals each slot's "
            "readings for the site's privacy group, signs them, keeps them in a durable "
            "outbox and publishes them over MQTT."
        ),
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_keygen_parser(sub, "gateway")
    run = sub.add_parser(
        "run",
        help="poll, seal, store and publish until stopped (SIGTERM/SIGINT)",
        description="Run the gateway daemon with the given config until SIGTERM or SIGINT.",
    )
    run.add_argument("-c", "--config", type=Path, required=True, help="gateway TOML config")
    add_clock_options(run)
    return p


def _run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    gateway = Gateway(cfg, clock_from(args))

    def stop(signum: int, frame: FrameType | None) -> None:
        gateway.stop_event.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    gateway.run()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.verbose)
    handlers = {"keygen": keygen, "run": _run}
    return run_cli("mlg-gateway", lambda: handlers[args.command](args))


if __name__ == "__main__":
    sys.exit(main())

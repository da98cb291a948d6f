"""What every meterledger command line shares: logging, clock options, keygen, exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ledger_node.shared.clock import Clock, make_clock
from ledger_node.shared.errors import MeterledgerError
from ledger_node.shared.keys import Identity

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PIPE = 141
"""The reader of our output went away (`| head`): 128 + SIGPIPE, as a shell tool ends."""


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    # paho and pymodbus are chatty at DEBUG; our own subsystems are named mlg.*
    for noisy in ("pymodbus", "paho"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_clock_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("simulated time (demos and tests)")
    g.add_argument("--clock-scale", type=float, help="run time this many times faster")
    g.add_argument(
        "--clock-origin", type=float, help="wall-clock instant (UTC s) where simulated time starts"
    )
    g.add_argument(
        "--clock-skew-file",
        type=Path,
        help="fault injection: add the seconds written in this file to the clock (read live)",
    )


def clock_from(args: argparse.Namespace) -> Clock:
    return make_clock(args.clock_scale, args.clock_origin, args.clock_skew_file)


def add_keygen_parser(sub: argparse._SubParsersAction, role: str) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    p: argparse.ArgumentParser = sub.add_parser(
        "keygen",
        help=f"create this {role}'s Ed25519 signing key and X25519 box key",
        description=(
            f"Create the {role}'s identity: an Ed25519 signing key and an X25519 box key in "
            "one secret file (mode 0600, never overwritten) and its public part in FILE.pub. "
            "Prints the public part as JSON."
        ),
    )
    p.add_argument("--id", required=True, help=f"the {role}'s id, e.g. gw-site1 or tso")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="secret key file")
    return p


def keygen(args: argparse.Namespace) -> int:
    identity = Identity.generate(args.id)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pub_path = identity.save(args.out)
    print(json.dumps(identity.public.to_json(), indent=2))
    print(f"secret key: {args.out} (mode 0600)  public: {pub_path}", file=sys.stderr)
    return EXIT_OK


def run_cli(prog: str, handler: Callable[[], int]) -> int:
    """Run a command; turn our errors into a message and exit code 1, ^C into 130, and
    output piped into a reader that stopped reading (`| head`) into a quiet exit 141."""
    try:
        code = handler()
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except MeterledgerError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whatever is still buffered goes nowhere, so the exit's own flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_PIPE

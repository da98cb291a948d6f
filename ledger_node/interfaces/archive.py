"""`mlg-node prune` and `mlg-node archive-check`: retention of old slots (`ledger.retention`).

`prune --before 2026-01-01 --archive FILE` archives the readings batches of the closed
slots before that date (UTC) and empties them in the log; safe beside a running node (it
writes in one transaction of its own, as the node does). `archive-check FILE` proves an
archive against the log's leaves.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from ledger_node.ledger.retention import check_archive, prunable, prune, write_archive
from ledger_node.ledger.store import connect, purge_wal, transaction
from ledger_node.ledger.txlog import MerkleLog
from ledger_node.network.config import load_config
from ledger_node.shared.cli import EXIT_OK, add_clock_options, clock_from
from ledger_node.shared.errors import MeterledgerError


def utc_cutoff(text: str) -> int:
    """``2026-01-01`` (midnight UTC) or UTC seconds, as UTC seconds."""
    if text.isdigit():
        return int(text)
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise MeterledgerError(f"--before {text!r}: a date (2026-01-01) or UTC seconds") from None
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def prune_cmd(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    before = utc_cutoff(args.before)
    now = clock_from(args).now()
    with closing(connect(cfg.store)) as db:
        entries = prunable(db, before, now, cfg.late_after_s)
        size = sum(len(e) for _, e in entries)
        if not entries:
            print("nothing to prune: no closed slot before the cutoff inside a checkpoint")
            return EXIT_OK
        print(f"{len(entries)} readings batches ({size:,} envelope bytes) before {args.before}")
        if args.dry_run:
            return EXIT_OK
        written = write_archive(args.archive, entries)
        print(f"archived to {args.archive} ({written:,} bytes, synced)")
        log = MerkleLog(db)
        with transaction(db):
            prune(log, entries)
        purge_wal(db)
        print(f"pruned {len(entries)} log entries; their leaves and rows stay")
    return EXIT_OK


def archive_check_cmd(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.store, readonly=True)) as db:
        n = check_archive(args.archive, MerkleLog(db))
    print(f"OK: {n} archived entries match the log's leaves")
    return EXIT_OK


def add_parsers(cmd: Callable[..., argparse.ArgumentParser]) -> None:
    """`mlg-node prune` and `archive-check` (`cmd` makes a sub-command's parser)."""
    p = cmd("prune", "archive old slots' readings batches out of the log (retention)", prune_cmd)
    p.add_argument(
        "--before", required=True, help="slots starting before this UTC date (2026-01-01)"
    )
    p.add_argument("--archive", type=Path, required=True, help="archive file to create")
    p.add_argument("--dry-run", action="store_true", help="say what would go, change nothing")
    add_clock_options(p)
    c = cmd("archive-check", "check an archive file against the log's leaves", archive_check_cmd)
    c.add_argument("archive", type=Path, help="an archive `prune` wrote")

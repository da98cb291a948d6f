"""What `mlg-node totals`, `results` and `check-total` print: a node's per-slot totals,
a command's results (each slot open or final, BC beside AS, the rewards once the window
closed) and the public check of published totals."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from ledger_node.contract.checks import Published, TotalChecks
from ledger_node.contract.settlement import Finality
from ledger_node.interfaces.api import ApiError, reconciliation, results, totals
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import connect
from ledger_node.network.config import load_config
from ledger_node.shared.cli import EXIT_OK, clock_from
from ledger_node.shared.errors import MeterledgerError


def utc_minute(t: int) -> str:
    """UTC unix seconds as ``2026-11-26 15:36`` (UTC)."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M")


def totals_cmd(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    with closing(connect(cfg.store, readonly=True)) as db:
        rows = totals(db, args.site)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return EXIT_OK
    print(f"{'site':<12} {'slot (UTC)':<17} {'Wh':>10} {'meters':>6} {'flagged':>7}")
    for row in rows:
        stamp = utc_minute(row["slot"])
        print(
            f"{row['site']:<12} {stamp:<17} {row['wh']:>10} {row['meters']:>6} {row['flagged']:>7}"
        )
    return EXIT_OK


def results_cmd(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    finality = Finality(clock_from(args).now(), cfg.late_after_s)
    with closing(connect(cfg.store, readonly=True)) as db:
        try:
            doc = results(db, args.dr_command, finality)
        except ApiError as exc:
            raise MeterledgerError(str(exc)) from None
        recon = reconciliation(db, cfg.node_id, args.dr_command)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=True))
        return EXIT_OK
    print(render_results(doc, recon))
    return EXIT_OK


def render_results(doc: dict[str, Any], recon: list[dict[str, Any]]) -> str:
    """What `results` prints: a line per scope and slot, BC beside AS, and the rewards."""
    rows, window = doc["results"], doc["window"]
    start, end = utc_minute(window["start"]), utc_minute(window["end"])[-5:]
    lines = [
        f"command {doc['command']}: window {start}-{end} UTC,"
        f" {WINDOW_TEXT[window['state']]} (at {utc_minute(doc['at'])})"
    ]
    if not rows:
        lines.append("no results on this node (not declared, or not readable here)")
    else:
        lines.append(
            f"{'scope':<10} {'slot (UTC)':<17} {'state':<5} {'BC Wh':>8} {'AS Wh':>8} {'':>2}"
            f" {'baseline':>9} {'delivered':>9} {'target':>7} {'meters':>7}"
        )
    as_rows = {(r["org"], r["slot"]): r for r in recon}
    for r in rows:
        as_row = as_rows.get((r["scope"], r["slot"]))
        as_wh = "-" if as_row is None or as_row["as_wh"] is None else str(as_row["as_wh"])
        mark = {"equal": "=", "differs": "≠"}.get(as_row["status"] if as_row else "", "")
        scope, slot = f"{r['kind']}:{r['scope']}", utc_minute(r["slot"])
        lines.append(
            f"{scope:<10} {slot:<17} {r['state']:<5} {r['actual_wh']:>8} {as_wh:>8}"
            f" {mark:>2} {r['baseline_wh']:>9} {r['delivered_wh']:>9} {r['target_wh']:>7}"
            f" {r['reported']:>3}/{r['declared']:<3}"
        )
    if window["state"] != "closed":
        lines.append(f"reward: none before the window closes at {utc_minute(window['end'])} UTC")
    for w in doc["rewards"]:
        so_far = " so far (open: slots still take readings)" if w["state"] == "open" else ""
        lines.append(
            f"reward {w['ac']}: {w['reward_yen']} yen{so_far} ({w['state']}; credited"
            f" {w['credited_wh']} Wh, shortfall {w['shortfall_wh']} Wh, penalised"
            f" {w['penalised_wh']} Wh at {w['price_yen_per_kwh']} yen/kWh)"
        )
    return "\n".join(lines)


WINDOW_TEXT = {"before": "not open yet", "running": "open now", "closed": "closed"}


def read_json(path: Path) -> Any:
    text = sys.stdin.read() if str(path) == "-" else path.read_text()
    try:
        return json.loads(text)
    except ValueError as exc:
        raise MeterledgerError(f"{path} is not JSON: {exc}") from None


def check_total_cmd(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    doc = read_json(args.result)
    with closing(connect(cfg.store, readonly=True)) as db:
        checked = check_results(db, doc)
    bad: list[str] = []
    for result, verdict in checked:
        what = f"{result['kind']} {result['scope']} slot {utc_minute(result['slot'])}"
        if verdict is None:
            print(
                f"OK: {what}: {result['total']['v_wh']} Wh over"
                f" {len(result['total']['refs'])} readings matches their public commitments"
            )
        else:
            bad.append(f"{what}: {verdict}")
            print(f"BAD: {what}: the total does not check: {verdict}")
    if bad:
        raise MeterledgerError(f"{len(bad)} of {len(checked)} totals do not check; {bad[0]}")
    return EXIT_OK


def check_results(db: Any, doc: Any) -> list[tuple[dict[str, Any], str | None]]:
    """Each result in `doc` (what `results --json` prints, a list of results, or one)
    with None if its total checks, else why not; `MeterledgerError` for no such document."""
    if isinstance(doc, dict) and "results" in doc:
        doc = doc["results"]
    items = doc if isinstance(doc, list) else [doc]
    if not items:
        raise MeterledgerError("the document holds no results to check")
    try:
        published = [Published.of(r) for r in items]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise MeterledgerError(
            f"not a result document (one of `results --json`, or all of it): bad or missing {exc}"
        ) from None
    verdicts = TotalChecks().check(db, Registry(db), published)
    return list(zip(items, verdicts, strict=True))

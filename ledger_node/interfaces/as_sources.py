"""AS reports from what an aggregation system has: the meter emulator's ground truth, or a
meter data export (`mlg-node as-csv`), written as the CSV `mlg-node as-report` takes.

Each source is one site's meters. A slot's energy per meter is taken as a gateway takes
it: its cumulative register at the slot's two boundaries, each rounded to a whole Wh,
subtracted; the report's value for a slot is the sum over every meter of every site. A
slot is reported only when every source covers it whole; the others are named on stderr.

Sources:

- ground truth (`--truth SITE=FILE`): the emulator's `--truth` CSV (columns `unit`,
  `slot_start` (UTC s), `slot_s`, `cumulative_start_wh`, `cumulative_end_wh`, `line`),
  whose slots may be shorter than the report's (they are summed into it);
- a meter export (`--export SITE=FILE`): a CSV with a time column and an energy column,
  cumulative register readings (`--export-kind cumulative`: the value at each slot
  boundary is interpolated between the readings around it, as a gateway does) or energy
  per interval starting at the row's time (`interval`, the intervals a whole number of
  them per slot); times are UTC seconds or ISO 8601, with their offset or in the local
  time `--utc-offset-h` says.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import io
import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from ledger_node.interfaces.as_csv import MAX_CSV_BYTES
from ledger_node.interfaces.commands import cli_time
from ledger_node.shared.cli import EXIT_FAILURE, EXIT_OK
from ledger_node.shared.errors import MeterledgerError
from ledger_node.wire import DEFAULT_SLOT_S

TRUTH_COLUMNS = ("unit", "slot_start", "slot_s", "cumulative_start_wh", "cumulative_end_wh")
"""The ground-truth CSV's columns this reads (the emulator writes them)."""
UNITS = {"wh": Decimal(1), "kwh": Decimal(1000)}


class SourceError(MeterledgerError):
    """A source file that cannot be read as such, naming the file and line."""


@dataclass(frozen=True)
class Source:
    """One site's file: `kind` truth, cumulative or interval."""

    site: str
    path: Path
    kind: str


Energies = dict[int, int]
"""Whole Wh by slot start (UTC s), of one site."""


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """A CSV file's header (lower case) and rows with their line numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror}") from None
    if len(text) > 64 * MAX_CSV_BYTES:
        raise SourceError(f"{path}: over {64 * MAX_CSV_BYTES} bytes")
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    rows = []
    for row in reader:
        values = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
        rows.append((reader.line_num, values))
    return header, rows


def _number(path: Path, line: int, text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise SourceError(f"{path} line {line}: {text!r} is not a number")
    return value


def truth_boundaries(path: Path) -> dict[str, dict[int, tuple[int, int]]]:
    """A ground-truth CSV's slots per meter (`line/unit`): {meter: {slot start (UTC s):
    (slot end, Wh)}}, the Wh from the cumulative values at its boundaries, each rounded."""
    header, rows = _csv_rows(path)
    missing = [c for c in TRUTH_COLUMNS if c not in header]
    if missing:
        raise SourceError(f"{path} is no ground-truth CSV: no column {', '.join(missing)}")
    meters: dict[str, dict[int, tuple[int, int]]] = {}
    for line, row in rows:
        start = int(_number(path, line, row["slot_start"]))
        end = start + int(_number(path, line, row["slot_s"]))
        e0 = _number(path, line, row["cumulative_start_wh"])
        e1 = _number(path, line, row["cumulative_end_wh"])
        wh = round(e1) - round(e0)
        meter = f"{row.get('line', '')}/{row['unit']}"
        held = meters.setdefault(meter, {}).get(start)
        if held is not None and held != (end, wh):
            raise SourceError(f"{path} line {line}: meter {meter}'s slot {start} twice, differing")
        meters[meter][start] = (end, wh)
    return meters


def truth_energies(path: Path, slot_s: int, origin: int) -> Energies:
    """A site's Wh per report slot (boundaries at `origin` + k·`slot_s`) from its ground
    truth: every meter's slots inside a report slot, summed; only report slots that every
    meter covers whole."""
    site: Energies = {}
    complete: set[int] | None = None
    for slots in truth_boundaries(path).values():
        covered: dict[int, int] = {}
        sums: dict[int, int] = {}
        for start, (end, wh) in slots.items():
            slot = origin + (start - origin) // slot_s * slot_s
            if end > slot + slot_s:
                raise SourceError(f"{path}: slots of {end - start} s do not fit {slot_s} s slots")
            covered[slot] = covered.get(slot, 0) + end - start
            sums[slot] = sums.get(slot, 0) + wh
        whole = {s for s, length in covered.items() if length == slot_s}
        complete = whole if complete is None else complete & whole
        for s in whole:
            site[s] = site.get(s, 0) + sums[s]
    return {s: site[s] for s in sorted(complete or ())}


def parse_export_time(text: str, utc_offset_h: float | None) -> int:
    """UTC s from an export's time: UTC s, or ISO 8601 with its offset, or without one in
    the local time `utc_offset_h` names. `ValueError` otherwise."""
    if text.isdigit():
        return int(text)
    stamp = dt.datetime.fromisoformat(text.replace("/", "-"))
    if stamp.tzinfo is None:
        if utc_offset_h is None:
            raise ValueError(f"{text!r} has no UTC offset: give --utc-offset-h (9 for JST)")
        stamp = stamp.replace(tzinfo=dt.timezone(dt.timedelta(hours=utc_offset_h)))
    return int(stamp.timestamp())


@dataclass(frozen=True)
class ExportFormat:
    """How a meter export reads: its columns, energy unit, kind and local time."""

    time_column: str = "time"
    energy_column: str = "energy"
    unit: str = "kwh"
    utc_offset_h: float | None = None


def export_readings(path: Path, fmt: ExportFormat) -> list[tuple[int, Decimal]]:
    """An export's (UTC s, Wh) rows, sorted by time; one time twice is an error."""
    header, rows = _csv_rows(path)
    for column in (fmt.time_column, fmt.energy_column):
        if column.lower() not in header:
            raise SourceError(f"{path}: no column {column!r} (columns: {', '.join(header)})")
    seen: dict[int, int] = {}
    out = []
    for line, row in rows:
        try:
            t = parse_export_time(row[fmt.time_column.lower()], fmt.utc_offset_h)
        except ValueError as exc:
            raise SourceError(f"{path} line {line}: {exc}") from None
        if t in seen:
            raise SourceError(f"{path} line {line}: the time of line {seen[t]} again")
        seen[t] = line
        out.append((t, _number(path, line, row[fmt.energy_column.lower()]) * UNITS[fmt.unit]))
    return sorted(out)


def cumulative_energies(readings: list[tuple[int, Decimal]], slot_s: int, origin: int) -> Energies:
    """Wh per slot from cumulative register readings: each boundary's value interpolated
    between the readings around it and rounded to a whole Wh (as a gateway does); only
    slots with readings at or around both boundaries."""
    if len(readings) < 2:
        return {}
    times = [t for t, _ in readings]
    first = origin - (origin - times[0]) // slot_s * slot_s
    at: dict[int, int] = {}
    for b in range(first, times[-1] + 1, slot_s):
        i = bisect.bisect_left(times, b)
        if i < len(times) and times[i] == b:
            at[b] = round(readings[i][1])
        elif 0 < i < len(times):
            (t0, e0), (t1, e1) = readings[i - 1], readings[i]
            at[b] = round(e0 + (e1 - e0) * (b - t0) / (t1 - t0))
    return {b: at[b + slot_s] - at[b] for b in sorted(at) if b + slot_s in at}


def interval_energies(
    readings: list[tuple[int, Decimal]], slot_s: int, origin: int, path: Path
) -> Energies:
    """Wh per slot from per-interval energies, each row the interval starting at its time
    (the interval: the shortest step between rows, a whole number of them per slot); a
    slot is whole when all its intervals are there."""
    steps = [b[0] - a[0] for a, b in itertools.pairwise(readings)]
    if not steps:
        return {}
    interval = min(steps)
    if slot_s % interval:
        raise SourceError(f"{path}: intervals of {interval} s do not fit {slot_s} s slots")
    sums: dict[int, Decimal] = {}
    count: dict[int, int] = {}
    for t, wh in readings:
        slot = origin + (t - origin) // slot_s * slot_s
        if (t - slot) % interval:
            raise SourceError(f"{path}: an interval at {t} is off the {interval} s grid")
        sums[slot] = sums.get(slot, Decimal(0)) + wh
        count[slot] = count.get(slot, 0) + 1
    return {s: round(sums[s]) for s in sorted(sums) if count[s] * interval == slot_s}


def site_energies(source: Source, slot_s: int, origin: int, fmt: ExportFormat) -> Energies:
    if source.kind == "truth":
        return truth_energies(source.path, slot_s, origin)
    readings = export_readings(source.path, fmt)
    if source.kind == "cumulative":
        return cumulative_energies(readings, slot_s, origin)
    return interval_energies(readings, slot_s, origin, source.path)


def report(
    sites: Mapping[str, Energies], start: int | None, end: int | None
) -> tuple[dict[int, int], dict[int, list[str]]]:
    """The AS report's Wh per slot (the sum over `sites`) within [start, end), and the
    slots left out with the sites that lack them."""
    slots = sorted({s for energies in sites.values() for s in energies})
    slots = [s for s in slots if (start is None or s >= start) and (end is None or s < end)]
    totals: dict[int, int] = {}
    lacking: dict[int, list[str]] = {}
    for s in slots:
        without = [name for name, energies in sites.items() if s not in energies]
        if without:
            lacking[s] = without
        else:
            totals[s] = sum(energies[s] for energies in sites.values())
    return totals, lacking


def as_csv_text(totals: Mapping[int, int]) -> str:
    """The AS report CSV `mlg-node as-report` takes: `slot,wh`, slots in ISO 8601 UTC."""
    lines = ["slot,wh"]
    for slot, wh in sorted(totals.items()):
        stamp = dt.datetime.fromtimestamp(slot, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{stamp},{wh}")
    return "\n".join(lines) + "\n"


def _source(text: str, kind: str) -> Source:
    site, sep, path = text.partition("=")
    if not sep or not site or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected SITE=FILE")
    return Source(site, Path(path), kind)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`mlg-node as-csv` on `mlg-node`'s sub-commands."""
    p = sub.add_parser(
        "as-csv",
        help="an AS report CSV from the emulator's ground truth or meter data exports",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(handler=as_csv_cmd)
    g = p.add_argument_group("sources (one per site, repeatable, mixable)")
    g.add_argument("--truth", action="append", default=[], metavar="SITE=FILE", type=str)
    g.add_argument("--export", action="append", default=[], metavar="SITE=FILE", type=str)
    w = p.add_argument_group("the report")
    w.add_argument("--slot-s", type=int, default=DEFAULT_SLOT_S, help="the command's slot, s")
    w.add_argument("--start", help="first slot (UTC s, ISO 8601 with offset; default: all)")
    w.add_argument("--end", help="end of the last slot (as --start)")
    w.add_argument("--out", type=Path, help="the CSV to write (default: standard output)")
    e = p.add_argument_group("meter exports")
    e.add_argument("--export-kind", choices=("cumulative", "interval"), default="cumulative")
    e.add_argument("--time-column", default="time", help="its time column (time)")
    e.add_argument("--energy-column", default="energy", help="its energy column (energy)")
    e.add_argument("--unit", choices=tuple(UNITS), default="kwh", help="its energy unit (kwh)")
    e.add_argument("--utc-offset-h", type=float, help="local time of times without offset")


def as_csv_cmd(args: argparse.Namespace) -> int:
    sources = [_source(t, "truth") for t in args.truth]
    sources += [_source(t, args.export_kind) for t in args.export]
    if not sources:
        raise MeterledgerError("give at least one --truth SITE=FILE or --export SITE=FILE")
    if args.slot_s <= 0:
        raise MeterledgerError("--slot-s must be positive")
    start = cli_time(args.start, 0) if args.start else None
    end = cli_time(args.end, 0) if args.end else None
    fmt = ExportFormat(args.time_column, args.energy_column, args.unit, args.utc_offset_h)
    each = {
        f"{s.site} ({s.path.name})": site_energies(s, args.slot_s, start or 0, fmt) for s in sources
    }
    totals, lacking = report(each, start, end)
    for slot, without in sorted(lacking.items()):
        print(
            f"mlg-node: slot {slot} left out: no whole slot in {', '.join(without)}",
            file=sys.stderr,
        )
    text = as_csv_text(totals)
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text)
    sites = ", ".join(sorted({s.site for s in sources}))
    where = f" into {args.out}" if args.out else ""
    print(f"mlg-node: {len(totals)} slots of {sites}{where}", file=sys.stderr)
    return EXIT_OK if totals else EXIT_FAILURE

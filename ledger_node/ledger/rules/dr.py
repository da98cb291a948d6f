"""DR facts: the TSO's commands, the RAs' declarations and the AS reports, with the tables
they fill (`commands`, `declarations`, `as_reports`).

A command counts once per (TSO, id); declarations and AS reports carry a revision, the
newest counts, and the same revision with other bytes is evidence. A declaration is
accepted live only until its command's gate closure, and only for the author's own sites.
"""

from __future__ import annotations

import json

from ledger_node.ledger.arrival import Arrival
from ledger_node.ledger.refusals import GATE_CLOSED, NOT_ALLOWED, STALE, Held, Refused
from ledger_node.ledger.state import LedgerState
from ledger_node.ledger.store import Db
from ledger_node.shared.clock import utc_text
from ledger_node.wire import AsReport, DrCommand, DrDeclaration, open_stored


def load_command(db: Db, command_id: str) -> DrCommand | None:
    """The held DR command `command_id`, if any."""
    row = db.execute(
        "SELECT l.envelope FROM commands c JOIN log l ON l.pos = c.pos WHERE c.id=?",
        (command_id,),
    ).fetchone()
    if row is None:
        return None
    message = open_stored(row[0])
    assert isinstance(message, DrCommand)
    return message


def command(state: LedgerState, a: Arrival) -> int | None:
    cmd = a.message
    assert isinstance(cmd, DrCommand)
    state.registry.check_author(cmd.TYPE, cmd.by)
    key = f"command:{cmd.id}"
    first = state.keyed(cmd.by, key)
    if first is not None:
        state.equivocation(a, key, first)
        return None
    for ac, _ in cmd.targets:
        if state.registry.role(ac) != "ac":
            raise Refused(NOT_ALLOWED, f"target {ac} is not an active AC")
    pos = state.append(a)
    state.key(cmd.by, key, pos)
    state.db.execute(
        "INSERT INTO commands VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            cmd.id,
            pos,
            cmd.start,
            cmd.end,
            cmd.slot_s,
            cmd.gate_closure,
            cmd.price_yen_per_kwh,
            json.dumps(cmd.targets),
        ),
    )
    state.changes.commands.add(cmd.id)
    return pos


def _revised(
    state: LedgerState, a: Arrival, table: str, who: str, label: str, content: object
) -> int | None:
    """Keep a revised fact for a command (a declaration, an AS report) in `table`, keyed by
    command and author (column `who`): a newer revision replaces the held one, an older is
    refused (`stale`), the same revision with other bytes is kept as evidence (None)."""
    m = a.message
    command_id, rev, author = m.command, m.rev, m.author  # type: ignore[attr-defined]
    row = state.db.execute(
        f"SELECT rev, pos FROM {table} WHERE command=? AND {who}=?",  # noqa: S608
        (command_id, author),
    ).fetchone()
    if row is not None and rev < row[0]:
        raise Refused(STALE, f"revision {rev} is older than the held {row[0]}")
    if row is not None and rev == row[0]:
        state.equivocation(a, f"{label}:{command_id}:{rev}", int(row[1]))
        return None
    pos = state.append(a)
    state.db.execute(
        f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?)",  # noqa: S608
        (command_id, author, rev, pos, json.dumps(content)),
    )
    return pos


def declaration(state: LedgerState, a: Arrival) -> int | None:
    decl = a.message
    assert isinstance(decl, DrDeclaration)
    state.registry.check_author(decl.TYPE, decl.by)
    cmd = load_command(state.db, decl.command)
    if cmd is None:
        raise Held("unknown_command", f"declaration for {decl.command}, not seen yet")
    if a.live and a.at > cmd.gate_closure:
        raise Refused(
            GATE_CLOSED,
            f"declaration for {cmd.id} at {utc_text(a.at)}, after its gate closure at"
            f" {utc_text(cmd.gate_closure)}",
        )
    slots = len(cmd.slots)
    for site, baseline in decl.sites:
        holder = state.registry.sites.get(site)
        if holder is None:
            raise Held("unknown_site", f"declared site {site} is not registered (yet)")
        if holder.ra != decl.by:
            raise Refused(NOT_ALLOWED, f"site {site} belongs to {holder.ra}, not {decl.by}")
        if len(baseline) not in (1, slots):
            raise Refused(NOT_ALLOWED, f"site {site}: {len(baseline)} baselines for {slots} slots")
    pos = _revised(state, a, "declarations", "ra", "declaration", decl.sites)
    if pos is not None:
        state.changes.commands.add(decl.command)
    return pos


def as_report(state: LedgerState, a: Arrival) -> int | None:
    report = a.message
    assert isinstance(report, AsReport)
    state.registry.check_author(report.TYPE, report.by)
    cmd = load_command(state.db, report.command)
    if cmd is None:
        raise Held("unknown_command", f"AS report for {report.command}, not seen yet")
    window = set(cmd.slots)
    outside = [s for s, _ in report.slots if s not in window]
    if outside:
        raise Refused(NOT_ALLOWED, f"slot {outside[0]} is not a slot of {cmd.id}")
    return _revised(state, a, "as_reports", "author", "as_report", report.slots)

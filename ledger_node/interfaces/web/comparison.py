"""The performance comparison (実績比較): for a DR command and an AC or RA, the ledger's
total per slot (BC集計値) beside the organisation's own aggregation system's report
(AS集計値), with the slot's baseline, target, delivered reduction, coverage and the public
check of the total; and the AC's reward. A slot's drill-down to its consumers' readings
is `drilldown`.

A node shows what it may see: the TSO every AC and RA, an AC itself and its RAs, an RA
itself; and the readings of the sites whose privacy group it is in (elsewhere it says
why not). Each view reads one snapshot of the database, with one query per need; the
public checks' verdicts and the registry are remembered (`Memory`). Energies
are integer Wh, times UTC seconds; days are calendar days in the caller's time zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ledger_node.contract.checks import Published, TotalChecks
from ledger_node.contract.settlement import Finality, as_reported, due_rewards, result_rows
from ledger_node.interfaces.web.context import RegistryCache
from ledger_node.interfaces.web.i18n import N_
from ledger_node.ledger import load_command
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db
from ledger_node.shared.errors import MeterledgerError
from ledger_node.wire import DrCommand


class ComparisonError(MeterledgerError):
    """A query parameter this node cannot answer: `field` names it, `message` (a gettext
    id with ``%(name)s`` placeholders) and `values` say why."""

    def __init__(self, field: str, message: str, **values: object) -> None:
        super().__init__(message % values)
        self.field = field
        self.message = message
        self.values = values


@dataclass(frozen=True, slots=True)
class Entity:
    """An AC or an RA; `ac` is the AC an RA belongs to (an AC's own id for an AC)."""

    id: str
    kind: str
    ac: str | None


def entities(registry: Registry, me: str) -> list[Entity]:
    """The ACs and RAs `me` may compare: the TSO all, an AC itself and its RAs, an RA
    itself; each AC followed by its RAs."""
    role = registry.role(me)
    out = []
    for state in registry.orgs.values():
        org = state.org
        if org.role not in ("ac", "ra"):
            continue
        ac = org.id if org.role == "ac" else org.ac
        if role == "tso" or org.id == me or (role == "ac" and ac == me):
            out.append(Entity(org.id, org.role, ac))
    return sorted(out, key=lambda e: (e.ac or "", e.kind != "ac", e.id))


@dataclass(frozen=True, slots=True)
class SlotRow:
    """One slot of an entity's results beside its AS report (Wh; None: not there)."""

    slot: int
    bc_wh: int | None
    as_wh: int | None
    baseline_wh: int | None = None
    target_wh: int | None = None
    delivered_wh: int | None = None
    reported: int | None = None
    declared: int | None = None
    flagged: int | None = None
    check: str | None = None
    """What the public check of the total found wrong; None when it passed (or there is
    no total to check: `bc_wh` is None)."""
    state: str | None = None
    """"open" while readings may still change the total, then "final" (None: no total;
    `settlement.Finality`)."""

    @property
    def status(self) -> str:
        """``unsettled`` (no total on this node), ``no_as`` (no AS value for the slot),
        ``equal`` or ``differs``."""
        if self.bc_wh is None:
            return "unsettled"
        if self.as_wh is None:
            return "no_as"
        return "equal" if self.as_wh == self.bc_wh else "differs"

    @property
    def diff_wh(self) -> int | None:
        """AS − BC where they differ."""
        return self.as_wh - self.bc_wh if self.status == "differs" else None  # type: ignore[operator]


@dataclass(frozen=True)
class CommandInfo:
    id: str
    start: int
    end: int


@dataclass
class Comparison:
    """The comparison of one command and entity on one day, and what the form offers."""

    commands: list[CommandInfo]
    entities: list[Entity]
    command: DrCommand | None = None
    entity: Entity | None = None
    day: dt.date | None = None
    days: list[dt.date] = field(default_factory=list)
    rows: list[SlotRow] = field(default_factory=list)
    """The day's slots (checked)."""
    every: list[SlotRow] = field(default_factory=list)
    """All the command's slots (for the chart; not checked)."""
    reward: dict[str, Any] | None = None
    """The AC's reward once the window has closed, with its `state` (open or final)."""
    window: str = ""
    """The command's window: "before", "running" or "closed" (no reward before)."""
    declared: bool = False
    """Whether the entity (an AC: one of its RAs) declared sites for the command."""
    as_reported: bool = False
    error: ComparisonError | None = None
    """The parameter this node could not answer, if any (the rest is what it could)."""

    @property
    def failed_checks(self) -> list[SlotRow]:
        return [r for r in self.rows if r.check is not None]

    @property
    def settled(self) -> int:
        """The day's slots with a total on this node."""
        return sum(r.bc_wh is not None for r in self.rows)


class Memory:
    """What a node's comparison screen keeps between views: the verdicts of its public
    checks; the registry comes from the node's shared cache (`RegistryCache`)."""

    def __init__(self, max_verdicts: int, registries: RegistryCache) -> None:
        self.checks = TotalChecks(max_verdicts)
        self.registry = registries.get


@contextmanager
def snapshot(db: Db) -> Iterator[None]:
    """Every read inside from one snapshot of the database (one read transaction)."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


def days_of(command: DrCommand, tz: dt.tzinfo) -> list[dt.date]:
    """The calendar days in `tz` that the command's slots start on."""
    first = dt.datetime.fromtimestamp(command.start, tz).date()
    last = dt.datetime.fromtimestamp(command.end - 1, tz).date()
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def parse_day(text: str) -> dt.date:
    """A date as YYYY-MM-DD (or YYYY/MM/DD); `ComparisonError` otherwise."""
    try:
        return dt.date.fromisoformat(text.strip().replace("/", "-"))
    except ValueError:
        raise ComparisonError(
            "date", N_("%(date)s is not a date: write it as YYYY-MM-DD"), date=text
        ) from None


def command_infos(db: Db) -> list[CommandInfo]:
    rows = db.execute("SELECT id, t_start, t_end FROM commands ORDER BY t_start, id")
    return [CommandInfo(*row) for row in rows]


def find_command(db: Db, commands: list[CommandInfo], command_id: str | None) -> DrCommand | None:
    """The command asked for, else the newest (None when the node holds none)."""
    if not command_id:
        if not commands:
            return None
        command_id = commands[-1].id
    command = load_command(db, command_id)
    if command is None:
        raise ComparisonError(
            "command", N_("no DR command %(command)s on this node"), command=command_id
        )
    return command


def find_entity(
    registry: Registry, me: str, visible: list[Entity], command: DrCommand, entity_id: str | None
) -> Entity:
    if not entity_id:
        targets = {ac for ac, _ in command.targets}
        mine = [e for e in visible if e.id == me]
        aimed = [e for e in visible if e.id in targets]
        if not visible:
            raise ComparisonError("entity", N_("this node can show no AC or RA"))
        return (mine or aimed or visible)[0]
    chosen = next((e for e in visible if e.id == entity_id), None)
    if chosen is not None:
        return chosen
    state = registry.orgs.get(entity_id)
    if state is None or state.org.role not in ("ac", "ra"):
        raise ComparisonError("entity", N_("no AC or RA named %(entity)s"), entity=entity_id)
    raise ComparisonError(
        "entity",
        N_(
            "this node cannot show %(entity)s: the TSO sees every AC and RA, an AC itself"
            " and its RAs, an RA itself"
        ),
        entity=entity_id,
    )


def _slot_row(
    row: tuple[Any, ...] | None, slot: int, as_wh: int | None, command: DrCommand, f: Finality
) -> SlotRow:
    """A slot from its stored result (`settlement.result_rows`), if any, and AS value."""
    if row is None:
        return SlotRow(slot, None, as_wh)
    baseline, delivered, target, reported, declared, flagged = row[6:12]
    return SlotRow(
        slot,
        row[5],
        as_wh,
        state=f.slot(slot, command.slot_s, reported, declared),
        baseline_wh=baseline,
        target_wh=target,
        delivered_wh=delivered,
        reported=reported,
        declared=declared,
        flagged=flagged,
    )


def compare(
    db: Db,
    me: str,
    memory: Memory,
    tz: dt.tzinfo,
    finality: Finality,
    command_id: str | None = None,
    entity_id: str | None = None,
    day: str | None = None,
) -> Comparison:
    """The comparison `me` shows for the command (default: the newest), the entity
    (default: this node, else the command's first AC) and the day in `tz` (default: the
    command's first), as of `finality`'s time. A parameter it cannot answer is its
    `error`."""
    with snapshot(db):
        registry = memory.registry(db)
        out = Comparison(command_infos(db), entities(registry, me))
        try:
            command = find_command(db, out.commands, command_id)
            if command is not None:
                out.window = finality.window(command)
                _fill(out, db, registry, me, memory.checks, tz, command, entity_id, day, finality)
        except ComparisonError as exc:
            out.error = exc
        return out


def _fill(
    out: Comparison,
    db: Db,
    registry: Registry,
    me: str,
    checks: TotalChecks,
    tz: dt.tzinfo,
    command: DrCommand,
    entity_id: str | None,
    day: str | None,
    finality: Finality,
) -> None:
    entity = find_entity(registry, me, out.entities, command, entity_id)
    days = days_of(command, tz)
    chosen_day = days[0] if not day else parse_day(day)
    if chosen_day not in days:
        raise ComparisonError(
            "date",
            N_("command %(command)s has no slots on %(date)s (JST): it runs %(days)s"),
            command=command.id,
            date=chosen_day.isoformat(),
            days=", ".join(d.isoformat() for d in days),
        )
    stored = {row[1]: row for row in result_rows(db, command.id, entity.kind, entity.id)}
    reported = as_reported(db, command.id, entity.id).get(entity.id)
    every = [
        _slot_row(stored.get(s), s, (reported or {}).get(s), command, finality)
        for s in command.slots
    ]
    today = [r for r in every if dt.datetime.fromtimestamp(r.slot, tz).date() == chosen_day]
    checked = [stored[r.slot] for r in today if r.slot in stored]
    verdicts = checks.check(db, registry, [Published.of_row(row) for row in checked])
    failed = {row[1]: v for row, v in zip(checked, verdicts, strict=True)}
    out.command, out.entity, out.day, out.days, out.every = command, entity, chosen_day, days, every
    out.rows = [dataclasses.replace(r, check=failed.get(r.slot)) for r in today]
    due = due_rewards(db, command, finality)
    out.reward = next((w for w in due if w["ac"] == entity.ac), None)
    declared = db.execute("SELECT ra FROM declarations WHERE command=?", (command.id,))
    out.declared = any(ra_under(registry, ra, entity) for (ra,) in declared)
    out.as_reported = reported is not None


def ra_under(registry: Registry, ra: str, entity: Entity) -> bool:
    """Whether RA `ra` is `entity` or one of its RAs."""
    return ra == entity.id or (entity.kind == "ac" and registry.ac_of(ra) == entity.id)

"""The performance comparison (実績比較): for a DR command and an AC or RA, the ledger's
total per slot (BC集計値) beside the organisation's own aggregation system's report
(AS集計値), with the slot's baseline, target, delivered reduction, coverage and the public
check of the total; the AC's reward; and a slot's drill-down to its consumers' readings.

A node shows what it may see: the TSO every AC and RA, an AC itself and its RAs, an RA
itself; and the readings of the sites whose privacy group it is in (elsewhere it says
why not). Each view reads one snapshot of the database, with one query per need; the
public checks' verdicts and the registry are remembered (`Memory`). Energies
are integer Wh, times UTC seconds; days are calendar days in the caller's time zone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ledger_node.contract.dr1 import Candidate, select
from ledger_node.contract.settlement import (
    Published,
    TotalChecks,
    as_reported,
    load_declarations,
    result_rows,
    rewards,
)
from ledger_node.interfaces.web.context import RegistryCache
from ledger_node.interfaces.web.i18n import N_
from ledger_node.ledger import load_command
from ledger_node.ledger.registry import Registry
from ledger_node.shared.errors import MeterledgerError
from ledger_node.wire import DrCommand, DrDeclaration


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
def snapshot(db: sqlite3.Connection) -> Iterator[None]:
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


def _commands(db: sqlite3.Connection) -> list[CommandInfo]:
    rows = db.execute("SELECT id, t_start, t_end FROM commands ORDER BY t_start, id")
    return [CommandInfo(*row) for row in rows]


def _command(
    db: sqlite3.Connection, commands: list[CommandInfo], command_id: str | None
) -> DrCommand | None:
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


def _entity(
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


def _slot_row(row: tuple[Any, ...] | None, slot: int, as_wh: int | None) -> SlotRow:
    """A slot from its stored result (`settlement.result_rows`), if any, and AS value."""
    if row is None:
        return SlotRow(slot, None, as_wh)
    baseline, delivered, target, reported, declared, flagged = row[6:12]
    return SlotRow(
        slot,
        row[5],
        as_wh,
        baseline_wh=baseline,
        target_wh=target,
        delivered_wh=delivered,
        reported=reported,
        declared=declared,
        flagged=flagged,
    )


def compare(
    db: sqlite3.Connection,
    me: str,
    memory: Memory,
    tz: dt.tzinfo,
    command_id: str | None = None,
    entity_id: str | None = None,
    day: str | None = None,
) -> Comparison:
    """The comparison `me` shows for the command (default: the newest), the entity
    (default: this node, else the command's first AC) and the day in `tz` (default: the
    command's first). A parameter it cannot answer is its `error`."""
    with snapshot(db):
        registry = memory.registry(db)
        out = Comparison(_commands(db), entities(registry, me))
        try:
            command = _command(db, out.commands, command_id)
            if command is not None:
                _fill(out, db, registry, me, memory.checks, tz, command, entity_id, day)
        except ComparisonError as exc:
            out.error = exc
        return out


def _fill(
    out: Comparison,
    db: sqlite3.Connection,
    registry: Registry,
    me: str,
    checks: TotalChecks,
    tz: dt.tzinfo,
    command: DrCommand,
    entity_id: str | None,
    day: str | None,
) -> None:
    entity = _entity(registry, me, out.entities, command, entity_id)
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
    every = [_slot_row(stored.get(s), s, (reported or {}).get(s)) for s in command.slots]
    today = [r for r in every if dt.datetime.fromtimestamp(r.slot, tz).date() == chosen_day]
    checked = [stored[r.slot] for r in today if r.slot in stored]
    verdicts = checks.check(db, registry, [Published.of_row(row) for row in checked])
    failed = {row[1]: v for row, v in zip(checked, verdicts, strict=True)}
    out.command, out.entity, out.day, out.days, out.every = command, entity, chosen_day, days, every
    out.rows = [dataclasses.replace(r, check=failed.get(r.slot)) for r in today]
    out.reward = next((w for w in rewards(db, command.id) if w["ac"] == entity.ac), None)
    declared = db.execute("SELECT ra FROM declarations WHERE command=?", (command.id,))
    out.declared = any(_under(registry, ra, entity) for (ra,) in declared)
    out.as_reported = reported is not None


def _under(registry: Registry, ra: str, entity: Entity) -> bool:
    """Whether RA `ra` is `entity` or one of its RAs."""
    return ra == entity.id or (entity.kind == "ac" and registry.ac_of(ra) == entity.id)


# -- drill-down ----------------------------------------------------------------------------

NOT_IN_GROUP = N_("not in this site's group")
NO_BATCH = N_("no reading reported for this slot")
WHY: dict[str, str] = {
    "sealed": N_("not decrypted yet"),
    "shredded": N_("erased: the site's key for this period was shredded"),
    "bad": N_("refused: the sealed readings do not match the batch's commitments"),
    "equivocated": N_("not counted: the gateway signed two different batches for this slot"),
}
"""Why a site's readings are not shown, by the state of its batch."""
NO_METER_READING = N_("no reading for this meter")


@dataclass(frozen=True, slots=True)
class MeterView:
    meter: str
    wh: int | None
    quality: str = ""
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SiteView:
    """A declared site in the slot: its readings (Wh) or why this node cannot show them."""

    site: str
    ra: str
    ac: str | None
    baseline_wh: int | None
    meters: tuple[MeterView, ...]
    total_wh: int | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Level:
    """An organisation's total in the slot (BC from this node's results, AS from its own
    report; None where there is none) and its declared sites."""

    org: str
    kind: str
    bc_wh: int | None
    as_wh: int | None
    sites: tuple[SiteView, ...]


@dataclass(frozen=True)
class Drill:
    command: DrCommand
    entity: Entity
    slot: int
    top: Level
    ras: list[Level]
    """The entity's RAs (an RA: itself) with their sites."""
    others: list[SiteView]
    """The command's other declared sites in the slot."""


def drill(
    db: sqlite3.Connection,
    me: str,
    memory: Memory,
    command_id: str,
    entity_id: str,
    slot_text: str,
) -> Drill:
    """Slot `slot_text` (UTC seconds) of the entity's comparison, down to each declared
    site's meters; `ComparisonError` for a parameter it cannot answer."""
    with snapshot(db):
        registry = memory.registry(db)
        command = _command(db, _commands(db), command_id)
        if command is None:
            raise ComparisonError("command", N_("no DR command on this node yet"))
        entity = _entity(registry, me, entities(registry, me), command, entity_id)
        try:
            slot = int(slot_text)
        except ValueError:
            slot = -1
        if slot not in command.slots:
            raise ComparisonError(
                "slot",
                N_("%(slot)s is not the start of a slot of command %(command)s"),
                slot=slot_text,
                command=command.id,
            )
        declarations = load_declarations(db, command.id)
        sites = _sites(db, me, registry, command, declarations, slot)
        totals = {
            (kind, scope): wh
            for kind, scope, wh in db.execute(
                "SELECT kind, scope, actual_wh FROM results WHERE command=? AND slot=?",
                (command.id, slot),
            )
        }
        reported = {
            author: by_slot.get(slot) for author, by_slot in as_reported(db, command.id).items()
        }

        def level(org: str, kind: str) -> Level:
            mine = tuple(s for s in sites if s.ra == org or (kind == "ac" and s.ac == org))
            return Level(org, kind, totals.get((kind, org)), reported.get(org), mine)

        ras = sorted(ra for ra in declarations if _under(registry, ra, entity))
        top = level(entity.id, entity.kind)
        under = {s.site for s in top.sites}
        return Drill(
            command,
            entity,
            slot,
            top,
            [level(ra, "ra") for ra in ras] if entity.kind == "ac" else [top],
            [s for s in sites if s.site not in under],
        )


def _sites(
    db: sqlite3.Connection,
    me: str,
    registry: Registry,
    command: DrCommand,
    declarations: dict[str, DrDeclaration],
    slot: int,
) -> list[SiteView]:
    """Every declared site of the command in `slot`, as this node can show it."""
    index = command.slots.index(slot)
    members = {
        (site, epoch): group.split(",")
        for site, epoch, group in db.execute("SELECT site, epoch, members FROM epochs")
    }
    batches: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    readings: dict[int, list[tuple[str, int, str]]] = defaultdict(list)
    for site, pos, seq, state, epoch, txid, meter, wh, quality in db.execute(
        "SELECT b.site, b.pos, b.seq, b.state, b.epoch, l.txid, r.meter, r.wh, r.quality"
        " FROM batches b JOIN log l ON l.pos = b.pos LEFT JOIN readings r ON r.pos = b.pos"
        " WHERE b.slot = ? AND b.slot_s = ? ORDER BY b.site, b.seq",
        (slot, command.slot_s),
    ):
        if not batches[site] or batches[site][-1][0] != pos:
            batches[site].append((pos, seq, state, epoch, bytes(txid)))
        if meter is not None:
            readings[pos].append((meter, wh, quality))
    out = []
    for ra in sorted(declarations):
        for site, baselines in declarations[ra].sites:
            known = registry.sites.get(site)
            meters = known.meters if known is not None else ()
            group = [members.get((site, epoch), []) for _, _, _, epoch, _ in batches.get(site, [])]
            if not group and known is not None:
                group = [list(registry.group(site)[0])]
            baseline = baselines[0] if len(baselines) == 1 else baselines[index]
            view = _site_view(site, meters, batches.get(site, []), readings, me, group)
            out.append(SiteView(site, ra, registry.ac_of(ra), baseline, *view))
    return out


def _site_view(
    site: str,
    meters: tuple[str, ...],
    batches: list[tuple[Any, ...]],
    readings: dict[int, list[tuple[str, int, str]]],
    me: str,
    groups: list[list[str]],
) -> tuple[tuple[MeterView, ...], int | None, str | None]:
    """A site's meters, total and reason (None when its readings are shown); the reading
    of each meter is the one the contract counts (lowest seq among decrypted batches)."""
    if not any(me in g for g in groups):
        return (), None, NOT_IN_GROUP
    opened = [b for b in batches if b[2] == "open"]
    if not opened:
        return (), None, WHY.get(batches[0][2], NO_BATCH) if batches else NO_BATCH
    values: dict[tuple[bytes, str], tuple[int, str]] = {}
    candidates = []
    for pos, seq, _, _, txid in opened:
        for meter, wh, quality in readings[pos]:
            candidates.append(Candidate(txid, seq, site, meter))
            values[(txid, meter)] = (wh, quality)
    chosen = select(candidates, meters)
    views = []
    for meter in meters:
        c = chosen.get(meter)
        if c is None:
            views.append(MeterView(meter, None, note=NO_METER_READING))
        else:
            wh, quality = values[(c.txid, meter)]
            views.append(MeterView(meter, wh, quality))
    total = sum(v.wh for v in views if v.wh is not None)
    return tuple(views), total, None

"""A slot's drill-down on the comparison screen: from an AC's or RA's total to its RAs'
totals (BC beside AS) and its consumers' readings per meter, as the contract counts them;
for a site this node cannot read, why not (not in the site's group, not decrypted yet,
shredded, refused, equivocated). Energies are integer Wh, times UTC seconds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from ledger_node.contract.dr1 import Candidate, select
from ledger_node.contract.settlement import (
    as_reported,
    load_declarations,
)
from ledger_node.interfaces.web.comparison import (
    ComparisonError,
    Entity,
    Memory,
    command_infos,
    entities,
    find_command,
    find_entity,
    ra_under,
    snapshot,
)
from ledger_node.interfaces.web.i18n import N_
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db
from ledger_node.wire import DrCommand, DrDeclaration

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
    db: Db,
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
        command = find_command(db, command_infos(db), command_id)
        if command is None:
            raise ComparisonError("command", N_("no DR command on this node yet"))
        entity = find_entity(registry, me, entities(registry, me), command, entity_id)
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

        ras = sorted(ra for ra in declarations if ra_under(registry, ra, entity))
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
    db: Db,
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

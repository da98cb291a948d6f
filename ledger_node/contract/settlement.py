"""Running the contract on the node's data, reading its results, and checking totals.

`Settlement.refresh` recomputes the results of the commands whose inputs changed (a
command, a declaration, a batch opened in its window) for the scopes this node can read
(the TSO all, an AC itself and its RAs, an RA itself), and stores them with the contract
version. Results that cover a shredded epoch are kept as they were: their readings can no
longer be read, but their Pedersen totals still check against the public commitments.
`reconcile` sets an AS report beside the ledger's totals slot by slot; `checks` checks a
published total from public data alone.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ledger_node.contract.dr1 import (
    Candidate,
    Inputs,
    MeterReading,
    SlotResult,
    settle,
)
from ledger_node.ledger.admission import Ledger
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.rules import load_command
from ledger_node.ledger.store import Db
from ledger_node.wire import DrCommand, DrDeclaration, open_stored


def load_declarations(db: Db, command: str) -> dict[str, DrDeclaration]:
    """Each RA's counting declaration for `command`."""
    out = {}
    for ra, raw in db.execute(
        "SELECT d.ra, l.envelope FROM declarations d JOIN log l ON l.pos = d.pos WHERE d.command=?",
        (command,),
    ):
        declaration = open_stored(raw)
        assert isinstance(declaration, DrDeclaration)
        out[ra] = declaration
    return out


def scopes_of(
    me: str, registry: Registry, ras: Iterable[str], acs: Iterable[str]
) -> set[tuple[str, str]]:
    """The scopes `me` settles: those whose sites it can read."""
    scopes: set[tuple[str, str]] = set()
    is_tso = registry.tso == me
    for ra in ras:
        if is_tso or me in (ra, registry.ac_of(ra)):
            scopes.add(("ra", ra))
    for ac in acs:
        if is_tso or me == ac:
            scopes.add(("ac", ac))
    return scopes


def unsettled_by_slots(db: Db) -> set[str]:
    """Commands over a slot whose batches were decrypted since the last settlement."""
    slots = [row[0] for row in db.execute("SELECT slot FROM unsettled_slots")]
    if not slots:
        return set()
    lo, hi = min(slots), max(slots)
    return {
        cid
        for cid, start, end in db.execute(
            "SELECT id, t_start, t_end FROM commands WHERE t_start <= ? AND t_end > ?", (hi, lo)
        ).fetchall()
        if any(start <= s < end for s in slots)
    }


def unsettled(db: Db) -> set[str]:
    """Commands queued to settle again (read only: what `verify` must not judge yet)."""
    queued = {r[0] for r in db.execute("SELECT command FROM unsettled_commands")}
    return queued | unsettled_by_slots(db)


class Settlement:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.db = ledger.db

    def note_all(self) -> None:
        """Queue every held command to settle again (at start; in a transaction)."""
        self.db.execute("INSERT OR IGNORE INTO unsettled_commands SELECT id FROM commands")

    def dirty(self) -> set[str]:
        """Take the commands whose results may have changed (the queue the ledger writes
        with each change); call it in the transaction that settles them."""
        commands = unsettled(self.db)
        self.db.execute("DELETE FROM unsettled_commands")
        self.db.execute("DELETE FROM unsettled_slots")
        return commands

    def inputs(self, command: DrCommand) -> Inputs:
        registry = self.ledger.registry
        declarations = load_declarations(self.db, command.id)
        sites = sorted({s for d in declarations.values() for s, _ in d.sites})
        readings: dict[tuple[str, int], list[MeterReading]] = defaultdict(list)
        for site in sites:
            rows = self.db.execute(
                "SELECT b.slot, l.txid, b.seq, r.meter, r.wh, r.r, r.quality"
                " FROM batches b JOIN readings r ON r.pos = b.pos JOIN log l ON l.pos = b.pos"
                " WHERE b.site = ? AND b.slot >= ? AND b.slot < ? AND b.slot_s = ?"
                " AND b.state = 'open'",
                (site, command.start, command.end, command.slot_s),
            )
            for slot, txid, seq, meter, wh, r, quality in rows:
                ref = Candidate(bytes(txid), seq, site, meter)
                readings[(site, slot)].append(MeterReading(ref, wh, bytes(r), bool(quality)))
        ra_ac = {ra: ac for ra in declarations if (ac := registry.ac_of(ra)) is not None}
        acs = {ac for ac, _ in command.targets} | set(ra_ac.values())
        return Inputs(
            command=command,
            declarations=declarations,
            ra_ac=ra_ac,
            site_meters={s: registry.sites[s].meters for s in sites if s in registry.sites},
            readings=readings,
            scopes=frozenset(scopes_of(self.ledger.me.name, registry, declarations, acs)),
        )

    def refresh(self, commands: Iterable[str]) -> int:
        """Recompute and store the results of `commands`; return how many rows changed."""
        changed = 0
        for cid in sorted(commands):
            command = load_command(self.db, cid)
            if command is None:
                continue
            inputs = self.inputs(command)
            results, rewards = settle(inputs)
            frozen = self._frozen(command, inputs)
            for r in results:
                if (r.slot, r.kind, r.scope) in frozen:
                    continue
                changed += self._store(r)
            for w in rewards:
                self.db.execute(
                    "INSERT OR REPLACE INTO rewards VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        w.command,
                        w.ac,
                        w.contract,
                        w.price,
                        w.credited_wh,
                        w.shortfall_wh,
                        w.penalised_wh,
                        w.reward_yen,
                    ),
                )
        return changed

    def _frozen(self, command: DrCommand, inputs: Inputs) -> set[tuple[int, str, str]]:
        """Results that cover a shredded batch: kept as stored."""
        rows = self.db.execute(
            "SELECT DISTINCT site, slot FROM batches WHERE state='shredded' AND slot >= ?"
            " AND slot < ?",
            (command.start, command.end),
        ).fetchall()
        if not rows:
            return set()
        frozen = set()
        for site, slot in rows:
            for ra, decl in inputs.declarations.items():
                if any(s == site for s, _ in decl.sites):
                    frozen.add((slot, "ra", ra))
                    if ra in inputs.ra_ac:
                        frozen.add((slot, "ac", inputs.ra_ac[ra]))
        return frozen

    def _store(self, r: SlotResult) -> int:
        refs = json.dumps([[t.hex(), m] for t, m in r.refs])
        cur = self.db.execute(
            "INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (command, slot, kind, scope) DO UPDATE SET contract=excluded.contract,"
            " actual_wh=excluded.actual_wh, baseline_wh=excluded.baseline_wh,"
            " delivered_wh=excluded.delivered_wh, target_wh=excluded.target_wh,"
            " reported=excluded.reported, declared=excluded.declared, flagged=excluded.flagged,"
            " v_wh=excluded.v_wh, r=excluded.r, refs=excluded.refs"
            " WHERE results.refs != excluded.refs OR results.baseline_wh != excluded.baseline_wh"
            " OR results.target_wh != excluded.target_wh"
            " OR results.declared != excluded.declared",
            (
                r.command,
                r.slot,
                r.kind,
                r.scope,
                r.contract,
                r.actual_wh,
                r.baseline_wh,
                r.delivered_wh,
                r.target_wh,
                r.reported,
                r.declared,
                r.flagged,
                r.v_wh,
                r.r,
                refs,
            ),
        )
        return cur.rowcount


# -- reading results ---------------------------------------------------------------------

_RESULT_COLUMNS = (
    "command, slot, kind, scope, contract, actual_wh, baseline_wh, delivered_wh, target_wh,"
    " reported, declared, flagged, v_wh, r, refs"
)


def result_json(row: tuple[Any, ...]) -> dict[str, Any]:
    (command, slot, kind, scope, contract, actual, baseline, delivered, target) = row[:9]
    reported, declared, flagged, v_wh, r, refs = row[9:]
    return {
        "command": command,
        "slot": slot,
        "kind": kind,
        "scope": scope,
        "contract": contract,
        "actual_wh": actual,
        "baseline_wh": baseline,
        "delivered_wh": delivered,
        "target_wh": target,
        "reported": reported,
        "declared": declared,
        "flagged": flagged,
        "total": {"v_wh": v_wh, "r": bytes(r).hex(), "refs": json.loads(refs)},
    }


def result_rows(
    db: Db, command: str, kind: str | None = None, scope: str | None = None
) -> list[tuple[Any, ...]]:
    """A command's stored results as rows (`_RESULT_COLUMNS`), by kind, scope and slot."""
    return db.execute(
        f"SELECT {_RESULT_COLUMNS} FROM results WHERE command=?"  # noqa: S608
        " AND (CAST(? AS TEXT) IS NULL OR kind=?) AND (CAST(? AS TEXT) IS NULL OR scope=?)"
        " ORDER BY kind, scope, slot",
        (command, kind, kind, scope, scope),
    ).fetchall()


def results(
    db: Db, command: str, kind: str | None = None, scope: str | None = None
) -> list[dict[str, Any]]:
    return [result_json(row) for row in result_rows(db, command, kind, scope)]


def rewards(db: Db, command: str) -> list[dict[str, Any]]:
    cols = (
        "command",
        "ac",
        "contract",
        "price_yen_per_kwh",
        "credited_wh",
        "shortfall_wh",
        "penalised_wh",
        "reward_yen",
    )
    rows = db.execute(
        "SELECT command, ac, contract, price, credited_wh, shortfall_wh, penalised_wh,"
        " reward_yen FROM rewards WHERE command=? ORDER BY ac",
        (command,),
    ).fetchall()
    return [dict(zip(cols, row, strict=True)) for row in rows]


@dataclass(frozen=True, slots=True)
class Finality:
    """Whether a result can still change, as of `now` (UTC s): a slot is "open" until it
    has ended and either every declared meter reported or its readings' lateness limit
    (`late_after_s` after its end) passed; then "final". A reward exists only once the
    command's window has closed, and is final once every slot of its AC is."""

    now: float
    late_after_s: int

    def slot(self, slot: int, slot_s: int, reported: int, declared: int) -> str:
        end = slot + slot_s
        if self.now < end or (reported < declared and self.now < end + self.late_after_s):
            return OPEN
        return FINAL

    def window(self, command: DrCommand) -> str:
        """ "before" its start, "running" until its end, then "closed"."""
        if self.now < command.start:
            return "before"
        return "running" if self.now < command.end else "closed"


OPEN = "open"
FINAL = "final"


def settled(
    db: Db, command: DrCommand, finality: Finality, scope: str | None = None
) -> dict[str, Any]:
    """A command's results per slot and scope (all scopes if None), each with its `state`
    ("open" or "final"), and its rewards once the window has closed (each with its state)."""
    every = results(db, command.id)
    for r in every:
        r["state"] = finality.slot(r["slot"], command.slot_s, r["reported"], r["declared"])
    return {
        "command": command.id,
        "at": int(finality.now),
        "window": {"start": command.start, "end": command.end, "state": finality.window(command)},
        "results": [r for r in every if scope is None or r["scope"] == scope],
        "rewards": due_rewards(db, command, finality),
    }


def due_rewards(db: Db, command: DrCommand, finality: Finality) -> list[dict[str, Any]]:
    """The command's rewards once its window has closed (none before), each with its
    `state`: final once every slot of its AC is, else open."""
    if finality.window(command) != "closed":
        return []
    out = []
    for w in rewards(db, command.id):
        own = result_rows(db, command.id, "ac", w["ac"])
        final = all(finality.slot(r[1], command.slot_s, r[9], r[10]) == FINAL for r in own)
        out.append(w | {"state": FINAL if final else OPEN})
    return out


@dataclass(frozen=True, slots=True)
class Reconciled:
    """One slot of an AS report beside the ledger: status equal, differs, missing (a side
    has no value), or not_readable (no ledger value because this node cannot read the
    author's sites)."""

    slot: int
    ledger_wh: int | None
    as_wh: int | None
    status: str


def as_reported(db: Db, command: str, author: str | None = None) -> dict[str, dict[int, int]]:
    """The AS reports held for `command` (of `author` only, if given): author → slot → Wh."""
    return {
        who: {s: wh for s, wh in json.loads(slots)}
        for who, slots in db.execute(
            "SELECT author, slots FROM as_reports WHERE command=?"
            " AND (CAST(? AS TEXT) IS NULL OR author=?)",
            (command, author, author),
        )
    }


NOT_READABLE = "not_readable"


def reconcile(db: Db, command: str, author: str, readable: bool = True) -> list[Reconciled]:
    """An organisation's AS report for `command` against the ledger's totals for it;
    `readable`: whether this node settles the author's scope (`scopes_of`)."""
    reported = as_reported(db, command, author).get(author, {})
    ledger = {
        slot: wh
        for slot, wh in db.execute(
            "SELECT slot, actual_wh FROM results WHERE command=? AND scope=?", (command, author)
        )
    }
    out = []
    for slot in sorted(set(reported) | set(ledger)):
        bc, as_ = ledger.get(slot), reported.get(slot)
        if bc is None and not readable:
            status = NOT_READABLE
        elif bc is None or as_ is None:
            status = "missing"
        else:
            status = "equal" if bc == as_ else "differs"
        out.append(Reconciled(slot, bc, as_, status))
    return out


# -- checking totals from public data -----------------------------------------------------

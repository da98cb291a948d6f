"""Running the contract on the node's data, reading its results, and checking totals.

`Settlement.refresh` recomputes the results of the commands whose inputs changed (a
command, a declaration, a batch opened in its window) for the scopes this node can read
(the TSO all, an AC itself and its RAs, an RA itself), and stores them with the contract
version. Results that cover a shredded epoch are kept as they were: their readings can no
longer be read, but their Pedersen totals still check against the public commitments.
`reconcile` sets an AS report beside the ledger's totals slot by slot; `check_result`
checks a published total from public data alone, and `TotalChecks` checks many at once
(one query for all their batches) and can remember its verdicts for a screen shown again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ledger_node.contract.dr1 import (
    CONTRACT_VERSION,
    Candidate,
    Inputs,
    MeterReading,
    Ref,
    SlotResult,
    TotalCheckError,
    check_total,
    select,
    settle,
)
from ledger_node.ledger.admission import Ledger
from ledger_node.ledger.arrival import Changes
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.rules import load_command
from ledger_node.wire import DrCommand, DrDeclaration, ReadingsBatch, open_body, parse


def _message(raw: bytes) -> Any:
    return open_body(parse(raw, max(len(raw), 1)))


def load_declarations(db: sqlite3.Connection, command: str) -> dict[str, DrDeclaration]:
    return {
        ra: _message(raw)
        for ra, raw in db.execute(
            "SELECT d.ra, l.envelope FROM declarations d JOIN log l ON l.pos = d.pos"
            " WHERE d.command=?",
            (command,),
        )
    }


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


class Settlement:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.db = ledger.db
        self._commands: set[str] = set()
        self._slots: set[int] = set()

    def note(self, changes: Changes) -> None:
        """Take what a committed transaction changed: its commands and opened slots."""
        self._commands |= changes.commands
        self._slots |= changes.opened_slots

    def note_all(self) -> None:
        """Settle every held command again (at start)."""
        self._commands.update(row[0] for row in self.db.execute("SELECT id FROM commands"))

    def dirty(self) -> set[str]:
        """Commands whose results may have changed since the last call."""
        commands, slots = self._commands, self._slots
        self._commands, self._slots = set(), set()
        if slots:
            lo, hi = min(slots), max(slots)
            for cid, start, end in self.db.execute(
                "SELECT id, t_start, t_end FROM commands WHERE t_start <= ? AND t_end > ?", (hi, lo)
            ).fetchall():
                if any(start <= s < end for s in slots):
                    commands.add(cid)
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
            " WHERE refs != excluded.refs OR baseline_wh != excluded.baseline_wh"
            " OR target_wh != excluded.target_wh OR declared != excluded.declared",
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
    db: sqlite3.Connection, command: str, kind: str | None = None, scope: str | None = None
) -> list[tuple[Any, ...]]:
    """A command's stored results as rows (`_RESULT_COLUMNS`), by kind, scope and slot."""
    return db.execute(
        f"SELECT {_RESULT_COLUMNS} FROM results WHERE command=?"  # noqa: S608
        " AND (? IS NULL OR kind=?) AND (? IS NULL OR scope=?) ORDER BY kind, scope, slot",
        (command, kind, kind, scope, scope),
    ).fetchall()


def results(
    db: sqlite3.Connection, command: str, kind: str | None = None, scope: str | None = None
) -> list[dict[str, Any]]:
    return [result_json(row) for row in result_rows(db, command, kind, scope)]


def rewards(db: sqlite3.Connection, command: str) -> list[dict[str, Any]]:
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
class Reconciled:
    """One slot of an AS report beside the ledger: status equal, differs or missing."""

    slot: int
    ledger_wh: int | None
    as_wh: int | None
    status: str


def as_reported(
    db: sqlite3.Connection, command: str, author: str | None = None
) -> dict[str, dict[int, int]]:
    """The AS reports held for `command` (of `author` only, if given): author → slot → Wh."""
    return {
        who: {s: wh for s, wh in json.loads(slots)}
        for who, slots in db.execute(
            "SELECT author, slots FROM as_reports WHERE command=? AND (? IS NULL OR author=?)",
            (command, author, author),
        )
    }


def reconcile(db: sqlite3.Connection, command: str, author: str) -> list[Reconciled]:
    """An organisation's AS report for `command` against the ledger's totals for it."""
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
        status = "missing" if bc is None or as_ is None else "equal" if bc == as_ else "differs"
        out.append(Reconciled(slot, bc, as_, status))
    return out


# -- checking totals from public data -----------------------------------------------------


def _scope_sites(
    registry: Registry, declared: dict[str, list[str]], kind: str, scope: str
) -> list[str]:
    """The sites a result of (`kind`, `scope`) covers, by the public declarations (each
    RA's declared sites)."""
    if kind == "ra":
        ras = [scope] if scope in declared else []
    else:
        ras = [ra for ra in declared if registry.ac_of(ra) == scope]
    return sorted({s for ra in ras for s in declared[ra]})


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


@dataclass(frozen=True, slots=True)
class Published:
    """What the public check of one result reads: its key, its (V, R) and the readings it
    says it covers (`refs` as stored, JSON text, or as published, [txid hex, meter] pairs)."""

    command: str
    slot: int
    kind: str
    scope: str
    contract: str | None
    actual_wh: int
    v_wh: int
    r: bytes
    refs: str | tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, result: dict[str, Any]) -> Published:
        """From a result as `results` gives it (or a document a peer published)."""
        total = result["total"]
        return cls(
            result["command"],
            result["slot"],
            result["kind"],
            result["scope"],
            result.get("contract"),
            result["actual_wh"],
            total["v_wh"],
            bytes.fromhex(total["r"]),
            tuple((t, m) for t, m in total["refs"]),
        )

    @classmethod
    def of_row(cls, row: tuple[Any, ...]) -> Published:
        """From a stored row as `result_rows` gives it."""
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], row[12], bytes(row[13]), row[14])

    def key(self) -> tuple[Any, ...]:
        """This result, with its readings as a SHA-256 digest (a memo's key)."""
        refs = self.refs if isinstance(self.refs, str) else json.dumps(self.refs)
        kept = (self.command, self.slot, self.kind, self.scope, self.contract, self.actual_wh)
        return (*kept, self.v_wh, self.r, _digest(refs))

    def ref_list(self) -> list[Ref]:
        pairs = json.loads(self.refs) if isinstance(self.refs, str) else self.refs
        return [(bytes.fromhex(t), m) for t, m in pairs]


class TotalChecks:
    """`check_result` for many results at once, with one query per need (not one per slot
    or site), remembering each verdict with the public data it was reached on: the
    registry's facts, the command's declarations and the positions of the slot's batches
    (positions only grow, so a new or an equivocated batch changes them). A result shown
    again is checked again only when its data changed. At most `max_verdicts` kept."""

    def __init__(self, max_verdicts: int = 0) -> None:
        self.max_verdicts = max_verdicts
        self._verdicts: dict[tuple[Any, ...], str | None] = {}
        self._lock = threading.Lock()

    def check(
        self, db: sqlite3.Connection, registry: Registry, results: Iterable[Published]
    ) -> list[str | None]:
        """What is wrong with each result (None: it checks), in order."""
        todo = list(results)
        by_command: dict[str, list[int]] = defaultdict(list)
        for i, p in enumerate(todo):
            by_command[p.command].append(i)
        out: list[str | None] = [None] * len(todo)
        for cid, indexes in by_command.items():
            verdicts = self._check_command(db, registry, cid, [todo[i] for i in indexes])
            for i, verdict in zip(indexes, verdicts, strict=True):
                out[i] = verdict
        return out

    def _check_command(
        self, db: sqlite3.Connection, registry: Registry, cid: str, todo: list[Published]
    ) -> list[str | None]:
        command = load_command(db, cid)
        rows = db.execute(
            "SELECT ra, pos, sites FROM declarations WHERE command=? ORDER BY ra", (cid,)
        ).fetchall()
        declared = {ra: [s for s, _ in json.loads(d)] for ra, _, d in rows} if command else {}
        scopes = {(p.kind, p.scope) for p in todo}
        sites = {(k, s): _scope_sites(registry, declared, k, s) for k, s in scopes}
        every_site = json.dumps(sorted({s for ss in sites.values() for s in ss}))
        data: dict[int, str] = {}
        if command is not None:
            slots = [p.slot for p in todo]
            data = dict(
                db.execute(
                    "SELECT slot, group_concat(pos) FROM batches WHERE slot >= ? AND slot <= ?"
                    " AND slot_s = ? AND state != 'equivocated'"
                    " AND +site IN (SELECT value FROM json_each(?)) GROUP BY slot",
                    (min(slots), max(slots), command.slot_s, every_site),
                )
            )
        facts = (command, tuple(sorted(registry.last_n.items())), tuple(r[:2] for r in rows))
        keys = [(p.key(), facts, _digest(data.get(p.slot, ""))) for p in todo]
        with self._lock:
            known = {key: self._verdicts[key] for key in keys if key in self._verdicts}
        missed = {key: p for key, p in zip(keys, todo, strict=True) if key not in known}
        if missed:
            known |= self._verdicts_of(db, registry, command, cid, sites, every_site, missed)
            if self.max_verdicts:
                with self._lock:
                    self._verdicts.update((key, known[key]) for key in missed)
                    self._trim()
        return [known[key] for key in keys]

    def _trim(self) -> None:
        excess = len(self._verdicts) - self.max_verdicts
        if excess > 0:
            for key in list(self._verdicts)[: max(excess, self.max_verdicts // 4)]:
                del self._verdicts[key]

    def _verdicts_of(
        self,
        db: sqlite3.Connection,
        registry: Registry,
        command: DrCommand | None,
        cid: str,
        sites: dict[tuple[str, str], list[str]],
        every_site: str,
        missed: dict[tuple[Any, ...], Published],
    ) -> dict[tuple[Any, ...], str | None]:
        """Check each missed result from the batches of its slots (one query)."""
        candidates: dict[tuple[str, int], list[Candidate]] = defaultdict(list)
        commitments: dict[tuple[str, int], dict[Ref, bytes]] = defaultdict(dict)
        if command is not None:
            slots = json.dumps(sorted({p.slot for p in missed.values()}))
            for slot, site, seq, txid, raw in db.execute(
                "SELECT b.slot, b.site, b.seq, l.txid, l.envelope FROM batches b"
                " JOIN log l ON l.pos = b.pos WHERE b.slot IN (SELECT value FROM json_each(?))"
                " AND b.slot_s = ? AND b.state != 'equivocated'"
                " AND +b.site IN (SELECT value FROM json_each(?))",
                (slots, command.slot_s, every_site),
            ):
                batch = _message(raw)
                assert isinstance(batch, ReadingsBatch)
                for c in batch.commitments:
                    candidates[(site, slot)].append(Candidate(bytes(txid), seq, site, c.meter))
                    commitments[(site, slot)][(bytes(txid), c.meter)] = c.commitment
        found: dict[tuple[Any, ...], str | None] = {}
        for key, p in missed.items():
            try:
                if p.contract != CONTRACT_VERSION:
                    raise TotalCheckError(
                        f"result of contract {p.contract!r}; this node runs {CONTRACT_VERSION}"
                    )
                if command is None:
                    raise TotalCheckError(f"command {cid} is not in this node's log")
                expected: set[Ref] = set()
                public: dict[Ref, bytes] = {}
                for site in sites[(p.kind, p.scope)]:
                    meters = registry.sites[site].meters if site in registry.sites else ()
                    chosen = select(candidates.get((site, p.slot), ()), meters)
                    expected |= {(c.txid, c.meter) for c in chosen.values()}
                    public.update(commitments.get((site, p.slot), {}))
                check_total(p.v_wh, p.r, p.ref_list(), public, expected)
                if p.v_wh != p.actual_wh:
                    raise TotalCheckError("the total's V differs from the result's actual_wh")
                found[key] = None
            except TotalCheckError as exc:
                found[key] = str(exc)
        return found


def check_result(db: sqlite3.Connection, registry: Registry, result: dict[str, Any]) -> None:
    """Check a published result (as `results` gives it) against this node's public data:
    it must cover exactly the readings public data says, and their commitments must sum to
    its (V, R). Raises `TotalCheckError` saying what is wrong."""
    verdict = TotalChecks().check(db, registry, [Published.of(result)])[0]
    if verdict is not None:
        raise TotalCheckError(verdict)

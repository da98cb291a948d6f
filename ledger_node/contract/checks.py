"""Checking a published total from public data alone: `check_result` for one, and
`TotalChecks` for many at once (one query for all their batches), remembering its verdicts
for a screen shown again.

A total (V, R) of a result covers a list of readings (txid, meter); anyone can check that
the list is exactly the readings public data says (the declared sites' registered meters,
the lowest seq per meter and slot) and that their Pedersen commitments sum to V·G + R·H.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ledger_node.contract.dr1 import (
    CONTRACT_VERSION,
    Candidate,
    Ref,
    TotalCheckError,
    check_total,
    select,
)
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.rules import load_command
from ledger_node.ledger.store import Db
from ledger_node.wire import DrCommand, ReadingsBatch, open_stored


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

    def check(self, db: Db, registry: Registry, results: Iterable[Published]) -> list[str | None]:
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
        self, db: Db, registry: Registry, cid: str, todo: list[Published]
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
        db: Db,
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
                batch = open_stored(raw)
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


def check_result(db: Db, registry: Registry, result: dict[str, Any]) -> None:
    """Check a published result (as `results` gives it) against this node's public data:
    it must cover exactly the readings public data says, and their commitments must sum to
    its (V, R). Raises `TotalCheckError` saying what is wrong."""
    verdict = TotalChecks().check(db, registry, [Published.of(result)])[0]
    if verdict is not None:
        raise TotalCheckError(verdict)

"""The after-check every fault scenario ends with (issue 10):

1. every batch a gateway stored (its state database: the outbox and its next seq) or
   published (what the tap saw) is in every node's log exactly once, or that node
   refused it with a stated reason (a `refused (REASON): readings by GW: slot S` line in
   its log); no seq below a gateway's next seq is found nowhere (lost), and no seq has
   two envelopes (reused);
2. every node's `mlg-node verify` passes;
3. the nodes' digests of the slots they have all closed agree.

`settle` waits (with the parts running) until (1) holds for every batch stored so far;
`after_check` then looks again at the stopped parts and runs (2) and (3).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ledger_node.ledger.store import connect
from ledger_node.localnet.network import LocalNet
from ledger_node.wire import ReadingsBatch, open_stored
from tests.faults.tap import Tap

REFUSED = re.compile(rb"refused \((\w+)\): readings by (\S+): slot (\d+)")

Key = tuple[str, int]
"""(gateway, seq)."""


@dataclass
class Findings:
    """What the after-check found; `problems` empty means it holds."""

    batches: int = 0
    """Gateway batches checked (every node was asked about each)."""
    held: Counter[str] = field(default_factory=Counter)
    """Per node: batches it holds."""
    refused: Counter[str] = field(default_factory=Counter)
    """Per `node:reason`: batches it refused, with that reason."""
    problems: list[str] = field(default_factory=list)
    closed_slots: int = 0
    """Slots every node has closed, whose digests were compared."""
    verified: list[str] = field(default_factory=list)

    def figures(self) -> str:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(self.refused.items())) or "none"
        return (
            f"after-check: {self.batches} gateway batches; held per node "
            f"{dict(sorted(self.held.items()))}; refused {refused}; {self.closed_slots} closed "
            f"slot digests compared; verify OK on {', '.join(self.verified) or 'no node'}; "
            f"{len(self.problems)} problems"
        )


def _gateway_db(path: Path) -> tuple[int, dict[int, bytes]]:
    """A gateway's next seq and the envelopes still in its outbox."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
        stored = {int(s): bytes(e) for s, e in db.execute("SELECT seq, envelope FROM batches")}
    finally:
        db.close()
    return (int(row[0]) if row else 0), stored


def _node_batches(db_path: Path) -> dict[Key, set[bytes]]:
    """(gateway, seq) → the txids a node holds for it (its batches and its evidence of a
    reused seq)."""
    out: dict[Key, set[bytes]] = defaultdict(set)
    db = connect(db_path, readonly=True)
    try:
        for gw, seq, txid in db.execute(
            "SELECT b.gateway, b.seq, l.txid FROM batches b JOIN log l ON l.pos = b.pos"
        ):
            out[(gw, int(seq))].add(bytes(txid))
        for raw, txid in db.execute(
            "SELECT l.envelope, l.txid FROM equivocations e JOIN log l ON l.pos = e.pos"
            " WHERE l.type = 'readings' AND l.envelope IS NOT NULL"
        ):
            message = open_stored(bytes(raw))
            assert isinstance(message, ReadingsBatch)
            out[(message.gateway, message.seq)].add(bytes(txid))
    finally:
        db.close()
    return out


def _refusals(log: Path) -> dict[tuple[str, int], set[str]]:
    """(gateway, slot) → the reasons a node's log gives for refusing its batches."""
    out: dict[tuple[str, int], set[str]] = defaultdict(set)
    if log.exists():
        for reason, gw, slot in REFUSED.findall(log.read_bytes()):
            out[(gw.decode(), int(slot))].add(reason.decode())
    return out


@dataclass
class Known:
    """Every batch of the gateways found anywhere: (gateway, seq) → {txid: slot}."""

    batches: dict[Key, dict[bytes, int]]
    next_seq: dict[str, int]


def known_batches(
    gateway_dbs: dict[str, Path], tap: Tap | None, net: LocalNet, gateways: set[str]
) -> Known:
    """The batches of `gateways` from their databases, the tap and the nodes' logs."""
    found: dict[Key, dict[bytes, int]] = defaultdict(dict)
    next_seq = {}
    for gw, path in gateway_dbs.items():
        next_seq[gw], stored = _gateway_db(path)
        for seq, raw in stored.items():
            message = open_stored(raw)
            assert isinstance(message, ReadingsBatch)
            found[(gw, seq)][hashlib.sha256(raw).digest()] = message.slot_start
    for key, envelopes in (tap.snapshot() if tap is not None else {}).items():
        if key[0] not in gateways:
            continue
        for raw, message in envelopes.items():
            found[key][hashlib.sha256(raw).digest()] = message.slot_start
    for node in net.nodes:
        db = connect(net.db(node), readonly=True)
        try:
            for gw, seq, slot, txid in db.execute(
                "SELECT b.gateway, b.seq, b.slot, l.txid FROM batches b JOIN log l ON l.pos = b.pos"
            ):
                if gw in gateways:
                    found[(gw, int(seq))][bytes(txid)] = int(slot)
        finally:
            db.close()
    return Known(dict(found), next_seq)


def reconcile(net: LocalNet, known: Known, below: dict[str, int]) -> Findings:
    """Check (1) for every seq under `below` (per gateway)."""
    f = Findings()
    for gw, top in sorted(below.items()):
        for seq in range(top):
            if (gw, seq) not in known.batches:
                f.problems.append(f"{gw} seq {seq}: stored (next seq {top}) but found nowhere")
    wanted = {k: v for k, v in known.batches.items() if k[1] < below.get(k[0], 0)}
    for key, txids in sorted(wanted.items()):
        if len(txids) > 1:
            f.problems.append(f"{key[0]} seq {key[1]}: {len(txids)} envelopes (seq reused)")
    f.batches = len(wanted)
    for node in net.nodes:
        holds = _node_batches(net.db(node))
        refusals = _refusals(net.log_path(node))
        for (gw, seq), txids in sorted(wanted.items()):
            have = holds.get((gw, seq), set())
            if have and have <= txids.keys() and len(have) == 1:
                f.held[node] += 1
                continue
            if have:
                f.problems.append(f"{node} holds {gw} seq {seq} as {len(have)} other envelopes")
                continue
            reasons = set().union(*(refusals.get((gw, slot), set()) for slot in txids.values()))
            if reasons:
                f.refused[f"{node}:{'/'.join(sorted(reasons))}"] += 1
            else:
                slots = sorted(set(txids.values()))
                f.problems.append(f"{node} lacks {gw} seq {seq} (slot {slots}) and never said why")
    return f


def settle(
    net: LocalNet,
    gateway_dbs: dict[str, Path],
    tap: Tap | None,
    timeout_s: float,
    alive: Callable[[], object] | None = None,
    below: dict[str, int] | None = None,
    min_closed: int = 1,
) -> tuple[Findings, dict[str, int]]:
    """Wait until every batch stored so far (or every seq under `below`) is held or
    refused by every node, and `min_closed` slots are closed on all; returns the last
    findings and the seqs it covered (by default each gateway's next seq when it began)."""
    if below is None:
        below = {gw: _gateway_db(path)[0] for gw, path in gateway_dbs.items()}
    deadline = time.monotonic() + timeout_s
    while True:
        if alive is not None:
            alive()
        try:
            findings = reconcile(net, known_batches(gateway_dbs, tap, net, set(below)), below)
            closed = _common_closed(net)
            if len(closed) < min_closed:
                findings.problems.append(f"{len(closed)} slots closed on every node so far")
        except sqlite3.Error as exc:  # a database being written at that instant
            findings = Findings(problems=[f"not readable yet: {exc}"])
        if not findings.problems or time.monotonic() > deadline:
            return findings, below
        time.sleep(0.5)


def _closed_digests(db_path: Path) -> dict[int, tuple[int, bytes]]:
    db = connect(db_path, readonly=True)
    try:
        return {
            int(slot): (int(n), bytes(d))
            for slot, n, d in db.execute(
                "SELECT slot, digest_count, digest FROM slots WHERE digest IS NOT NULL"
            )
        }
    finally:
        db.close()


def _common_closed(
    net: LocalNet, closed: list[dict[int, tuple[int, bytes]]] | None = None
) -> set[int]:
    """The slots every node has closed."""
    if closed is None:
        closed = [_closed_digests(net.db(node)) for node in net.nodes]
    return set.intersection(*(set(c) for c in closed)) if closed else set()


def after_check(
    net: LocalNet,
    gateway_dbs: dict[str, Path],
    tap: Tap | None,
    below: dict[str, int],
    *,
    min_closed: int = 1,
) -> Findings:
    """(1) for the seqs under `below`, (2) and (3), on the stopped nodes."""
    f = reconcile(net, known_batches(gateway_dbs, tap, net, set(below)), below)
    for node in net.nodes:
        done = net.cli(node, "verify")
        if done.returncode == 0:
            f.verified.append(node)
        else:
            f.problems.append(f"{node}: verify exit {done.returncode}: {done.stdout.strip()}")
    closed = [_closed_digests(net.db(node)) for node in net.nodes]
    common = _common_closed(net, closed)
    f.closed_slots = len(common)
    for slot in sorted(common):
        values = {node: c[slot] for node, c in zip(net.nodes, closed, strict=True)}
        if len(set(values.values())) > 1:
            counts = {n: v[0] for n, v in values.items()}
            f.problems.append(f"slot {slot}: the nodes' digests differ (batches {counts})")
    if len(common) < min_closed:
        f.problems.append(f"only {len(common)} slots closed on every node (want {min_closed})")
    return f

"""`mlg-node verify`: re-check a node's database from its log up.

The log is replayed, entry by entry, into a scratch database through the same `Ledger`
that admitted it (every signature, author, role, sequence and rule again; only arrival
times are taken as recorded). The first entry that does not hash to its txid or is not
accepted again is named with what is wrong. Then the stored Merkle nodes, the node's own
signed checkpoints, every derived table, the digests of closed slots and the contract's
results are compared with what the replay produced. One read transaction: a consistent
snapshot even while the node runs: results of commands it queued to settle again (in the
transaction that changed their inputs) are not judged; every other result must equal its
recomputation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger_node.contract.checks import check_result
from ledger_node.contract.dr1 import TotalCheckError, reward
from ledger_node.contract.settlement import Settlement, results, rewards, unsettled
from ledger_node.ledger import Ledger, LedgerSettings, load_command
from ledger_node.ledger.decrypt import open_sealed
from ledger_node.ledger.store import DERIVED_TABLES, Db, connect
from ledger_node.ledger.txlog import Entry, MerkleLog
from ledger_node.network.witness import slot_digest
from ledger_node.shared.clock import FixedClock
from ledger_node.shared.keys import Identity
from ledger_node.wire import WireError, open_message


@dataclass
class Report:
    entries: int = 0
    pruned: int = 0
    """Entries archived out of the log (`retention`): taken by their leaves and rows."""
    problems: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(db: Db, me: Identity, progress: Callable[[int, int], None] | None = None) -> Report:
    """Verify the node database `db` (opened read-only) of node `me`."""
    report = Report()
    db.execute("BEGIN")
    try:
        scratch = connect(":memory:")
        clock = FixedClock()
        ledger = Ledger(scratch, me, clock, LedgerSettings(max_message_bytes=16 * 1024 * 1024))
        with ledger.transaction():
            replayed = _replay(db, ledger, clock, report, progress)
            while replayed and open_sealed(ledger, 10_000):
                pass
            if replayed:
                _as_far_as_decrypted(db, scratch)
        if replayed:
            _compare_tree(db, scratch, report)
            _check_checkpoints(db, ledger, me, report)
            _compare_tables(db, scratch, report)
            _compare_slots(db, scratch, report)
            _compare_results(db, ledger, report)
    finally:
        db.execute("ROLLBACK")
    return report


def _replay(
    db: Db,
    ledger: Ledger,
    clock: FixedClock,
    report: Report,
    progress: Callable[[int, int], None] | None,
) -> bool:
    missing = _first_missing(db)
    if missing is not None:
        report.problems.append(f"entry {missing} is missing from the log (its row was deleted)")
        return False
    src = MerkleLog(db)
    total = src.size
    for entry in src.entries():
        where = f"entry {entry.pos} ({entry.type} by {entry.author}, txid {entry.txid.hex()[:16]}…)"
        clock.set(entry.received_at)
        if entry.envelope is None:
            if _replay_pruned(db, ledger, entry):
                report.pruned += 1
                continue
            if not _replay_shredded(db, ledger, entry.pos, entry.txid, entry.type, entry.author):
                report.problems.append(
                    f"{where}: its envelope is gone and no shred fact or pruning covers it"
                )
                return False
            continue
        envelope = bytes(entry.envelope)
        if hashlib.sha256(envelope).digest() != entry.txid:
            report.problems.append(
                f"{where}: the envelope does not hash to its txid: the entry was changed after it "
                "was stored"
            )
            return False
        if entry.pos == 0:
            try:
                ledger.start(envelope)
            except Exception as exc:
                report.problems.append(f"{where}: not a valid genesis: {exc}")
                return False
        else:
            outcome = ledger.admit(envelope, "replay", entry.received_at)
            if outcome.status not in ("accepted", "equivocation") or outcome.pos not in (
                entry.pos,
                None,
            ):
                why = outcome.reason or outcome.status
                report.problems.append(f"{where}: refused on replay ({why}); see the log above")
                return False
            if ledger.log.size != entry.pos + 1:
                report.problems.append(f"{where}: replay put it at another position")
                return False
        report.entries += 1
        if progress is not None and entry.pos % 10_000 == 0:
            progress(entry.pos, total)
    report.checked.append(f"{report.entries} entries: hashes, signatures, authors and rules")
    if report.pruned:
        report.checked.append(f"{report.pruned} archived entries: by their leaves in the tree")
    return True


def _first_missing(db: Db) -> int | None:
    """The first position below the log's last that has no entry, if any."""
    count, low, top = db.execute("SELECT COUNT(*), MIN(pos), MAX(pos) FROM log").fetchone()
    if top is None or count == top + 1:
        return None
    if low > 0:
        return 0
    row = db.execute(
        "SELECT a.pos + 1 FROM log a WHERE NOT EXISTS (SELECT 1 FROM log b WHERE b.pos ="
        " a.pos + 1) ORDER BY a.pos LIMIT 1"
    ).fetchone()
    return int(row[0])


def _replay_pruned(db: Db, ledger: Ledger, entry: Entry) -> bool:
    """Copy an entry `retention.prune` archived: its leaf into the tree, its rows as stored
    (they cannot be rebuilt without the envelope; the leaf binds them to the tree)."""
    row = db.execute(
        "SELECT b.gateway, b.seq, b.site, b.slot, b.slot_s, b.epoch, b.state, l.leaf"
        " FROM pruned p JOIN batches b ON b.pos = p.pos JOIN log l ON l.pos = p.pos"
        " WHERE p.pos = ?",
        (entry.pos,),
    ).fetchone()
    if row is None or row[7] is None or entry.type != "readings":
        return False
    pos = ledger.log.append_shredded(
        entry.txid, entry.type, entry.author, bytes(row[7]), entry.received_at, entry.source
    )
    scratch = ledger.db
    scratch.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (pos, *row[:7]))
    for table in ("readings", "control_actions"):
        rows = db.execute(f"SELECT * FROM {table} WHERE pos = ?", (pos,)).fetchall()  # noqa: S608
        if rows:
            marks = ", ".join("?" * len(rows[0]))
            scratch.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608
    scratch.execute("INSERT INTO pruned VALUES (?)", (pos,))
    ledger.touch_slot(row[3], row[3] + row[4])
    return True


def _replay_shredded(db: Db, ledger: Ledger, pos: int, txid: bytes, kind: str, author: str) -> bool:
    row = db.execute(
        "SELECT e.site, e.epoch, e.members, e.gateway, l.leaf FROM epochs e JOIN shreds s"
        " ON s.site = e.site AND s.epoch = e.epoch JOIN log l ON l.pos = e.pos"
        " WHERE e.pos = ? AND s.pos > ?",
        (pos, pos),
    ).fetchone()
    if row is None or row[4] is None or kind != "epoch_key":
        return False
    ledger.replay_shredded(txid, author, bytes(row[4]), (row[0], row[1], row[2], row[3]))
    return True


def _as_far_as_decrypted(db: Db, scratch: Db) -> None:
    """Leave sealed in the copy what the node has not decrypted yet (a running node opens
    its batches shortly after it commits them): only what it did decrypt is compared."""
    sealed = [row[0] for row in db.execute("SELECT pos FROM batches WHERE state='sealed'")]
    for table in ("readings", "control_actions"):
        scratch.executemany(f"DELETE FROM {table} WHERE pos=?", [(p,) for p in sealed])  # noqa: S608
    scratch.executemany(
        "UPDATE batches SET state='sealed' WHERE pos=? AND state='open'", [(p,) for p in sealed]
    )


def _compare_tree(db: Db, scratch: Db, report: Report) -> None:
    stored = dict(db.execute("SELECT id, hash FROM tree"))
    rebuilt = dict(scratch.execute("SELECT id, hash FROM tree"))
    for node_id in sorted(stored.keys() | rebuilt.keys()):
        if stored.get(node_id) != rebuilt.get(node_id):
            level, index = node_id >> 40, node_id & ((1 << 40) - 1)
            report.problems.append(
                f"Merkle node level {level} index {index}: stored"
                f" {_hex(stored.get(node_id))}, recomputed {_hex(rebuilt.get(node_id))}"
            )
            return
    report.checked.append(f"{len(stored)} stored Merkle nodes")


def _hex(value: bytes | None) -> str:
    return "nothing" if value is None else bytes(value).hex()[:16] + "…"


def _check_checkpoints(db: Db, ledger: Ledger, me: Identity, report: Report) -> None:
    rows = db.execute(
        "SELECT size, root, envelope FROM checkpoints WHERE node=? ORDER BY size", (me.name,)
    ).fetchall()
    keys = {me.name: me.signing_key.verify_key}
    for size, root, envelope in rows:
        try:
            open_message(bytes(envelope), keys, len(envelope), frozenset({"checkpoint"}))
        except WireError as exc:
            report.problems.append(f"own checkpoint at size {size}: {exc}")
            continue
        if size > ledger.log.size or ledger.log.root(size) != bytes(root):
            report.problems.append(
                f"own checkpoint at size {size} signed root {bytes(root).hex()[:16]}…, the log"
                " gives another: the log was changed after the checkpoint"
            )
    report.checked.append(f"{len(rows)} own checkpoints against the log's roots")


def _compare_tables(db: Db, scratch: Db, report: Report) -> None:
    for table in DERIVED_TABLES:
        columns = len(db.execute(f"PRAGMA table_info({table})").fetchall())
        order = ", ".join(str(i) for i in range(1, columns + 1))
        query = f"SELECT * FROM {table} ORDER BY {order}"  # noqa: S608 - fixed table names
        stored = db.execute(query).fetchall()
        rebuilt = scratch.execute(query).fetchall()
        if stored == rebuilt:
            continue
        for a, b in zip(
            stored + [None] * len(rebuilt), rebuilt + [None] * len(stored), strict=False
        ):
            if a != b:
                report.problems.append(
                    f"derived table {table}: stored {_row(a)}, the log gives {_row(b)}"
                )
                break
    report.checked.append(f"derived tables: {', '.join(DERIVED_TABLES)}")


def _row(row: tuple[object, ...] | None) -> str:
    if row is None:
        return "no row"
    return (
        "("
        + ", ".join(bytes(v).hex()[:12] + "…" if isinstance(v, bytes) else repr(v) for v in row)
        + ")"
    )


def _compare_slots(db: Db, scratch: Db, report: Report) -> None:
    rows = db.execute(
        "SELECT slot, digest_count, digest FROM slots WHERE digest IS NOT NULL"
    ).fetchall()
    for slot, n, digest in rows:
        d = slot_digest(scratch, slot)
        if d.digest != bytes(digest) or d.count != n:
            report.problems.append(
                f"slot {slot}: stored digest of {n} batches, the log gives {d.count}"
            )
    report.checked.append(f"{len(rows)} closed slots' digests")


def _compare_results(db: Db, ledger: Ledger, report: Report) -> None:
    """Every stored result against its recomputation, except those of commands the node
    queued to settle again (a running node settles within a second of a change)."""
    queued = unsettled(db)
    commands = [
        row[0] for row in db.execute("SELECT DISTINCT command FROM results") if row[0] not in queued
    ]
    if queued:
        report.checked.append(f"{len(queued)} commands being settled: their results not judged")
    Settlement(ledger).refresh(commands)
    checked = 0
    for command in commands:
        stored = {(r["slot"], r["kind"], r["scope"]): r for r in results(db, command)}
        rebuilt = {(r["slot"], r["kind"], r["scope"]): r for r in results(ledger.db, command)}
        for key, row in sorted(stored.items()):
            checked += 1
            again = rebuilt.get(key)
            if again == row:
                continue
            try:
                check_result(ledger.db, ledger.registry, row)
            except TotalCheckError as exc:
                report.problems.append(
                    f"result {command} slot {key[0]} {key[1]} {key[2]}: differs from a"
                    f" recomputation and fails the public check: {exc}"
                )
                continue
            shredded = ledger.db.execute(
                "SELECT 1 FROM batches WHERE state='shredded' AND slot=?", (key[0],)
            ).fetchone()
            if shredded is None:
                report.problems.append(
                    f"result {command} slot {key[0]} {key[1]} {key[2]}: differs from a"
                    " recomputation: altered"
                )
    report.checked.append(f"{checked} contract results")
    _check_rewards(db, commands, report)


def _check_rewards(db: Db, commands: list[str], report: Report) -> None:
    """Each settled reward against the one its stored AC results give (they are written
    together): a reward changed after settlement is named."""
    checked = 0
    for command in commands:
        cmd = load_command(db, command)
        if cmd is None:
            continue
        targets = dict(cmd.targets)
        for stored in rewards(db, command):
            checked += 1
            ac = stored["ac"]
            delivered = [
                r["delivered_wh"]
                for r in sorted(results(db, command, scope=ac), key=lambda r: r["slot"])
                if r["kind"] == "ac"
            ]
            again = reward(cmd, ac, targets.get(ac, 0), delivered)
            if (again.reward_yen, again.credited_wh, again.penalised_wh) != (
                stored["reward_yen"],
                stored["credited_wh"],
                stored["penalised_wh"],
            ):
                report.problems.append(
                    f"reward of {ac} for {command}: stored {stored['reward_yen']} yen"
                    f" ({stored['credited_wh']} Wh credited), its results give"
                    f" {again.reward_yen} yen ({again.credited_wh} Wh): altered"
                )
    report.checked.append(f"{checked} rewards against their results")

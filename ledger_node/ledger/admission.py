"""The ledger's state machine: admit a signed fact, check it, append it, apply it.

``admit`` is the one way in, for facts from the broker, from peers (anti-entropy), from
this node itself, and from the log during `verify`'s replay:

size limit → envelope → txid already known (replay: a no-op, before any crypto) → signer
known → signature → canonical body, type, author → the author's role → the fact's own
rules against the registry and what is already held → append to the Merkle log → apply to
the derived state.

Facts whose predecessor is missing (a registry fact out of order, a declaration before
its command, an epoch key before its group) are held and tried again after every fact
that could unblock them. Every refusal has a reason, is logged (`mlg.node.ingest`) and
counted; nothing refused changes any state. Decryption is separate (`open_sealed`): it
runs after the commit that acknowledges the batch, so a busy member node does not slow
its acknowledgements.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import nacl.exceptions
import nacl.secret
import nacl.signing

from ledger_node.ledger.groups import Groups, make_epoch_key
from ledger_node.ledger.refusals import (
    BAD_PAYLOAD,
    EQUIVOCATION,
    FUTURE,
    LATE,
    NOT_ALLOWED,
    PENDING_FULL,
    REPLAY,
    STALE,
    Held,
    Refused,
)
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import count, transaction
from ledger_node.ledger.txlog import MerkleLog
from ledger_node.shared.clock import Clock
from ledger_node.shared.keys import Identity
from ledger_node.wire import (
    AsReport,
    DrCommand,
    DrDeclaration,
    Envelope,
    EpochKey,
    EpochShred,
    Genesis,
    Message,
    ReadingsBatch,
    SlotPayload,
    WireError,
    open_body,
    open_message,
    parse,
    pedersen,
    seal,
    verify,
)
from ledger_node.wire.errors import UnknownSignerError
from ledger_node.wire.registry import REGISTRY_TYPES

log = logging.getLogger("mlg.node.ingest")

LEDGER_TYPES = frozenset(
    {
        *REGISTRY_TYPES,
        ReadingsBatch.TYPE,
        EpochKey.TYPE,
        EpochShred.TYPE,
        DrCommand.TYPE,
        DrDeclaration.TYPE,
        AsReport.TYPE,
    }
)
"""Types that are ledger facts (checkpoints, co-signatures, sync messages and high-water
marks are not: they travel between nodes and gateways and are not logged)."""

LIVE_SOURCES = frozenset({"mqtt", "local"})
"""Sources whose arrival time counts: lateness and gate closure are judged on them. Facts
fetched from a peer were judged by that peer when they arrived; the replay of `verify`
re-checks everything but time."""

GATE_CLOSED = "gate_closed"
RECENT_TXIDS = 65_536
"""Txids of recently accepted facts kept in memory: a resent batch costs no signature
check and no database read."""


class _Replay(Exception):
    pass


@dataclass(frozen=True, slots=True)
class LedgerSettings:
    max_message_bytes: int = 64 * 1024
    late_after_s: int = 6 * 3600
    """Readings for a slot are accepted until this long after it ends (clock seconds);
    then the slot is closed and its digest final. Long enough for a gateway's outbox to
    bridge a broker outage; later batches are refused (`late`)."""
    future_slack_s: int = 300
    """Readings for a slot ending more than this after now are refused."""
    max_pending: int = 1000
    """Facts held for a predecessor at most; more are refused (`pending_full`)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message: accepted, replay, equivocation, held or refused."""

    status: str
    reason: str = ""
    txid: bytes = b""
    kind: str = ""
    pos: int | None = None
    message: Message | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "accepted"


@dataclass(frozen=True, slots=True)
class BatchInfo:
    gateway: str
    seq: int
    slot: int


class Ledger:
    """The log and everything derived from it, on one writer connection.

    Call `admit` inside a `store.transaction`; after a rollback, call `reload`.
    """

    def __init__(
        self, db: sqlite3.Connection, me: Identity, clock: Clock, settings: LedgerSettings
    ) -> None:
        self.db = db
        self.me = me
        self.clock = clock
        self.settings = settings
        self.log = MerkleLog(db)
        self.registry = Registry(db)
        self.groups = Groups(db, me)
        # What changed, for the node's service to act on after the commit.
        self.new_batches: list[BatchInfo] = []
        self.registry_changed = False
        self.opened_slots: set[int] = set()
        self.changed_commands: set[str] = set()
        self.authored: list[tuple[Message, bytes]] = []
        self.shredded_now = False
        self._counts: Counter[str] = Counter()
        self._slots: dict[int, tuple[int, int]] = {}
        self._recent: dict[bytes, None] = {}
        self.reload()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction that also stores the counters and slot records gathered in
        memory; after a failure, everything in memory is read again."""
        try:
            with transaction(self.db):
                yield
                self.flush()
        except BaseException:
            self.reload()
            raise

    def flush(self) -> None:
        """Write the counters and slot records gathered since the last flush."""
        for name, n in self._counts.items():
            count(self.db, name, n)
        self._counts.clear()
        if self._slots:
            self.db.executemany(
                "INSERT INTO slots (slot, count, closes_at) VALUES (?, ?, ?) ON CONFLICT (slot)"
                " DO UPDATE SET count = count + excluded.count, closes_at ="
                " max(closes_at, excluded.closes_at), digest = NULL, announced = 0",
                [(slot, n, closes) for slot, (n, closes) in self._slots.items()],
            )
            self._slots.clear()

    def count(self, name: str) -> None:
        self._counts[name] += 1

    def reload(self) -> None:
        """Re-read everything kept in memory (after a rollback)."""
        self._counts.clear()
        self._slots.clear()
        self._recent.clear()
        self.log.reload()
        self.registry.reload()
        self.groups.reload()
        self.pending = int(self.db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])
        self._openable = set(self.groups.boxes)

    # -- the way in ----------------------------------------------------------------------

    def start(self, genesis: bytes) -> None:
        """Admit the genesis as entry 0 of a new log, or check that the log begins with it."""
        txid = hashlib.sha256(genesis).digest()
        if self.log.size:
            first = self.log.entry(0)
            if first is None or first.txid != txid:
                raise Refused(
                    NOT_ALLOWED,
                    "this database belongs to another network (its first entry is not "
                    "the configured genesis)",
                )
            return
        envelope = parse(genesis, max(len(genesis), self.settings.max_message_bytes))
        message = open_body(envelope, frozenset({Genesis.TYPE}))
        assert isinstance(message, Genesis)
        tso = next(o for o in message.orgs if o.id == message.by)
        verify(envelope, {message.by: nacl.signing.VerifyKey(tso.ed25519)})
        pos = self.log.append(txid, Genesis.TYPE, message.by, genesis, self.clock.now(), "local")
        self.registry.apply_genesis(message, pos)
        self.registry_changed = True
        self.count(f"accepted:{Genesis.TYPE}")

    def admit(
        self,
        raw: bytes,
        source: str,
        received_at: float | None = None,
        hold_unknown: bool = False,
    ) -> Outcome:
        """Check one message and, if it is a valid new fact, append and apply it.

        Never raises for bad input. `hold_unknown` keeps a fact from an unknown signer
        aside (facts can arrive before the registry fact naming their author)."""
        outcome = self._admit(raw, source, received_at, hold_unknown, retry=False)
        if outcome.ok and outcome.kind != ReadingsBatch.TYPE and self.pending:
            self._retry_pending()
        return outcome

    def _admit(
        self,
        raw: bytes,
        source: str,
        received_at: float | None,
        hold_unknown: bool,
        retry: bool,
    ) -> Outcome:
        now = self.clock.now() if received_at is None else received_at
        try:
            envelope = parse(raw, self.settings.max_message_bytes)
        except WireError as exc:
            return self._refuse(exc.reason, str(exc))
        txid = envelope.txid
        if txid in self._recent or (not retry and self.pending and self._is_pending(txid)):
            self.count(f"refused:{REPLAY}")
            return Outcome("replay", REPLAY, txid)
        try:
            verify(envelope, self.registry.verify_keys)
            message = open_body(envelope, LEDGER_TYPES)
            # Readings find a replay by their (gateway, seq) key, other facts here.
            if not isinstance(message, ReadingsBatch) and self.log.pos_of(txid) is not None:
                raise _Replay
        except UnknownSignerError as exc:
            if hold_unknown:
                return self._hold(raw, txid, "unknown_signer", str(exc), now, source, retry)
            return self._refuse(exc.reason, str(exc), txid)
        except WireError as exc:
            return self._refuse(exc.reason, str(exc), txid)
        except _Replay:
            self.count(f"refused:{REPLAY}")
            return Outcome("replay", REPLAY, txid)
        try:
            pos = self._apply(message, envelope, txid, now, source)
        except _Replay:
            self.count(f"refused:{REPLAY}")
            return Outcome("replay", REPLAY, txid)
        except Refused as exc:
            return self._refuse(exc.reason, f"{message.TYPE} by {message.author}: {exc}", txid)
        except Held as exc:
            return self._hold(raw, txid, exc.reason, str(exc), now, source, retry)
        if pos is None:
            return Outcome("equivocation", EQUIVOCATION, txid, message.TYPE, None, message)
        self.count(f"accepted:{message.TYPE}")
        recent = self._recent
        recent[txid] = None
        if len(recent) > RECENT_TXIDS:
            del recent[next(iter(recent))]
        return Outcome("accepted", "", txid, message.TYPE, pos, message)

    def open_signed(self, raw: bytes, kinds: frozenset[str]) -> tuple[Envelope, Message] | None:
        """Open a message between nodes (not a ledger fact) signed by a registered party;
        None, counted and logged, if it is not valid."""
        try:
            return open_message(
                raw, self.registry.verify_keys, self.settings.max_message_bytes, kinds
            )
        except WireError as exc:
            self.count(f"refused:{exc.reason}")
            log.warning("refused %s (%s): %s", "/".join(sorted(kinds)), exc.reason, exc)
            return None

    def author(self, message: Message) -> Outcome:
        """Sign a fact as this node, admit it, and queue it for publishing if accepted."""
        raw = seal(message.to_body(), self.me.name, self.me.signing_key)
        outcome = self.admit(raw, "local")
        if outcome.ok:
            self.authored.append((message, raw))
        return outcome

    def _refuse(self, reason: str, detail: str, txid: bytes = b"") -> Outcome:
        self.count(f"refused:{reason}")
        log.warning("refused (%s): %s", reason, detail)
        return Outcome("refused", reason, txid)

    def _hold(
        self,
        raw: bytes,
        txid: bytes,
        reason: str,
        detail: str,
        now: float,
        source: str,
        retry: bool,
    ) -> Outcome:
        if not retry:
            if self.pending >= self.settings.max_pending:
                return self._refuse(PENDING_FULL, f"cannot hold more facts: {detail}", txid)
            self.count(f"held:{reason}")
            log.info("held (%s): %s", reason, detail)
        self.db.execute(
            "INSERT OR REPLACE INTO pending VALUES (?, ?, ?, ?, ?)",
            (txid, raw, reason, now, source),
        )
        self.pending += not retry
        return Outcome("held", reason, txid)

    def _is_pending(self, txid: bytes) -> bool:
        return self.db.execute("SELECT 1 FROM pending WHERE txid=?", (txid,)).fetchone() is not None

    def _retry_pending(self) -> None:
        progress = True
        while progress and self.pending:
            progress = False
            rows = self.db.execute(
                "SELECT txid, envelope, received_at, source FROM pending ORDER BY received_at"
            ).fetchall()
            for txid, raw, received_at, source in rows:
                outcome = self._admit(raw, source, received_at, True, retry=True)
                if outcome.status != "held":
                    self.db.execute("DELETE FROM pending WHERE txid=?", (txid,))
                    self.pending -= 1
                    progress = True

    # -- the rules of each fact ------------------------------------------------------------

    def _apply(
        self, message: Message, envelope: Envelope, txid: bytes, now: float, source: str
    ) -> int | None:
        """Check and apply; return the new log position, or None for kept evidence."""
        kind = message.TYPE
        if isinstance(message, ReadingsBatch):
            return self._readings(message, envelope, txid, now, source)
        if kind == Genesis.TYPE:
            raise Refused(NOT_ALLOWED, "a genesis is only the first entry of a log")
        self.registry.check_author(kind, message.author)
        if kind in REGISTRY_TYPES:
            n: int = message.n  # type: ignore[attr-defined]
            first = self._keyed(message.author, f"n:{n}")
            try:
                self.registry.check_sequence(message.author, n, first)
            except Refused as exc:
                if exc.reason == EQUIVOCATION and first is not None:
                    return self._equivocation(message, f"n:{n}", first, envelope, txid, now, source)
                raise
            pos = self._append(message, envelope, txid, now, source)
            self.registry.apply(message, pos)
            self._key(message.author, f"n:{n}", pos)
            self.registry_changed = True
            return pos
        if isinstance(message, EpochKey):
            return self._epoch_key(message, envelope, txid, now, source)
        if isinstance(message, EpochShred):
            return self._shred(message, envelope, txid, now, source)
        if isinstance(message, DrCommand):
            return self._command(message, envelope, txid, now, source)
        if isinstance(message, DrDeclaration):
            return self._declaration(message, envelope, txid, now, source)
        if isinstance(message, AsReport):
            return self._as_report(message, envelope, txid, now, source)
        raise Refused(NOT_ALLOWED, f"{kind} is not a ledger fact")

    def _append(
        self, message: Message, envelope: Envelope, txid: bytes, now: float, source: str
    ) -> int:
        return self.log.append(txid, message.TYPE, message.author, envelope.raw, now, source)

    def _keyed(self, author: str, key: str) -> int | None:
        row = self.db.execute(
            "SELECT pos FROM keyed WHERE author=? AND key=?", (author, key)
        ).fetchone()
        return None if row is None else int(row[0])

    def _key(self, author: str, key: str, pos: int) -> None:
        self.db.execute("INSERT INTO keyed VALUES (?, ?, ?)", (author, key, pos))

    def _equivocation(
        self,
        message: Message,
        key: str,
        first: int,
        envelope: Envelope,
        txid: bytes,
        now: float,
        source: str,
        slot: int | None = None,
    ) -> int | None:
        """Keep the second fact under a used key as evidence (one per key), in the log so
        that every replica learns of it."""
        author = message.author
        seen = self.db.execute(
            "SELECT COUNT(*) FROM equivocations WHERE author=? AND key=?", (author, key)
        ).fetchone()[0]
        if seen:
            raise Refused(EQUIVOCATION, f"{author} {key}: more variants (one is kept)")
        pos = self._append(message, envelope, txid, now, source)
        self.db.execute(
            "INSERT INTO equivocations VALUES (?, ?, ?, ?, ?)", (pos, author, key, first, slot)
        )
        self.count(f"refused:{EQUIVOCATION}")
        log.error(
            "EQUIVOCATION: %s signed two different facts for %s (entries %d and %d); "
            "both kept as evidence, neither counts",
            author,
            key,
            first,
            pos,
        )
        return None

    def _readings(
        self, batch: ReadingsBatch, envelope: Envelope, txid: bytes, now: float, source: str
    ) -> int | None:
        site_id = self.registry.gateway_sites.get(batch.gateway)
        if site_id is None:
            raise Refused(NOT_ALLOWED, f"{batch.gateway} is not a registered gateway")
        if site_id != batch.site:
            raise Refused(NOT_ALLOWED, f"{batch.gateway} is registered for {site_id}")
        site = self.registry.sites[site_id]
        unknown = [c.meter for c in batch.commitments if c.meter not in site.meters]
        if unknown:
            raise Refused(NOT_ALLOWED, f"meter {unknown[0]} is not registered for {site_id}")
        end = batch.slot_start + batch.slot_seconds
        if source in LIVE_SOURCES:
            if now > end + self.settings.late_after_s:
                raise Refused(
                    LATE, f"slot {batch.slot_start} closed at {end + self.settings.late_after_s}"
                )
            if end > now + self.settings.future_slack_s:
                raise Refused(FUTURE, f"slot {batch.slot_start} ends in the future ({end})")
        pos = self.log.size
        shredded = (batch.site, batch.epoch) in self.groups.shredded
        try:
            self.db.execute(
                "INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pos,
                    batch.gateway,
                    batch.seq,
                    batch.site,
                    batch.slot_start,
                    batch.slot_seconds,
                    batch.epoch,
                    "shredded" if shredded else "sealed",
                ),
            )
        except sqlite3.IntegrityError:
            if self.log.pos_of(txid) is not None:
                raise _Replay from None
            first = self.db.execute(
                "SELECT pos FROM batches WHERE gateway=? AND seq=?", (batch.gateway, batch.seq)
            ).fetchone()[0]
            self._equivocation(
                batch, f"seq:{batch.seq}", first, envelope, txid, now, source, batch.slot_start
            )
            self.db.execute("UPDATE batches SET state='equivocated' WHERE pos=?", (first,))
            self._touch_slot(batch.slot_start, end)
            return None
        self.log.append(txid, ReadingsBatch.TYPE, batch.gateway, envelope.raw, now, source)
        self._touch_slot(batch.slot_start, end)
        self.new_batches.append(BatchInfo(batch.gateway, batch.seq, batch.slot_start))
        if (batch.site, batch.epoch) in self.groups.boxes:
            self._openable.add((batch.site, batch.epoch))
        return pos

    def _touch_slot(self, slot: int, end: int) -> None:
        n, closes = self._slots.get(slot, (0, 0))
        self._slots[slot] = (n + 1, max(closes, end + self.settings.late_after_s))

    def _epoch_key(
        self, key: EpochKey, envelope: Envelope, txid: bytes, now: float, source: str
    ) -> int | None:
        first = self._keyed(key.by, f"epoch:{key.site}:{key.epoch}")
        if first is not None:
            return self._equivocation(
                key, f"epoch:{key.site}:{key.epoch}", first, envelope, txid, now, source
            )
        self.groups.check(key, self.registry)
        pos = self._append(key, envelope, txid, now, source)
        self._key(key.by, f"epoch:{key.site}:{key.epoch}", pos)
        if self.groups.apply(key, pos):
            self._openable.add((key.site, key.epoch))
            log.info("holds the data key of %s epoch %d", key.site, key.epoch)
        return pos

    def _shred(
        self, shred: EpochShred, envelope: Envelope, txid: bytes, now: float, source: str
    ) -> int:
        pos = self._append(shred, envelope, txid, now, source)
        key_pos = self.groups.shred(shred.site, shred.epoch, pos)
        if key_pos is not None:
            self.log.shred(key_pos)
        affected = [
            row[0]
            for row in self.db.execute(
                "SELECT pos FROM batches WHERE site=? AND epoch=?", (shred.site, shred.epoch)
            )
        ]
        self.db.executemany("DELETE FROM readings WHERE pos=?", [(p,) for p in affected])
        self.db.executemany("DELETE FROM control_actions WHERE pos=?", [(p,) for p in affected])
        self.db.execute(
            "UPDATE batches SET state='shredded' WHERE site=? AND epoch=? AND state != "
            "'equivocated'",
            (shred.site, shred.epoch),
        )
        self._openable.discard((shred.site, shred.epoch))
        self.shredded_now = True
        log.warning(
            "epoch %d of %s shredded: %d batches stay as ciphertext, unreadable",
            shred.epoch,
            shred.site,
            len(affected),
        )
        return pos

    def _command(
        self, cmd: DrCommand, envelope: Envelope, txid: bytes, now: float, source: str
    ) -> int | None:
        first = self._keyed(cmd.by, f"command:{cmd.id}")
        if first is not None:
            return self._equivocation(cmd, f"command:{cmd.id}", first, envelope, txid, now, source)
        for ac, _ in cmd.targets:
            if self.registry.role(ac) != "ac":
                raise Refused(NOT_ALLOWED, f"target {ac} is not an active AC")
        pos = self._append(cmd, envelope, txid, now, source)
        self._key(cmd.by, f"command:{cmd.id}", pos)
        self.db.execute(
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
        self.changed_commands.add(cmd.id)
        return pos

    def command(self, command_id: str) -> DrCommand | None:
        row = self.db.execute(
            "SELECT l.envelope FROM commands c JOIN log l ON l.pos = c.pos WHERE c.id=?",
            (command_id,),
        ).fetchone()
        if row is None:
            return None
        message = open_body(parse(row[0]))
        assert isinstance(message, DrCommand)
        return message

    def _revision(self, table: str, who: str, command: str, rev: int, key: str) -> int | None:
        """Check `rev` against the held revision; return the first fact's pos for an
        equivocation (same rev, other bytes), else None."""
        row = self.db.execute(
            f"SELECT rev, pos FROM {table} WHERE command=? AND {who}=?",  # noqa: S608
            (command, key),
        ).fetchone()
        if row is None or rev > row[0]:
            return None
        if rev == row[0]:
            return int(row[1])
        raise Refused(STALE, f"revision {rev} is older than the held {row[0]}")

    def _declaration(
        self, decl: DrDeclaration, envelope: Envelope, txid: bytes, now: float, source: str
    ) -> int | None:
        cmd = self.command(decl.command)
        if cmd is None:
            raise Held("unknown_command", f"declaration for {decl.command}, not seen yet")
        if source in LIVE_SOURCES and now > cmd.gate_closure:
            raise Refused(
                GATE_CLOSED,
                f"declaration for {cmd.id} after its gate closure at {cmd.gate_closure}",
            )
        slots = len(cmd.slots)
        for site, baseline in decl.sites:
            holder = self.registry.sites.get(site)
            if holder is None:
                raise Held("unknown_site", f"declared site {site} is not registered (yet)")
            if holder.ra != decl.by:
                raise Refused(NOT_ALLOWED, f"site {site} belongs to {holder.ra}, not {decl.by}")
            if len(baseline) not in (1, slots):
                raise Refused(
                    NOT_ALLOWED, f"site {site}: {len(baseline)} baselines for {slots} slots"
                )
        first = self._revision("declarations", "ra", decl.command, decl.rev, decl.by)
        if first is not None:
            return self._equivocation(
                decl, f"declaration:{decl.command}:{decl.rev}", first, envelope, txid, now, source
            )
        pos = self._append(decl, envelope, txid, now, source)
        self.db.execute(
            "INSERT OR REPLACE INTO declarations VALUES (?, ?, ?, ?, ?)",
            (decl.command, decl.by, decl.rev, pos, json.dumps(decl.sites)),
        )
        self.changed_commands.add(decl.command)
        return pos

    def _as_report(
        self, report: AsReport, envelope: Envelope, txid: bytes, now: float, source: str
    ) -> int | None:
        cmd = self.command(report.command)
        if cmd is None:
            raise Held("unknown_command", f"AS report for {report.command}, not seen yet")
        window = set(cmd.slots)
        outside = [s for s, _ in report.slots if s not in window]
        if outside:
            raise Refused(NOT_ALLOWED, f"slot {outside[0]} is not a slot of {cmd.id}")
        first = self._revision("as_reports", "author", report.command, report.rev, report.by)
        if first is not None:
            return self._equivocation(
                report,
                f"as_report:{report.command}:{report.rev}",
                first,
                envelope,
                txid,
                now,
                source,
            )
        pos = self._append(report, envelope, txid, now, source)
        self.db.execute(
            "INSERT OR REPLACE INTO as_reports VALUES (?, ?, ?, ?, ?)",
            (report.command, report.by, report.rev, pos, json.dumps(report.slots)),
        )
        return pos

    def replay_shredded(
        self, txid: bytes, kind: str, author: str, leaf: bytes, epoch: tuple[str, int, str, str]
    ) -> int:
        """Copy a shredded epoch key entry (its leaf hash and its epoch's public record,
        `epoch` = site, epoch, members, gateway) during `verify`'s replay."""
        pos = self.log.append_shredded(txid, kind, author, leaf, self.clock.now(), "replay")
        site, number, members, gateway = epoch
        self.db.execute(
            "INSERT INTO epochs VALUES (?, ?, ?, ?, ?)", (site, number, pos, members, gateway)
        )
        self._key(author, f"epoch:{site}:{number}", pos)
        self.groups.reload()
        return pos

    # -- decryption --------------------------------------------------------------------

    def open_sealed(self, limit: int = 256) -> int:
        """Decrypt up to `limit` stored batches of the epochs this node holds keys for;
        check each reading against its public commitment. Returns how many were opened."""
        done = 0
        for site, epoch in sorted(self._openable):
            box = self.groups.boxes.get((site, epoch))
            rows = self.db.execute(
                "SELECT b.pos, l.envelope FROM batches b JOIN log l ON l.pos = b.pos"
                " WHERE b.site=? AND b.epoch=? AND b.state='sealed' LIMIT ?",
                (site, epoch, limit - done),
            ).fetchall()
            if len(rows) < limit - done or box is None:
                self._openable.discard((site, epoch))
            if box is None:
                continue
            for pos, raw in rows:
                batch = open_body(parse(raw))
                assert isinstance(batch, ReadingsBatch)
                try:
                    payload = _open_payload(box, batch)
                except (ValueError, WireError, nacl.exceptions.CryptoError) as exc:
                    self.db.execute("UPDATE batches SET state='bad' WHERE pos=?", (pos,))
                    self.count(f"refused:{BAD_PAYLOAD}")
                    log.warning(
                        "refused (%s): %s seq %d: %s", BAD_PAYLOAD, batch.gateway, batch.seq, exc
                    )
                    continue
                self.db.executemany(
                    "INSERT INTO readings VALUES (?, ?, ?, ?, ?)",
                    [
                        (pos, r.meter, r.wh, r.blinding, ",".join(r.quality))
                        for r in payload.readings
                    ],
                )
                self.db.executemany(
                    "INSERT INTO control_actions VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (pos, n, a.command, a.state, a.t, int(a.ok))
                        for n, a in enumerate(payload.control)
                    ],
                )
                self.db.execute("UPDATE batches SET state='open' WHERE pos=?", (pos,))
                self.opened_slots.add(batch.slot_start)
            done += len(rows)
            if done >= limit:
                break
        return done

    @property
    def has_sealed_to_open(self) -> bool:
        return bool(self._openable)

    # -- authoring (the TSO's node) ------------------------------------------------------

    def author_epochs(self) -> list[EpochKey]:
        """As the TSO: start a new epoch for every site whose group differs from its latest
        epoch's (a new site, a move, a member added or removed, a new gateway)."""
        if self.registry.tso != self.me.name:
            return []
        made = []
        for site in sorted(self.registry.sites):
            members, gateway = self.registry.group(site)
            latest = self.groups.latest(site)
            if latest is not None and (latest.members, latest.gateway) == (members, gateway):
                continue
            epoch = 0 if latest is None else latest.epoch + 1
            while (site, epoch) in self.groups.shredded:
                epoch += 1
            key = make_epoch_key(self.me.name, site, epoch, members, gateway, self.registry)
            outcome = self.author(key)
            if outcome.ok:
                made.append(key)
                log.info("epoch %d of %s started for %s", epoch, site, ", ".join(members))
            else:
                log.error("could not start epoch %d of %s: %s", epoch, site, outcome.reason)
        return made

    def registry_n(self) -> int:
        """The next registry number for a fact authored by this node."""
        return int(self.registry.last_n.get(self.me.name, 0)) + 1


def _open_payload(box: nacl.secret.SecretBox, batch: ReadingsBatch) -> SlotPayload:
    """Decrypt a batch's sealed payload and check its readings against the public
    commitments."""
    payload = SlotPayload.from_bytes(box.decrypt(batch.box))
    if payload.gateway != batch.gateway or payload.seq != batch.seq:
        raise ValueError("sealed readings belong to another batch")
    if [r.meter for r in payload.readings] != [c.meter for c in batch.commitments]:
        raise ValueError("sealed readings and public commitments name different meters")
    for reading, public in zip(payload.readings, batch.commitments, strict=True):
        if pedersen.commit(reading.wh, reading.blinding) != public.commitment:
            raise ValueError(f"meter {reading.meter}: reading does not open its commitment")
    return payload

"""Admission: the one way a fact enters the ledger.

``admit`` takes facts from the broker, from peers (anti-entropy), from this node itself
and from the log during `verify`'s replay:

size limit → envelope → txid already known (replay: a no-op, before any crypto) → signer
known → signature → canonical body, type, author → the rule of the fact's type (`rules`:
the author's role, the registry and what is already held) → append to the Merkle log →
apply to the derived state.

The signature may have been checked elsewhere (the node's verifying thread, a front-end
process): ``admit`` then takes a `Verified` record and checks only that the key it names
is still the signer's registered key; if the key was rotated or revoked since, the
envelope goes through the full check against the current registry (and is refused as any
envelope signed with that key would be).

Facts whose predecessor is missing are held (`pending`) and tried again after every fact
that could unblock them. Every refusal has a reason, is logged (`mlg.node.ingest`) and
counted; nothing refused changes any state. What a write transaction changed comes back
from `Ledger.transaction` as a `Changes` record for the running node to act on.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import nacl.signing

from ledger_node.ledger.arrival import Arrival, Changes
from ledger_node.ledger.pending import Limits, Pending
from ledger_node.ledger.refusals import (
    EQUIVOCATION,
    EXPIRED,
    NOT_ALLOWED,
    PENDING_FULL,
    REPLAY,
    Held,
    Refused,
    Replay,
)
from ledger_node.ledger.rules import LEDGER_TYPES, RULES, replay_shredded
from ledger_node.ledger.state import LedgerSettings, LedgerState
from ledger_node.ledger.store import Db, transaction
from ledger_node.shared.clock import Clock
from ledger_node.shared.keys import Identity
from ledger_node.wire import (
    Envelope,
    Genesis,
    Message,
    ReadingsBatch,
    Verified,
    WireError,
    check_size,
    open_body,
    open_message,
    parse,
    verify,
)
from ledger_node.wire.errors import UnknownSignerError

log = logging.getLogger("mlg.node.ingest")

RECENT_TXIDS = 65_536
"""Txids of recently accepted facts kept in memory: a resent batch costs no signature
check and no database read."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message: accepted, replay, equivocation, held or refused."""

    status: str
    reason: str = ""
    txid: bytes = b""
    kind: str = ""
    pos: int | None = None
    message: Message | None = field(default=None, repr=False)
    detail: str = ""
    """Why it was refused or held, in words (what the log says)."""

    @property
    def ok(self) -> bool:
        return self.status == "accepted"


class Ledger(LedgerState):
    """The log and everything derived from it, on one writer connection.

    Admit inside `transaction()`, which yields the record of what the transaction changed.
    """

    def __init__(self, db: Db, me: Identity, clock: Clock, settings: LedgerSettings) -> None:
        super().__init__(db, me, clock, settings)
        self.pending = Pending(
            db,
            Limits(
                settings.max_pending,
                settings.max_pending_unknown,
                settings.max_pending_per_signer,
                settings.pending_ttl_s,
            ),
        )
        self._recent: dict[bytes, None] = {}
        self.reload()

    @contextmanager
    def transaction(self) -> Iterator[Changes]:
        """A write transaction that also stores the counters and slot records gathered in
        memory; yields what it changed. After a failure, everything in memory is read
        again."""
        self.changes = changes = Changes()
        try:
            with transaction(self.db):
                yield changes
                self.flush()
                self._queue_settlement(changes)
        except BaseException:
            self.reload()
            raise
        finally:
            self.changes = Changes()

    def _queue_settlement(self, changes: Changes) -> None:
        """Note, in the same transaction, what the contract must settle again."""
        self.db.executemany(
            "INSERT OR IGNORE INTO unsettled_commands VALUES (?)",
            [(c,) for c in changes.commands],
        )
        self.db.executemany(
            "INSERT OR IGNORE INTO unsettled_slots VALUES (?)",
            [(s,) for s in changes.opened_slots],
        )

    def reload(self) -> None:
        super().reload()
        self._recent.clear()
        self.pending.reload()

    @property
    def has_sealed_to_open(self) -> bool:
        """True while stored batches may wait for decryption (`decrypt.open_sealed`)."""
        return bool(self.openable)

    def registry_n(self) -> int:
        """The next registry number for a fact authored by this node."""
        return int(self.registry.last_n.get(self.me.name, 0)) + 1

    # -- the way in ------------------------------------------------------------------------

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
        self.changes.registry = True
        self.count(f"accepted:{Genesis.TYPE}")

    def admit(
        self,
        raw: bytes | Verified,
        source: str,
        received_at: float | None = None,
        hold_unknown: bool = False,
    ) -> Outcome:
        """Check one message and, if it is a valid new fact, append and apply it.

        `raw` is the envelope's bytes, or a `Verified` envelope whose signature was checked
        elsewhere (re-checked here only if its key is no longer the signer's). Never raises
        for bad input. `hold_unknown` keeps a fact from an unknown signer aside (facts can
        arrive before the registry fact naming their author)."""
        outcome = self._admit(raw, source, received_at, hold_unknown, retry=False)
        if outcome.ok and outcome.kind != ReadingsBatch.TYPE and self.pending.size:
            self.pending.retry(
                lambda raw, source, at: (
                    self._admit(raw, source, at, True, retry=True).status == "held"
                )
            )
        return outcome

    def author(self, message: Message) -> Outcome:
        """Sign a fact as this node, admit it, and record it for publishing if accepted."""
        raw = message.seal(self.me)
        outcome = self.admit(raw, "local")
        if outcome.ok:
            self.changes.authored.append((message, raw))
        return outcome

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

    def replay_shredded(
        self, txid: bytes, author: str, leaf: bytes, epoch: tuple[str, int, str, str]
    ) -> int:
        """Copy a shredded epoch key entry during `verify`'s replay (see `rules.epochs`)."""
        return replay_shredded(self, txid, author, leaf, epoch)

    # -- the steps -------------------------------------------------------------------------

    def _admit(
        self,
        raw: bytes | Verified,
        source: str,
        received_at: float | None,
        hold_unknown: bool,
        retry: bool,
    ) -> Outcome:
        now = self.clock.now() if received_at is None else received_at
        checked_with = None
        try:
            if isinstance(raw, Verified):
                envelope, checked_with = raw.envelope, raw.key
                check_size(envelope.raw, self.settings.max_message_bytes)
            else:
                envelope = parse(raw, self.settings.max_message_bytes)
        except WireError as exc:
            return self._refuse(exc.reason, str(exc))
        txid = envelope.txid
        if txid in self._recent or (not retry and txid in self.pending):
            return self._replay(txid)
        try:
            if checked_with is None or not self._still_key(envelope.signer, checked_with):
                verify(envelope, self.registry.verify_keys)
            message = open_body(envelope, LEDGER_TYPES)
            # Readings find a replay by their (gateway, seq) key, other facts here.
            if not isinstance(message, ReadingsBatch) and self.log.pos_of(txid) is not None:
                return self._replay(txid)
        except UnknownSignerError as exc:
            if hold_unknown:
                return self._hold(envelope, "unknown_signer", str(exc), now, source, retry, False)
            return self._refuse(exc.reason, str(exc), txid)
        except WireError as exc:
            return self._refuse(exc.reason, str(exc), txid)
        try:
            pos = RULES[message.TYPE](self, Arrival(message, envelope, txid, now, source))
        except Replay:
            return self._replay(txid)
        except Refused as exc:
            if exc.subject:
                self.count(f"refused_by:{exc.subject}:{exc.reason}")
            return self._refuse(exc.reason, f"{message.TYPE} by {message.author}: {exc}", txid)
        except Held as exc:
            return self._hold(envelope, exc.reason, str(exc), now, source, retry, True)
        if pos is None:
            return Outcome("equivocation", EQUIVOCATION, txid, message.TYPE, None, message)
        self.count(f"accepted:{message.TYPE}")
        recent = self._recent
        recent[txid] = None
        if len(recent) > RECENT_TXIDS:
            del recent[next(iter(recent))]
        return Outcome("accepted", "", txid, message.TYPE, pos, message)

    def _still_key(self, signer: str, key: bytes) -> bool:
        """True if `key` (32 bytes) is `signer`'s registered key now."""
        current = self.registry.verify_keys.get(signer)
        return current is not None and bytes(current) == key

    def _replay(self, txid: bytes) -> Outcome:
        self.count(f"refused:{REPLAY}")
        return Outcome("replay", REPLAY, txid)

    def _refuse(self, reason: str, detail: str, txid: bytes = b"") -> Outcome:
        self.count(f"refused:{reason}")
        log.warning("refused (%s): %s", reason, detail)
        return Outcome("refused", reason, txid, detail=detail)

    def _hold(
        self,
        envelope: Envelope,
        reason: str,
        detail: str,
        now: float,
        source: str,
        retry: bool,
        known: bool,
    ) -> Outcome:
        """Hold a fact for its predecessor (`known`: its signature was checked)."""
        txid = envelope.txid
        if not retry:
            full = self.pending.no_room(envelope.signer, known)
            if full is not None:
                return self._refuse(PENDING_FULL, f"{full}; not holding: {detail}", txid)
            self.count(f"held:{reason}")
            log.info("held (%s): %s", reason, detail)
        self.pending.hold(
            txid, envelope.raw, reason, now, source, envelope.signer, known, again=retry
        )
        return Outcome("held", reason, txid, detail=detail)

    def expire_pending(self) -> int:
        """Drop the held facts past their time (see `pending`); how many."""
        gone = self.pending.expire(self.clock.now())
        for signer, reason in gone:
            self.count(f"refused:{EXPIRED}")
            log.warning(
                "dropped a fact by %s: held too long for its predecessor (%s)", signer, reason
            )
        return len(gone)

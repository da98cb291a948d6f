"""Facts the gateway acts on: its site's epoch keys and the DR commands it is declared for.

Both arrive as retained MQTT messages, are verified by `Trust` against the config's keys,
and are kept in the state database, so a restart without a broker still seals with the
newest key and still switches for the windows it knew about.

Epoch keys: the TSO's `EpochKey` for this site and gateway; the gateway unwraps its own
entry with its X25519 secret and seals with the newest epoch it holds (until the first
arrives, it holds its slots: `outbox.Outbox.hold`). A gateway without a TSO seals with its
`[seal] group_key` file instead.

DR: the TSO's `DrCommand`s and the configured RAs' `DrDeclaration`s. For each command and
RA, the declaration with the highest `rev` received before the command's gate closure
counts, if its RA is in the site's group now (the members of the newest epoch key, which
the TSO signs: after the site moves to another RA, the old RA's declarations no longer
switch it); the site is in the command's window when a counting declaration lists it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nacl.exceptions
import nacl.public

from gateway.db import Database
from gateway.errors import GatewayError
from gateway.trust import Refused, Trust
from ledger_node.shared.clock import Clock
from ledger_node.shared.keys import GroupKey, Identity
from ledger_node.wire import DrCommand, DrDeclaration, EpochKey, EpochShred, canonical, parse

log = logging.getLogger("mlg.gateway.facts")


class EpochKeys:
    """The site group's keys this gateway holds, newest epoch first."""

    def __init__(
        self, db: Database, identity: Identity, site: str, tso: str | None, fallback: Path | None
    ) -> None:
        self.db = db
        self.identity = identity
        self.site = site
        self.tso = tso
        self.fallback = None if fallback is None else GroupKey.load(fallback)
        if self.fallback is not None and self.fallback.site != site:
            raise GatewayError(
                f"group key {fallback} is for site {self.fallback.site!r}, not {site!r}"
            )

    def current(self) -> GroupKey:
        """The key to seal with now: with a TSO, the newest epoch it sent (GatewayError
        until the first arrives, and while the newest was shredded: an older epoch's group
        may no longer be the site's); without, the `[seal] group_key` file's."""
        if self.tso is None and self.fallback is not None:
            return self.fallback
        with self.db.lock:
            row = self.db.conn.execute(
                "SELECT epoch, key FROM epoch_keys WHERE site=? ORDER BY epoch DESC LIMIT 1",
                (self.site,),
            ).fetchone()
            shredded = self.db.conn.execute(
                "SELECT MAX(epoch) FROM shredded_epochs WHERE site=?", (self.site,)
            ).fetchone()[0]
        if shredded is not None and (row is None or row[0] < shredded):
            raise GatewayError(
                f"epoch {shredded} of site {self.site} was shredded: waiting for the TSO's"
                " next epoch_key fact"
            )
        if row is None:
            raise GatewayError(
                f"no epoch key for site {self.site} yet: waiting for the TSO's epoch_key fact"
            )
        return GroupKey(self.site, int(row[0]), bytes(row[1]))

    def members(self) -> frozenset[str] | None:
        """The organisations of the site's group in the newest epoch the TSO sent; None
        without one (no TSO, or no epoch key yet, or a key stored by an older version)."""
        if self.tso is None:
            return None
        with self.db.lock:
            row = self.db.conn.execute(
                "SELECT members FROM epoch_keys WHERE site=? ORDER BY epoch DESC LIMIT 1",
                (self.site,),
            ).fetchone()
        if row is None or not row[0]:
            return None
        return frozenset(row[0].split(","))

    @property
    def ready(self) -> bool:
        try:
            self.current()
        except GatewayError:
            return False
        return True

    def offer(self, trust: Trust, raw: bytes) -> int | None:
        """Take an `EpochKey` fact; return its epoch if it was new to us."""
        if self.tso is None:
            raise Refused("untrusted", "no [trust] tso configured: epoch keys are not taken")
        fact = trust.open(raw, EpochKey.TYPE, authors=[self.tso])
        assert isinstance(fact, EpochKey)
        if fact.site != self.site:
            raise Refused("not_for_us", f"epoch key for site {fact.site!r}")
        if fact.gateway != self.identity.name:
            raise Refused("not_for_us", f"epoch key wrapped for gateway {fact.gateway!r}")
        wrapped = next(w for w in fact.wrapped if w.to == self.identity.name)
        try:
            key = nacl.public.SealedBox(self.identity.box_secret).decrypt(wrapped.sealed)
        except nacl.exceptions.CryptoError:
            raise Refused(
                "undecryptable", f"epoch {fact.epoch}: our wrapped key does not open"
            ) from None
        if len(key) != 32:
            raise Refused("undecryptable", f"epoch {fact.epoch}: key of {len(key)} bytes")
        with self.db.transaction() as db:
            if db.execute(
                "SELECT 1 FROM shredded_epochs WHERE site=? AND epoch=?", (self.site, fact.epoch)
            ).fetchone():
                raise Refused("shredded", f"epoch {fact.epoch} of {self.site} was shredded")
            cur = db.execute(
                "INSERT OR IGNORE INTO epoch_keys (site, epoch, key, members) VALUES (?, ?, ?, ?)",
                (self.site, fact.epoch, key, ",".join(fact.members)),
            )
        if cur.rowcount:
            log.info("site %s: holding the key of epoch %d", self.site, fact.epoch)
            return fact.epoch
        return None

    def offer_shred(self, trust: Trust, raw: bytes) -> int | None:
        """Take an `EpochShred` fact by the TSO for this site: erase the epoch's key from the
        state file (zeroed, and the write-ahead log emptied) and never take it again.
        Returns the epoch if it was new to us."""
        if self.tso is None:
            raise Refused("untrusted", "no [trust] tso configured: shreds are not taken")
        fact = trust.open(raw, EpochShred.TYPE, authors=[self.tso])
        assert isinstance(fact, EpochShred)
        if fact.site != self.site:
            raise Refused("not_for_us", f"shred for site {fact.site!r}")
        with self.db.transaction() as db:
            new = db.execute(
                "INSERT OR IGNORE INTO shredded_epochs VALUES (?, ?)", (self.site, fact.epoch)
            ).rowcount
            db.execute("DELETE FROM epoch_keys WHERE site=? AND epoch=?", (self.site, fact.epoch))
        with self.db.lock:
            self.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if new:
            log.warning("site %s: epoch %d shredded; its key is erased", self.site, fact.epoch)
            return fact.epoch
        return None


@dataclass(frozen=True, slots=True)
class Window:
    """A DR window this site is declared for: switch on at `start`, off at `end` (UTC s)."""

    command: str
    start: int
    end: int


class DrPlan:
    """DR commands and declarations, and the windows they give this site."""

    def __init__(
        self,
        db: Database,
        site: str,
        tso: str | None,
        ras: tuple[str, ...],
        clock: Clock,
        members: Callable[[], frozenset[str] | None] = lambda: None,
    ):
        self.db = db
        self.site = site
        self.tso = tso
        self.ras = ras
        self.clock = clock
        self.members = members

    def offer_command(self, trust: Trust, raw: bytes) -> bool:
        if self.tso is None:
            raise Refused("untrusted", "no [trust] tso configured: DR commands are not taken")
        cmd = trust.open(raw, DrCommand.TYPE, authors=[self.tso])
        assert isinstance(cmd, DrCommand)
        return self._store("dr_command", cmd.by, cmd.id, 0, raw, same_rev_differs="equivocation")

    def offer_declaration(self, trust: Trust, raw: bytes) -> bool:
        decl = trust.open(raw, DrDeclaration.TYPE, authors=self.ras)
        assert isinstance(decl, DrDeclaration)
        cmd = self._command(decl.command)
        if cmd is not None and self.clock.now() > cmd.gate_closure:
            held = self._rev("dr_declaration", decl.by, decl.command)
            if held is None or decl.rev > held:
                raise Refused(
                    "late",
                    f"declaration {decl.by}/{decl.command} rev {decl.rev} after gate closure",
                )
        return self._store("dr_declaration", decl.by, decl.command, decl.rev, raw)

    def _store(
        self, kind: str, author: str, key: str, rev: int, raw: bytes, same_rev_differs: str = ""
    ) -> bool:
        now = self.clock.now()
        with self.db.transaction() as db:
            row = db.execute(
                "SELECT rev, envelope FROM dr_facts WHERE kind=? AND author=? AND key=?",
                (kind, author, key),
            ).fetchone()
            if row is not None and (rev < row[0] or (rev == row[0] and bytes(row[1]) == raw)):
                return False
            if row is not None and rev == row[0] and same_rev_differs:
                raise Refused(same_rev_differs, f"{kind} {author}/{key}: other content, same key")
            db.execute(
                "INSERT OR REPLACE INTO dr_facts VALUES (?, ?, ?, ?, ?, ?)",
                (kind, author, key, rev, raw, now),
            )
        log.info("%s %s/%s rev %d taken", kind, author, key, rev)
        return True

    def _rev(self, kind: str, author: str, key: str) -> int | None:
        with self.db.lock:
            row = self.db.conn.execute(
                "SELECT rev FROM dr_facts WHERE kind=? AND author=? AND key=?", (kind, author, key)
            ).fetchone()
        return None if row is None else int(row[0])

    def _command(self, command_id: str) -> DrCommand | None:
        with self.db.lock:
            row = self.db.conn.execute(
                "SELECT envelope FROM dr_facts WHERE kind='dr_command' AND key=?", (command_id,)
            ).fetchone()
        return None if row is None else _decode(bytes(row[0]), DrCommand)

    def windows(self) -> list[Window]:
        """The windows of commands this site is declared for, by a declaration received
        before the command's gate closure from an RA in the site's group now."""
        group = self.members()
        with self.db.lock:
            rows = self.db.conn.execute(
                "SELECT c.envelope, d.envelope, d.received_at FROM dr_facts c JOIN dr_facts d"
                " ON d.kind='dr_declaration' AND d.key=c.key WHERE c.kind='dr_command'"
            ).fetchall()
        out = {}
        for cmd_raw, decl_raw, received_at in rows:
            cmd = _decode(bytes(cmd_raw), DrCommand)
            decl = _decode(bytes(decl_raw), DrDeclaration)
            if received_at > cmd.gate_closure or (group is not None and decl.by not in group):
                continue
            if any(site == self.site for site, _ in decl.sites):
                out[cmd.id] = Window(cmd.id, cmd.start, cmd.end)
        return sorted(out.values(), key=lambda w: (w.start, w.command))


F = TypeVar("F", DrCommand, DrDeclaration)


def _decode(raw: bytes, cls: type[F]) -> F:
    """A fact stored after verification: parse without checking the signature again."""
    return cls.from_body(canonical.decode(parse(raw).body))

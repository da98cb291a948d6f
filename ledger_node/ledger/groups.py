"""Privacy groups' epoch keys: checking, unwrapping, authoring (TSO) and shredding.

An epoch key fact names the group it was made for and carries the data key sealed
(X25519 SealedBox) to each member and to the site's gateway. This node unwraps only its
own entry, keeps the data keys in memory (never in its database: the log holds them
wrapped) and so decrypts exactly the sites whose groups it belongs to. The TSO's node
starts a new epoch whenever a site's group differs from its latest epoch's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nacl.exceptions
import nacl.public
import nacl.secret
import nacl.utils

from ledger_node.ledger.refusals import SHREDDED, Held, Refused
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db
from ledger_node.shared.keys import Identity
from ledger_node.wire import EpochKey, WrappedKey, open_stored

log = logging.getLogger("mlg.node.groups")


@dataclass(frozen=True, slots=True)
class Epoch:
    site: str
    epoch: int
    members: tuple[str, ...]
    gateway: str
    pos: int


class Groups:
    """Epochs known to this node and the data keys it holds."""

    def __init__(self, db: Db, me: Identity) -> None:
        self.db = db
        self.me = me
        self._unsealer = nacl.public.SealedBox(me.box_secret)
        self.reload()

    def reload(self) -> None:
        self.epochs: dict[tuple[str, int], Epoch] = {}
        self.boxes: dict[tuple[str, int], nacl.secret.SecretBox] = {}
        self.shredded: set[tuple[str, int]] = set(self.db.execute("SELECT site, epoch FROM shreds"))
        rows = self.db.execute(
            "SELECT e.site, e.epoch, e.members, e.gateway, e.pos, l.envelope"
            " FROM epochs e JOIN log l ON l.pos = e.pos"
        ).fetchall()
        for site, epoch, members, gateway, pos, envelope in rows:
            ep = Epoch(site, epoch, tuple(members.split(",")), gateway, pos)
            self.epochs[(site, epoch)] = ep
            if envelope is not None and self.me.name in ep.members:
                message = open_stored(envelope)
                assert isinstance(message, EpochKey)
                self._unwrap(message)

    def latest(self, site: str) -> Epoch | None:
        known = [e for (s, _), e in self.epochs.items() if s == site]
        return max(known, key=lambda e: e.epoch) if known else None

    def readable(self) -> list[tuple[str, int]]:
        """(site, epoch) pairs whose data key this node holds."""
        return sorted(self.boxes)

    def check(self, key: EpochKey, registry: Registry) -> None:
        """Raise unless `key` is a valid epoch key for a group its site has had."""
        if (key.site, key.epoch) in self.shredded:
            raise Refused(SHREDDED, f"epoch {key.epoch} of {key.site} was shredded")
        if key.site not in registry.sites:
            raise Held("unknown_site", f"epoch key for {key.site}, not registered (yet)")
        if not registry.had_group(key.site, (key.members, key.gateway)):
            raise Held(
                "unknown_group",
                f"epoch {key.epoch} of {key.site} is for {','.join(key.members)} and "
                f"{key.gateway}, a group this node has not seen for the site",
            )

    def apply(self, key: EpochKey, pos: int) -> bool:
        """Record the epoch; unwrap and keep its data key if this node is a member.
        Returns True if this node can now read the epoch."""
        self.db.execute(
            "INSERT INTO epochs VALUES (?, ?, ?, ?, ?)",
            (key.site, key.epoch, pos, ",".join(key.members), key.gateway),
        )
        self.epochs[(key.site, key.epoch)] = Epoch(
            key.site, key.epoch, key.members, key.gateway, pos
        )
        return self.me.name in key.members and self._unwrap(key)

    def _unwrap(self, key: EpochKey) -> bool:
        mine = next((w for w in key.wrapped if w.to == self.me.name), None)
        if mine is None:
            return False
        try:
            data_key = self._unsealer.decrypt(mine.sealed)
        except nacl.exceptions.CryptoError:
            log.error(
                "epoch %d of %s: the key wrapped for %s does not open with this node's key",
                key.epoch,
                key.site,
                self.me.name,
            )
            return False
        self.boxes[(key.site, key.epoch)] = nacl.secret.SecretBox(data_key)
        return True

    def shred(self, site: str, epoch: int, pos: int) -> int | None:
        """Forget the epoch's data key; return the log position of its epoch key fact."""
        self.db.execute("INSERT OR IGNORE INTO shreds VALUES (?, ?, ?)", (site, epoch, pos))
        self.shredded.add((site, epoch))
        self.boxes.pop((site, epoch), None)
        known = self.epochs.get((site, epoch))
        return None if known is None else known.pos


def make_epoch_key(
    tso: str,
    site: str,
    epoch: int,
    members: tuple[str, ...],
    gateway: str,
    registry: Registry,
) -> EpochKey:
    """A new epoch key (a random data key) for the group, wrapped for every member and the
    gateway."""
    data_key = nacl.utils.random(32)
    wrapped = []
    for party in sorted({*members, gateway}):
        public = registry.box_key(party)
        if public is None:
            raise ValueError(f"no X25519 key for {party}")
        sealed = nacl.public.SealedBox(nacl.public.PublicKey(public)).encrypt(data_key)
        wrapped.append(WrappedKey(party, bytes(sealed)))
    return EpochKey(tso, site, epoch, gateway, members, tuple(wrapped))

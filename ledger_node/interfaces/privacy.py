"""What one node can read, site by site and epoch by epoch: the brief's figure 7 as
measured from that node's database.

Every node records every site's epochs (who each epoch key was wrapped for) and every
shred, and stores every readings batch; it decrypts only the batches of the epochs whose
data key it holds: those it is a member of and that were not shredded. So from its own
tables a node knows, for every site, the members of each epoch, whether it holds the
epoch's key (and if not, why: not in the site's group, or the key was shredded), and how
many of the epoch's batches it holds decrypted or as ciphertext only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db

ROLE_ORDER = {"tso": 0, "ac": 1, "ra": 2}

BATCH_CLASSES = {
    "open": "decrypted",
    "sealed": "ciphertext",
    "shredded": "ciphertext",
    "bad": "flagged",
    "equivocated": "flagged",
}
"""A stored batch's state → what it is to this node: decrypted, ciphertext only (not a
member, shredded, or waiting to be opened), or flagged (its readings disagree with its
commitments, or its gateway equivocated)."""
CLASSES = ("decrypted", "ciphertext", "flagged")
SEES = ("current", "past")
"""Matrix cells where an organisation holds a key of the site: its current epoch's, or
only earlier ones' (after it left the group)."""


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """A site's key epoch as this node recorded it."""

    site: str
    epoch: int
    members: tuple[str, ...]
    gateway: str
    key_pos: int
    """Log position of the epoch key fact."""
    shred_pos: int | None
    """Log position of the shred fact; None while the key lives."""
    key_t: float
    """When this node took the epoch key fact (UTC s)."""
    shred_t: float | None
    """When this node took the shred fact (UTC s)."""

    def readable_by(self, org: str) -> bool:
        return org in self.members and self.shred_pos is None


def epoch_records(db: Db) -> list[EpochRecord]:
    """Every site's epochs, by site and epoch."""
    rows = db.execute(
        "SELECT e.site, e.epoch, e.members, e.gateway, e.pos, s.pos, k.received_at,"
        " d.received_at FROM epochs e JOIN log k ON k.pos = e.pos"
        " LEFT JOIN shreds s ON s.site = e.site AND s.epoch = e.epoch"
        " LEFT JOIN log d ON d.pos = s.pos ORDER BY e.site, e.epoch"
    ).fetchall()
    return [EpochRecord(r[0], r[1], tuple(r[2].split(",")), *r[3:]) for r in rows]


def readable(db: Db, me: str) -> list[EpochRecord]:
    """The epochs whose data key node `me` holds."""
    return [e for e in epoch_records(db) if e.readable_by(me)]


def _cell(org: str, epochs: list[EpochRecord]) -> str:
    """What `org` sees of a site with `epochs`: its current epoch, earlier ones only, none
    because its epochs were shredded, or none (not in the group; no epoch yet)."""
    if not epochs:
        return "none"
    if epochs[-1].readable_by(org):
        return "current"
    if any(e.readable_by(org) for e in epochs):
        return "past"
    if any(org in e.members for e in epochs):
        return "shredded"
    return "none"


def gather(db: Db, me: str) -> dict[str, Any]:
    """The privacy view of node `me`: organisations, sites with their epochs (members,
    access, batches here), and the organisations × sites matrix."""
    registry = Registry(db)
    records = epoch_records(db)
    by_site: dict[str, list[EpochRecord]] = {site: [] for site in registry.sites}
    for e in records:
        by_site.setdefault(e.site, []).append(e)
    batches: Counter[tuple[str, int, str]] = Counter()
    for site, epoch, state, n in db.execute(
        "SELECT site, epoch, state, COUNT(*) FROM batches GROUP BY site, epoch, state"
    ):
        batches[(site, epoch, BATCH_CLASSES.get(state, "flagged"))] += n
    orgs = sorted(
        registry.orgs.values(),
        key=lambda o: (ROLE_ORDER.get(o.org.role, 9), o.org.ac or o.org.id, o.org.id),
    )
    sites = []
    for site in sorted(by_site):
        s = registry.sites.get(site)
        ra = s.ra if s is not None else None
        group = list(registry.group(site)[0]) if s is not None else []
        epochs = []
        for e in by_site[site]:
            if me not in e.members:
                access = "not_member"
            else:
                access = "reads" if e.shred_pos is None else "shredded"
            counts = {k: batches[(site, e.epoch, k)] for k in CLASSES}
            epochs.append(
                {
                    "epoch": e.epoch,
                    "members": list(e.members),
                    "gateway": e.gateway,
                    "member": me in e.members,
                    "access": access,
                    "key_pos": e.key_pos,
                    "key_t": e.key_t,
                    "shred_pos": e.shred_pos,
                    "shred_t": e.shred_t,
                    "batches": counts,
                }
            )
        sites.append(
            {
                "site": site,
                "ra": ra,
                "ac": registry.ac_of(ra) if ra else None,
                "gateway": s.gateway.id if s is not None else None,
                "group": group,
                "in_group": me in group,
                "sees": _cell(me, by_site[site]),
                "epochs": epochs,
            }
        )
    matrix = []
    for o in orgs:
        cells = {site: _cell(o.org.id, by_site[site]) for site in sorted(by_site)}
        matrix.append(
            {
                "org": o.org.id,
                "role": o.org.role,
                "ac": o.org.ac,
                "active": o.active,
                "me": o.org.id == me,
                "cells": cells,
                "sees": [site for site, c in cells.items() if c in SEES],
            }
        )
    held = {k: sum(n for (_, _, c), n in batches.items() if c == k) for k in CLASSES}
    return {
        "node": me,
        "role": registry.role(me),
        "tso": registry.tso,
        "sites": sites,
        "matrix": matrix,
        "reads": [s["site"] for s in sites if s["sees"] in SEES],
        "batches": held,
    }

"""The registry: organisations, their roles and keys, sites and their privacy groups.

Built only from registry facts in the log (genesis, org_add, org_remove, site, site_move),
each checked against its author's role and applied in its author's `n` order. A site's
privacy group is {TSO, the site's AC, the site's RA}, active organisations only; every
group a site has ever had is remembered, so an epoch key made for an earlier group is
still recognised when it arrives late.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import nacl.signing

from ledger_node.ledger.refusals import EQUIVOCATION, NOT_ALLOWED, STALE, Held, Refused
from ledger_node.ledger.store import Db, get_meta, set_meta
from ledger_node.wire import (
    GatewayKey,
    Genesis,
    Message,
    Org,
    OrgAdd,
    OrgRemove,
    SiteMove,
    SiteRegistration,
)

AUTHOR_ROLES: dict[str, frozenset[str]] = {
    "genesis": frozenset({"tso"}),
    "org_add": frozenset({"tso"}),
    "org_remove": frozenset({"tso"}),
    "site_move": frozenset({"tso"}),
    "site": frozenset({"ra"}),
    "epoch_key": frozenset({"tso"}),
    "epoch_shred": frozenset({"tso"}),
    "dr_command": frozenset({"tso"}),
    "dr_declaration": frozenset({"ra"}),
    "as_report": frozenset({"ra", "ac"}),
}
"""Which roles may author each type of ledger fact (readings come from gateways)."""


@dataclass(frozen=True, slots=True)
class OrgState:
    org: Org
    active: bool


@dataclass(frozen=True, slots=True)
class Site:
    """A registered site: its RA, its gateway and its meters."""

    site: str
    ra: str
    gateway: GatewayKey
    meters: tuple[str, ...]


Group = tuple[tuple[str, ...], str]
"""A privacy group: (sorted member organisations, the site's gateway)."""


class Registry:
    """In-memory registry backed by its tables; `apply` writes both in the caller's
    transaction (after a rollback, call `reload`)."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.reload()

    def reload(self) -> None:
        db = self.db
        self.network: str | None = get_meta(db, "network")
        self.contract: str | None = get_meta(db, "contract")
        self.tso: str | None = get_meta(db, "tso")
        self.orgs = {
            row[0]: OrgState(Org(row[0], row[1], row[3], row[4], row[2]), bool(row[5]))
            for row in db.execute("SELECT id, role, ac, ed25519, x25519, active FROM orgs")
        }
        self.sites = {
            row[0]: Site(
                row[0], row[1], GatewayKey(row[2], row[3], row[4]), tuple(json.loads(row[5]))
            )
            for row in db.execute(
                "SELECT site, ra, gateway, gw_ed25519, gw_x25519, meters FROM sites"
            )
        }
        self.last_n = dict(db.execute("SELECT author, n FROM registry_n"))
        self.groups_seen: set[tuple[str, str, str]] = set(
            db.execute("SELECT site, members, gateway FROM site_groups")
        )
        self._rebuild_keys()

    def _rebuild_keys(self) -> None:
        self.gateway_sites = {s.gateway.id: s.site for s in self.sites.values()}
        keys = {o.org.id: nacl.signing.VerifyKey(o.org.ed25519) for o in self.orgs.values()}
        for s in self.sites.values():
            keys[s.gateway.id] = nacl.signing.VerifyKey(s.gateway.ed25519)
        self.verify_keys: dict[str, nacl.signing.VerifyKey] = keys

    # -- questions --------------------------------------------------------------------

    def role(self, org: str) -> str | None:
        """The role of an active organisation, None for unknown or removed ones."""
        state = self.orgs.get(org)
        return state.org.role if state is not None and state.active else None

    def check_author(self, kind: str, author: str) -> None:
        """Raise `Refused` unless `author` is an active organisation allowed `kind`."""
        role = self.role(author)
        if role is None:
            state = self.orgs.get(author)
            what = "was removed" if state is not None else "is not an organisation"
            raise Refused(NOT_ALLOWED, f"{author} {what}; it cannot author {kind}")
        if role not in AUTHOR_ROLES.get(kind, frozenset()):
            raise Refused(NOT_ALLOWED, f"{author} is an {role}; {kind} is not for that role")

    def ac_of(self, ra: str) -> str | None:
        state = self.orgs.get(ra)
        return state.org.ac if state is not None else None

    def group(self, site: str) -> Group:
        """The site's current privacy group."""
        s = self.sites[site]
        candidates = {self.tso or "", s.ra, self.ac_of(s.ra) or ""}
        members = tuple(sorted(m for m in candidates if m and self.role(m) is not None))
        return members, s.gateway.id

    def had_group(self, site: str, group: Group) -> bool:
        return (site, ",".join(group[0]), group[1]) in self.groups_seen

    def box_key(self, party: str) -> bytes | None:
        """The X25519 public key of an organisation or a gateway (even if removed)."""
        state = self.orgs.get(party)
        if state is not None:
            return state.org.x25519
        site = self.gateway_sites.get(party)
        return None if site is None else self.sites[site].gateway.x25519

    def sites_readable_by(self, org: str) -> list[str]:
        return sorted(s for s in self.sites if org in self.group(s)[0])

    # -- applying facts -----------------------------------------------------------------

    def check_sequence(self, author: str, n: int, key_pos: int | None) -> None:
        """Registry facts apply in their author's `n` order; `key_pos` is the position of
        an accepted fact with the same (author, n), if any."""
        last = self.last_n.get(author, 0)
        if n > last + 1:
            raise Held("out_of_order", f"{author}'s registry fact {n} waits for {last + 1}")
        if n <= last:
            if key_pos is not None:
                raise Refused(EQUIVOCATION, f"{author} signed another registry fact with n={n}")
            raise Refused(STALE, f"{author}'s registry fact {n} is older than {last}")

    def apply_genesis(self, g: Genesis, pos: int) -> None:
        if self.tso is not None:
            raise Refused(NOT_ALLOWED, "the network already has its genesis")
        set_meta(self.db, "network", g.network)
        set_meta(self.db, "contract", g.contract)
        set_meta(self.db, "tso", g.by)
        for org in g.orgs:
            self._put_org(org, True, pos)
        self._set_n(g.by, 0)
        self.network, self.contract, self.tso = g.network, g.contract, g.by
        self._rebuild_keys()

    def apply(self, msg: Message, pos: int) -> list[str]:
        """Apply a checked, in-sequence registry fact; return the sites whose group may
        have changed."""
        if isinstance(msg, OrgAdd):
            changed = self._org_add(msg, pos)
        elif isinstance(msg, OrgRemove):
            changed = self._org_remove(msg)
        elif isinstance(msg, SiteRegistration):
            changed = self._site(msg, pos)
        elif isinstance(msg, SiteMove):
            changed = self._site_move(msg)
        else:
            raise TypeError(f"{type(msg).__name__} is not a registry fact")
        self._set_n(msg.author, msg.n)
        self._rebuild_keys()
        for site in changed:
            self._remember_group(site)
        return changed

    def _org_add(self, msg: OrgAdd, pos: int) -> list[str]:
        org = msg.org
        current = self.orgs.get(org.id)
        if current is not None and current.active:
            raise Refused(NOT_ALLOWED, f"organisation {org.id} exists already")
        if current is not None and current.org.role != org.role:
            raise Refused(NOT_ALLOWED, f"{org.id} was an {current.org.role}, not an {org.role}")
        if org.id in self.gateway_sites:
            raise Refused(NOT_ALLOWED, f"{org.id} is the id of a gateway")
        if org.ac is not None and self.role(org.ac) != "ac":
            raise Refused(NOT_ALLOWED, f"RA {org.id} names {org.ac}, which is not an active AC")
        self._put_org(org, True, pos)
        return self._sites_touching(org.id)

    def _org_remove(self, msg: OrgRemove) -> list[str]:
        role = self.role(msg.org)
        if role is None:
            raise Refused(NOT_ALLOWED, f"{msg.org} is not an active organisation")
        if role == "tso":
            raise Refused(NOT_ALLOWED, "the TSO cannot be removed")
        self.db.execute("UPDATE orgs SET active=0 WHERE id=?", (msg.org,))
        self.orgs[msg.org] = OrgState(self.orgs[msg.org].org, False)
        return self._sites_touching(msg.org)

    def _site(self, msg: SiteRegistration, pos: int) -> list[str]:
        current = self.sites.get(msg.site)
        if current is not None and current.ra != msg.by:
            raise Refused(NOT_ALLOWED, f"site {msg.site} belongs to {current.ra}, not {msg.by}")
        gw = msg.gateway
        holder = self.gateway_sites.get(gw.id)
        if holder is not None and holder != msg.site:
            raise Refused(NOT_ALLOWED, f"gateway {gw.id} is registered for site {holder}")
        if gw.id in self.orgs:
            raise Refused(NOT_ALLOWED, f"{gw.id} is the id of an organisation")
        self.db.execute(
            "INSERT OR REPLACE INTO sites VALUES (?, ?, ?, ?, ?, ?, ?)",
            (msg.site, msg.by, gw.id, gw.ed25519, gw.x25519, json.dumps(msg.meters), pos),
        )
        self.sites[msg.site] = Site(msg.site, msg.by, gw, msg.meters)
        return [msg.site]

    def _site_move(self, msg: SiteMove) -> list[str]:
        site = self.sites.get(msg.site)
        if site is None:
            raise Refused(NOT_ALLOWED, f"site {msg.site} is not registered")
        if self.role(msg.ra) != "ra":
            raise Refused(NOT_ALLOWED, f"{msg.ra} is not an active RA")
        self.db.execute("UPDATE sites SET ra=? WHERE site=?", (msg.ra, msg.site))
        self.sites[msg.site] = Site(site.site, msg.ra, site.gateway, site.meters)
        return [msg.site]

    def _put_org(self, org: Org, active: bool, pos: int) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO orgs VALUES (?, ?, ?, ?, ?, ?, ?)",
            (org.id, org.role, org.ac, org.ed25519, org.x25519, int(active), pos),
        )
        self.orgs[org.id] = OrgState(org, active)

    def _set_n(self, author: str, n: int) -> None:
        self.db.execute("INSERT OR REPLACE INTO registry_n VALUES (?, ?)", (author, n))
        self.last_n[author] = n

    def _sites_touching(self, org: str) -> list[str]:
        return sorted(
            s.site for s in self.sites.values() if org in (s.ra, self.ac_of(s.ra), self.tso)
        )

    def _remember_group(self, site: str) -> None:
        members, gateway = self.group(site)
        row = (site, ",".join(members), gateway)
        if row not in self.groups_seen:
            self.db.execute("INSERT INTO site_groups VALUES (?, ?, ?)", row)
            self.groups_seen.add(row)

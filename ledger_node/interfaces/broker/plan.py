"""Who may read and write which topics: the ACL of every identity, from the topic plan.

Every topic comes from `ledger_node.wire.topics.Topics`, the one place that spells them,
so the ACL follows the plan the gateways and nodes use:

- a gateway writes only its own readings, status and enrolment request, and reads only
  its marks, its site's epoch keys and shreds, the TSO's DR commands and the
  declarations of the RAs it trusts;
- an organisation's node writes only its own facts, marks, checkpoint, co-signatures and
  status, and its anti-entropy requests and answers; it reads every readings batch and
  fact, every checkpoint, the co-signatures of its own checkpoint, what is addressed to
  it, and (an RA) the gateways' enrolment requests;
- a monitor reads the broker's ``$SYS`` tree and every topic of the plan, and writes none.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger_node.wire import DrCommand, DrDeclaration, EpochKey, EpochShred
from ledger_node.wire.topics import Topics

SYS_TOPICS = "$SYS/#"


@dataclass(frozen=True)
class Gateway:
    """A gateway of the inventory: its id, its site, and the RAs whose declarations it
    follows (empty: every RA of the network)."""

    id: str
    site: str
    ras: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rules:
    """One identity's ACL: topic filters it may read, and topics (or filters) it may write."""

    user: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    comment: str = ""


@dataclass(frozen=True)
class Plan:
    """The network's identities: organisations with their role, gateways, monitors."""

    topics: Topics
    orgs: dict[str, str]
    """Organisation id → role (tso, ac, ra)."""
    gateways: tuple[Gateway, ...] = ()
    monitors: tuple[str, ...] = ()
    rules: list[Rules] = field(default_factory=list, init=False)

    @property
    def tso(self) -> str:
        return next(org for org, role in self.orgs.items() if role == "tso")

    def gateway_rules(self, gw: Gateway) -> Rules:
        t = self.topics
        ras = gw.ras or tuple(sorted(o for o, role in self.orgs.items() if role == "ra"))
        return Rules(
            gw.id,
            read=(
                t.hwms(gw.id),
                t.checkpoints(),  # the nodes' signed times keep the gateway's clock
                t.site_epochs(EpochKey.TYPE, gw.site),
                t.site_epochs(EpochShred.TYPE, gw.site),
                t.facts(DrCommand.TYPE, self.tso),
                *(t.facts(DrDeclaration.TYPE, ra) for ra in ras),
            ),
            write=(t.readings(gw.site, gw.id), t.status(gw.id), t.enrol(gw.site, gw.id)),
            comment=f"gateway of site {gw.site}",
        )

    def node_rules(self, org: str) -> Rules:
        t = self.topics
        read = [
            t.all_readings,
            t.facts(),
            t.checkpoints(),
            t.cosigs(org),
            t.sync(org),
            t.sync_response(org),
        ]
        if self.orgs[org] == "ra":
            read.append(t.all_enrolments)
        return Rules(
            org,
            read=tuple(read),
            write=(
                t.all_of(f"facts/+/{org}"),
                t.all_of(f"hwm/{org}"),
                t.checkpoint(org),
                t.cosig("+", org),
                t.node_status(org),
                t.sync("+"),
                t.sync_response("+"),
            ),
            comment=f"{self.orgs[org]} {org}: its node, and its facts signed without one",
        )

    def monitor_rules(self, name: str) -> Rules:
        return Rules(name, read=(SYS_TOPICS, f"{self.topics.prefix}/#"), comment="monitor")

    def all_rules(self) -> list[Rules]:
        return [
            *(self.node_rules(org) for org in sorted(self.orgs)),
            *(self.gateway_rules(gw) for gw in self.gateways),
            *(self.monitor_rules(m) for m in self.monitors),
        ]

    def identities(self) -> list[str]:
        """Every identity that gets a client certificate."""
        return [r.user for r in self.all_rules()]


def acl_text(plan: Plan) -> str:
    """Mosquitto's ACL file: one `user` block per identity (its certificate's common name);
    anything not granted is denied."""
    out = [
        "# meterledger broker ACL: written by `mlg-node broker-config`; edit the inventory,",
        "# not this file. User names are the client certificates' common names.",
        "",
    ]
    for rules in plan.all_rules():
        if rules.comment:
            out.append(f"# {rules.comment}")
        out.append(f"user {rules.user}")
        out += [f"topic read {t}" for t in rules.read]
        out += [f"topic write {t}" for t in rules.write]
        out.append("")
    return "\n".join(out)

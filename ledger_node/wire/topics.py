"""Every MQTT topic of meterledger, built and parsed in one place (gateways and nodes alike).

All payloads are signed envelopes, except the gateway's status::

    {prefix}/readings/{site}/{gateway}      a gateway's readings batches (QoS 1)
    {prefix}/facts/{type}/{author}/{key…}   organisation facts, QoS 1, retained, one topic
                                            per fact key (`Topics.fact`)
    {prefix}/hwm/{node}/{gateway}           a node's high-water mark for a gateway (retained)
    {prefix}/status/{gateway}               a gateway's birth, last will and periodic status
                                            (retained; JSON: state, boot, t, outbox depth)
    {prefix}/node-status/{node}             a node's periodic status (retained; JSON: its
                                            refusal counts by reason, log size, t)
    {prefix}/enrol/{site}/{gateway}         a new gateway's enrolment request (retained,
                                            signed by its own new key)
    {prefix}/checkpoint/{node}              a node's latest signed checkpoint (retained)
    {prefix}/cosig/{node}/{witness}         a witness's latest co-signature of it (retained)
    {prefix}/sync/{node}                    anti-entropy requests to a node (QoS 1)
    {prefix}/sync-resp/{node}               answers to a node's requests (QoS 1)

`Topics.parse` turns a received topic back into a `Topic` (its kind and named parts), or
None for a topic that is not one of ours; nobody slices topic strings elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger_node.wire.facts import DrCommand, DrDeclaration, EpochKey, EpochShred
from ledger_node.wire.messages import Message
from ledger_node.wire.registry import REGISTRY_TYPES, Genesis
from ledger_node.wire.reports import AsReport

_PARTS = {
    "readings": ("site", "gateway"),
    "hwm": ("node", "gateway"),
    "status": ("gateway",),
    "node-status": ("node",),
    "enrol": ("site", "gateway"),
    "checkpoint": ("node",),
    "cosig": ("node", "witness"),
    "sync": ("node",),
    "sync-resp": ("node",),
}
"""Each kind of topic and the names of its levels after the kind (facts: see `Topic`)."""


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic: its kind (``readings``, ``facts``, ``hwm``, …) and its levels.

    For ``facts`` the levels are the fact type, its author and the fact's key parts."""

    kind: str
    parts: tuple[str, ...]

    def part(self, name: str) -> str:
        """The level called `name` in the module's table (``node`` of an ``hwm`` topic)."""
        return self.parts[_PARTS[self.kind].index(name)]


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics under one prefix (the MQTT settings' ``topic_prefix``, ``mlg/v1``)."""

    prefix: str

    def __post_init__(self) -> None:
        if not self.prefix or any(c in self.prefix for c in "+#") or self.prefix.endswith("/"):
            raise ValueError(f"topic prefix {self.prefix!r}: not empty, no '+', '#' or final '/'")

    def _join(self, *levels: str) -> str:
        return "/".join((self.prefix, *levels))

    # -- building --------------------------------------------------------------------------

    def readings(self, site: str, gateway: str) -> str:
        return self._join("readings", site, gateway)

    def fact(self, message: Message) -> str:
        """The retained topic of a fact: its type, its author and its key."""
        kind, by = message.TYPE, message.author
        if isinstance(message, EpochKey | EpochShred):
            return self._join("facts", kind, by, message.site, str(message.epoch))
        if isinstance(message, DrCommand):
            return self._join("facts", kind, by, message.id)
        if isinstance(message, DrDeclaration | AsReport):
            return self._join("facts", kind, by, message.command)
        if kind in REGISTRY_TYPES and kind != Genesis.TYPE:
            return self._join("facts", kind, by, str(message.n))  # type: ignore[attr-defined]
        return self._join("facts", kind, by)

    def hwm(self, node: str, gateway: str) -> str:
        return self._join("hwm", node, gateway)

    def status(self, gateway: str) -> str:
        return self._join("status", gateway)

    def node_status(self, node: str) -> str:
        return self._join("node-status", node)

    def enrol(self, site: str, gateway: str) -> str:
        return self._join("enrol", site, gateway)

    def checkpoint(self, node: str) -> str:
        return self._join("checkpoint", node)

    def cosig(self, node: str, witness: str) -> str:
        return self._join("cosig", node, witness)

    def sync(self, node: str) -> str:
        return self._join("sync", node)

    def sync_response(self, node: str) -> str:
        return self._join("sync-resp", node)

    # -- subscription filters ---------------------------------------------------------------

    @property
    def all_readings(self) -> str:
        return self._join("readings", "+", "+")

    def facts(self, kind: str | None = None, author: str | None = None) -> str:
        """All facts, or those of one type, by one author, or both."""
        if kind is None and author is None:
            return self._join("facts", "#")
        return self._join("facts", kind or "+", author or "+", "#")

    def site_epochs(self, kind: str, site: str) -> str:
        """Every epoch fact of one site (`EpochKey.TYPE` or `EpochShred.TYPE`), whoever
        wrote it."""
        return self._join("facts", kind, "+", site, "+")

    def hwms(self, gateway: str) -> str:
        """Every node's high-water mark for one gateway."""
        return self._join("hwm", "+", gateway)

    def checkpoints(self) -> str:
        return self.checkpoint("+")

    @property
    def all_statuses(self) -> str:
        """Every gateway's status topic."""
        return self.status("+")

    @property
    def all_node_statuses(self) -> str:
        return self.node_status("+")

    @property
    def all_enrolments(self) -> str:
        return self._join("enrol", "+", "+")

    def all_of(self, kind: str) -> str:
        """Every topic of one kind (``hwm``, ``facts``, …): ``{prefix}/{kind}/#``."""
        return self._join(kind, "#")

    def cosigs(self, node: str) -> str:
        """Every witness's co-signature of one node's checkpoint."""
        return self.cosig(node, "+")

    # -- parsing ----------------------------------------------------------------------------

    def parse(self, topic: str) -> Topic | None:
        """The kind and levels of a topic under this prefix; None if it is none of ours."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        kind, *parts = topic[len(head) :].split("/")
        if any(not p for p in parts):
            return None
        if kind == "facts":
            return Topic(kind, tuple(parts)) if len(parts) >= 2 else None
        names = _PARTS.get(kind)
        if names is None or len(parts) != len(names):
            return None
        return Topic(kind, tuple(parts))

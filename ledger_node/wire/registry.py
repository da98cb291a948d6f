"""Registry facts: who takes part (organisations and their keys) and which sites exist.

The TSO writes the genesis (every organisation with its role and public keys, and the
version of the aggregation contract), adds and removes ACs and RAs, and may move a site
to another RA; an RA registers its sites (gateway key, meters). Each author numbers its
registry facts `n` = 1, 2, 3, … (the genesis is the TSO's 0): nodes apply them in that
order, so every replica reaches the same registry whatever order they arrive in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ledger_node.shared.ids import b64
from ledger_node.wire.errors import SchemaError
from ledger_node.wire.messages import Message, body_schema, register
from ledger_node.wire.schema import B64, Id, Int, ListOf, Obj, Str

ROLES = frozenset({"tso", "ac", "ra"})
MAX_ORGS = 256
MAX_SITE_METERS = 256
MAX_REGISTRY_N = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Org:
    """An organisation: its role (tso, ac, ra), Ed25519 and X25519 public keys; an RA
    names the AC it belongs to (`ac`), other roles have `ac` None."""

    id: str
    role: str
    ed25519: bytes
    x25519: bytes
    ac: str | None = None

    def to_json(self) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": self.id,
            "role": self.role,
            "ed25519": b64(self.ed25519),
            "x25519": b64(self.x25519),
        }
        if self.ac is not None:
            obj["ac"] = self.ac
        return obj

    @classmethod
    def from_checked(cls, v: dict[str, Any]) -> Org:
        return cls(v["id"], v["role"], v["ed25519"], v["x25519"], v.get("ac"))


ORG = Obj(
    {
        "id": Id(),
        "role": Str(choices=ROLES),
        "ed25519": B64(32, 32),
        "x25519": B64(32, 32),
        "ac": Id(),
    },
    optional=frozenset({"ac"}),
)


def _check_org(v: dict[str, Any], path: str) -> None:
    if (v["role"] == "ra") != ("ac" in v):
        raise SchemaError(f"{path}.ac", "an RA names its AC; other roles do not")


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """A site's gateway: its id, Ed25519 key (verifies its batches) and X25519 key (epoch
    keys are wrapped to it)."""

    id: str
    ed25519: bytes
    x25519: bytes


GATEWAY = Obj({"id": Id(), "ed25519": B64(32, 32), "x25519": B64(32, 32)})


@register
@dataclass(frozen=True, slots=True)
class Genesis(Message):
    """The network's first fact, signed by its TSO: organisations and the contract version.

    `t` is when it was made (UTC s); `contract` names the aggregation contract's version
    (e.g. ``dr-1``) that every node must run to produce results.
    """

    TYPE: ClassVar[str] = "genesis"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "network": Id(),
            "contract": Id(),
            "t": Int(0),
            "orgs": ListOf(ORG, max_len=MAX_ORGS, min_len=1),
        },
    )

    by: str
    network: str
    contract: str
    t: int
    orgs: tuple[Org, ...]

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "network": self.network,
            "contract": self.contract,
            "t": self.t,
            "orgs": [o.to_json() for o in self.orgs],
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(
            v["by"], v["network"], v["contract"], v["t"], tuple(map(Org.from_checked, v["orgs"]))
        )

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        ids = [o["id"] for o in v["orgs"]]
        if ids != sorted(set(ids)):
            raise SchemaError("orgs", "must be sorted by id and name each organisation once")
        for i, o in enumerate(v["orgs"]):
            _check_org(o, f"orgs[{i}]")
        tsos = [o["id"] for o in v["orgs"] if o["role"] == "tso"]
        if tsos != [v["by"]]:
            raise SchemaError("orgs", "must hold exactly one TSO, the genesis's author")
        acs = {o["id"] for o in v["orgs"] if o["role"] == "ac"}
        for i, o in enumerate(v["orgs"]):
            if o["role"] == "ra" and o["ac"] not in acs:
                raise SchemaError(f"orgs[{i}].ac", f"{o['ac']!r} is not an AC of the genesis")


@register
@dataclass(frozen=True, slots=True)
class OrgAdd(Message):
    """The TSO adds an AC or an RA (its `n`-th registry fact)."""

    TYPE: ClassVar[str] = "org_add"
    SCHEMA: ClassVar[Obj] = body_schema(TYPE, {"by": Id(), "n": Int(1, MAX_REGISTRY_N), "org": ORG})

    by: str
    n: int
    org: Org

    def _fields(self) -> dict[str, Any]:
        return {"by": self.by, "n": self.n, "org": self.org.to_json()}

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(v["by"], v["n"], Org.from_checked(v["org"]))

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        _check_org(v["org"], "org")
        if v["org"]["role"] == "tso":
            raise SchemaError("org.role", "the TSO is fixed by the genesis")


@register
@dataclass(frozen=True, slots=True)
class OrgRemove(Message):
    """The TSO removes an AC or RA: it leaves every privacy group (new epochs follow)."""

    TYPE: ClassVar[str] = "org_remove"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE, {"by": Id(), "n": Int(1, MAX_REGISTRY_N), "org": Id()}
    )

    by: str
    n: int
    org: str

    def _fields(self) -> dict[str, Any]:
        return {"by": self.by, "n": self.n, "org": self.org}

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(v["by"], v["n"], v["org"])


@register
@dataclass(frozen=True, slots=True)
class SiteRegistration(Message):
    """An RA registers (or updates) one of its sites: its gateway and its meters.

    Registering a site that another RA holds is refused: a site changes RA by `SiteMove`.
    """

    TYPE: ClassVar[str] = "site"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "n": Int(1, MAX_REGISTRY_N),
            "site": Id(),
            "gw": GATEWAY,
            "meters": ListOf(Id(), max_len=MAX_SITE_METERS, min_len=1),
        },
    )

    by: str
    n: int
    site: str
    gateway: GatewayKey
    meters: tuple[str, ...]

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "n": self.n,
            "site": self.site,
            "gw": {
                "id": self.gateway.id,
                "ed25519": b64(self.gateway.ed25519),
                "x25519": b64(self.gateway.x25519),
            },
            "meters": list(self.meters),
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        gw = v["gw"]
        return cls(
            v["by"],
            v["n"],
            v["site"],
            GatewayKey(gw["id"], gw["ed25519"], gw["x25519"]),
            tuple(v["meters"]),
        )

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        if v["meters"] != sorted(set(v["meters"])):
            raise SchemaError("meters", "must be sorted and unique")


@register
@dataclass(frozen=True, slots=True)
class SiteMove(Message):
    """The TSO moves a site to another RA (the consumer changed its service contract)."""

    TYPE: ClassVar[str] = "site_move"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE, {"by": Id(), "n": Int(1, MAX_REGISTRY_N), "site": Id(), "ra": Id()}
    )

    by: str
    n: int
    site: str
    ra: str

    def _fields(self) -> dict[str, Any]:
        return {"by": self.by, "n": self.n, "site": self.site, "ra": self.ra}

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(v["by"], v["n"], v["site"], v["ra"])


REGISTRY_TYPES = frozenset(
    {Genesis.TYPE, OrgAdd.TYPE, OrgRemove.TYPE, SiteRegistration.TYPE, SiteMove.TYPE}
)
"""Types numbered by their author's registry counter `n`."""

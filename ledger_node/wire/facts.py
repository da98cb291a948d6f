"""Organisation facts shared with gateways: group epoch keys (and their shredding) and DR
commands/declarations.

The registry facts (genesis, organisations, sites) are in `registry`; these are here
because gateways read them too: a gateway unwraps its site's epoch key (and deletes a
shredded one), and switches its DR control for the window of a command its site is
declared for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ledger_node.shared.ids import b64
from ledger_node.wire.errors import SchemaError
from ledger_node.wire.messages import Message, body_schema, register
from ledger_node.wire.schema import B64, Id, Int, ListOf, Obj

SEALED_KEY_BYTES = 32 + 48
"""A 32-byte key in a SealedBox: ephemeral public key (32) + MAC (16) + key (32)."""
MAX_GROUP_MEMBERS = 8
MAX_DR_SLOTS = 288
MAX_DR_TARGETS = 64
MAX_DECLARED_SITES = 256


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """An epoch key sealed (X25519 SealedBox) to the party `to`."""

    to: str
    sealed: bytes


@register
@dataclass(frozen=True, slots=True)
class EpochKey(Message):
    """A site group's data key for one epoch, wrapped for each member and the gateway.

    `members` are the organisations of the group; `wrapped` has one entry for each of them
    and one for the site's gateway `gateway`. A new epoch starts on every membership change;
    readings name the epoch whose key sealed them.
    """

    TYPE: ClassVar[str] = "epoch_key"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "site": Id(),
            "epoch": Int(0, 2**32 - 1),
            "gw": Id(),
            "members": ListOf(Id(), max_len=MAX_GROUP_MEMBERS, min_len=1),
            "wrapped": ListOf(
                Obj({"to": Id(), "k": B64(SEALED_KEY_BYTES, SEALED_KEY_BYTES)}),
                max_len=MAX_GROUP_MEMBERS + 1,
                min_len=2,
            ),
        },
    )

    by: str
    site: str
    epoch: int
    gateway: str
    members: tuple[str, ...]
    wrapped: tuple[WrappedKey, ...]

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "site": self.site,
            "epoch": self.epoch,
            "gw": self.gateway,
            "members": list(self.members),
            "wrapped": [{"to": w.to, "k": b64(w.sealed)} for w in self.wrapped],
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(
            by=v["by"],
            site=v["site"],
            epoch=v["epoch"],
            gateway=v["gw"],
            members=tuple(v["members"]),
            wrapped=tuple(WrappedKey(w["to"], w["k"]) for w in v["wrapped"]),
        )

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        members = v["members"]
        if members != sorted(set(members)):
            raise SchemaError("members", "must be sorted and unique")
        recipients = [w["to"] for w in v["wrapped"]]
        if sorted(recipients) != sorted([*members, v["gw"]]):
            raise SchemaError("wrapped", "needs exactly one key for each member and the gateway")


@register
@dataclass(frozen=True, slots=True)
class DrCommand(Message):
    """A TSO's DR command (seed step 1): reduce load in [start, end) per AC target.

    Times are UTC seconds aligned to `slot_s`; declarations are accepted until
    `gate_closure`; `price_yen_per_kwh` pays delivered reduction (integer yen per kWh).
    """

    TYPE: ClassVar[str] = "dr_command"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "id": Id(),
            "start": Int(0),
            "end": Int(0),
            "slot_s": Int(1, 86_400),
            "gate_closure": Int(0),
            "price_yen_per_kwh": Int(0, 10**6),
            "targets": ListOf(
                Obj({"ac": Id(), "wh": Int(1, 10**12)}), max_len=MAX_DR_TARGETS, min_len=1
            ),
        },
    )

    by: str
    id: str
    start: int
    end: int
    slot_s: int
    gate_closure: int
    price_yen_per_kwh: int
    targets: tuple[tuple[str, int], ...]
    """(AC id, reduction target per slot, Wh)."""

    @property
    def slots(self) -> range:
        """Start times of the command's slots."""
        return range(self.start, self.end, self.slot_s)

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "id": self.id,
            "start": self.start,
            "end": self.end,
            "slot_s": self.slot_s,
            "gate_closure": self.gate_closure,
            "price_yen_per_kwh": self.price_yen_per_kwh,
            "targets": [{"ac": ac, "wh": wh} for ac, wh in self.targets],
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(
            by=v["by"],
            id=v["id"],
            start=v["start"],
            end=v["end"],
            slot_s=v["slot_s"],
            gate_closure=v["gate_closure"],
            price_yen_per_kwh=v["price_yen_per_kwh"],
            targets=tuple((t["ac"], t["wh"]) for t in v["targets"]),
        )

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        slot_s = v["slot_s"]
        if v["start"] % slot_s or v["end"] % slot_s:
            raise SchemaError("start", "start and end must be aligned to slot_s")
        if not v["start"] < v["end"] <= v["start"] + MAX_DR_SLOTS * slot_s:
            raise SchemaError("end", f"window must hold 1..{MAX_DR_SLOTS} slots")
        if v["gate_closure"] > v["start"]:
            raise SchemaError("gate_closure", "must not be after the window starts")
        acs = [t["ac"] for t in v["targets"]]
        if acs != sorted(set(acs)):
            raise SchemaError("targets", "must be sorted by AC and name each AC once")


@register
@dataclass(frozen=True, slots=True)
class DrDeclaration(Message):
    """An RA's DR declaration (seed step 2's precondition): the sites that respond to a
    command, each with its baseline in Wh per slot (one value for every slot of the
    window, or one per slot). A later `rev` from the same RA for the same command
    replaces an earlier one, until gate closure.
    """

    TYPE: ClassVar[str] = "dr_declaration"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "by": Id(),
            "command": Id(),
            "rev": Int(0, 2**32 - 1),
            "sites": ListOf(
                Obj(
                    {
                        "site": Id(),
                        "baseline_wh": ListOf(Int(0, 10**9), max_len=MAX_DR_SLOTS, min_len=1),
                    }
                ),
                max_len=MAX_DECLARED_SITES,
                min_len=1,
            ),
        },
    )

    by: str
    command: str
    rev: int
    sites: tuple[tuple[str, tuple[int, ...]], ...]
    """(site id, baseline Wh per slot)."""

    def baseline_wh(self, site: str, slot_index: int) -> int | None:
        """The site's baseline for the command's `slot_index`-th slot; None if not declared."""
        for name, baseline in self.sites:
            if name == site:
                return baseline[0] if len(baseline) == 1 else baseline[slot_index]
        return None

    def _fields(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "command": self.command,
            "rev": self.rev,
            "sites": [{"site": s, "baseline_wh": list(b)} for s, b in self.sites],
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(
            by=v["by"],
            command=v["command"],
            rev=v["rev"],
            sites=tuple((s["site"], tuple(s["baseline_wh"])) for s in v["sites"]),
        )

    @staticmethod
    def _check(v: dict[str, Any]) -> None:
        names = [s["site"] for s in v["sites"]]
        if names != sorted(set(names)):
            raise SchemaError("sites", "must be sorted by site and name each site once")


@register
@dataclass(frozen=True, slots=True)
class EpochShred(Message):
    """The TSO orders one epoch's data key destroyed on every replica and gateway.

    The epoch's readings stay as ciphertext with their hashes and public commitments, so
    the log and every published total stay verifiable; nobody can decrypt them again.
    """

    TYPE: ClassVar[str] = "epoch_shred"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE, {"by": Id(), "site": Id(), "epoch": Int(0, 2**32 - 1)}
    )

    by: str
    site: str
    epoch: int

    def _fields(self) -> dict[str, Any]:
        return {"by": self.by, "site": self.site, "epoch": self.epoch}

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        return cls(v["by"], v["site"], v["epoch"])

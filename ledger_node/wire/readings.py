"""Readings: a gateway's signed batch for one slot, and the sealed payload inside it.

A readings batch is one gateway's signed record of one slot: public per-meter Pedersen
commitments to each meter's slot energy, and a SecretBox holding the readings themselves
(energy, blinding factor, quality flags), encrypted with the site group's epoch key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from ledger_node.shared.ids import b64
from ledger_node.wire import canonical
from ledger_node.wire.errors import SchemaError
from ledger_node.wire.messages import BODY_VERSION, Message, body_schema, check_version, register
from ledger_node.wire.schema import B64, Const, Id, Int, ListOf, Obj, Str

MAX_METERS_PER_BATCH = 256
MAX_BOX_BYTES = 48 * 1024
MAX_SLOT_SECONDS = 86_400
DEFAULT_SLOT_S = 60
"""The slot length (s) of gateways, emulators and DR commands unless configured: one
default, so that a command and the readings it counts agree without being told."""
MAX_CONTROL_ACTIONS = 16
MAX_SEQ_GAP = 100_000
"""A batch's seq is at most this far above the highest its gateway has had committed (about
70 days of one-minute slots): beyond it the nodes refuse the batch and the gateway adopts no
such seq from a node's mark; both alarm."""
MAX_SLOT_WH = 10**9
"""An upper bound on one meter's energy in one slot, Wh (1 GWh: far above any meter)."""

QUALITY_FLAGS = frozenset(
    {
        "estimated",  # boundary value interpolated between polls
        "nan",  # the meter returned NaN or infinity
        "out_of_range",  # a value beyond the model's physical range
        "backwards",  # the cumulative register went down
        "counter_reset",  # the cumulative register restarted near zero
        "jump",  # more energy than the meter's maximum power allows in the time
    }
)


@dataclass(frozen=True, slots=True)
class MeterCommitment:
    """A meter id and the Pedersen commitment (32-byte point) to its slot energy."""

    meter: str
    commitment: bytes


@register
@dataclass(frozen=True, slots=True)
class ReadingsBatch(Message):
    """One gateway's sealed readings for one slot. Slot times are UTC unix seconds."""

    TYPE: ClassVar[str] = "readings"
    AUTHOR: ClassVar[str] = "gw"
    SCHEMA: ClassVar[Obj] = body_schema(
        TYPE,
        {
            "gw": Id(),
            "site": Id(),
            "seq": Int(0),
            "slot": Int(0),
            "slot_s": Int(1, MAX_SLOT_SECONDS),
            "epoch": Int(0, 2**32 - 1),
            "meters": ListOf(
                Obj({"id": Id(), "c": B64(32, 32)}), max_len=MAX_METERS_PER_BATCH, min_len=1
            ),
            "box": B64(40, MAX_BOX_BYTES),
        },
    )

    gateway: str
    site: str
    seq: int
    slot_start: int
    slot_seconds: int
    epoch: int
    commitments: tuple[MeterCommitment, ...]
    box: bytes

    @property
    def author(self) -> str:
        return self.gateway

    def _fields(self) -> dict[str, Any]:
        return {
            "gw": self.gateway,
            "site": self.site,
            "seq": self.seq,
            "slot": self.slot_start,
            "slot_s": self.slot_seconds,
            "epoch": self.epoch,
            "meters": [{"id": m.meter, "c": b64(m.commitment)} for m in self.commitments],
            "box": b64(self.box),
        }

    @classmethod
    def _from_checked(cls, v: dict[str, Any]) -> Self:
        # Checked on reading only: a gateway's slot grid and its config (one [[meter]] per
        # id) already guarantee both in the batches it encodes.
        if v["slot"] % v["slot_s"]:
            raise SchemaError("slot", f"{v['slot']} is not aligned to slot_s={v['slot_s']}")
        ids = [m["id"] for m in v["meters"]]
        if len(set(ids)) != len(ids):
            raise SchemaError("meters", "a meter appears twice")
        return cls(
            gateway=v["gw"],
            site=v["site"],
            seq=v["seq"],
            slot_start=v["slot"],
            slot_seconds=v["slot_s"],
            epoch=v["epoch"],
            commitments=tuple(MeterCommitment(m["id"], m["c"]) for m in v["meters"]),
            box=v["box"],
        )


@dataclass(frozen=True, slots=True)
class Reading:
    """One meter's energy in one slot: integer Wh, its blinding scalar, quality flags."""

    meter: str
    wh: int
    blinding: bytes
    quality: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ControlAction:
    """What the gateway did for DR control: set `state` (1 on = load shed) at time `t`.

    `ok` is False when the meter-side device did not confirm the switch.
    """

    command: str
    state: int
    t: int
    ok: bool


@dataclass(frozen=True, slots=True)
class SlotPayload:
    """The plaintext inside a batch's box. `gw` and `seq` bind it to its batch.

    `control` lists the DR control actions taken in the slot (absent when none).
    """

    SCHEMA: ClassVar[Obj] = Obj(
        {
            "v": Const(BODY_VERSION),
            "gw": Id(),
            "seq": Int(0),
            "readings": ListOf(
                Obj(
                    {
                        "meter": Id(),
                        "wh": Int(0, MAX_SLOT_WH),
                        "r": B64(32, 32),
                        "q": ListOf(Str(choices=QUALITY_FLAGS), max_len=len(QUALITY_FLAGS)),
                    }
                ),
                max_len=MAX_METERS_PER_BATCH,
                min_len=1,
            ),
            "control": ListOf(
                Obj({"command": Id(), "state": Int(0, 1), "t": Int(0), "ok": Int(0, 1)}),
                max_len=MAX_CONTROL_ACTIONS,
                min_len=1,
            ),
        },
        optional=frozenset({"control"}),
    )

    gateway: str
    seq: int
    readings: tuple[Reading, ...]
    control: tuple[ControlAction, ...] = ()

    def to_bytes(self) -> bytes:
        obj = {
            "v": BODY_VERSION,
            "gw": self.gateway,
            "seq": self.seq,
            "readings": [
                {"meter": r.meter, "wh": r.wh, "r": b64(r.blinding), "q": sorted(r.quality)}
                for r in self.readings
            ],
        }
        if self.control:
            obj["control"] = [
                {"command": c.command, "state": c.state, "t": c.t, "ok": int(c.ok)}
                for c in self.control
            ]
        self.SCHEMA.check(obj, "")
        return canonical.encode(obj)

    @classmethod
    def from_bytes(cls, data: bytes) -> SlotPayload:
        obj = canonical.decode(data)
        check_version(obj)
        v = cls.SCHEMA.check(obj, "")
        for i, r in enumerate(v["readings"]):
            if r["q"] != sorted(set(r["q"])):
                raise SchemaError(f"readings[{i}].q", "flags must be sorted and unique")
        return cls(
            gateway=v["gw"],
            seq=v["seq"],
            readings=tuple(
                Reading(r["meter"], r["wh"], r["r"], tuple(r["q"])) for r in v["readings"]
            ),
            control=tuple(
                ControlAction(c["command"], c["state"], c["t"], bool(c["ok"]))
                for c in v.get("control", ())
            ),
        )

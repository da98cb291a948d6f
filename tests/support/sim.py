"""Simulated parties for node tests: organisations that sign facts and gateways that seal
real readings batches with the wire types, as the real gateway does.

Nothing here is a mock of the node: every message is a real signed envelope, and the
gateway unwraps its epoch key from the TSO's real `EpochKey` fact with its own X25519 key.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import nacl.public
import nacl.secret
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ledger_node.localnet.network import FIGURE_7, LocalNet
from ledger_node.localnet.wait import wait_until
from ledger_node.network.genesis import make_genesis
from ledger_node.shared.keys import Identity
from ledger_node.wire import (
    ControlAction,
    DrCommand,
    DrDeclaration,
    EpochKey,
    GatewayKey,
    Message,
    MeterCommitment,
    Reading,
    ReadingsBatch,
    SiteMove,
    SiteRegistration,
    SlotPayload,
    open_body,
    parse,
    pedersen,
)


def sign(identity: Identity, message: Message) -> bytes:
    return message.seal(identity)


@dataclass
class Party:
    """An organisation with its identity and its registry counter."""

    identity: Identity
    role: str
    ac: str | None = None
    n: int = 0

    @property
    def name(self) -> str:
        return self.identity.name

    def next_n(self) -> int:
        self.n += 1
        return self.n


@dataclass
class SimGateway:
    """A gateway that seals batches with the newest epoch key it could unwrap."""

    identity: Identity
    site: str
    meters: tuple[str, ...]
    keys: dict[int, bytes] = field(default_factory=dict)
    seq: int = 0
    sealed: list[tuple[bytes, SlotPayload]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.identity.name

    def gateway_key(self) -> GatewayKey:
        return GatewayKey(
            self.name,
            bytes(self.identity.signing_key.verify_key),
            bytes(self.identity.box_secret.public_key),
        )

    def take_epoch_key(self, key: EpochKey) -> bool:
        """Unwrap the entry for this gateway; False if the key is not for it."""
        mine = next((w for w in key.wrapped if w.to == self.name), None)
        if key.site != self.site or mine is None:
            return False
        self.keys[key.epoch] = nacl.public.SealedBox(self.identity.box_secret).decrypt(mine.sealed)
        return True

    def batch(
        self,
        slot: int,
        whs: dict[str, int],
        slot_s: int = 60,
        control: tuple[ControlAction, ...] = (),
    ) -> bytes:
        """Seal the next batch for `slot` with the newest epoch (meter → Wh), recording
        the DR `control` actions taken in it."""
        epoch = max(self.keys)
        readings = tuple(Reading(m, whs[m], pedersen.random_blinding()) for m in sorted(whs))
        payload = SlotPayload(self.name, self.seq, readings, control)
        batch = ReadingsBatch(
            gateway=self.name,
            site=self.site,
            seq=self.seq,
            slot_start=slot,
            slot_seconds=slot_s,
            epoch=epoch,
            commitments=tuple(
                MeterCommitment(r.meter, pedersen.commit(r.wh, r.blinding)) for r in readings
            ),
            box=bytes(nacl.secret.SecretBox(self.keys[epoch]).encrypt(payload.to_bytes())),
        )
        self.seq += 1
        raw = sign(self.identity, batch)
        self.sealed.append((raw, payload))
        return raw


@dataclass
class Figure7:
    """The brief's figure 7: TSO; AC(1) with RA(1) and RA(2); AC(2) with RA(3); one site
    per RA (site1 → RA(1), site2 → RA(2), site3 → RA(3)), each with its gateway."""

    tso: Party
    acs: dict[str, Party]
    ras: dict[str, Party]
    gateways: dict[str, SimGateway]
    genesis: bytes

    @classmethod
    def make(cls, network: str = "fig7", meters: tuple[str, ...] = ("m1", "m2")) -> Figure7:
        tso = Party(Identity.generate("tso"), "tso")
        acs = {a: Party(Identity.generate(a), "ac") for a in ("ac1", "ac2")}
        ras = {
            "ra1": Party(Identity.generate("ra1"), "ra", "ac1"),
            "ra2": Party(Identity.generate("ra2"), "ra", "ac1"),
            "ra3": Party(Identity.generate("ra3"), "ra", "ac2"),
        }
        gateways = {
            f"site{i}": SimGateway(Identity.generate(f"gw-site{i}"), f"site{i}", meters)
            for i in (1, 2, 3)
        }
        members = [(p.identity.public, p.role, p.ac) for p in (*acs.values(), *ras.values())]
        genesis = make_genesis(tso.identity, network, members, t=1_700_000_000)
        return cls(tso, acs, ras, gateways, genesis)

    def ra_of_site(self, site: str) -> Party:
        return self.ras[f"ra{site.removeprefix('site')}"]

    def registrations(self) -> list[bytes]:
        out = []
        for site, gw in self.gateways.items():
            ra = self.ra_of_site(site)
            out.append(
                sign(
                    ra.identity,
                    SiteRegistration(ra.name, ra.next_n(), site, gw.gateway_key(), gw.meters),
                )
            )
        return out

    def move(self, site: str, to: str) -> bytes:
        return sign(self.tso.identity, SiteMove(self.tso.name, self.tso.next_n(), site, to))

    def command(
        self, cid: str, start: int, slots: int, gate_closure: int, targets: dict[str, int]
    ) -> bytes:
        return sign(
            self.tso.identity,
            DrCommand(
                by=self.tso.name,
                id=cid,
                start=start,
                end=start + 60 * slots,
                slot_s=60,
                gate_closure=gate_closure,
                price_yen_per_kwh=20,
                targets=tuple(sorted(targets.items())),
            ),
        )

    def declaration(self, ra: str, cid: str, baselines: dict[str, int], rev: int = 1) -> bytes:
        party = self.ras[ra]
        return sign(
            party.identity,
            DrDeclaration(
                party.name, cid, rev, tuple((s, (b,)) for s, b in sorted(baselines.items()))
            ),
        )


def retained(port: int, topic_filter: str, want: int, timeout_s: float = 30.0) -> list[bytes]:
    """Subscribe to `topic_filter` until `want` retained messages arrived (or time runs out)."""
    got: dict[str, bytes] = {}
    done = threading.Event()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        if msg.payload:
            got[msg.topic] = bytes(msg.payload)
        if len(got) >= want:
            done.set()

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.subscribe(topic_filter, qos=1)
        client.loop_start()
        done.wait(1.0)
        client.disconnect()
        client.loop_stop()
        if done.is_set():
            break
    return list(got.values())


class SimNet:
    """A `LocalNet` of figure 7 whose three sites have simulated gateways (two meters each)."""

    RAS: ClassVar[dict[str, str]] = {"site1": "ra1", "site2": "ra2", "site3": "ra3"}

    def __init__(self, work: Path, broker_port: int, nodes: tuple[str, ...], **kw: Any) -> None:
        self.net = LocalNet(work, broker_port, FIGURE_7, nodes, **kw)
        self.port = broker_port
        self.gateways = {
            site: SimGateway(Identity.generate(f"gw-{site}"), site, ("m1", "m2"))
            for site in self.RAS
        }

    def register(self) -> None:
        """Each RA registers its site (its registry fact n=1), signed with its own key."""
        for site, ra in self.RAS.items():
            gw = self.gateways[site]
            self.net.publish_fact(ra, SiteRegistration(ra, 1, site, gw.gateway_key(), gw.meters))

    def take_epoch_keys(self, want: int) -> list[EpochKey]:
        """What a gateway does: read the retained epoch keys and unwrap its own."""
        keys = []
        for raw in retained(self.port, "mlg/v1/facts/epoch_key/#", want):
            message = open_body(parse(raw))
            assert isinstance(message, EpochKey)
            keys.append(message)
            for gw in self.gateways.values():
                gw.take_epoch_key(message)
        assert len(keys) >= want, f"only {len(keys)} epoch keys on the broker"
        return keys

    def sim_now(self) -> float:
        return self.net.origin + (time.time() - self.net.origin) * self.net.speed

    def last_slot(self, slot_s: int = 60) -> int:
        """The start of the last slot that has ended (UTC s, simulated time)."""
        return int(self.sim_now()) // slot_s * slot_s - slot_s

    def batch(
        self, site: str, slot: int, whs: dict[str, int] | None = None
    ) -> tuple[str, bytes, bool]:
        gw = self.gateways[site]
        raw = gw.batch(slot, whs or {"m1": 100 + gw.seq, "m2": 200})
        return (f"mlg/v1/readings/{site}/{gw.name}", raw, False)

    def publish(self, items: list[tuple[str, bytes, bool]]) -> None:
        self.net.publish(items)

    def status(self, node: str) -> dict[str, Any]:
        result: dict[str, Any] = self.net.get(node, "/api/status")
        return result

    def accepted(self, node: str, kind: str = "readings") -> int:
        return int(self.status(node)["accepted"].get(kind, 0))

    def wait_accepted(self, nodes: tuple[str, ...], count: int) -> None:
        """Wait until each of `nodes` has accepted `count` readings batches."""
        for node in nodes:
            wait_until(
                lambda n=node: self.accepted(n) >= count,  # type: ignore[misc]
                30,
                f"{node} accepts {count}",
                alive=self.net.check_alive,
            )

    def totals(self, node: str) -> dict[tuple[str, int], int]:
        """What `node` totals per (site, slot), Wh."""
        return {(r["site"], r["slot"]): r["wh"] for r in self.net.get(node, "/api/totals")}


def db_bytes(db: Path) -> bytes:
    """Every byte a node's database keeps on disk: the file, its WAL and shared memory."""
    out = b""
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            out += path.read_bytes()
    return out

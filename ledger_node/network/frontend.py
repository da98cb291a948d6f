"""A verifying front-end of a node past one machine (its tables on PostgreSQL).

Several front-end processes, on any machines, share the node's readings through an MQTT
5 shared subscription (`$share/<node>/…/readings/+/+`): the broker gives each batch to
one of them. A front-end checks what costs CPU and needs no ledger state (the size before
anything is parsed, the envelope, the gateway's signature, the schema, the registry: the
gateway registered for that site and those meters), queues what passes in the database
(`queue`) and counts what does not, in one transaction per burst, and only then sends its
PUBACKs: a batch acknowledged is a batch committed. The sequencer (`sequencer`) admits the
queue into the log; a batch sent twice is caught there.

A front-end that dies leaves a broker session behind holding its unacknowledged batches
and its share of the new ones. Each front-end beats in `frontends` every second; a
session silent for `ADOPT_AFTER_S` is adopted by a live front-end, which connects with
its client id, takes what the session holds, leaves the shared subscription, and ends
the session once nothing more arrives. A front-end restarted under its old name takes
its session back itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ledger_node.ledger.refusals import NOT_ALLOWED
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import (
    DatabaseError,
    Db,
    StoreError,
    connect,
    count,
    is_postgres,
    lost,
    transaction,
)
from ledger_node.network.bursts import Timers, take_burst
from ledger_node.network.config import NodeConfig, max_packet_bytes
from ledger_node.shared.clock import Clock
from ledger_node.shared.errors import ConfigError
from ledger_node.shared.mqtt import make_client
from ledger_node.shared.mqtt import start as mqtt_start
from ledger_node.wire import ReadingsBatch, WireError, open_body, parse, verify
from ledger_node.wire.errors import UnknownSignerError
from ledger_node.wire.topics import Topics

log = logging.getLogger("mlg.node.frontend")

BURST = 512
"""Batches queued in one transaction at most."""
INBOX_LIMIT = 20_000
"""Batches received and not yet checked; beyond it paho's thread waits."""
HEARTBEAT_S = 1.0
"""How often a front-end says it is alive, real seconds."""
ADOPT_AFTER_S = 5.0
"""A front-end silent this long (real seconds) has its broker session adopted."""
RETIRE_QUIET_S = 2.0
"""An adopted session that delivered nothing this long (real seconds) is ended."""
REGISTRY_EVERY_S = 5.0
"""How often the registry's change mark is checked (and on every unknown gateway)."""
READINGS = frozenset({ReadingsBatch.TYPE})


@dataclass(frozen=True, slots=True)
class Received:
    payload: bytes
    mid: int
    qos: int
    client: mqtt.Client
    """The connection it came on (the front-end's own or an adopted session's): its PUBACK
    goes back on it."""


@dataclass
class Adopted:
    """A dead front-end's session this one drains."""

    client: mqtt.Client
    last_message: float
    unsubscribed: bool = False
    received: int = 0


class FrontEnd:
    """One verifying front-end of node `cfg.node_id`, named `name` (its broker client id is
    the node's with `-name` appended)."""

    def __init__(self, cfg: NodeConfig, clock: Clock, name: str) -> None:
        if cfg.database is None or not is_postgres(cfg.database):
            raise ConfigError(
                "a front-end queues into the node's PostgreSQL database: set"
                ' [node] database = "postgresql://…" (the sequencer and the front-ends share it)'
            )
        self.cfg = cfg
        self.clock = clock
        self.client_id = f"{cfg.mqtt.client_id}-{name}"
        self.db: Db = connect(cfg.database)
        self.registry = Registry(self.db)
        self._registry_mark: tuple[int, ...] = ()
        self.topic = f"$share/{cfg.node_id}/{Topics(cfg.mqtt.prefix).all_readings}"
        self.inbox: queue.Queue[Received] = queue.Queue(INBOX_LIMIT)
        self.client = self._client(self.client_id)
        self.adopted: dict[str, Adopted] = {}
        self._timers = Timers()
        self.queued = 0
        """Batches this process queued (for its log line and the tests)."""

    def _client(self, client_id: str) -> mqtt.Client:
        client = make_client(replace(self.cfg.mqtt, client_id=client_id), manual_ack=True)

        def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                log.error("broker refused %s: %s", client_id, reason)
                return
            if client_id == self.client_id:
                c.subscribe(self.topic, qos=1)
            log.info("%s connected (session %s)", client_id, flags.session_present)

        def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
            self.inbox.put(Received(bytes(msg.payload), msg.mid, msg.qos, c))
            adopted = self.adopted.get(client_id)
            if adopted is not None:
                adopted.last_message = time.monotonic()
                adopted.received += 1

        client.on_connect = on_connect
        client.on_message = on_message
        return client

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        self._beat()
        mqtt_start(self.client, self.cfg.mqtt, max_packet_bytes(self.cfg.max_message_bytes))
        log.info("front-end %s of node %s: taking %s", self.client_id, self.cfg.node_id, self.topic)

    def run(self, stop: threading.Event) -> None:
        retry: list[Received] = []
        while not stop.is_set():
            items = retry or take_burst(self.inbox, BURST, 0.1)
            retry = []
            if items:
                try:
                    self._check_and_queue(items)
                except DatabaseError as exc:
                    if lost(self.db):
                        raise StoreError(f"the node's database is lost: {exc}") from exc
                    log.error(
                        "queueing failed (%s); %d batches unacknowledged, retried", exc, len(items)
                    )
                    retry = items
                    stop.wait(1.0)
                    continue
            for adopted in self.adopted.values():
                adopted.client.loop(timeout=0.0)
            if self._timers.due("beat", HEARTBEAT_S):
                self._beat()
                self._adopt()
                self._retire()
            if self._timers.due("registry", REGISTRY_EVERY_S):
                self._reload_registry()

    def stop(self) -> None:
        log.info("stopping: %d batches queued by this front-end", self.queued)
        self.client.disconnect()
        self.client.loop_stop()
        for adopted in self.adopted.values():
            adopted.client.disconnect()
        # Its session stays at the broker and keeps its share of the stream: restarted
        # under the same name it takes it back, else a live front-end adopts it.
        self.db.close()

    # -- checking ---------------------------------------------------------------------------

    def _check_and_queue(self, items: list[Received]) -> None:
        """Check each batch; queue what passes and count what does not, in one transaction;
        then acknowledge them all."""
        rows: list[tuple[bytes, bytes, bytes, float]] = []
        refused: Counter[str] = Counter()
        now = self.clock.now()
        for item in items:
            try:
                rows.append((*self._check(item.payload), now))
            except WireError as exc:
                refused[exc.reason] += 1
                log.warning("refused a readings batch (%s): %s", exc.reason, exc)
        with transaction(self.db):
            self.db.executemany(
                "INSERT INTO queue (txid, envelope, key, received_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (txid) DO NOTHING",
                rows,
            )
            for reason, n in sorted(refused.items()):  # the sequencer's order: no deadlock
                count(self.db, f"refused:{reason}", n)
        self.queued += len(rows)
        for item in items:
            if item.qos:
                item.client.ack(item.mid, item.qos)

    def _check(self, payload: bytes) -> tuple[bytes, bytes, bytes]:
        """(txid, envelope, the signer's key) of a batch that passes; raises `WireError`
        (its `reason` the refusal's) if it does not."""
        envelope = parse(payload, self.cfg.max_message_bytes)
        key = verify(envelope, {envelope.signer: self._key(envelope.signer)}).key
        batch = open_body(envelope, READINGS)
        assert isinstance(batch, ReadingsBatch)
        site = self.registry.gateway_sites.get(batch.gateway)
        if site != batch.site:
            raise _NotAllowed(f"{batch.gateway} is not registered for {batch.site}")
        meters = self.registry.sites[site].meters
        unknown = [c.meter for c in batch.commitments if c.meter not in meters]
        if unknown:
            raise _NotAllowed(f"meter {unknown[0]} is not registered for {site}")
        return envelope.txid, payload, key

    def _reload_registry(self) -> None:
        """Read the registry again if a registry fact was applied since: every one moves its
        author's `n` (a small table), so a million sites are not read every few seconds."""
        mark = self.db.execute("SELECT COALESCE(SUM(n), 0), COUNT(*) FROM registry_n").fetchone()
        if tuple(mark) != self._registry_mark:
            self._registry_mark = tuple(mark)
            self.registry.reload()

    def _key(self, signer: str) -> nacl.signing.VerifyKey:
        key = self.registry.verify_keys.get(signer)
        if key is None:  # a gateway registered a moment ago? (one small query to know)
            self._reload_registry()
            key = self.registry.verify_keys.get(signer)
        if key is None:
            raise UnknownSignerError(f"no public key registered for signer {signer!r}")
        return key

    # -- sessions of dead front-ends ------------------------------------------------------------

    def _beat(self) -> None:
        now = time.time()
        with transaction(self.db):
            self.db.execute(
                "INSERT OR REPLACE INTO frontends VALUES (?, ?, NULL)", (self.client_id, now)
            )
            for client_id in self.adopted:
                self.db.execute(
                    "UPDATE frontends SET seen_at=? WHERE client_id=?", (now, client_id)
                )

    def _adopt(self) -> None:
        """Take over the broker session of each front-end silent for `ADOPT_AFTER_S`."""
        now = time.time()
        silent = self.db.execute(
            "SELECT client_id FROM frontends WHERE seen_at < ? AND client_id != ?",
            (now - ADOPT_AFTER_S, self.client_id),
        ).fetchall()
        for (client_id,) in silent:
            with transaction(self.db):
                claimed = self.db.execute(
                    "UPDATE frontends SET seen_at=?, adopted_by=?"
                    " WHERE client_id=? AND seen_at < ?",
                    (now, self.client_id, client_id, now - ADOPT_AFTER_S),
                ).rowcount
            if not claimed or client_id in self.adopted:
                continue
            log.warning("front-end %s is silent: adopting its broker session", client_id)
            client = self._client(client_id)
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            try:
                s = self.cfg.mqtt
                client.connect(s.host, s.port, s.keepalive_s, clean_start=False, properties=props)
            except OSError as exc:
                log.error("cannot adopt %s's session: %s", client_id, exc)
                continue
            self.adopted[client_id] = Adopted(client, time.monotonic())

    def _retire(self) -> None:
        """End the adopted sessions that have gone quiet: leave the shared subscription
        first (no new batch is routed there), then end the session."""
        for client_id, adopted in list(self.adopted.items()):
            quiet = time.monotonic() - adopted.last_message
            if quiet < RETIRE_QUIET_S:
                continue
            if not adopted.unsubscribed:
                adopted.client.unsubscribe(self.topic)
                adopted.unsubscribed = True
                adopted.last_message = time.monotonic()  # once more quiet after it
                continue
            if not self.inbox.empty():
                continue  # its last batches are not acknowledged yet
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
            adopted.client.disconnect(properties=props)
            adopted.client.loop(timeout=0.1)
            del self.adopted[client_id]
            with transaction(self.db):
                self.db.execute("DELETE FROM frontends WHERE client_id=?", (client_id,))
            log.info(
                "the session of front-end %s is drained and ended (%d batches taken from it)",
                client_id,
                adopted.received,
            )


class _NotAllowed(WireError):
    reason = NOT_ALLOWED

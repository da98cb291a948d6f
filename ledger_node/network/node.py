"""The running node: MQTT in, one writer thread, MQTT and HTTP out.

paho's network thread only queues incoming messages. The worker takes what has arrived
(a burst of up to `BURST` messages), admits them inside one SQLite transaction (if a bug
fails the burst, its messages are taken again one by one, so it costs one message),
commits, acts on the record of what the transaction changed, and only then acknowledges
every message of the burst (PUBACK) and publishes what the burst produced: high-water
marks, co-signatures, anti-entropy requests and answers, facts this node authored. If the
commit itself fails (disk full), nothing is acknowledged and the burst is tried again.
Between bursts the worker decrypts what its groups allow, closes slots, signs
checkpoints, settles DR commands and, on the TSO's node, starts new epochs.

As the `sequencer` of a node past one machine (PostgreSQL) it leaves the readings to the
verifying front-ends (`frontend`) and takes them from the database's queue instead
(`sequencer`), in the same bursts and transactions.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import paho.mqtt.client as mqtt

from ledger_node.contract.dr1 import CONTRACTS
from ledger_node.contract.settlement import Settlement
from ledger_node.ledger import Ledger, LedgerSettings
from ledger_node.ledger.arrival import Changes
from ledger_node.ledger.decrypt import open_sealed
from ledger_node.ledger.rekey import author_epochs
from ledger_node.ledger.store import (
    Db,
    OperationalError,
    StoreError,
    connect,
    lost,
    purge_wal,
)
from ledger_node.network import enrolments
from ledger_node.network.antientropy import AntiEntropy
from ledger_node.network.bursts import Timers, take_burst
from ledger_node.network.config import NodeConfig, max_packet_bytes
from ledger_node.network.genesis import load_genesis
from ledger_node.network.marks import HEARTBEAT_S, SeqMarks
from ledger_node.network.report import STATUS_EVERY_S, read_samples, status_message
from ledger_node.network.sequencer import Queued, done, take_queued
from ledger_node.network.witness import Witness
from ledger_node.shared.clock import Clock
from ledger_node.shared.errors import ConfigError, MeterledgerError
from ledger_node.shared.keys import Identity
from ledger_node.shared.metrics import MetricsServer, serve
from ledger_node.shared.mqtt import make_client
from ledger_node.shared.mqtt import start as mqtt_start
from ledger_node.wire import (
    EpochKey,
    EpochShred,
    SyncRequest,
    SyncResponse,
    open_message,
)
from ledger_node.wire.topics import Topics

log = logging.getLogger("mlg.node")

BURST = 512
"""Messages admitted in one transaction at most."""
QUEUE_LIMIT = 20_000
"""Messages waiting for the worker; beyond it paho's thread waits (TCP back-pressure)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retained: bool = False
    """A copy the broker kept, delivered on subscribing: old news, not a fresh time."""


@dataclass
class Call:
    """Work from another thread (the API), done in the worker's transaction."""

    fn: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class Node:
    """One organisation's ledger node."""

    def __init__(self, cfg: NodeConfig, clock: Clock, db: Db | None = None) -> None:
        """`db`: the connection to write with (the sequencer's, holding its lock); None
        for a node that is the only writer of its store (it connects itself)."""
        self.cfg = cfg
        self.sequencer = db is not None
        """True when front-ends take the readings and this node admits their queue."""
        self.clock = clock
        self.me = Identity.load(cfg.key_path)
        if self.me.name != cfg.node_id:
            raise ConfigError(f"key {cfg.key_path} is {self.me.name!r}, node.id is {cfg.node_id!r}")
        genesis_raw, genesis = load_genesis(cfg.genesis_path)
        if genesis.contract not in CONTRACTS:
            raise ConfigError(
                f"the genesis names contract {genesis.contract!r}; this node runs "
                f"{', '.join(sorted(CONTRACTS))}: upgrade the node"
            )
        if self.me.name not in {o.id for o in genesis.orgs}:
            log.warning("%s is not in the genesis; it needs the TSO to add it", self.me.name)
        self.genesis_raw = genesis_raw
        self.db = connect(cfg.store) if db is None else db
        settings = LedgerSettings(cfg.max_message_bytes, cfg.late_after_s)
        self.ledger = Ledger(self.db, self.me, clock, settings)
        with self.ledger.transaction():
            self.ledger.start(genesis_raw)
            enrolments.ensure(self.db)
        self._takes_enrolments = self.ledger.registry.role(self.me.name) == "ra"
        self.witness = Witness(self.ledger)
        self.sync = AntiEntropy(self.ledger, cfg.max_message_bytes, cfg.sync_every_s)
        self.sync.urgent = {row[0] for row in self.db.execute("SELECT peer FROM peers")}
        self.settlement = Settlement(self.ledger)
        with self.ledger.transaction():
            self.settlement.note_all()
        # The time heartbeat runs on the node's clock (a sped-up one in a lab sends sooner),
        # as a gateway's wait for it does.
        self.marks = SeqMarks(
            self.db, self.me.name, heartbeat_s=HEARTBEAT_S / getattr(self.clock, "scale", 1.0)
        )
        self._epochs_due = True  # the TSO checks its epochs once at start
        self.mqtt = cfg.mqtt
        self.topics = Topics(cfg.mqtt.prefix)
        self.queue: queue.Queue[Inbound | Call | Queued] = queue.Queue(QUEUE_LIMIT)
        self.connected = threading.Event()
        self._client = make_client(cfg.mqtt, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._retry: list[Inbound | Call | Queued] = []
        self._queued_full = False  # the last take from the queue filled a burst
        self._timers = Timers()
        self._after: list[tuple[str, bytes, bool]] = []
        self._metrics: MetricsServer | None = None

    # -- MQTT -------------------------------------------------------------------------------

    def start(self) -> None:
        if self.cfg.metrics is not None:
            me, db, now = self.me.name, self.cfg.store, self.clock.now
            self._metrics = serve(self.cfg.metrics, lambda: read_samples(db, me, now()))
        mqtt_start(self._client, self.mqtt, max_packet_bytes(self.cfg.max_message_bytes))

    def stop(self) -> None:
        if self._metrics is not None:
            self._metrics.stop()
        self._client.disconnect()
        self._client.loop_stop()
        self.db.close()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        me, s, topics = self.me.name, self.mqtt, self.topics
        client.subscribe(
            [
                *([] if self.sequencer else [(topics.all_readings, 1)]),
                (topics.facts(), 1),
                (topics.checkpoints(), 1),
                (topics.cosigs(me), 1),
                (topics.sync(me), 1),
                (topics.sync_response(me), 1),
                *([(topics.all_enrolments, 1)] if self._takes_enrolments else []),
            ]
        )
        self.connected.set()
        self.queue.put(Call(self._republish))
        log.info("connected to %s:%d as %s", s.host, s.port, me)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        self.connected.clear()
        log.warning("disconnected from broker: %s", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self.queue.put(Inbound(msg.topic, bytes(msg.payload), msg.mid, msg.qos, bool(msg.retain)))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.warning("publish on %s failed: %s", topic, mqtt.error_string(info.rc))

    def _republish(self) -> None:
        """Put this node's own facts back on their retained topics (after a broker restart
        they would be gone; gateways and new nodes read them there)."""
        rows = self.db.execute(
            "SELECT envelope FROM log WHERE author=? AND type != 'readings'"
            " AND envelope IS NOT NULL ORDER BY pos",
            (self.me.name,),
        ).fetchall()
        out = []
        for (raw,) in rows:
            _, message = open_message(raw, self.ledger.registry.verify_keys, len(raw))
            out.append((self.topics.fact(message), bytes(raw)))
        self._after.extend((topic, raw, True) for topic, raw in out)

    # -- the worker ---------------------------------------------------------------------------

    def submit(self, fn: Callable[[], T], timeout_s: float = 30.0) -> T:
        """Run `fn` in the worker's next transaction and return its result (API threads)."""
        call = Call(fn)
        self.queue.put(call)
        if not call.done.wait(timeout_s):
            raise MeterledgerError("the node is busy; try again")
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[no-any-return]

    def run(self, stop: threading.Event) -> None:
        """Process until `stop` is set."""
        while not stop.is_set():
            retry, self._retry = self._retry, []
            items = retry or take_burst(self.queue, BURST, 0.0 if self._queued_full else 0.1)
            if self.sequencer and not retry and len(items) < BURST:
                queued = take_queued(self.db, BURST - len(items))
                self._queued_full = len(queued) == BURST - len(items)
                items = [*items, *queued]
            if items:
                self._burst(items)
            try:
                self._periodic()
            except OperationalError as exc:
                log.error("background work failed (%s); trying again shortly", exc)
                time.sleep(1.0)
            except Exception:  # a bug must not stop ingest: logged, tried again later
                log.exception("background work failed; trying again shortly")
                time.sleep(1.0)

    def _burst(self, items: list[Inbound | Call | Queued]) -> None:
        try:
            with self.ledger.transaction() as changes:
                for item in items:
                    self._handle(item)
        except OperationalError as exc:
            self._failed(items, exc)
            return
        except Exception:  # a bug met one of the messages: find it, one by one
            log.warning("a burst of %d failed; taking its messages one by one", len(items))
            self._after.clear()
            for i, item in enumerate(items):
                try:
                    self._single(item)
                except OperationalError as exc:
                    self._failed(items[i:], exc)
                    items = items[:i]
                    break
        else:
            self._committed(changes)
        for item in items:
            if isinstance(item, Inbound):
                if item.qos:
                    self._client.ack(item.mid, item.qos)
            elif isinstance(item, Call):
                item.done.set()
        self._publish_after()

    def _failed(self, items: list[Inbound | Call | Queued], exc: Exception) -> None:
        """The database itself failed (disk full, I/O): nothing is acknowledged; the
        messages are kept and tried again. A lost database server ends the process (the
        service manager restarts it; a sequencer's standby takes over meanwhile)."""
        if lost(self.db):
            raise StoreError(f"the connection to the node's database is lost: {exc}") from exc
        log.error(
            "commit failed (%s); %d messages stay unacknowledged and are retried",
            exc,
            len(items),
        )
        self._after.clear()
        self._retry = items
        time.sleep(1.0)

    def _single(self, item: Inbound | Call | Queued) -> None:
        try:
            with self.ledger.transaction() as changes:
                self._handle(item)
            self._committed(changes)
        except OperationalError:
            raise
        except Exception as exc:
            log.exception(
                "internal error on %s; the message is dropped",
                item.topic
                if isinstance(item, Inbound)
                else ("an API call" if isinstance(item, Call) else "a queued batch"),
            )
            if isinstance(item, Call):
                item.error = exc
            with self.ledger.transaction():
                self.ledger.count("refused:internal_error")
                if isinstance(item, Queued):
                    done(self.db, item)  # never taken again

    def _handle(self, item: Inbound | Call | Queued) -> None:
        if isinstance(item, Inbound):
            self._route(item)
            return
        if isinstance(item, Queued):
            self.ledger.admit(item.verified(), "frontend", received_at=item.received_at)
            done(self.db, item)
            return
        try:
            item.result = item.fn()
        except MeterledgerError as exc:
            item.error = exc

    def _route(self, item: Inbound) -> None:
        if not item.payload:
            return  # a retained message being cleared
        topic = self.topics.parse(item.topic)
        kind = "" if topic is None else topic.kind
        now = self.clock.now()
        if kind == "readings":
            self.ledger.admit(item.payload, "mqtt")
        elif kind == "facts":
            self.ledger.admit(item.payload, "mqtt", hold_unknown=True)
        elif kind == "checkpoint":
            self.ledger.flush()  # the slots of this burst's batches first
            self._checkpoint(item.payload, now, fresh=not item.retained)
        elif kind == "cosig":
            self.witness.on_cosignature(item.payload, now)
        elif kind in ("sync", "sync-resp"):
            self._sync(item.payload)
        elif kind == "enrol" and topic is not None:
            gw, site = topic.part("gateway"), topic.part("site")
            if reason := enrolments.offer(self.db, site, gw, item.payload, now):
                self.ledger.count(f"refused:{reason}")
        else:
            log.debug("ignored message on %s", item.topic)

    def _checkpoint(self, raw: bytes, now: float, fresh: bool) -> None:
        cosig = self.witness.on_checkpoint(raw, now, fresh)
        if cosig is not None:
            signed = cosig.seal(self.me)
            self._after.append((self.topics.cosig(cosig.node, self.me.name), signed, True))
        for peer in self.witness.disagreeing:
            self.sync.urgent.add(peer)
        self.witness.disagreeing.clear()
        for peer, (old, new) in self.witness.unchecked.items():
            self._after.append(
                (self.topics.sync(peer), self.sync.consistency(peer, old, new), False)
            )

    def _sync(self, raw: bytes) -> None:
        opened = self.ledger.open_signed(raw, frozenset({SyncRequest.TYPE, SyncResponse.TYPE}))
        if opened is None:
            return
        message = opened[1]
        if isinstance(message, SyncRequest):
            answer = self.sync.on_request(message)
            if answer is not None:
                self._after.append((self.topics.sync_response(message.by), answer, False))
            return
        assert isinstance(message, SyncResponse)
        if message.to != self.me.name:
            return
        if message.op == "consistency":
            pending = self.witness.unchecked.get(message.by)
            if pending is not None and pending[0] == message.start:
                self.witness.consistency_answer(
                    message.by, pending[0], pending[1], message.root, message.proof
                )
            return
        for peer, request in self.sync.on_response(message):
            self._after.append((self.topics.sync(peer), request, False))

    def _committed(self, changes: Changes) -> None:
        """Act on what a committed transaction changed: publish the facts this node
        authored, move the gateways' marks, re-key (what to settle the ledger queued)."""
        for message, raw in changes.authored:
            self.publish(self.topics.fact(message), raw, retain=True)
            if isinstance(message, EpochShred):  # the wrapped key leaves the broker too
                key = EpochKey(message.by, message.site, message.epoch, "", (), ())
                self.publish(self.topics.fact(key), b"", retain=True)
        if changes.shredded:
            purge_wal(self.db)
        for b in changes.batches:
            self.marks.add(b.gateway, b.seq)
        self._epochs_due |= changes.registry or changes.shredded

    def _publish_after(self) -> None:
        """Publish the answers and co-signatures the committed work produced."""
        after, self._after = self._after, []
        for topic, payload, retain in after:
            self.publish(topic, payload, retain)

    # -- between bursts ----------------------------------------------------------------------

    def _periodic(self) -> None:
        ledger = self.ledger
        if ledger.has_sealed_to_open and self._timers.due("open", 0.05):
            with ledger.transaction() as changes:
                open_sealed(ledger, 128)
            self._committed(changes)
        if self._epochs_due and self._timers.due("epochs", 0.5):
            self._epochs_due = False
            with ledger.transaction() as changes:
                author_epochs(ledger)
            self._committed(changes)
        if self._timers.due("expire", 60.0) and ledger.pending.size:
            with ledger.transaction():
                ledger.expire_pending()
        if self._timers.due("marks", 0.25):
            now = self.clock.now()
            for gateway in self.marks.due():
                mark = self.marks.mark(gateway, now)
                raw = mark.seal(self.me)
                self.publish(self.topics.hwm(self.me.name, gateway), raw, retain=True)
        if self._timers.due("settle", 1.0):
            with self.ledger.transaction():
                self.settlement.refresh(self.settlement.dirty())
        if self._timers.due("checkpoint", self.cfg.checkpoint_every_s):
            with self.ledger.transaction():
                checkpoint = self.witness.checkpoint(self.clock.now())
            if checkpoint is not None:
                self.publish(self.topics.checkpoint(self.me.name), checkpoint, retain=True)
        if self.connected.is_set() and self._timers.due("status", STATUS_EVERY_S):
            topic = self.topics.node_status(self.me.name)
            self.publish(topic, status_message(self.db, self.me.name, self.clock.now()), True)
        if self.connected.is_set() and self._timers.due("sync", 1.0):
            with self.ledger.transaction():
                requests = self.sync.step()
            for peer, raw in requests:
                self.publish(self.topics.sync(peer), raw)

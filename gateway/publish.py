"""MQTT: publish the outbox, announce the gateway, and take in marks and facts.

paho-mqtt, MQTT 5, QoS 1, a persistent session (clean start off, a week's session
expiry), TLS with a client certificate when configured. On connect the gateway publishes
a retained birth message on ``{prefix}/status/{gateway}``; the broker publishes the
retained last will (same topic) if the connection dies, and a clean stop publishes it
itself. Both carry the boot counter, so a monitor tells a restart from a flap.

A batch is published, then stays in the outbox until confirmed: by the nodes' marks
(`confirm.py`) when nodes are configured, else by a PUBACK with a reason code below
0x80. A PUBACK with a reason code of 0x80 or more (the ACL refused it, quota exceeded…)
is a failure: counted, logged, and the batch is tried again later. Whatever stays
unconfirmed is published again after `retry_s` (times a random 1–1.5, so a fleet does
not resend in step). A batch larger than the broker's maximum packet size is never sent
(it would be refused on every reconnect): it stays stored, and the alarm says so.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from gateway.outbox import Outbox
from gateway.trust import Trust
from ledger_node.shared.clock import Clock
from ledger_node.shared.mqtt import MqttSettings, make_client
from ledger_node.shared.mqtt import start as mqtt_start
from ledger_node.wire import OversizeError, WireError
from ledger_node.wire.topics import Topics

log = logging.getLogger("mlg.gateway.publish")

MAX_PUBLISH_PER_FLUSH = 200
"""Batches handed to paho per sweep: its queue is in memory, keep it short."""
TOPIC_OVERHEAD_BYTES = 64
"""Fixed header, topic length and properties of a PUBLISH, beyond the topic text."""

MAX_EARLY_ACKS = 1000

Handler = Callable[[str, bytes, bool], object]
"""`handler(topic, payload, retained)`: `retained` for a stored copy the broker sent on
subscribing, not a message published just now."""


class Publisher:
    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        gateway: str,
        topic: str,
        clock: Clock,
        boot: int,
        trust: Trust,
        max_message_bytes: int,
        retry_s: float = 30.0,
        confirm_by_puback: bool = True,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.status_topic = Topics(settings.prefix).status(gateway)
        self.topic = topic
        self.clock = clock
        self.boot = boot
        self.trust = trust
        self.max_message_bytes = max_message_bytes
        self.retry_s = retry_s
        self.confirm_by_puback = confirm_by_puback
        self.connected = threading.Event()
        self.refused_by_broker = 0
        self.oversize: set[int] = set()
        self.published = 0
        self.last_connected: float | None = None
        self.connected_mono = 0.0
        """time.monotonic() of the last (re)connection: what the broker held for this
        session arrives just after it, old news that does not say so."""
        self.last_disconnect_reason = ""
        self.broker_max_packet: int | None = None
        self.received: Counter[str] = Counter()
        self._handlers: list[tuple[str, Handler]] = []
        self._retained: dict[str, bytes] = {}  # published again at every connection
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._inflight: dict[int, int] = {}  # mid → seq
        self._early: dict[int, Any] = {}  # mid → reason code of a PUBACK before flush saw it
        self._next_try: dict[int, float] = {}  # seq → monotonic time it may be sent again
        self._client = make_client(settings)
        self._client.max_queued_messages_set(4 * MAX_PUBLISH_PER_FLUSH)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.will_set(
            self.status_topic, self._status("offline", "connection lost"), qos=1, retain=True
        )

    def subscribe(self, topic_filter: str, handler: Handler) -> None:
        """Call `handler(topic, payload, retained)` for messages on `topic_filter` (before
        `start`)."""
        self._handlers.append((topic_filter, handler))

    def keep_retained(self, topic: str, payload: bytes) -> None:
        """Publish `payload` retained on `topic` at every connection (an enrolment request)
        until `clear_retained`."""
        self._retained[topic] = payload
        if self.connected.is_set():
            self._client.publish(topic, payload, qos=1, retain=True)

    def clear_retained(self, topic: str) -> None:
        """Stop publishing `topic` and clear it on the broker."""
        if self._retained.pop(topic, None) is not None and self.connected.is_set():
            self._client.publish(topic, b"", qos=1, retain=True)

    def start(self) -> None:
        mqtt_start(self._client, self.settings, max_packet_bytes=self.max_message_bytes + 1024)

    def stop(self) -> None:
        """Publish the death message ourselves (a clean disconnect sends no will)."""
        if self.connected.is_set():
            info = self._client.publish(
                self.status_topic, self._status("offline", "stopped"), qos=1, retain=True
            )
            info.wait_for_publish(timeout=3)
        self.connected.clear()  # our own disconnect: nothing to warn about
        self._client.disconnect()
        self._client.loop_stop()

    def heartbeat(self, fields: dict[str, Any]) -> bool:
        """The periodic status (retained): the birth message's fields and `fields` (outbox
        depth, alarms, …); `t` lets a monitor tell this gateway's clock skew. False while
        not connected."""
        if not self.connected.is_set():
            return False
        payload = self._status("online", extra=fields)
        self._client.publish(self.status_topic, payload, qos=1, retain=True)
        return True

    def _status(self, state: str, reason: str = "", extra: dict[str, Any] | None = None) -> bytes:
        obj: dict[str, Any] = {
            **(extra or {}),
            "state": state,
            "boot": self.boot,
            "t": int(self.clock.now()),
        }
        if reason:
            obj["reason"] = reason
        return json.dumps(obj, sort_keys=True).encode()

    def flush(self) -> int:
        """Publish what is unconfirmed and due; return how many were handed to paho.

        No lock of ours is held while paho is called: paho calls `_on_publish` with its own
        locks held, so holding ours here could deadlock against it.
        """
        if not self.connected.is_set():
            return 0
        sent = 0
        limit = self._packet_limit()
        with self._flush_lock:
            now = time.monotonic()
            with self._lock:
                waiting = set(self._inflight.values())
                next_try = dict(self._next_try)
            for pending in self.outbox.pending(limit=10 * MAX_PUBLISH_PER_FLUSH):
                seq = pending.seq
                if seq in waiting or now < next_try.get(seq, 0.0):
                    continue
                if len(pending.envelope) + len(self.topic) + TOPIC_OVERHEAD_BYTES > limit:
                    if seq not in self.oversize:
                        log.error(
                            "batch seq %d is %d bytes, over the broker's limit of %d: kept, "
                            "not sent",
                            seq,
                            len(pending.envelope),
                            limit,
                        )
                        self.oversize.add(seq)
                    continue
                info = self._client.publish(self.topic, pending.envelope, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
                        log.warning("publish of seq %d failed: %s", seq, mqtt.error_string(info.rc))
                    break
                with self._lock:
                    self._next_try[seq] = now + self.retry_s * random.uniform(1.0, 1.5)  # noqa: S311
                    early = self._early.pop(info.mid, None)
                    if early is None:
                        self._inflight[info.mid] = seq
                if early is not None:  # the PUBACK came before we noted the mid
                    self._acked(seq, early)
                self.outbox.mark_published(seq, self.clock.now())
                sent += 1
                if sent >= MAX_PUBLISH_PER_FLUSH:
                    break
        self.published += sent
        return sent

    def forget(self, seqs: list[int]) -> None:
        """Confirmed batches: stop tracking their retries."""
        with self._lock:
            for seq in seqs:
                self._next_try.pop(seq, None)

    def _packet_limit(self) -> int:
        broker = self.broker_max_packet
        return min(
            self.max_message_bytes + len(self.topic) + TOPIC_OVERHEAD_BYTES, broker or 1 << 28
        )

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            self.last_disconnect_reason = f"refused: {reason_code}"
            log.error("broker refused the connection: %s", reason_code)
            return
        self.broker_max_packet = getattr(properties, "MaximumPacketSize", None)
        session = bool(getattr(flags, "session_present", False))
        log.info(
            "connected to %s:%d (session %s)",
            self.settings.host,
            self.settings.port,
            "resumed" if session else "new",
        )
        client.publish(self.status_topic, self._status("online"), qos=1, retain=True)
        for topic, payload in list(self._retained.items()):
            client.publish(topic, payload, qos=1, retain=True)
        for topic_filter, _ in self._handlers:
            client.subscribe(topic_filter, qos=1)
        with self._lock:
            self._next_try.clear()  # the broker may have lost what it had: send it all again
            self._inflight.clear()
        self.last_connected = self.clock.now()
        self.connected_mono = time.monotonic()
        self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if self.connected.is_set():
            log.warning("disconnected from broker: %s", reason_code)
        self.connected.clear()
        self.last_disconnect_reason = str(reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        with self._lock:
            seq = self._inflight.pop(mid, None)
            if seq is None:
                if len(self._early) > MAX_EARLY_ACKS:
                    self._early.clear()  # acks of status messages; batches are resent anyway
                self._early[mid] = reason_code
                return
        self._acked(seq, reason_code)

    def _acked(self, seq: int, reason_code: Any) -> None:
        if reason_code.is_failure:
            self.refused_by_broker += 1
            log.error("broker refused batch seq %d: %s (will try again)", seq, reason_code)
            return
        if self.confirm_by_puback:
            self.outbox.confirm([seq])
            self.forget([seq])
            log.debug("batch seq %d confirmed by PUBACK", seq)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        payload = bytes(msg.payload)
        for topic_filter, handler in self._handlers:
            if mqtt.topic_matches_sub(topic_filter, msg.topic):
                self.received[topic_filter] += 1
                if len(payload) > self.max_message_bytes:
                    self.trust.refuse(
                        msg.topic,
                        OversizeError(f"{len(payload)} bytes exceeds {self.max_message_bytes}"),
                    )
                    return
                if not payload:
                    return  # a retained message being cleared
                try:
                    handler(msg.topic, payload, bool(msg.retain))
                except WireError as exc:
                    self.trust.refuse(msg.topic, exc)
                except Exception:  # a handler bug must not kill paho's network thread
                    log.exception("handling a message on %s failed", msg.topic)
                return

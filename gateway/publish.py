"""Publishing the outbox over MQTT 5 at QoS 1; a batch counts as delivered on its PUBACK.

Until the ledger nodes publish their per-gateway high-water marks, a successful PUBACK
(reason code below 0x80) confirms a batch. A batch whose PUBACK does not come within
`retry_s` (plus jitter, so a fleet does not resend in step) is published again; a
reconnect publishes everything unconfirmed that is not already in flight.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from gateway.outbox import Outbox
from ledger_node.clock import Clock
from ledger_node.mqtt import MqttSettings, make_client
from ledger_node.mqtt import start as mqtt_start
from ledger_node.wire import MAX_ENVELOPE_BYTES

log = logging.getLogger("mlg.gateway.publish")


class Publisher:
    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        topic: str,
        clock: Clock,
        retry_s: float = 30.0,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.topic = topic
        self.clock = clock
        self.retry_s = retry_s
        self.connected = threading.Event()
        self.failures = 0
        self._lock = threading.Lock()
        self._inflight: dict[int, tuple[int, float]] = {}  # mid → (seq, monotonic deadline)
        self._client = make_client(settings)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish

    def start(self) -> None:
        mqtt_start(self._client, self.settings)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def flush(self) -> int:
        """Publish what is unconfirmed and not waiting for its PUBACK; return how many."""
        if not self.connected.is_set():
            return 0
        now = time.monotonic()
        sent = 0
        with self._lock:
            waiting = {seq for seq, deadline in self._inflight.values() if deadline > now}
            for pending in self.outbox.pending():
                if pending.seq in waiting:
                    continue
                if len(pending.envelope) > MAX_ENVELOPE_BYTES:
                    log.error(
                        "batch seq %d is %d bytes, over the limit; not sent",
                        pending.seq,
                        len(pending.envelope),
                    )
                    continue
                info = self._client.publish(self.topic, pending.envelope, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    log.warning(
                        "publish of seq %d failed: %s", pending.seq, mqtt.error_string(info.rc)
                    )
                    break
                deadline = now + self.retry_s * random.uniform(1.0, 1.5)  # noqa: S311 - jitter
                self._inflight = {m: v for m, v in self._inflight.items() if v[0] != pending.seq}
                self._inflight[info.mid] = (pending.seq, deadline)
                self.outbox.mark_published(pending.seq, self.clock.now())
                sent += 1
        return sent

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        log.info("connected to %s:%d", self.settings.host, self.settings.port)
        self.connected.set()
        threading.Thread(target=self.flush, name="mlg-publish-flush", daemon=True).start()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self.connected.clear()
        log.warning("disconnected from broker: %s", reason_code)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        with self._lock:
            entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        seq = entry[0]
        if reason_code.is_failure:
            self.failures += 1
            log.error("broker refused batch seq %d: %s", seq, reason_code)
            return
        self.outbox.confirm(seq, self.clock.now())
        log.debug("batch seq %d confirmed by PUBACK", seq)

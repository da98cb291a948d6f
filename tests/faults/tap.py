"""A subscriber on every gateway's readings topic with a persistent session: what the
gateways published, as the broker delivered it, kept per (gateway, seq) with every
distinct envelope (two under one seq would be a reused seq)."""

from __future__ import annotations

import threading
from collections import defaultdict

import nacl.signing
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ledger_node.wire import ReadingsBatch, WireError, open_message


class Tap:
    """Records each readings batch signed by one of `gateways` (name → verify key);
    anything else on the topic is counted in `foreign` and otherwise ignored."""

    def __init__(
        self, port: int, gateways: dict[str, nacl.signing.VerifyKey], client_id: str = "tap"
    ) -> None:
        self.keys = gateways
        self.lock = threading.Lock()
        self.batches: dict[tuple[str, int], dict[bytes, ReadingsBatch]] = defaultdict(dict)
        self.deliveries = 0
        self.foreign = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.on_connect = lambda c, *a: c.subscribe("mlg/v1/readings/+/+", qos=1)
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 86_400
        self.client.connect_async(
            "127.0.0.1", port, keepalive=5, clean_start=False, properties=props
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        raw = bytes(msg.payload)
        try:
            _, message = open_message(raw, self.keys)
        except WireError:
            message = None
        with self.lock:
            self.deliveries += 1
            if not isinstance(message, ReadingsBatch):
                self.foreign += 1
                return
            self.batches[(message.gateway, message.seq)][raw] = message

    def snapshot(self) -> dict[tuple[str, int], dict[bytes, ReadingsBatch]]:
        with self.lock:
            return {k: dict(v) for k, v in self.batches.items()}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

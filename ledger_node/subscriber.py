"""The node's MQTT side: subscribe to readings, ingest each message, then acknowledge it.

The acknowledgement (PUBACK) is sent only after `ingest` has committed, so a message is
never lost between the broker and the node's disk. A message that fails for a reason
that is not the message's fault (a full disk, a bug) is left unacknowledged; the broker
sends it again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt

from ledger_node.ingest import Ingestor
from ledger_node.mqtt import MqttSettings, make_client
from ledger_node.mqtt import start as mqtt_start

log = logging.getLogger("mlg.node.mqtt")

PACKET_SLACK_BYTES = 4096
"""Room for the topic and properties above the envelope limit."""


class Subscriber:
    def __init__(self, settings: MqttSettings, ingestor: Ingestor, max_bytes: int) -> None:
        self.settings = settings
        self.ingestor = ingestor
        self.connected = threading.Event()
        self._client = make_client(settings, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        # The broker must not send us packets far over our limit; moderately oversized
        # ones still arrive, so that they are counted as rejections here.
        self._max_packet = 4 * max_bytes + PACKET_SLACK_BYTES

    def start(self) -> None:
        mqtt_start(self._client, self.settings, self._max_packet)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        client.subscribe(self.settings.readings_filter, qos=1)
        self.connected.set()
        log.info(
            "connected to %s:%d, subscribed to %s",
            self.settings.host,
            self.settings.port,
            self.settings.readings_filter,
        )

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, props: Any
    ) -> None:
        self.connected.clear()
        log.warning("disconnected from broker: %s", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self.ingestor.ingest(bytes(msg.payload))
        except Exception:
            log.exception("ingest failed on %s; message left unacknowledged", msg.topic)
            return
        client.ack(msg.mid, msg.qos)

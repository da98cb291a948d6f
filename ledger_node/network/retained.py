"""One-shot MQTT clients for the commands that run without a node (`mlg-node sign`,
`publish`): the retained messages under a topic filter, and a fact published retained
with the broker's acknowledgement checked.

Each connects with a clean session of its own (no state stays on the broker), over TLS
and with a login when the settings say so, and disconnects when done.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from ledger_node.shared.errors import MeterledgerError
from ledger_node.shared.mqtt import MqttSettings, make_client

log = logging.getLogger("mlg.node.offline")

QUIET_S = 1.0
"""The broker sends retained messages right after the subscription: once none came for
this long, all of them are in."""


class BrokerError(MeterledgerError):
    """The broker could not be reached, or refused what we asked."""


def _connected(settings: MqttSettings, timeout_s: float) -> mqtt.Client:
    """A client connected with a clean session and its network loop running."""
    one_shot = dataclasses.replace(settings, client_id=f"mlg-offline-{secrets.token_hex(4)}")
    client = make_client(one_shot)
    up = threading.Event()
    refused: list[str] = []

    def on_connect(c: mqtt.Client, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            refused.append(str(reason))
        up.set()

    client.on_connect = on_connect
    try:
        if settings.protocol == "5":
            client.connect(settings.host, settings.port, settings.keepalive_s, clean_start=True)
        else:
            client.connect(settings.host, settings.port, settings.keepalive_s)
    except OSError as exc:
        raise BrokerError(
            f"cannot reach the broker at {settings.host}:{settings.port}: {exc}"
        ) from None
    client.loop_start()
    if not up.wait(timeout_s) or refused:
        client.loop_stop()
        why = refused[0] if refused else f"no answer in {timeout_s:g} s"
        raise BrokerError(f"the broker at {settings.host}:{settings.port} refused us: {why}")
    return client


def read_retained(
    settings: MqttSettings, topic_filter: str, max_bytes: int, timeout_s: float = 10.0
) -> list[tuple[str, bytes]]:
    """The retained messages under `topic_filter`, as (topic, payload); payloads over
    `max_bytes` are left out (and logged)."""
    got: list[tuple[str, bytes]] = []
    lock = threading.Lock()
    last = [time.monotonic()]
    subscribed = threading.Event()

    def on_message(c: mqtt.Client, u: Any, msg: mqtt.MQTTMessage) -> None:
        with lock:
            last[0] = time.monotonic()
            if len(msg.payload) > max_bytes:
                log.warning(
                    "left out %s: %d bytes, over %d", msg.topic, len(msg.payload), max_bytes
                )
            elif msg.payload:  # an empty retained message is a cleared topic
                got.append((msg.topic, bytes(msg.payload)))

    def on_subscribe(c: mqtt.Client, u: Any, mid: int, reasons: Any, props: Any) -> None:
        with lock:
            last[0] = time.monotonic()
        subscribed.set()

    client = _connected(settings, timeout_s)
    client.on_message = on_message
    client.on_subscribe = on_subscribe
    try:
        client.subscribe(topic_filter, qos=1)
        if not subscribed.wait(timeout_s):
            raise BrokerError(f"the broker did not confirm the subscription to {topic_filter}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with lock:
                quiet = time.monotonic() - last[0]
            if quiet >= QUIET_S:
                break
            time.sleep(QUIET_S - quiet)
        with lock:
            return list(got)
    finally:
        client.disconnect()
        client.loop_stop()


def publish_retained(
    settings: MqttSettings, topic: str, payload: bytes, timeout_s: float = 10.0
) -> None:
    """Publish `payload` on `topic`, retained, at QoS 1; `BrokerError` unless the broker
    acknowledged it (over MQTT 5 with a success reason: a publish its ACL refuses is
    acknowledged with a failure reason, which 3.1.1 cannot carry)."""
    acked = threading.Event()
    failure: list[str] = []

    def on_publish(c: mqtt.Client, u: Any, mid: int, reason: Any, props: Any) -> None:
        if reason.is_failure:
            failure.append(str(reason))
        acked.set()

    client = _connected(settings, timeout_s)
    client.on_publish = on_publish
    try:
        info = client.publish(topic, payload, qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BrokerError(f"cannot publish on {topic}: {mqtt.error_string(info.rc)}")
        if not acked.wait(timeout_s):
            raise BrokerError(f"the broker did not acknowledge the fact on {topic}")
        if failure:
            raise BrokerError(f"the broker refused the fact on {topic}: {failure[0]}")
    finally:
        client.disconnect()
        client.loop_stop()

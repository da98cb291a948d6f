"""MQTT settings and client construction shared by gateways and nodes (paho-mqtt, MQTT 5).

Topics under `prefix` are built and parsed by `ledger_node.wire.topics`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ledger_node.shared.config import Section
from ledger_node.shared.errors import ConfigError

DEFAULT_PREFIX = "mlg/v1"
"""The topic prefix unless configured (`ledger_node.wire.topics` builds the rest)."""
PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}
SESSION_EXPIRY_S = 7 * 24 * 3600
"""How long the broker keeps a disconnected client's session and its QoS 1 queue."""


@dataclass(frozen=True)
class MqttSettings:
    """Where the broker is and how to authenticate to it."""

    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""
    prefix: str = DEFAULT_PREFIX
    keepalive_s: int = 30
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None
    protocol: str = "5"
    """"5" (default) or "3.1.1", for brokers without MQTT 5 (amqtt). Over 3.1.1 a publish
    the broker's ACL refuses is still acknowledged as success: use 5 in production."""

    @classmethod
    def from_section(cls, s: Section, default_client_id: str) -> MqttSettings:
        settings = cls(
            host=s.get("host", str, "127.0.0.1"),
            port=s.get("port", int, 1883),
            client_id=s.get("client_id", str, default_client_id),
            prefix=s.get("topic_prefix", str, DEFAULT_PREFIX),
            keepalive_s=s.get("keepalive_s", int, 30),
            ca_file=s.optional_path("ca_file"),
            cert_file=s.optional_path("cert_file"),
            key_file=s.optional_path("key_file"),
            username=s.optional("username", str),
            password=s.optional("password", str),
            protocol=s.get("protocol", str, "5"),
        )
        if settings.protocol not in PROTOCOLS:
            raise ConfigError(f"{s.where}.protocol must be one of {sorted(PROTOCOLS)}")
        s.check_unknown()
        return settings


def make_client(settings: MqttSettings, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho client with a persistent session (MQTT 5 unless configured otherwise)."""
    v5 = settings.protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=PROTOCOLS[settings.protocol],
        clean_session=None if v5 else False,
        manual_ack=manual_ack,
    )
    if settings.ca_file is not None:
        client.tls_set(
            ca_certs=str(settings.ca_file),
            certfile=str(settings.cert_file) if settings.cert_file else None,
            keyfile=str(settings.key_file) if settings.key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    return client


def start(client: mqtt.Client, settings: MqttSettings, max_packet_bytes: int | None = None) -> None:
    """Connect in the background, keeping the session, and reconnect with back-off."""
    if settings.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        if max_packet_bytes is not None:
            props.MaximumPacketSize = max_packet_bytes
        client.connect_async(
            settings.host,
            settings.port,
            keepalive=settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
    else:
        client.connect_async(settings.host, settings.port, keepalive=settings.keepalive_s)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.loop_start()

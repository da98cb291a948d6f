"""The `[plain]` section: the opt-in local plain view (unsigned, unencrypted), validated.

[plain]                            # off unless enabled = true
enabled = true
prefix = "mlg-plain"               # its topics: {prefix}/{gateway}/...
discovery_prefix = "homeassistant" # Home Assistant MQTT discovery; "" turns it off
live_every_s = 10                  # real seconds between live reads of each meter
registers = ["power", "voltage"]   # which input registers (default: every one)
share_network_broker = false       # must be true to publish on [mqtt]'s broker
[plain.mqtt]                       # the home broker: host, port, client_id, TLS and
host = "127.0.0.1"                 # login as in [mqtt] (default 127.0.0.1:1883)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.errors import ConfigError
from gateway.meters import MeterModel
from ledger_node.shared.config import Section
from ledger_node.shared.mqtt import DEFAULT_PREFIX, MqttSettings

TOPIC_PART = re.compile(r"[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*")
"""Topic prefixes: MQTT levels of letters, digits, `_` and `-` (no wildcards)."""


@dataclass(frozen=True)
class PlainConfig:
    """Where and what the plain view publishes; `registers` None means every input
    register of each meter's model."""

    mqtt: MqttSettings
    prefix: str = "mlg-plain"
    discovery_prefix: str = "homeassistant"
    live_every_s: float = 10.0
    registers: tuple[str, ...] | None = None

    def live_registers(self, model: MeterModel) -> list[str]:
        """The registers of `model` this view reads live: the configured ones it has, or
        every input register."""
        inputs = [r.name for r in model.registers if r.table == "input"]
        if self.registers is None:
            return inputs
        return [n for n in self.registers if n in inputs]


def plain_from_section(
    s: Section, gateway_id: str, network: MqttSettings, models: list[MeterModel]
) -> PlainConfig | None:
    """The `[plain]` section, or None when it is absent or not enabled. `network` is the
    signed path's broker: the plain view may use it only when told to, and never its
    topic prefix."""
    enabled = s.get("enabled", bool, False)
    prefix = s.get("prefix", str, "mlg-plain")
    discovery = s.get("discovery_prefix", str, "homeassistant")
    live_every_s = s.get("live_every_s", float, 10.0)
    names = s.optional("registers", list)
    share = s.get("share_network_broker", bool, False)
    mqtt = MqttSettings.from_section(s.section("mqtt", required=False), f"{gateway_id}-plain")
    s.check_unknown()
    if not enabled:
        return None
    for key, value in (("prefix", prefix), ("discovery_prefix", discovery)):
        if value and not TOPIC_PART.fullmatch(value):
            raise ConfigError(f"{s.where}.{key} = {value!r}: MQTT levels of [A-Za-z0-9_-]")
    if not prefix:
        raise ConfigError(f"{s.where}.prefix must not be empty")
    signed = network.prefix.split("/")[0]
    if prefix.split("/")[0] == signed or (discovery and discovery.split("/")[0] == signed):
        raise ConfigError(
            f"{s.where}.prefix must not share its first level with the signed topics "
            f"({network.prefix!r}): the plain view is a separate, unsigned path"
        )
    if mqtt.prefix != DEFAULT_PREFIX:
        raise ConfigError(f"{s.where}.mqtt.topic_prefix is not used: set {s.where}.prefix")
    if not 1.0 <= live_every_s <= 3600.0:
        raise ConfigError(f"{s.where}.live_every_s must be 1..3600")
    same = (mqtt.host, mqtt.port) == (network.host, network.port)
    if same and not share:
        raise ConfigError(
            f"{s.where}.mqtt is the network's broker ({network.host}:{network.port}): the "
            "plain view's readings are unencrypted, and everyone on that broker could read "
            f"them. Point {s.where}.mqtt at your home broker, or set "
            f"{s.where}.share_network_broker = true if that broker is yours alone"
        )
    registers = None
    if names is not None:
        if not all(isinstance(n, str) for n in names):
            raise ConfigError(f"{s.where}.registers must be a list of register names")
        known = {r.name for m in models for r in m.registers if r.table == "input"}
        unknown = sorted(set(names) - known)
        if unknown:
            raise ConfigError(
                f"{s.where}.registers: {unknown[0]!r} is not an input register of any "
                "configured meter's model"
            )
        registers = tuple(names)
    return PlainConfig(mqtt, prefix, discovery, live_every_s, registers)

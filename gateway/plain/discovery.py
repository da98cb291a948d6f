"""Home Assistant MQTT discovery for the plain view: one sensor per live register, per last
slot energy and per gateway figure, each on a device (the gateway, and each meter through
it), as Home Assistant's MQTT sensor and discovery documentation describe them.

Topics: single-component discovery, `<discovery_prefix>/sensor/<unique_id>/config` (the
documented best practice for entities with a unique id: object id = unique id, no node
id). Device classes and units are the ones Home Assistant lists for sensors; cumulative
energies are `total_increasing` (a meter's counter may restart), the last slot's energy is
`total` with its `last_reset` at the slot's start (a value that resets at every update).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from gateway.meters import MeterModel, Register

UNIT_CLASSES: dict[str, tuple[str | None, str | None]] = {
    "W": ("power", "measurement"),
    "VA": ("apparent_power", "measurement"),
    "var": ("reactive_power", "measurement"),
    "V": ("voltage", "measurement"),
    "A": ("current", "measurement"),
    "Hz": ("frequency", "measurement"),
    "Wh": ("energy", "total_increasing"),
    "varh": (None, "total_increasing"),
    "VAh": (None, "total_increasing"),
    "Ah": (None, "total_increasing"),
    "°": (None, "measurement"),
    "%": (None, "measurement"),
}
"""A register's unit → Home Assistant device class and state class."""
SIGNED_TOTALS = frozenset({"net_energy"})
"""Energy totals that may go down (import − export): state class `total`."""
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def version() -> str:
    try:
        return metadata.version("meterledger")
    except metadata.PackageNotFoundError:
        return "unknown"


def ha_id(*parts: str) -> str:
    """An id from `parts` of only `[A-Za-z0-9_-]`, as discovery topics require."""
    return _UNSAFE.sub("_", "_".join(("mlg", *parts)))


def label(name: str) -> str:
    """`voltage_l1_l2` → `Voltage L1 L2`."""
    words = [w.upper() if re.fullmatch(r"l\d|t\d", w) else w for w in name.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def classes(reg: Register) -> tuple[str | None, str | None, str | None]:
    """(device class, state class, unit of measurement) of a register's sensor."""
    if reg.name.startswith("power_factor"):
        return "power_factor", "measurement", None
    device_class, state_class = UNIT_CLASSES.get(reg.unit, (None, None))
    if reg.name in SIGNED_TOTALS:
        state_class = "total"
    return device_class, state_class, reg.unit or None


@dataclass(frozen=True)
class Topics:
    """The plain view's topics under `prefix` for one gateway."""

    prefix: str
    gateway: str

    @property
    def availability(self) -> str:
        return f"{self.prefix}/{self.gateway}/availability"

    @property
    def status(self) -> str:
        return f"{self.prefix}/{self.gateway}/status"

    def live(self, meter: str) -> str:
        return f"{self.prefix}/{self.gateway}/{meter}/live"

    def slot(self, meter: str) -> str:
        return f"{self.prefix}/{self.gateway}/{meter}/slot"


GATEWAY_SENSORS = (
    ("unconfirmed", "Unconfirmed batches", None, "measurement", None),
    ("alarms", "Alarms", None, "measurement", None),
    ("last_sealed", "Last sealed slot", "timestamp", None, None),
)
"""The gateway's own figures: key in its status payload, name, classes, unit."""


class Discovery:
    """The discovery messages of one gateway's plain view."""

    def __init__(self, discovery_prefix: str, topics: Topics, expire_after_s: int) -> None:
        self.prefix = discovery_prefix
        self.topics = topics
        self.expire_after_s = expire_after_s
        self.origin = {"name": "meterledger", "sw_version": version()}
        self.gateway_device = {
            "identifiers": [ha_id(topics.gateway)],
            "name": f"meterledger gateway {topics.gateway}",
            "manufacturer": "meterledger",
            "model": "gateway",
            "sw_version": version(),
        }

    def topic(self, unique_id: str) -> str:
        return f"{self.prefix}/sensor/{unique_id}/config"

    def _sensor(
        self,
        unique_id: str,
        name: str,
        device: dict[str, Any],
        state_topic: str,
        value_key: str,
        classes: tuple[str | None, str | None, str | None],
    ) -> dict[str, Any]:
        device_class, state_class, unit = classes
        doc: dict[str, Any] = {
            "name": name,
            "unique_id": unique_id,
            "state_topic": state_topic,
            "value_template": "{{ value_json." + value_key + " }}",
            "availability_topic": self.topics.availability,
            "device": device,
            "origin": self.origin,
        }
        if device_class is not None:
            doc["device_class"] = device_class
        if state_class is not None:
            doc["state_class"] = state_class
        if unit is not None:
            doc["unit_of_measurement"] = unit
        return doc

    def gateway(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for key, name, device_class, state_class, unit in GATEWAY_SENSORS:
            uid = ha_id(self.topics.gateway, key)
            doc = self._sensor(
                uid,
                name,
                self.gateway_device,
                self.topics.status,
                key,
                (device_class, state_class, unit),
            )
            doc["entity_category"] = "diagnostic"
            out.append((self.topic(uid), doc))
        return out

    def meter(
        self, meter: str, model: MeterModel, live: list[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """The sensors of one meter: each live register, and its last slot's energy."""
        words = model.description.split(",")[0].split()
        device = {
            "identifiers": [ha_id(self.topics.gateway, meter)],
            "name": f"{meter} ({model.name})",
            "manufacturer": words[0] if words else model.name,
            "model": " ".join(words[1:]) or model.name,
            "via_device": ha_id(self.topics.gateway),
        }
        out = []
        for name in live:
            reg = model.register(name)
            uid = ha_id(self.topics.gateway, meter, name)
            doc = self._sensor(
                uid, label(name), device, self.topics.live(meter), name, classes(reg)
            )
            doc["expire_after"] = self.expire_after_s
            out.append((self.topic(uid), doc))
        uid = ha_id(self.topics.gateway, meter, "slot_energy")
        doc = self._sensor(
            uid,
            "Last slot energy",
            device,
            self.topics.slot(meter),
            "energy_wh",
            ("energy", "total", "Wh"),
        )
        doc["last_reset_value_template"] = "{{ value_json.last_reset }}"
        out.append((self.topic(uid), doc))
        return out

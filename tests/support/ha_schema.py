"""Home Assistant's MQTT sensor discovery schema, written from its documentation, to check
the plain view's discovery messages without a Home Assistant (no network here).

Sources: home-assistant.io `source/_integrations/mqtt.markdown` ("MQTT Discovery": the
topic format, the payload, `origin`), `sensor.mqtt.markdown` (every option of an MQTT
sensor, the `device` keys), `sensor.markdown` (device classes and their units) and
developers.home-assistant.io `docs/core/entity/sensor.md` (state classes; `measurement`
not with the energy, gas or monetary classes; `last_reset` only with `total`). Unknown keys
are refused here, stricter than Home Assistant (which ignores them): a typo must not pass.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOPIC = re.compile(
    r"(?P<prefix>[^/#+]+)/(?P<component>[a-z_]+)/(?:[a-zA-Z0-9_-]+/)?[a-zA-Z0-9_-]+/config"
)
"""`<discovery_prefix>/<component>/[<node_id>/]<object_id>/config`, ids of [a-zA-Z0-9_-]."""

SENSOR_OPTIONS: dict[str, type | tuple[type, ...]] = {
    "availability": list,
    "availability_mode": str,
    "availability_template": str,
    "availability_topic": str,
    "device": dict,
    "device_class": (str, type(None)),
    "enabled_by_default": bool,
    "encoding": str,
    "entity_category": str,
    "entity_picture": str,
    "expire_after": int,
    "force_update": bool,
    "icon": str,
    "json_attributes_template": str,
    "json_attributes_topic": str,
    "last_reset_value_template": str,
    "name": (str, type(None)),
    "object_id": str,
    "options": list,
    "payload_available": str,
    "payload_not_available": str,
    "platform": str,
    "suggested_display_precision": int,
    "qos": int,
    "state_class": str,
    "state_topic": str,
    "unique_id": str,
    "unit_of_measurement": (str, type(None)),
    "value_template": str,
    "origin": dict,  # discovery only ("MQTT Discovery", discovery payload)
}
DEVICE_KEYS: dict[str, type | tuple[type, ...]] = {
    "configuration_url": str,
    "connections": list,
    "hw_version": str,
    "identifiers": (str, list),
    "manufacturer": str,
    "model": str,
    "model_id": str,
    "name": str,
    "serial_number": str,
    "suggested_area": str,
    "sw_version": str,
    "via_device": str,
}
ORIGIN_KEYS = {"name": str, "sw_version": str, "support_url": str}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
NOT_MEASUREMENT = {"energy", "gas", "monetary"}
DEVICE_CLASS_UNITS: dict[str, set[str | None]] = {
    "apparent_power": {"VA"},
    "current": {"A", "mA"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh"}
    | {"cal", "kcal", "Mcal", "Gcal"},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW"},
    "power_factor": {None, "%"},
    "reactive_power": {"var"},
    "timestamp": {None},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
}
"""The sensor device classes the plain view may use, with the units Home Assistant allows
for each (sensor.markdown); any other class is refused here."""


def check_sensor(topic: str, raw: bytes) -> list[str]:
    """Everything wrong with a sensor discovery message; empty when it is valid."""
    problems: list[str] = []
    m = TOPIC.fullmatch(topic)
    if m is None:
        return [f"topic {topic!r} is not <prefix>/<component>/[<node_id>/]<object_id>/config"]
    if m["component"] != "sensor":
        problems.append(f"component {m['component']!r} is not sensor")
    try:
        doc = json.loads(raw)
    except ValueError:
        return [*problems, "payload is not JSON"]
    if not isinstance(doc, dict):
        return [*problems, "payload is not a JSON object"]
    problems += _typed(doc, SENSOR_OPTIONS, "")
    if "state_topic" not in doc:
        problems.append("state_topic is required")
    device = doc.get("device")
    if device is not None:
        if "unique_id" not in doc:
            problems.append("device only works with unique_id")
        if isinstance(device, dict):
            problems += _typed(device, DEVICE_KEYS, "device.")
            if not device.get("identifiers") and not device.get("connections"):
                problems.append("device needs identifiers or connections")
    origin = doc.get("origin")
    if isinstance(origin, dict):
        problems += _typed(origin, ORIGIN_KEYS, "origin.")
        if "name" not in origin:
            problems.append("origin.name is required")
    device_class = doc.get("device_class")
    unit = doc.get("unit_of_measurement")
    state_class = doc.get("state_class")
    if device_class is not None:
        allowed = DEVICE_CLASS_UNITS.get(device_class)
        if allowed is None:
            problems.append(f"device_class {device_class!r} is not one this check knows")
        elif unit not in allowed:
            problems.append(f"unit {unit!r} is not allowed for device_class {device_class}")
    if state_class is not None:
        if state_class not in STATE_CLASSES:
            problems.append(f"state_class {state_class!r} is not one of {sorted(STATE_CLASSES)}")
        if state_class == "measurement" and device_class in NOT_MEASUREMENT:
            problems.append(f"state_class measurement is not allowed for {device_class}")
        if device_class == "timestamp":
            problems.append("a timestamp sensor has no state_class")
    if "last_reset_value_template" in doc and state_class != "total":
        problems.append("last_reset_value_template needs state_class total")
    if "options" in doc and ("state_class" in doc or unit is not None):
        problems.append("options cannot be used with state_class or unit_of_measurement")
    if doc.get("entity_category") not in (None, "diagnostic"):
        problems.append("a sensor's entity_category must be diagnostic")
    if doc.get("qos", 0) not in (0, 1, 2) or doc.get("expire_after", 0) < 0:
        problems.append("qos must be 0..2 and expire_after >= 0")
    return problems


def _typed(doc: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    out = []
    for key, value in doc.items():
        if key not in schema:
            out.append(f"unknown option {where}{key}")
        elif not isinstance(value, schema[key]) or (schema[key] is int and type(value) is bool):
            out.append(f"{where}{key} has the wrong type ({type(value).__name__})")
    return out

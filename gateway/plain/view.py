"""The plain view: the gateway's status, each meter's live values and its last slot's energy
as plain JSON on retained topics of the home broker, with Home Assistant discovery.

It has its own MQTT connection and shares nothing with the signed path but the values: the
live reads are jobs on the bus threads (between the energy polls), the slot energies are
those just sealed. If its broker is down, its messages are dropped (paho's queue while
connecting aside) and the signed path is untouched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from gateway.bus import ModbusBus
from gateway.config import MeterConfig
from gateway.config_plain import PlainConfig
from gateway.meters import MeterDriver
from gateway.plain.discovery import Discovery, Topics
from gateway.slots import SlotEnergy
from ledger_node.shared.mqtt import make_client, start

log = logging.getLogger("mlg.gateway.plain")

BIRTH_MAX_BYTES = 64
"""Home Assistant's birth message is `online`: anything longer is refused unparsed."""

Submit = Callable[[Callable[[ModbusBus], Any]], "Future[Any]"]


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def _finite(values: Mapping[str, float]) -> dict[str, float | None]:
    """JSON has no NaN or infinity: those become null (Home Assistant: unknown)."""
    return {k: (v if math.isfinite(v) else None) for k, v in values.items()}


class PlainView:
    """Publishes `meters`' live values (read through `submit[bus]`), the slot energies it
    is given and the gateway's status for `gateway_id`."""

    def __init__(
        self,
        cfg: PlainConfig,
        gateway_id: str,
        meters: Sequence[MeterConfig],
        submit: Mapping[str, Submit],
    ) -> None:
        self.cfg = cfg
        self.topics = Topics(cfg.prefix, gateway_id)
        expire = math.ceil(3 * cfg.live_every_s) + 5
        self.discovery = Discovery(cfg.discovery_prefix, self.topics, expire)
        self.meters = list(meters)
        self.submit = submit
        self.live = {m.id: cfg.live_registers(m.model) for m in self.meters}
        self.drivers = {m.id: MeterDriver(m.model, self.live[m.id]) for m in self.meters}
        self._in_flight: set[str] = set()
        self._last_live = -math.inf
        self.published = 0
        self.read_errors = 0
        self.refused = 0
        self.client = make_client(cfg.mqtt)
        self.client.will_set(self.topics.availability, b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    # -- the connection ----------------------------------------------------------------
    def start(self) -> None:
        start(self.client, self.cfg.mqtt)
        log.info(
            "plain view (unsigned, unencrypted) on %s:%d under %s/%s",
            self.cfg.mqtt.host,
            self.cfg.mqtt.port,
            self.cfg.prefix,
            self.topics.gateway,
        )

    def stop(self) -> None:
        info = self._publish(self.topics.availability, b"offline", qos=1)
        if info is not None and self.client.is_connected():
            with contextlib.suppress(RuntimeError, ValueError):  # lost meanwhile: the will says it
                info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, *a: Any) -> None:
        if getattr(rc, "is_failure", False):
            log.warning("plain view: broker refused the connection: %s", rc)
            return
        self._announce()
        if self.cfg.discovery_prefix:
            client.subscribe(f"{self.cfg.discovery_prefix}/status", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """Home Assistant's birth message: send the discovery again, as its docs advise."""
        raw = bytes(msg.payload)
        if len(raw) > BIRTH_MAX_BYTES:
            self.refused += 1
            log.warning("plain view: %d-byte message on %s refused", len(raw), msg.topic)
            return
        if raw == b"online":
            log.info("plain view: Home Assistant is online; sending discovery")
            self._announce()

    def _announce(self) -> None:
        self._publish(self.topics.availability, b"online", qos=1)
        if not self.cfg.discovery_prefix:
            return
        configs = self.discovery.gateway()
        for m in self.meters:
            configs += self.discovery.meter(m.id, m.model, self.live[m.id])
        for topic, doc in configs:
            self._publish(topic, json.dumps(doc).encode(), qos=1)

    def _publish(self, topic: str, payload: bytes, qos: int) -> mqtt.MQTTMessageInfo | None:
        info = self.client.publish(topic, payload, qos=qos, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.debug("plain view: %s not published (%s)", topic, info.rc)
            return None
        self.published += 1
        return info

    # -- what it publishes -------------------------------------------------------------
    def tick(
        self, unconfirmed: int, alarms: Sequence[str], last_sealed_end: float | None, network: Any
    ) -> None:
        """Every `live_every_s` real seconds: read each meter's live values (unless its last
        read is still running) and publish the gateway's figures: batches not yet confirmed,
        its alarms, the end of the last slot it sealed (UTC s), whether the `network`
        publisher is connected."""
        if time.monotonic() - self._last_live < self.cfg.live_every_s:
            return
        self._last_live = time.monotonic()
        status = {
            "unconfirmed": unconfirmed,
            "alarms": len(alarms),
            "alarm_names": list(alarms),
            "last_sealed": None if last_sealed_end is None else _iso(last_sealed_end),
            "network_broker": bool(network.connected.is_set()),
        }
        self._publish(self.topics.status, json.dumps(status).encode(), qos=1)
        for m in self.meters:
            if m.id not in self._in_flight and self.live[m.id]:
                self._in_flight.add(m.id)
                self.submit[m.bus](self._reader(m)).add_done_callback(self._on_read(m.id))

    def _reader(self, m: MeterConfig) -> Callable[[ModbusBus], tuple[float, dict[str, float]]]:
        def read(bus: ModbusBus) -> tuple[float, dict[str, float]]:
            return time.time(), self.drivers[m.id].read(bus, m.unit)

        return read

    def _on_read(self, meter: str) -> Callable[[Future[Any]], None]:
        return lambda future: self._live_done(meter, future)

    def _live_done(self, meter: str, future: Future[Any]) -> None:
        self._in_flight.discard(meter)
        try:
            t, values = future.result()
        except Exception as exc:  # a dead meter, a lost port: nothing to show this time
            self.read_errors += 1
            log.debug("plain view: meter %s not read: %s", meter, exc)
            return
        doc = {"time": _iso(t), **_finite(values)}
        self._publish(self.topics.live(meter), json.dumps(doc).encode(), qos=0)

    def slot(self, slot_start: int, slot_s: int, batch: Sequence[SlotEnergy]) -> None:
        """The energies of a slot just sealed (the same numbers the signed batch holds)."""
        for e in batch:
            doc = {
                "slot_start": _iso(slot_start),
                "slot_end": _iso(slot_start + slot_s),
                "last_reset": _iso(slot_start),
                "energy_wh": e.wh,
                "flags": sorted(e.quality),
            }
            self._publish(self.topics.slot(e.meter), json.dumps(doc).encode(), qos=1)

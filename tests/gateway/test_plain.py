"""The local plain view: its Home Assistant discovery messages against the schema Home
Assistant documents (`tests/support/ha_schema.py`), its `[plain]` section (off by default,
never on the network's broker by accident), and a real gateway process with a real
Mosquitto and the emulator: the discovery, live values and slot energies arrive, the slot
energies are those of the signed batches, and the signed batches flow unchanged, also when
the plain view's broker is down."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import load_config
from gateway.config_file import MeterEntry
from gateway.errors import ConfigError
from gateway.meters import builtin_models, load_model
from gateway.plain.discovery import Discovery, Topics
from ledger_node.localnet.broker import Broker, free_port
from ledger_node.localnet.wait import wait_until
from tests.support.gateway import (
    GATEWAY,
    Collector,
    Emulator,
    GatewayProcess,
    clock_args,
    gateway_config,
)
from tests.support.ha_schema import check_sensor

SLOT_S = 30


def _configure(work: Path, port: int, plain_port: int, options: str = "") -> None:
    """The gateway of an SDM630 on the emulator's line, its plain view on `plain_port`."""
    bus = {"rs485-0": str(work / "bus")}
    path = gateway_config(work, port, bus, [MeterEntry("m1", 1, "sdm630")], SLOT_S)
    plain = f"\n[plain]\nenabled = true\n{options}[plain.mqtt]\nport = {plain_port}\n"
    path.write_text(path.read_text() + plain)


def _all_discovery() -> list[tuple[str, dict[str, object]]]:
    d = Discovery("homeassistant", Topics("mlg-plain", GATEWAY), 35)
    out = d.gateway()
    for name, model in builtin_models().items():
        inputs = [r.name for r in model.registers if r.table == "input"]
        out += d.meter(f"m-{name}", model, inputs)
    return out


def test_every_discovery_message_matches_home_assistants_schema() -> None:
    messages = _all_discovery()
    for topic, doc in messages:
        assert check_sensor(topic, json.dumps(doc).encode()) == [], (topic, doc)
    ids = [str(doc["unique_id"]) for _, doc in messages]
    assert len(set(ids)) == len(ids) == len({t for t, _ in messages})
    by_id = {str(doc["unique_id"]): doc for _, doc in messages}
    power = by_id[f"mlg_{GATEWAY}_m-sdm630_power"]
    assert (power["device_class"], power["state_class"], power["unit_of_measurement"]) == (
        "power",
        "measurement",
        "W",
    )
    energy = by_id[f"mlg_{GATEWAY}_m-sdm630_import_energy"]
    assert (energy["device_class"], energy["state_class"]) == ("energy", "total_increasing")
    slot = by_id[f"mlg_{GATEWAY}_m-sdm120_slot_energy"]
    assert (slot["state_class"], slot["last_reset_value_template"]) == (
        "total",
        "{{ value_json.last_reset }}",
    )
    pf = by_id[f"mlg_{GATEWAY}_m-sdm120_power_factor"]
    assert pf["device_class"] == "power_factor" and "unit_of_measurement" not in pf
    device = power["device"]
    assert isinstance(device, dict) and device["via_device"] == f"mlg_{GATEWAY}"
    assert device["manufacturer"] == "Eastron" and device["model"] == "SDM630"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"state_class": "measurement"}, "not allowed for energy"),
        ({"unit_of_measurement": "V"}, "not allowed for device_class energy"),
        ({"stat_topic": "x"}, "unknown option stat_topic"),
        ({"state_topic": None}, "state_topic has the wrong type"),
        ({"entity_category": "config"}, "must be diagnostic"),
        ({"device": {"name": "x"}}, "identifiers or connections"),
    ],
)
def test_the_schema_check_refuses_what_home_assistant_refuses(
    change: dict[str, object], problem: str
) -> None:
    topic, doc = next(
        (t, d)
        for t, d in _all_discovery()
        if d["unique_id"] == f"mlg_{GATEWAY}_m-sdm120_import_energy"
    )
    bad = {**doc, **change}
    assert any(problem in p for p in check_sensor(topic, json.dumps(bad).encode()))
    assert check_sensor(topic.replace("/sensor/", "/sensor/bad id/"), b"{}") != []


def _config(tmp_path: Path, plain: str, port: int = 1883) -> Path:
    path = gateway_config(tmp_path, port, {"rs485-0": "/dev/null"}, [MeterEntry("m1", 1)])
    path.write_text(path.read_text() + plain)
    return path


def test_the_plain_view_is_off_by_default_and_never_on_the_network_broker_by_accident(
    tmp_path: Path,
) -> None:
    assert load_config(_config(tmp_path, "")).plain is None
    assert load_config(_config(tmp_path, "\n[plain]\nprefix = 'home'\n")).plain is None
    on = load_config(_config(tmp_path, "\n[plain]\nenabled = true\n[plain.mqtt]\nport = 1884\n"))
    assert on.plain is not None and on.plain.mqtt.host == "127.0.0.1"
    assert on.plain.live_registers(load_model("sdm120"))[:2] == ["voltage", "current"]
    refused = {
        "\n[plain]\nenabled = true\n": "is the network's broker",
        "\n[plain]\nenabled = true\nprefix = 'mlg/plain'\n[plain.mqtt]\nport = 9\n": "signed",
        "\n[plain]\nenabled = true\nregisters = ['nope']\n[plain.mqtt]\nport = 9\n": "'nope'",
        "\n[plain]\nenabled = true\nlive_every_s = 0\n[plain.mqtt]\nport = 9\n": "1..3600",
        "\n[plain]\nenabled = true\nprefix = 'a/#'\n[plain.mqtt]\nport = 9\n": "MQTT levels",
        "\n[plain]\nenabled = true\nfoo = 1\n": "unknown key plain.foo",
    }
    for text, message in refused.items():
        with pytest.raises(ConfigError, match=message):
            load_config(_config(tmp_path, text))
    shared = "\n[plain]\nenabled = true\nshare_network_broker = true\n"
    assert load_config(_config(tmp_path, shared)).plain is not None


class Retained:
    """Every message under `filters` on the broker at `port`, newest per topic."""

    def __init__(self, port: int, *filters: str) -> None:
        self.messages: dict[str, bytes] = {}
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: [c.subscribe(f, qos=1) for f in filters]
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages[msg.topic] = bytes(msg.payload)
            self.counts[msg.topic] = self.counts.get(msg.topic, 0) + 1

    def get(self, topic: str) -> bytes | None:
        with self.lock:
            return self.messages.get(topic)

    def under(self, prefix: str) -> dict[str, bytes]:
        with self.lock:
            return {t: m for t, m in self.messages.items() if t.startswith(prefix)}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Path, Broker, Emulator]]:
    broker = Broker(tmp_path / "broker").start()
    clock = clock_args(10.0)
    emulator = Emulator(tmp_path, tmp_path / "bus", ["1:sdm630:constant:3600"], clock, SLOT_S)
    try:
        yield tmp_path, broker, emulator
    finally:
        emulator.stop()
        broker.stop()


def _signed_batches_flow(work: Path, collector: Collector, gateway: GatewayProcess) -> None:
    """At least three batches, seq 0, 1, 2, ... once each, 30 Wh a slot (3.6 kW for 30 s)."""
    wait_until(lambda: len(collector.seqs()) >= 3, 60, "three signed batches")
    seqs = collector.seqs()
    assert seqs == list(range(len(seqs))) and collector.equivocations == []
    readings = collector.readings()
    assert {wh for rows in readings.values() for _, wh, _ in rows} == {30}, readings
    assert gateway.alive()


@pytest.mark.slow
def test_the_plain_view_publishes_beside_the_signed_path(
    rig: tuple[Path, Broker, Emulator],
) -> None:
    work, broker, _ = rig
    _configure(work, broker.port, broker.port, "share_network_broker = true\nlive_every_s = 1\n")
    watch = Retained(broker.port, "mlg-plain/#", "homeassistant/#")
    collector = Collector(broker.port, work / "keys")
    gateway = GatewayProcess(work, clock_args(10.0))
    gateway.start()
    try:
        _signed_batches_flow(work, collector, gateway)
        slot_topic = f"mlg-plain/{GATEWAY}/m1/slot"
        wait_until(lambda: watch.get(slot_topic) is not None, 30, "a plain slot energy")
        # Discovery: every message valid; one per input register, the slot energy, and
        # the gateway's three figures.
        configs = watch.under("homeassistant/")
        model = load_model("sdm630")
        inputs = [r for r in model.registers if r.table == "input"]
        assert len(configs) == len(inputs) + 1 + 3
        for topic, raw in configs.items():
            assert check_sensor(topic, raw) == [], topic
        # Home Assistant's birth message makes the gateway send its discovery again.
        first = next(iter(configs))
        sent = watch.counts[first]
        watch.client.publish("homeassistant/status", b"online", qos=1)
        wait_until(lambda: watch.counts[first] > sent, 10, "discovery again after the birth")
        # Live values: every input register, within its plausible range; the load's power.
        live = json.loads(watch.get(f"mlg-plain/{GATEWAY}/m1/live") or b"{}")
        for reg in inputs:
            value = live[reg.name]
            assert isinstance(value, float) and reg.in_range(value), reg.name
        assert live["power"] == 3600.0
        # The last slot's energy is the signed batch's reading for that slot.
        slot = json.loads(watch.get(slot_topic) or b"{}")
        start = int(datetime.fromisoformat(slot["slot_start"]).timestamp())
        wait_until(lambda: ("m1", start) in collector.readings(), 30, "the signed batch")
        signed = [(wh, list(flags)) for _, wh, flags in collector.readings()[("m1", start)]]
        assert signed == [(slot["energy_wh"], slot["flags"])]
        assert slot["last_reset"] == slot["slot_start"]
        status = json.loads(watch.get(f"mlg-plain/{GATEWAY}/status") or b"{}")
        assert status["network_broker"] is True and isinstance(status["unconfirmed"], int)
        assert watch.get(f"mlg-plain/{GATEWAY}/availability") == b"online"
        # Nothing plain on the signed topics: every batch there opened as a signed envelope.
        assert collector.duplicates == 0
    finally:
        gateway.stop()
        collector.close()
    wait_until(lambda: watch.get(f"mlg-plain/{GATEWAY}/availability") == b"offline", 10, "offline")
    watch.close()


@pytest.mark.slow
def test_the_signed_path_does_not_wait_for_a_dead_plain_broker(
    rig: tuple[Path, Broker, Emulator],
) -> None:
    work, broker, _ = rig
    _configure(work, broker.port, free_port())
    collector = Collector(broker.port, work / "keys")
    gateway = GatewayProcess(work, clock_args(10.0))
    gateway.start()
    try:
        _signed_batches_flow(work, collector, gateway)
    finally:
        gateway.stop()
        collector.close()
    assert "Traceback" not in gateway.log()

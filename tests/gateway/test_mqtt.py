"""MQTT behaviour against a real Mosquitto: a PUBACK with a reason code of 0x80 or more
(here the broker's ACL refusing the readings topic) is a failure, not a confirmation, and
the batches go out once the broker accepts them; retained birth and last-will messages
carry the boot counter."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config_file import MeterEntry
from ledger_node.localnet.broker import find_mosquitto, free_port, wait_for_port
from ledger_node.localnet.wait import wait_until
from tests.conftest import run_module
from tests.support.gateway import (
    GATEWAY,
    Collector,
    Emulator,
    GatewayProcess,
    clock_args,
    gateway_config,
    make_keys,
)

pytestmark = pytest.mark.slow
SLOT_S = 30


class AclBroker:
    """Mosquitto on `port`; with `deny_readings`, anonymous clients may read but not
    publish readings (MQTT 5 answers such a PUBLISH with PUBACK reason 0x87)."""

    def __init__(self, work: Path, port: int) -> None:
        self.work = work
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, deny_readings: bool) -> None:
        mosquitto = find_mosquitto()
        assert mosquitto, "Mosquitto is not installed: run `make test`"
        self.work.mkdir(parents=True, exist_ok=True)
        acl = self.work / "acl"
        acl.write_text(
            "topic read mlg/v1/readings/#\ntopic readwrite mlg/v1/status/#\n"
            if deny_readings
            else "topic readwrite #\n"
        )
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", f"acl_file {acl}"]
        if os.geteuid() == 0:
            lines.append("user root")
        conf = self.work / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        with (self.work / "broker.log").open("ab") as log:
            self.proc = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=log, stderr=log)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


class StatusWatcher:
    """Every message on the gateway's status topic, as parsed JSON, in order."""

    def __init__(self, port: int) -> None:
        self.seen: list[dict[str, object]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe(f"mlg/v1/status/{GATEWAY}", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.seen.append(json.loads(msg.payload))

    def states(self) -> list[tuple[object, object, object]]:
        with self.lock:
            return [(s["state"], s["boot"], s.get("reason")) for s in self.seen]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[AclBroker, GatewayProcess, Emulator]]:
    port = free_port()
    broker = AclBroker(tmp_path / "broker", port)
    clock = clock_args(10.0)
    emulator = Emulator(tmp_path, tmp_path / "bus", ["1:sdm120:constant:1200"], clock, SLOT_S)
    gateway_config(
        tmp_path, port, {"rs485-0": str(tmp_path / "bus")}, [MeterEntry("m1", 1)], SLOT_S
    )
    gateway = GatewayProcess(tmp_path, clock)
    yield broker, gateway, emulator
    gateway.stop()
    emulator.stop()
    broker.stop()


def _status(work: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((work / "state" / "status.json").read_text())  # type: ignore[no-any-return]


def test_refused_pubacks_are_failures_and_nothing_is_lost(
    tmp_path: Path, parts: tuple[AclBroker, GatewayProcess, Emulator]
) -> None:
    broker, gateway, _ = parts
    broker.start(deny_readings=True)
    gateway.start()
    wait_until(
        lambda: (
            (tmp_path / "state" / "status.json").exists()
            and _status(tmp_path)["broker"]["refused_by_broker"] >= 2
        ),
        60,
        "refused PUBACKs",
    )
    assert "broker refused batch seq 0" in gateway.log() and "Not authorized" in gateway.log()
    out = run_module("gateway.cli", "status", "--json", "-c", f"{tmp_path}/gateway.toml")
    stored = json.loads(out.stdout)["outbox"]
    assert stored["last_confirmed_seq"] is None and stored["depth"] >= 2  # none confirmed
    # The ACL is fixed: every stored batch goes out and is confirmed, none lost.
    broker.stop()
    broker.start(deny_readings=False)
    collector = Collector(broker.port, make_keys(tmp_path))
    try:
        wait_until(lambda: len(collector.seqs()) >= stored["depth"] + 1, 60, "the backlog")
        assert collector.seqs() == list(range(len(collector.seqs())))
    finally:
        collector.close()


def test_birth_and_last_will_carry_the_boot_counter(
    tmp_path: Path, parts: tuple[AclBroker, GatewayProcess, Emulator]
) -> None:
    broker, gateway, _ = parts
    broker.start(deny_readings=False)
    watcher = StatusWatcher(broker.port)
    try:
        gateway.start()
        wait_until(lambda: ("online", 1, None) in watcher.states(), 30, "the birth message")
        gateway.kill()  # no goodbye: the broker sends the will after 1.5 keep-alives (5 s)
        wait_until(lambda: ("offline", 1, "connection lost") in watcher.states(), 30, "the will")
        gateway.start()
        wait_until(lambda: ("online", 2, None) in watcher.states(), 30, "the second birth")
        gateway.stop()
        wait_until(lambda: ("offline", 2, "stopped") in watcher.states(), 30, "the clean death")
    finally:
        watcher.close()
    shown = run_module("gateway.cli", "status", "-c", f"{tmp_path}/gateway.toml")
    assert shown.returncode == 0, shown.stderr  # no alarm
    assert "boot 2, stopped cleanly" in shown.stdout
    assert "DISCONNECTED" in shown.stdout and "last confirmed seq" in shown.stdout
    (row,) = [line.split() for line in shown.stdout.splitlines() if line.startswith("m1 ")]
    assert row[1:3] == ["rs485-0", "1"] and int(row[3]) > 0 and row[4] == "0"
    late = StatusWatcher(broker.port)  # retained: a monitor that connects later sees it
    try:
        wait_until(lambda: late.states() == [("offline", 2, "stopped")], 10, "the retained status")
    finally:
        late.close()

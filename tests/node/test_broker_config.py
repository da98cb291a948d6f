"""`mlg-node broker-config` on a real Mosquitto: TLS with the project's client
certificates only, each identity held to its ACL over MQTT 5. (A whole network running
through it: `mlg-net up --tls`, in tests/system/test_mlg_net.py.)"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives import serialization
from paho.mqtt.enums import CallbackAPIVersion

from ledger_node.interfaces.broker.pki import Authority
from ledger_node.localnet.broker import Broker, free_port
from ledger_node.localnet.network import LocalNet
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.mqtt import MqttSettings, make_client
from tests.conftest import run_module

pytestmark = pytest.mark.slow


def _inventory(work: Path, port: int) -> Path:
    gateways = "".join(
        f'[[gateway]]\nid = "gw-{site}"\nsite = "{site}"\n\n'
        for site in ("site1", "site2", "site3")
    )
    path = work / "broker.toml"
    path.write_text(
        "[broker]\n"
        'out = "tls"\n'
        f'listen = "127.0.0.1:{port}"\n'
        'names = ["localhost", "127.0.0.1"]\n'
        'genesis = "genesis.mlg"\n'
        f'persistence_dir = "{work / "broker-state"}"\n'
        "slot_seconds = 60\n\n" + gateways
    )
    (work / "broker-state").mkdir()
    return path


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[LocalNet, Broker]]:
    """The figure-7 organisations' keys and genesis, and a Mosquitto running the
    configuration `mlg-node broker-config` wrote for them and three gateways."""
    port = free_port()
    net = LocalNet(tmp_path, port, tls=tmp_path / "tls")
    done = run_module(
        "ledger_node.interfaces.cli", "broker-config", "-c", str(_inventory(tmp_path, port))
    )
    assert done.returncode == 0, done.stderr
    assert "issued a client certificate for gw-site2" in done.stderr
    for key in (tmp_path / "tls").rglob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key
    broker = Broker(tmp_path / "broker", port, config=tmp_path / "tls" / "mosquitto.conf")
    broker.start()
    try:
        yield net, broker
    finally:
        broker.stop()


def _connect(settings: MqttSettings, port: int) -> mqtt.Client:
    client = make_client(settings)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert connected.wait(10), "no CONNACK"
    return client


def _handshake_fails(port: int, ca: Path, cert: Path | None, key: Path | None) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.tls_set(
        ca_certs=str(ca),
        certfile=str(cert) if cert else None,
        keyfile=str(key) if key else None,
        tls_version=ssl.PROTOCOL_TLS_CLIENT,
    )
    with pytest.raises((ssl.SSLError, OSError)):
        client.connect("127.0.0.1", port)
        for _ in range(20):
            client.loop(timeout=0.2)
            if not client.is_connected():
                raise OSError("connection closed by the broker")


def test_each_identity_keeps_to_its_topics_and_strangers_stay_out(
    secured: tuple[LocalNet, Broker], tmp_path: Path
) -> None:
    net, broker = secured
    conf = (tmp_path / "tls" / "mosquitto.conf").read_text()
    for line in ("require_certificate true", "allow_anonymous false", "protocol mqtt"):
        assert line in conf
    assert f"max_packet_size {4 * 65536 + 4096}" in conf
    assert "listener 1883" not in conf and "persistence true" in conf
    # A node (the TSO's) listens to every readings topic.
    received: list[str] = []
    tso = _connect(net.mqtt_settings("tso"), broker.port)
    tso.on_message = lambda c, u, m: received.append(m.topic)
    tso.subscribe("mlg/v1/readings/+/+", qos=1)
    gw1 = _connect(net.mqtt_settings("gw-site1"), broker.port)
    codes: dict[int, int] = {}
    gw1.on_publish = lambda c, u, mid, rc, p: codes.__setitem__(mid, rc.value)
    try:
        time.sleep(0.5)  # let the SUBSCRIBE land
        foreign = gw1.publish("mlg/v1/readings/site2/gw-site2", b"forged", qos=1)
        own = gw1.publish("mlg/v1/readings/site1/gw-site1", b"mine", qos=1)
        wait_until(lambda: {foreign.mid, own.mid} <= codes.keys(), 10, "PUBACKs")
        assert codes[foreign.mid] == 0x87  # not authorised
        assert codes[own.mid] < 0x80
        wait_until(lambda: received, 10, "the gateway's own batch at the node")
        time.sleep(1.0)  # anything else would have come by now
        assert received == ["mlg/v1/readings/site1/gw-site1"]
    finally:
        for c in (tso, gw1):
            c.disconnect()
            c.loop_stop()
    ca = tmp_path / "tls" / "ca" / "ca.pem"
    _handshake_fails(broker.port, ca, None, None)  # no client certificate
    other = Authority(tmp_path / "other-ca", "other")
    issued = other.issue(tmp_path / "x.pem", tmp_path / "x.key", "gw-site1", 30)
    _handshake_fails(broker.port, ca, issued.cert, issued.key)  # the right name, another CA
    assert serialization.load_pem_private_key(issued.key.read_bytes(), None)


def test_a_nodes_frontends_take_the_readings_through_a_shared_subscription(
    secured: tuple[LocalNet, Broker],
) -> None:
    """The production broker lets a node's front-ends (the node's identity, client ids
    `node-<id>-<name>`) share its readings: each batch reaches one of them."""
    net, broker = secured
    got: dict[str, list[str]] = {"fe1": [], "fe2": []}
    frontends = []
    for name, inbox in got.items():
        settings = replace(net.mqtt_settings("tso"), client_id=f"node-tso-{name}")
        fe = _connect(settings, broker.port)
        fe.on_message = lambda c, u, m, inbox=inbox: inbox.append(m.payload.decode())
        fe.subscribe("$share/tso/mlg/v1/readings/+/+", qos=1)
        frontends.append(fe)
    gw1 = _connect(net.mqtt_settings("gw-site1"), broker.port)
    try:
        time.sleep(0.5)  # let the SUBSCRIBEs land
        sent = [str(i) for i in range(20)]
        for payload in sent:
            gw1.publish("mlg/v1/readings/site1/gw-site1", payload.encode(), qos=1)
        wait_until(lambda: len(got["fe1"]) + len(got["fe2"]) >= len(sent), 10, "the batches")
        time.sleep(0.5)  # a copy to both would have come by now
        assert sorted(got["fe1"] + got["fe2"], key=int) == sent  # each once, none lost
        assert got["fe1"] and got["fe2"]  # shared, not copied
    finally:
        for c in (*frontends, gw1):
            c.disconnect()
            c.loop_stop()

"""TLS with a client certificate: the gateway publishes to a Mosquitto that requires one
(certificates made by the openssl command line for this test), and a client without a
certificate is turned away."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config_file import MeterEntry
from gateway.db import open_readonly
from gateway.outbox import read_stats
from ledger_node.localnet.broker import find_mosquitto, free_port, wait_for_port
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.mqtt import MqttSettings
from tests.support.gateway import (
    Emulator,
    GatewayProcess,
    clock_args,
    gateway_config,
)

pytestmark = pytest.mark.slow


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _certificates(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=mlg-test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn in (("server", "localhost"), ("client", "gw-site1")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", "-extfile", "san.ext",
                 cwd=d)  # fmt: skip
    for key in d.glob("*.key"):
        key.chmod(0o600)


def test_the_gateway_publishes_over_tls_with_its_client_certificate(tmp_path: Path) -> None:
    certs = tmp_path / "tls"
    _certificates(certs)
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        f"cafile {certs}/ca.pem",
        f"certfile {certs}/server.pem",
        f"keyfile {certs}/server.key",
        "require_certificate true",
        "use_identity_as_username true",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    mosquitto = find_mosquitto()
    assert mosquitto, "Mosquitto is not installed: run `make test`"
    with (tmp_path / "broker.log").open("ab") as log:
        broker = subprocess.Popen([mosquitto, "-c", str(conf)], stdout=log, stderr=log)
    clock = clock_args(10.0)
    emulator = Emulator(tmp_path, tmp_path / "bus", ["1:sdm120:constant:1200"], clock, 30)
    tls = MqttSettings(
        port=port,
        keepalive_s=5,
        ca_file=Path("tls/ca.pem"),
        cert_file=Path("tls/client.pem"),
        key_file=Path("tls/client.key"),
    )
    gateway_config(
        tmp_path, port, {"rs485-0": str(tmp_path / "bus")}, [MeterEntry("m1", 1)], 30, mqtt=tls
    )
    gateway = GatewayProcess(tmp_path, clock)
    try:
        wait_for_port(port)
        gateway.start()

        def confirmed() -> int:
            db = tmp_path / "state" / "state.sqlite"
            if not db.exists():
                return 0
            conn = open_readonly(db)
            try:
                return read_stats(conn, 1).confirmed  # confirmed by PUBACKs over TLS
            finally:
                conn.close()

        wait_until(lambda: confirmed() >= 2, 60, "batches confirmed over TLS")
        # Without a client certificate the broker does not let a client in.
        bare = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        bare.tls_set(ca_certs=str(certs / "ca.pem"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        with pytest.raises((ssl.SSLError, OSError)):
            bare.connect("127.0.0.1", port)
            for _ in range(20):
                bare.loop(timeout=0.2)
                if not bare.is_connected():
                    raise OSError("connection closed by the broker")
    finally:
        gateway.stop()
        emulator.stop()
        broker.terminate()
        broker.wait(timeout=10)

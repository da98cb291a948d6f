"""A whole network on one machine, for the demo and the tests: organisations' keys, the
genesis, each node's config, and the nodes as processes, exactly as they run in the field.

Organisations without a node of their own here (the demo runs TSO, AC(1) and RA(1) nodes
only) still sign their facts with their own keys; `publish_fact` puts those on the
broker as their node would.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from ledger_node.interfaces.client import read_address
from ledger_node.localnet.wait import wait_until
from ledger_node.network.config import api_addr_path, token_path
from ledger_node.network.genesis import make_genesis
from ledger_node.shared.keys import Identity
from ledger_node.shared.mqtt import MqttSettings, make_client
from ledger_node.wire import Message
from ledger_node.wire.topics import Topics


@dataclass(frozen=True)
class OrgSpec:
    id: str
    role: str
    ac: str | None = None


FIGURE_7 = (
    OrgSpec("tso", "tso"),
    OrgSpec("ac1", "ac"),
    OrgSpec("ac2", "ac"),
    OrgSpec("ra1", "ra", "ac1"),
    OrgSpec("ra2", "ra", "ac1"),
    OrgSpec("ra3", "ra", "ac2"),
)
"""The brief's figure 7: AC(1) bundles RA(1) and RA(2); AC(2) has RA(3)."""


class LocalNet:
    """Keys, genesis and node configs in `work`; node processes started on demand."""

    def __init__(
        self,
        work: Path,
        broker_port: int,
        orgs: tuple[OrgSpec, ...] = FIGURE_7,
        nodes: tuple[str, ...] = ("tso", "ac1", "ra1"),
        *,
        speed: float = 1.0,
        origin: float | None = None,
        late_after_s: int = 3600,
        checkpoint_every_s: float = 2.0,
        sync_every_s: float = 2.0,
        protocol: str = "5",
        network: str = "localnet",
        tls: Path | None = None,
        databases: dict[str, str] | None = None,
    ) -> None:
        """`tls`: the folder `mlg-node broker-config` wrote (a TLS broker: every node and
        organisation connects with its own client certificate from it). `databases`: the
        nodes whose tables are on PostgreSQL, with their database's URL."""
        self.work = work
        self.tls = tls
        self.broker_port = broker_port
        self.orgs = {o.id: o for o in orgs}
        self.nodes = nodes
        self.speed = speed
        self.origin = time.time() if origin is None else origin
        self.protocol = protocol
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        keys = work / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        self.identities = {}
        for org in orgs:
            path = keys / f"{org.id}.key"
            if not path.exists():
                Identity.generate(org.id).save(path)
            self.identities[org.id] = Identity.load(path)
        tso = next(o for o in orgs if o.role == "tso")
        self.tso = tso.id
        genesis = work / "genesis.mlg"
        if not genesis.exists():
            members = [
                (self.identities[o.id].public, o.role, o.ac) for o in orgs if o.role != "tso"
            ]
            genesis.write_bytes(make_genesis(self.identities[tso.id], network, members))
        dbs = databases or {}
        for name in nodes:
            lines = [
                "[node]",
                f'id = "{name}"',
                f'key = "../keys/{name}.key"',
                'genesis = "../genesis.mlg"',
                f'db = "{name}.sqlite"',
                *([f'database = "{dbs[name]}"'] if name in dbs else []),
                f"late_after_s = {late_after_s}",
                f"checkpoint_every_s = {checkpoint_every_s}",
                f"sync_every_s = {sync_every_s}",
                "",
                "[mqtt]",
                'host = "127.0.0.1"',
                f"port = {broker_port}",
                f'protocol = "{protocol}"',
                *self._tls_lines(name),
                "",
                "[api]",
                'listen = "127.0.0.1:0"',  # the node picks a free port and names it
            ]
            (work / name).mkdir(exist_ok=True)
            (work / name / "node.toml").write_text("\n".join(lines) + "\n")

    def _tls_lines(self, name: str) -> list[str]:
        s = self.mqtt_settings(name)
        if s.ca_file is None:
            return []
        return [
            f'ca_file = "{s.ca_file}"',
            f'cert_file = "{s.cert_file}"',
            f'key_file = "{s.key_file}"',
        ]

    # -- processes -----------------------------------------------------------------------------

    @property
    def clock_args(self) -> list[str]:
        return ["--clock-scale", str(self.speed), "--clock-origin", repr(self.origin)]

    def config(self, name: str) -> Path:
        return self.work / name / "node.toml"

    def db(self, name: str) -> Path:
        return self.work / name / f"{name}.sqlite"

    def log_path(self, name: str) -> Path:
        return self.work / f"{name}.log"

    def start_node(
        self, name: str, *extra: str, label: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `name`'s node; `extra`: more `mlg-node run` options (fault injection, a
        role); `label`: the process's name here and its log's (a node's second process)."""
        with self.log_path(label or name).open("ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ledger_node.interfaces.cli",
                    "run",
                    "-c",
                    str(self.config(name)),
                    *self.clock_args,
                    *extra,
                ],
                stdout=log,
                stderr=log,
            )
        self.procs[label or name] = proc
        return proc

    def start(self) -> None:
        for name in self.nodes:
            self.start_node(name)
        for name in self.nodes:
            wait_until(self._api_up(name), 30, f"{name}'s API", alive=self.check_alive)

    def _api_up(self, name: str) -> Callable[[], Any]:
        return lambda: self.get(name, "/api/log")

    def stop_node(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            terminate(proc, sig)

    def stop(self) -> None:
        for name in list(self.procs):
            self.stop_node(name)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = self.log_path(name).read_text()[-2000:]
                raise RuntimeError(f"node {name} exited with {proc.returncode}:\n{tail}")

    def cli(
        self, name: str, *args: str, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `mlg-node ARGS -c <name's config>` (with `stdin` as its input)."""
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "ledger_node.interfaces.cli",
                args[0],
                "-c",
                str(self.config(name)),
                *args[1:],
            ],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def add_operator(self, name: str, operator: str, password: str) -> None:
        """Let `operator` log in to node `name`'s screens (`mlg-node operator-add`, the
        password on stdin, never on a command line)."""
        done = self.cli(name, "operator-add", operator, "--password-stdin", stdin=password + "\n")
        if done.returncode != 0:
            raise RuntimeError(f"operator-add on {name} failed: {done.stderr.strip()}")

    def login_link(self, name: str, operator: str) -> str:
        """A one-time login link to node `name`'s screens (`mlg-node login-link`)."""
        done = self.cli(name, "login-link", operator)
        if done.returncode != 0:
            raise RuntimeError(f"login-link on {name} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    # -- the API and the broker ------------------------------------------------------------------

    def api_port(self, name: str) -> int:
        """The port `name`'s API listens on, as the running node wrote it (OSError or
        ValueError while it is not up)."""
        return read_address(api_addr_path(self.db(name)))[1]

    def get(self, name: str, path: str) -> Any:
        url = f"http://127.0.0.1:{self.api_port(name)}{path}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())

    def post(self, name: str, path: str, body: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port(name)}{path}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token_path(self.db(name)).read_text().strip()}",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return json.loads(response.read())

    def mqtt_settings(self, identity: str | None = None) -> MqttSettings:
        """How `identity` (an organisation or gateway) connects: with its client certificate
        on a TLS broker (`tls`), anonymously otherwise; without one, how the tests do."""
        if identity is None:
            return MqttSettings(port=self.broker_port, protocol=self.protocol)
        if self.tls is None:  # a short keepalive: a dead client's will comes within 8 s
            return MqttSettings(port=self.broker_port, protocol=self.protocol, keepalive_s=5)
        return MqttSettings(
            port=self.broker_port,
            protocol=self.protocol,
            keepalive_s=5,
            ca_file=(self.tls / "ca" / "ca.pem").resolve(),
            cert_file=(self.tls / "clients" / f"{identity}.pem").resolve(),
            key_file=(self.tls / "clients" / f"{identity}.key").resolve(),
        )

    def publish(self, items: list[tuple[str, bytes, bool]], identity: str | None = None) -> None:
        """Publish (topic, payload, retain) at QoS 1 as `identity` and wait for every
        PUBACK."""
        client = make_client(self.mqtt_settings(identity))
        client.connect("127.0.0.1", self.broker_port)
        client.loop_start()
        try:
            for topic, payload, retain in items:
                info = client.publish(topic, payload, qos=1, retain=retain)
                info.wait_for_publish(timeout=10)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    raise RuntimeError(f"publish on {topic} failed: {info.rc}")
        finally:
            client.disconnect()
            client.loop_stop()

    def sign(self, org: str, message: Message) -> bytes:
        identity = self.identities[org]
        return message.seal(identity)

    def publish_fact(self, org: str, message: Message) -> bytes:
        """Sign `message` as `org` and put it on its retained fact topic."""
        raw = self.sign(org, message)
        self.publish([(Topics(self.mqtt_settings().prefix).fact(message), raw, True)], org)
        return raw


def terminate(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout_s: float = 15
) -> None:
    """Send `sig` to a child process still running and wait for it; kill it if it does not
    end within `timeout_s`."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()

"""Starting an MQTT broker on loopback for the demo and the tests.

Mosquitto when it is installed (found on PATH or in /usr/sbin); otherwise amqtt, an
embedded broker in Python, so the demo also runs without root. Both listen on 127.0.0.1
only, on a port chosen free.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ledger_node.localnet.wait import wait_until
from ledger_node.shared.errors import MeterledgerError

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerError(MeterledgerError):
    pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return next((p for p in MOSQUITTO_PATHS if os.access(p, os.X_OK)), None)


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port` (BrokerError if not)."""

    def accepts() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True

    try:
        wait_until(accepts, timeout_s, f"127.0.0.1:{port}", step=0.05)
    except TimeoutError:
        raise BrokerError(f"no broker listening on 127.0.0.1:{port} after {timeout_s} s") from None


@dataclass
class Broker:
    """A broker process listening on 127.0.0.1:`port`, with its log in `workdir`.

    With `config` (a Mosquitto configuration, such as `mlg-node broker-config` writes,
    whose listener is on `port`), Mosquitto runs that instead of an open loopback broker.
    """

    workdir: Path
    port: int = 0
    persistence: bool = False
    kind: str = ""
    config: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.workdir / "broker.log"

    def start(self, prefer: str = "mosquitto") -> Broker:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        mosquitto = find_mosquitto() if prefer == "mosquitto" else None
        log = self.log_path.open("ab")
        if mosquitto and self.config is not None:
            conf = self.workdir / "mosquitto.conf"
            lines = self.config.read_text().splitlines()
            if os.geteuid() == 0:
                lines.append("user root")  # else it drops to `mosquitto` and cannot save
            conf.write_text("\n".join(lines) + "\n")
            cmd = [mosquitto, "-c", str(conf)]
            self.kind = "mosquitto"
        elif mosquitto:
            conf = self.workdir / "mosquitto.conf"
            lines = [
                f"listener {self.port} 127.0.0.1",
                "allow_anonymous true",
                f"persistence {'true' if self.persistence else 'false'}",
                f"persistence_location {self.workdir}/",
                "autosave_interval 1",
                "max_queued_messages 100000",
                "log_dest stderr",
                "log_type error",
                "log_type warning",
                "log_type notice",
            ]
            if os.geteuid() == 0:
                lines.append("user root")  # else it drops to `mosquitto` and cannot save
            conf.write_text("\n".join(lines) + "\n")
            cmd = [mosquitto, "-c", str(conf)]
            self.kind = "mosquitto"
        elif self.config is not None:
            raise BrokerError("a broker configuration needs Mosquitto: apt-get install mosquitto")
        else:
            conf = self.workdir / "amqtt.yaml"
            conf.write_text(
                "listeners:\n  default:\n    type: tcp\n"
                f"    bind: 127.0.0.1:{self.port}\n"
                "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                "    allow_anonymous: true\n"
            )
            amqtt = Path(sys.executable).with_name("amqtt")
            if not amqtt.exists():
                raise BrokerError(
                    "no MQTT broker: install Mosquitto (apt-get install mosquitto) or "
                    "amqtt (pip install 'meterledger[broker]')"
                )
            cmd = [str(amqtt), "-c", str(conf)]
            self.kind = "amqtt"
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        log.close()
        try:
            wait_for_port(self.port)
        except BrokerError:
            self.stop()
            raise BrokerError(
                f"{self.kind} did not start; its log:\n{self.log_path.read_text()[-2000:]}"
            ) from None
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

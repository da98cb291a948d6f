"""Shared parts of the gateway tests: keys and configs (written by `gateway.config_file`),
an MQTT collector that can act as a ledger node (publishing signed high-water marks),
Modbus devices served on real pseudo-terminals in a thread, and the emulator as a child
process."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from firmware.emulator.line import Framing, Outcome, PtyLine, serve
from firmware.modbus_rtu import Slave
from gateway.config import BusConfig, load_config
from gateway.config_file import MeterEntry, write_config
from gateway.run import Gateway
from ledger_node.localnet.network import terminate
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.clock import Clock, SystemClock
from ledger_node.shared.keys import GroupKey, Identity, load_public
from ledger_node.shared.mqtt import MqttSettings
from ledger_node.wire import HighWaterMark, ReadingsBatch, SlotPayload, open_message
from tests.support.sim import sign

SITE = "site1"
GATEWAY = "gw-site1"


def make_keys(work: Path, *parties: str) -> Path:
    """The gateway's identity, a group key for the site, and identities for `parties`."""
    keys = work / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for name in (GATEWAY, *parties):
        if not (keys / f"{name}.key").exists():
            Identity.generate(name).save(keys / f"{name}.key")
    if not (keys / f"{SITE}.group").exists():
        GroupKey.generate(SITE).save(keys / f"{SITE}.group")
    return keys


def public_key(name: str) -> Path:
    """`name`'s public key file in `make_keys`'s folder, as a config names it."""
    return Path(f"keys/{name}.key.pub")


def gateway_config(
    work: Path,
    broker_port: int,
    buses: dict[str, str],
    meters: Sequence[MeterEntry],
    slot_s: int = 30,
    *,
    timeout_s: float = 0.2,
    group_key: bool = True,
    mqtt: MqttSettings | None = None,
    **options: Any,
) -> Path:
    """Write `work/gateway.toml` for the site's gateway, its keys in `work/keys`.

    `buses` maps bus names to serial devices (19200 baud); with `group_key` it seals with
    the site's key file; `mqtt` defaults to the broker on `broker_port`; `options` are
    `write_config`'s (trust, confirm, outbox, control).
    """
    make_keys(work)
    return write_config(
        work / "gateway.toml",
        gateway_id=GATEWAY,
        site=SITE,
        key_path=Path(f"keys/{GATEWAY}.key"),
        state_dir=Path("state"),
        slot_seconds=slot_s,
        group_key_path=Path(f"keys/{SITE}.group") if group_key else None,
        mqtt=mqtt or MqttSettings(port=broker_port, keepalive_s=5),
        buses=[BusConfig(n, port=d, baud=19200, timeout_s=timeout_s) for n, d in buses.items()],
        meters=meters,
        **options,
    )


@dataclass
class Received:
    raw: bytes
    batch: ReadingsBatch
    payload: SlotPayload


class Collector:
    """Subscribes to every readings batch (persistent session) and keeps each (gw, seq)
    once, recording any second, different envelope as equivocation. As `node`, it also
    publishes a signed high-water mark after each new batch, as a ledger node does."""

    def __init__(
        self,
        port: int,
        keys_dir: Path,
        node: Identity | None = None,
        client_id: str = "collector",
        clock: Clock | None = None,
    ) -> None:
        self.port = port
        self.clock = SystemClock() if clock is None else clock
        """The node's clock, which signs its marks' times (the gateways' clock, sped up
        alike, as in a local network)."""
        self.keys = {GATEWAY: load_public(keys_dir / f"{GATEWAY}.key.pub").verify_key}
        self.group_keys = {0: GroupKey.load(keys_dir / f"{SITE}.group")}
        self.node = node
        self.batches: dict[tuple[str, int], Received] = {}
        self.equivocations: list[tuple[str, int]] = []
        self.duplicates = 0
        self.lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async(
            "127.0.0.1", port, keepalive=5, clean_start=False, properties=props
        )
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.loop_start()

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe("mlg/v1/readings/+/+", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        _, message = open_message(bytes(msg.payload), self.keys)
        assert isinstance(message, ReadingsBatch)
        key = (message.gateway, message.seq)
        with self.lock:
            held = self.batches.get(key)
            if held is not None:
                self.duplicates += 1
                if held.raw != bytes(msg.payload):
                    self.equivocations.append(key)
                return
            box = self.group_keys[message.epoch].box()
            payload = SlotPayload.from_bytes(box.decrypt(message.box))
            self.batches[key] = Received(bytes(msg.payload), message, payload)
            seqs = sorted(s for g, s in self.batches if g == message.gateway)
        if self.node is not None:
            self.publish_mark(message.gateway, seqs)

    def publish_mark(self, gateway: str, seqs: list[int]) -> None:
        assert self.node is not None
        nxt = 0
        for s in seqs:
            if s != nxt:
                break
            nxt += 1
        above = tuple(s for s in seqs if s > nxt)[:256]
        mark = HighWaterMark(self.node.name, gateway, nxt, above, int(self.clock.now()))
        raw = sign(self.node, mark)
        self.client.publish(f"mlg/v1/hwm/{self.node.name}/{gateway}", raw, qos=1, retain=True)

    def seqs(self) -> list[int]:
        with self.lock:
            return sorted(s for _, s in self.batches)

    def readings(self) -> dict[tuple[str, int], list[tuple[int, int, tuple[str, ...]]]]:
        """(meter, slot) → [(seq, wh, flags)…] over every batch received."""
        out: dict[tuple[str, int], list[tuple[int, int, tuple[str, ...]]]] = {}
        with self.lock:
            for r in self.batches.values():
                for reading in r.payload.readings:
                    out.setdefault((reading.meter, r.batch.slot_start), []).append(
                        (r.batch.seq, reading.wh, reading.quality)
                    )
        return out

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class SlaveStation:
    """A line of plain slaves (test devices with quirks of their own) for `serve`: the
    first slave that answers a frame answers it, as on RS-485."""

    name = "test"

    def __init__(self, slaves: Iterable[Slave]) -> None:
        self.slaves = list(slaves)
        self._lock = threading.Lock()

    def handle(self, frame: bytes) -> Outcome:
        with self._lock:
            for slave in self.slaves:
                answer = slave.handle(frame)
                if answer is not None:
                    return Outcome(bytes(answer))
        return Outcome(None)


class DeviceServer:
    """Modbus slaves served on a real pseudo-terminal by a thread, with the emulator's
    line timing (`firmware/emulator/line.py`) and the firmware's slave."""

    def __init__(self, slaves: Iterable[Slave], link: Path, baud: int = 19200) -> None:
        self.station = SlaveStation(slaves)
        self.slaves = self.station.slaves
        self.line = PtyLine(link)
        self._running = True
        self._thread = threading.Thread(
            target=serve,
            args=(self.line, self.station, Framing(baud), lambda: self._running),
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        self._running = False
        self._thread.join(timeout=5)
        self.line.close()


class Emulator:
    """`mlg-emulator` as a child process serving `meters` on `link`."""

    def __init__(
        self, work: Path, link: Path, meters: Sequence[str], clock_args: Sequence[str], slot_s: int
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "firmware.emulator.cli",
            *[a for m in meters for a in ("--meter", m)],
            "--link",
            str(link),
            "--baud",
            "19200",
            "--truth",
            str(work / "truth.csv"),
            "--slot-seconds",
            str(slot_s),
            *clock_args,
        ]
        self.work = work
        self.link = link
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        with (self.work / "emulator.log").open("ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=log)
        wait_until(self.link.exists, 10, "the emulator's device")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class GatewayProcess:
    """`mlg-gateway run` as a child process, logging to `work/gateway.log`."""

    def __init__(self, work: Path, clock_args: Sequence[str]) -> None:
        self.work = work
        self.clock_args = list(clock_args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.work / "gateway.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gateway.cli",
                    "run",
                    "-c",
                    "gateway.toml",
                    *self.clock_args,
                ],
                cwd=self.work,
                stdout=log,
                stderr=log,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)

    def log(self) -> str:
        return (self.work / "gateway.log").read_text()


def clock_args(speed: float, origin: float | None = None) -> list[str]:
    """The command-line options of a clock `speed` times faster than the wall clock."""
    origin = time.time() if origin is None else origin
    return ["--clock-scale", str(speed), "--clock-origin", repr(origin)]


class InProcessGateway:
    """A `Gateway` run by a thread of the test process (to look at its state directly)."""

    def __init__(self, config: Path, clock: Clock) -> None:
        self.gateway = Gateway(load_config(config), clock)
        self.thread = threading.Thread(target=self.gateway.run, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.gateway.stop_event.set()
        self.thread.join(timeout=20)
        if self.thread.is_alive():
            stacks = "\n".join(
                f"-- {t}\n" + "".join(traceback.format_stack(sys._current_frames()[t.ident]))
                for t in threading.enumerate()
                if t.ident in sys._current_frames()
            )
            raise AssertionError(f"the gateway did not stop:\n{stacks}")

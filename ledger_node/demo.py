"""`mlg-demo`: the whole chain on one machine, meter to ledger, at accelerated time.

Starts an MQTT broker on loopback, one emulated SDM120 on a pseudo-terminal, one gateway
and one ledger node, each as its own process with its own config and keys, exactly as
they run in the field. When the node holds the wanted number of slots, prints each slot's
ledger total beside the emulator's ground truth and exits 0 if every slot agrees within a
reading's 1 Wh resolution, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from firmware.emulator.truth import read_truth
from ledger_node.broker import Broker, BrokerError
from ledger_node.keys import GroupKey, Identity
from ledger_node.store import SlotTotal, Store

SITE = "site1"
GATEWAY = "gw-site1"
NODE = "tso"
METER_UNIT = 1
PROFILE = "steps:2400,1800,3000,6000,1200"
"""Load levels (W), one per slot, changing mid-slot: 35, 40, 75, 60, 30 Wh per 60 s slot."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mlg-demo",
        description=(
            "Run broker, meter emulator, gateway and ledger node on this machine at "
            "accelerated time; print each slot's ledger total beside the ground truth."
        ),
    )
    p.add_argument("--slots", type=int, default=5, help="slots to wait for (5)")
    p.add_argument("--slot-seconds", type=int, default=60, help="slot length, s (60)")
    p.add_argument("--speed", type=float, default=30.0, help="time runs this much faster (30)")
    p.add_argument("--workdir", type=Path, help="keep keys, configs, logs and databases here")
    p.add_argument(
        "--broker",
        choices=("mosquitto", "amqtt"),
        default="mosquitto",
        help="broker to start (mosquitto, falling back to amqtt when absent)",
    )
    return p


def write_configs(
    work: Path, broker_port: int, slot_s: int, device: Path, protocol: str = "5"
) -> None:
    """Keys (created once) and the gateway's and node's configs in `work`."""
    keys = work / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    if not (keys / f"{GATEWAY}.key").exists():
        Identity.generate(GATEWAY).save(keys / f"{GATEWAY}.key")
        Identity.generate(NODE).save(keys / f"{NODE}.key")
        GroupKey.generate(SITE).save(keys / f"{SITE}.group")
    (work / "gateway.toml").write_text(
        f"""[gateway]
id = "{GATEWAY}"
site = "{SITE}"
key = "keys/{GATEWAY}.key"
state_dir = "gateway-state"
slot_seconds = {slot_s}

[seal]
group_key = "keys/{SITE}.group"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
protocol = "{protocol}"

[[bus]]
name = "rs485-0"
port = "{device}"
baud = 9600
timeout_s = 0.3

[[meter]]
id = "m1"
bus = "rs485-0"
unit = {METER_UNIT}
model = "sdm120"
poll_seconds = 1.0
"""
    )
    (work / "node.toml").write_text(
        f"""[node]
id = "{NODE}"
key = "keys/{NODE}.key"
db = "node-state/{NODE}.sqlite"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
protocol = "{protocol}"

[[gateway]]
public_key = "keys/{GATEWAY}.key.pub"
site = "{SITE}"

[[group_key]]
file = "keys/{SITE}.group"
"""
    )


class Chain:
    """Emulator, node and gateway as child processes in `work`, each logging to a file."""

    def __init__(
        self, work: Path, broker_port: int, slot_s: int, speed: float, protocol: str = "5"
    ) -> None:
        self.work = work
        self.slot_s = slot_s
        self.speed = speed
        self.device = work / "meter0"
        self.node_db = work / "node-state" / f"{NODE}.sqlite"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        write_configs(work, broker_port, slot_s, self.device, protocol)
        self.clock_args = ["--clock-scale", str(speed), "--clock-origin", repr(time.time())]

    def start_process(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.work / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, *args, *self.clock_args], cwd=self.work, stdout=log, stderr=log
            )
        self.procs[name] = proc
        return proc

    def start_emulator(self) -> None:
        self.start_process(
            "emulator",
            [
                "-m",
                "firmware.emulator.cli",
                "--meter",
                f"{METER_UNIT}:sdm120:{PROFILE}",
                "--link",
                str(self.device),
                "--truth",
                "truth.csv",
                "--slot-seconds",
                str(self.slot_s),
            ],
        )
        deadline = time.monotonic() + 10
        while not self.device.exists():
            self.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the emulator made no serial device")
            time.sleep(0.05)

    def start_node(self) -> None:
        self.start_process("node", ["-m", "ledger_node.cli", "run", "-c", "node.toml"])

    def start_gateway(self) -> None:
        self.start_process("gateway", ["-m", "gateway.cli", "run", "-c", "gateway.toml"])

    def start(self) -> None:
        self.start_emulator()
        self.start_node()
        self.start_gateway()

    def log(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text()

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}:\n{self.log(name)[-1500:]}"
                )

    def slot_totals(self) -> list[SlotTotal]:
        if not self.node_db.exists():
            return []
        store = Store(self.node_db)
        try:
            return store.slot_totals([SITE])
        finally:
            store.close()

    def wait_for_slots(
        self, count: int, on_progress: Callable[[int], None] = lambda n: None
    ) -> list[SlotTotal]:
        """Wait until the node holds `count` slots; the budget allows the unreported first."""
        deadline = time.monotonic() + (count + 3) * self.slot_s / self.speed + 20
        seen = 0
        while time.monotonic() < deadline:
            self.check_alive()
            rows = self.slot_totals()
            if len(rows) != seen:
                seen = len(rows)
                on_progress(seen)
            if len(rows) >= count:
                return rows
            time.sleep(0.2)
        return self.slot_totals()

    def truth_by_slot(self, slots: Iterable[int] = (), timeout_s: float = 10.0) -> dict[int, float]:
        """The emulator's true energy per slot, Wh, summed over its meters.

        Waits (up to `timeout_s`) until the emulator has written every slot of `slots`: it
        writes a slot's row shortly after the slot ends, possibly after the ledger has it.
        """
        wanted = set(slots)
        deadline = time.monotonic() + timeout_s
        while True:
            totals: dict[int, float] = defaultdict(float)
            path = self.work / "truth.csv"
            for row in read_truth(path) if path.exists() else []:
                totals[int(row["slot_start"])] += float(row["energy_wh"])
            if wanted <= totals.keys() or time.monotonic() > deadline:
                return dict(totals)
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs.values()):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def compare(rows: list[SlotTotal], truth: dict[int, float]) -> bool:
    """Print ledger totals beside the truth; True if each is within 1 Wh of it."""
    print(f"\n{'slot (UTC)':<21}{'ledger Wh':>10}{'truth Wh':>12}{'':>3}  meters")
    ok = True
    for row in rows:
        expected = truth.get(row.slot)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row.slot))
        if expected is None:
            verdict, ok = "?", False
            shown = "missing"
        else:
            diff = abs(row.wh - expected)
            verdict = "=" if diff < 1e-6 else ("≈" if diff < 1.0 else "≠")
            ok = ok and diff < 1.0
            shown = f"{expected:.3f}"
        print(f"{stamp:<21}{row.wh:>10}{shown:>12}{verdict:>3}  {row.meters}")
    return ok


def start_broker(work: Path, prefer: str) -> Broker:
    broker = Broker(work / "broker")
    try:
        return broker.start(prefer=prefer)
    except BrokerError as exc:
        if prefer != "mosquitto":
            raise
        print(f"mlg-demo: {exc}; trying amqtt", file=sys.stderr)
        return broker.start(prefer="amqtt")


def run_demo(args: argparse.Namespace, work: Path) -> int:
    broker = start_broker(work, args.broker)
    print(f"broker: {broker.kind} on 127.0.0.1:{broker.port}")
    # amqtt speaks MQTT 3.1.1 only.
    protocol = "3.1.1" if broker.kind == "amqtt" else "5"
    chain = Chain(work, broker.port, args.slot_seconds, args.speed, protocol)
    try:
        chain.start_emulator()
        print(
            f"meter: emulated SDM120, unit {METER_UNIT}, on {chain.device}"
            f" -> {os.readlink(chain.device)}"
        )
        chain.start_node()
        chain.start_gateway()
        print(
            f"gateway {GATEWAY} and node {NODE} running;"
            f" {args.slot_seconds} s slots at {args.speed:g}x"
        )
        rows = chain.wait_for_slots(
            args.slots,
            lambda n: print(f"  ledger holds {n}/{args.slots} slots", flush=True),
        )
    finally:
        chain.stop()
        broker.stop()
    rows = rows[: args.slots]
    if len(rows) < args.slots:
        print(
            f"mlg-demo: only {len(rows)} of {args.slots} slots reached the ledger; "
            f"logs are in {work}",
            file=sys.stderr,
        )
        return 1
    if compare(rows, chain.truth_by_slot(r.slot for r in rows)):
        print(f"\nall {len(rows)} slot totals agree with the ground truth")
        return 0
    print(f"\nmlg-demo: totals disagree with the ground truth; logs are in {work}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.slots < 1 or args.speed <= 0 or args.slot_seconds < 1:
        print("mlg-demo: --slots, --speed and --slot-seconds must be positive", file=sys.stderr)
        return 2
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run_demo(args, args.workdir.resolve())
    with tempfile.TemporaryDirectory(prefix="mlg-demo-") as tmp:
        return run_demo(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())

"""Gateway: batches sealed, signed and stored per second on one core, against the bare
primitives they are made of, measured in the same run; and the resident memory of
`mlg-gateway run` polling 32 emulated meters, against the 60 MB goal."""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nacl.secret
import nacl.signing

from gateway.config_file import MeterEntry
from gateway.db import Database
from gateway.outbox import Outbox
from gateway.seal import Sealer
from gateway.slots import SlotEnergy
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.keys import GroupKey, Identity
from ledger_node.wire import pedersen
from tests.bench.result import Figure, Result
from tests.support.gateway import gateway_config

N = 400
METERS = 4
RSS_METERS = 32
RSS_GOAL_MB = 60.0
RSS_RUN_S = 25.0


def _rate(n: int, fn: object) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)  # type: ignore[operator]
    return n / (time.perf_counter() - start)


def _sealing(work: Path) -> Result:
    identity = Identity.generate("gw-bench")
    group = GroupKey.generate("site1")
    sealer = Sealer(identity, "site1", lambda: group)
    outbox = Outbox(Database(work / "state.sqlite"), 1 << 30)
    energies = [SlotEnergy(f"m{i}", 0, 100 + i, frozenset(), '{"x":1}') for i in range(METERS)]

    def one(i: int) -> None:
        slot = 60 * i
        batch = [SlotEnergy(e.meter, slot, e.wh, e.quality, e.resume) for e in energies]
        outbox.store(
            slot,
            lambda seq: sealer.seal(seq, slot, 60, batch),
            0.0,
            [(e.meter, slot + 60, e.resume) for e in batch],
        )

    ours = _rate(N, one)

    # The same run's bare costs: one Ed25519 signature, METERS Pedersen commitments, one
    # SecretBox, one SQLite commit (WAL, synchronous=FULL) of one row.
    key = nacl.signing.SigningKey.generate()
    body = b"x" * 600
    sign = _rate(2000, lambda i: key.sign(body))
    r = pedersen.random_blinding()
    commit = _rate(500, lambda i: pedersen.commit(i, r))
    box = nacl.secret.SecretBox(bytes(32))
    secretbox = _rate(5000, lambda i: box.encrypt(body))
    db = Database(work / "bare.sqlite")
    db.conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")

    def row(i: int) -> None:
        with db.transaction() as c:
            c.execute("INSERT INTO t VALUES (?, ?)", (i, body))

    sqlite = _rate(N, row)
    bare = 1.0 / (1 / sign + METERS / commit + 1 / secretbox + 1 / sqlite)
    return Result(
        name="gateway.seal_sign_store",
        figures={
            "batches sealed, signed, stored": Figure(ours, "batch/s"),
            "bare Ed25519 sign": Figure(sign, "sign/s"),
            "bare Pedersen commitment": Figure(commit, "commit/s"),
            "bare SQLite commit (WAL, FULL)": Figure(sqlite, "commit/s"),
        },
        limit_name="the bare primitives of one batch",
        limit=Figure(bare, "batch/s"),
        primary="batches sealed, signed, stored",
        goal=0.8,
        notes=(
            f"{METERS} meters per batch, one core; limit = 1/(sign + {METERS} commitments + "
            "SecretBox + one FULL commit), each measured in this run"
        ),
    )


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return math.nan


def _memory(work: Path) -> Result:
    broker = Broker(work / "broker").start()
    link = work / "bus"
    clock = ["--clock-scale", "10", "--clock-origin", repr(time.time())]
    meters = [f"{u}:sdm120:constant:{600 + 30 * u}" for u in range(1, RSS_METERS + 1)]
    args = [a for m in meters for a in ("--meter", m)]
    args += ["--link", str(link), "--baud", "115200", *clock]
    emulator = subprocess.Popen(
        [sys.executable, "-m", "firmware.emulator.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    gateway = None
    try:
        wait_until(link.exists, 10, "the emulator's device", step=0.05)
        specs = [MeterEntry(f"m{u}", u, poll_seconds=2.0) for u in range(1, RSS_METERS + 1)]
        gateway_config(work, broker.port, {"rs485-0": str(link)}, specs, 60)
        with (work / "gateway.log").open("wb") as log:
            gateway = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "run", "-c", "gateway.toml", *clock],
                cwd=work,
                stdout=log,
                stderr=log,
            )
        peak = 0.0
        end = time.monotonic() + RSS_RUN_S
        while time.monotonic() < end and gateway.poll() is None:
            peak = max(peak, _rss_mb(gateway.pid))
            time.sleep(0.25)
        sealed = (work / "gateway.log").read_text().count("sealed as seq")
    finally:
        for proc in (gateway, emulator):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=20)
        broker.stop()
    return Result(
        name="gateway.resident_memory",
        figures={
            "peak resident memory": Figure(peak, "MB"),
            "batches sealed during the run": Figure(sealed, "batch"),
        },
        limit_name="goal",
        limit=Figure(RSS_GOAL_MB, "MB"),
        primary="peak resident memory",
        higher_is_better=False,
        goal=1.0,
        notes=(
            f"`mlg-gateway run`, {RSS_METERS} emulated SDM120 on one line at 115200 baud, "
            f"2 s polls, 60 s slots at 10x, {RSS_RUN_S:.0f} s; VmRSS sampled every 0.25 s"
        ),
    )


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="mlg-bench-gw-") as tmp:
        work = Path(tmp)
        (work / "seal").mkdir()
        (work / "rss").mkdir()
        return [_sealing(work / "seal"), _memory(work / "rss")]

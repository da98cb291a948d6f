"""Scenario 8: property-based fuzzing (Hypothesis) of what reads untrusted bytes: the wire
decoder, the Modbus frame parsers (the board's slave and framer, and the gateway's client
over a real pseudo-terminal), and the node's ingest on a real SQLite file. No crash (only
the documented errors), no hang (a deadline per example), memory flat (tracemalloc over
thousands of inputs after a warm-up)."""

from __future__ import annotations

import gc
import logging
import random
import struct
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firmware.crc import crc16
from firmware.modbus_rtu import Framer, Slave
from firmware.registers import RegisterBank
from gateway.bus import ModbusBus
from gateway.config import BusConfig
from gateway.errors import BusError
from ledger_node.wire import WireError, open_message, parse
from tests.faults.rig import sizes
from tests.support.gateway import DeviceServer
from tests.support.ledgers import Net

STATUSES = {"accepted", "refused", "held", "replay", "equivocation"}


def _with_crc(frame: bytes) -> bytes:
    return frame + struct.pack("<H", crc16(frame))


def _run(size: dict[str, Any], deadline_ms: int, test: Any) -> None:
    """Run a `@given` test with the size's number of examples and a deadline each."""
    settings(
        max_examples=size["examples"],
        deadline=deadline_ms,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )(test)()


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Net, list[bytes]]]:
    """Figure 7's ledgers with registrations and epoch keys, and valid envelopes of each
    kind (a readings batch, a DR command, a declaration) to mutate."""
    net = Net(tmp_path_factory.mktemp("fuzz"))
    net.everywhere(net.fig.registrations())
    net.epochs()
    t0 = int(net.clock.now())
    seeds = [
        net.fig.gateways["site1"].batch(t0 - 120, {"m1": 7, "m2": 9}),
        net.fig.command("dr-f", t0 + 3600, 2, t0 + 1800, {"ac1": 50}),
        net.fig.declaration("ra1", "dr-f", {"site1": 40}),
        *net.fig.registrations(),
    ]
    yield net, seeds
    for ledger in net.ledgers.values():
        ledger.db.close()


def _mutants(rng: random.Random, seeds: list[bytes]) -> Iterator[bytes]:
    """Endless inputs near the valid ones: bits flipped, cut, spliced, repeated, or noise."""
    while True:
        raw = bytearray(rng.choice(seeds))
        kind = rng.randrange(5)
        if kind == 0:
            for _ in range(rng.randint(1, 4)):
                raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            raw = raw[: rng.randrange(len(raw))]
        elif kind == 2:
            other = rng.choice(seeds)
            raw = raw[: rng.randrange(len(raw))] + other[rng.randrange(len(other)) :]
        elif kind == 3:
            at = rng.randrange(len(raw))
            raw[at:at] = raw[at : at + rng.randint(1, 64)]
        else:
            raw = bytearray(rng.randbytes(rng.randint(0, 600)))
        yield bytes(raw)


@sizes({"examples": 300}, {"examples": 20_000})
def test_the_wire_decoder_raises_only_wire_errors(
    fed: tuple[Net, list[bytes]], size: dict[str, Any]
) -> None:
    net, seeds = fed
    keys = net.ledgers["tso"].registry.verify_keys
    seed = st.sampled_from(seeds)

    @given(
        st.one_of(
            st.binary(max_size=1024),
            st.tuples(seed, st.integers(0, 4000), st.integers(0, 255)).map(
                lambda t: t[0][: t[1] % len(t[0])] + bytes([t[2]]) + t[0][t[1] % len(t[0]) + 1 :]
            ),
            st.tuples(seed, st.integers(0, 4000)).map(lambda t: t[0][: t[1] % len(t[0])]),
        )
    )
    def decode(raw: bytes) -> None:
        try:
            parse(raw)
            open_message(raw, keys)
        except WireError:
            pass

    _run(size, 200, decode)


@sizes({"examples": 400}, {"examples": 30_000})
def test_the_boards_modbus_slave_and_framer_answer_or_stay_silent(size: dict[str, Any]) -> None:
    bank = RegisterBank(80, 40, 4)
    slave = Slave(1, bank)
    framer = Framer(gap_us=2000)

    @given(
        st.one_of(
            st.binary(max_size=300),
            st.binary(min_size=0, max_size=260).map(_with_crc),
            st.tuples(st.sampled_from([0, 1, 2]), st.integers(0, 255), st.binary(max_size=20)).map(
                lambda t: _with_crc(bytes([t[0], t[1]]) + t[2])
            ),
        ),
        st.lists(st.integers(1, 5000), min_size=1, max_size=8),
    )
    def handle(frame: bytes, gaps: list[int]) -> None:
        answer = slave.handle(frame)
        if answer is not None:
            reply = bytes(answer)
            assert len(reply) <= 256 and crc16(reply[:-2]) == struct.unpack("<H", reply[-2:])[0]
        now = 0
        chunks = [frame[i::3] for i in range(3)]
        for chunk, gap in zip(chunks, gaps, strict=False):
            now += gap
            out = framer.feed(chunk, now)
            assert out is None or len(out) <= 256
        framer.poll(now + 10_000)

    _run(size, 200, handle)


class Canned:
    """A slave that answers every frame with the next canned reply (or nothing)."""

    def __init__(self) -> None:
        self.reply: bytes | None = None

    def handle(self, frame: bytes) -> bytes | None:
        return self.reply


@sizes({"examples": 40}, {"examples": 1500}, timeout_s=2400)
def test_the_gateways_modbus_client_reads_registers_or_raises_a_bus_error(
    tmp_path: Path, size: dict[str, Any]
) -> None:
    canned = Canned()
    server = DeviceServer([canned], tmp_path / "bus")  # type: ignore[list-item]
    bus = ModbusBus(BusConfig("fuzz", port=str(tmp_path / "bus"), baud=19200, timeout_s=0.15))
    outcomes: dict[str, int] = {}

    @given(
        st.one_of(
            st.binary(max_size=80),
            st.tuples(st.integers(0, 255), st.binary(max_size=40)).map(
                lambda t: _with_crc(bytes([1, 4, t[0]]) + t[1])
            ),
            st.tuples(st.integers(0, 8), st.binary(min_size=8, max_size=8)).map(
                lambda t: _with_crc(bytes([1, 4, t[0]]) + t[1][: t[0]])
            ),
        )
    )
    @example(_with_crc(bytes([1, 4, 0])))  # it found this: a valid frame of no registers
    def read(reply: bytes) -> None:
        canned.reply = reply
        try:
            words = bus.read(1, "input", 0, 4)
        except BusError as exc:
            outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            return
        outcomes["read"] = outcomes.get("read", 0) + 1
        assert len(words) == 4, f"asked for 4 registers, got {words} from {reply.hex()}"
        assert all(0 <= w <= 0xFFFF for w in words)

    try:
        _run(size, 3000, read)
    finally:
        bus.close()
        server.close()
    print(f"[gateway modbus fuzz] {size['examples']} replies: {outcomes}")


@sizes({"examples": 300, "flat": 3000}, {"examples": 10_000, "flat": 60_000}, timeout_s=2400)
def test_the_nodes_ingest_takes_no_forgery_never_crashes_and_stays_flat(
    fed: tuple[Net, list[bytes]], size: dict[str, Any]
) -> None:
    net, seeds = fed
    ledger = net.ledgers["tso"]
    valid = set(seeds)
    seed = st.sampled_from(seeds)

    @given(
        st.one_of(
            st.binary(max_size=800),
            st.tuples(seed, st.integers(0, 4000), st.integers(1, 255)).map(
                lambda t: (
                    t[0][: t[1] % len(t[0])]
                    + bytes([t[0][t[1] % len(t[0])] ^ t[2]])
                    + t[0][t[1] % len(t[0]) + 1 :]
                )
            ),
        )
    )
    def ingest(raw: bytes) -> None:
        size_before = ledger.log.size
        outcome = net.admit("tso", raw)
        assert outcome.status in STATUSES, outcome
        if outcome.status == "accepted":
            assert raw in valid, "a changed envelope was accepted"
        else:
            assert ledger.log.size == size_before, "a refused input changed the log"

    quiet = logging.getLogger("mlg")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # refusals log a warning each; the capture would keep them
    try:
        _run(size, 500, ingest)
        rng = random.Random(10)
        inputs = _mutants(rng, seeds)
        for _ in range(500):  # warm-up: caches, statements, the recent-txid window
            net.admit("tso", next(inputs))
        gc.collect()
        tracemalloc.start()
        start = time.monotonic()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(size["flat"]):
            net.admit("tso", next(inputs))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    finally:
        quiet.setLevel(level)
    took = time.monotonic() - start
    print(
        f"[node ingest fuzz] {size['examples']} Hypothesis inputs, then {size['flat']} mutants "
        f"in {took:.1f} s ({size['flat'] / took:.0f}/s): Python heap grew {grown} bytes"
    )
    assert grown < 256 * 1024, f"memory grew by {grown} bytes over {size['flat']} inputs"

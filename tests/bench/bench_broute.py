"""B-route: the polls a B-route meter serves per minute over the emulated link (a Wi-SUN
dongle at 115200 baud, 100 kbit/s airtime, 20 ms meter latency), against that link's own
limit; and the time from a 30-minute boundary to the sealed batch, against the floor the
link sets (the meter's INF crossing the radio and the serial line).

The link's limit per poll is what the emulator makes every poll pay, the bytes counted:
the command at 10 bits a character, then the longer of the dongle's echo, EVENT 21 and OK
lines and the radio's round trip (the request's and the answer's airtime, the meter's
latency), then the ERXUDP line. A real meter answers in one to a few seconds, so on real
hardware the meter, not the link, sets the pace; these figures are our driver's overhead.
"""

from __future__ import annotations

import re
import statistics
import tempfile
import time
from pathlib import Path

from firmware.emulator.wisun.dongle import WisunFaults
from gateway.broute.meter import BrouteMeter
from gateway.broute.session import BrouteSession
from gateway.broute.skstack import Dongle
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.chain import Chain, Site
from ledger_node.shared.clock import SystemClock
from tests.bench.result import Figure, Result
from tests.support.wisun import RIGHT, wisun_line

SECONDS = 10.0
IP6 = "FE80:0000:0000:0000:0000:0000:0000:0000"
MAC = "0" * 16
SPEED = 120.0
SLOTS = 3


def _polls() -> Result:
    faults = WisunFaults()
    with wisun_line(SystemClock(), "bp35c0", faults=faults) as line:
        session = BrouteSession(Dongle(line.pty.device, 115200, "bp35c0", 2.0), RIGHT, 2.0, 2)
        meter = BrouteMeter(session)
        meter.energy_wh()  # join, scale
        in0, out0, polls = line.dongle.received, line.out.written, 0
        started = time.monotonic()
        while time.monotonic() - started < SECONDS:
            meter.energy_wh()
            polls += 1
        elapsed = time.monotonic() - started
        bytes_in = (line.dongle.received - in0) / polls
        bytes_out = (line.out.written - out0) / polls
        session.close()
    request, answer = 14, 18  # a Get of 0xE0, its Get_Res (ECHONET Lite bytes)
    erxudp = len(f"ERXUDP {IP6} {IP6} 0E1A 0E1A {MAC} E1 1 0 0012 {'00' * answer}\r\n")
    char = 10 / 115200
    radio = faults.airtime_s(request) + faults.latency_s + faults.airtime_s(answer)
    # The command crosses the line; the dongle prints its echo, EVENT 21 and OK while the
    # radio carries the request and the answer; then the ERXUDP line crosses the line.
    floor_s = bytes_in * char + max((bytes_out - erxudp) * char, radio) + erxudp * char
    rate = polls / elapsed * 60
    return Result(
        name="broute.polls",
        figures={
            "polls per minute": Figure(rate, "poll/min"),
            "serial bytes per poll (to, from dongle)": Figure(bytes_in + bytes_out, "B"),
            "time per poll": Figure(elapsed / polls * 1000, "ms"),
        },
        limit_name="the emulated link: 115200 baud, radio",
        limit=Figure(60 / floor_s, "poll/min"),
        primary="polls per minute",
        goal=0.8,
        notes=f"0xE0 Get over SKSENDTO/ERXUDP, BP35C0 dialect; floor {floor_s * 1000:.1f} ms",
    )


def _boundary_to_sealed() -> Result:
    with tempfile.TemporaryDirectory(prefix="mlg-bench-broute-") as tmp:
        work = Path(tmp)
        broker = Broker(work / "broker").start()
        sites = {"site1": Site("ra1", "broute", "constant:1200")}
        chain = Chain(work, broker.port, 1800, SPEED, sites, ("tso",))
        try:
            chain.start()
            chain.wait_for_slots(SLOTS)
        finally:
            chain.stop()
            broker.stop()
        origin = chain.net.origin
        delays = []
        pattern = re.compile(r"^(\S+ \S+),(\d+) mlg\.gateway INFO slot (\d+) sealed", re.M)
        for stamp, ms, slot in pattern.findall((work / "gateway-site1.log").read_text()):
            wall = time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(ms) / 1000
            boundary_wall = origin + (int(slot) + 1800 - origin) / SPEED
            delays.append(wall - boundary_wall)
    faults = WisunFaults()
    inf_bytes = 2 * 18 + 110  # an ERXUDP line of the 0xEA INF, ASCII hex
    floor_s = faults.latency_s + faults.airtime_s(18) + inf_bytes * 10 / 115200
    median = statistics.median(delays[1:] or delays)
    return Result(
        name="broute.boundary_to_sealed",
        figures={
            "boundary to sealed batch (median)": Figure(median * 1000, "ms"),
            "slots measured": Figure(len(delays), "slots"),
        },
        limit_name="the meter's INF over the emulated link",
        limit=Figure(floor_s * 1000, "ms"),
        primary="boundary to sealed batch (median)",
        higher_is_better=False,
        notes="30-minute slots from the meter's 0xEA INF; real seconds on a 120x clock",
    )


def run() -> list[Result]:
    return [_polls(), _boundary_to_sealed()]

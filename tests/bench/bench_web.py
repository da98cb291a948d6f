"""Web screens: the performance comparison of a command over 1,000 sites and 60 slots, and
the status page's requests per second, both served by the real `WebServer`.

The database is a real TSO node's, built in process through the real `Ledger`: genesis,
1,000 sites registered by four RAs under AC(1), their epoch keys, a command of 60
one-minute slots, the four declarations, 60,000 sealed readings batches (one meter per
site) and AC(1)'s AS report; then decrypted (`open_sealed`) and settled (`Settlement`).

Comparison: the page for AC(1) and the command's day, 60 rows each with its public
Pedersen check. Its render time (the median of several requests after the first, which
computes and remembers the 60 checks) is compared with the bare SQL behind it: the very
statements that one request's connections ran (traced), replayed with `fetchall` on a
read-only connection, alternately with the requests. Goal: the page in at most twice the
time of its SQL. The first view and a slot's drill-down to its 1,000 sites are reported.

Status: requests per second of ``/status`` from a client process with four threads,
against the rate of the same handler called in process by four threads (no socket, no
HTTP). Every request opens its own connection (`http_client` says why).
"""

from __future__ import annotations

import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from starlette.requests import Request

from ledger_node.contract.settlement import Settlement
from ledger_node.interfaces.api import Api
from ledger_node.interfaces.web import WebContext, WebServer
from ledger_node.interfaces.web.auth import Operators
from ledger_node.interfaces.web.screens.status import status_page
from ledger_node.ledger import Ledger, LedgerSettings, author_epochs, open_sealed
from ledger_node.ledger.store import Db, connect
from ledger_node.network.genesis import make_genesis
from ledger_node.shared.clock import FixedClock
from ledger_node.shared.keys import Identity
from ledger_node.wire import AsReport, DrCommand, DrDeclaration, SiteRegistration
from tests.bench.result import Figure, Result
from tests.support.sim import SimGateway, sign

SITES = 1_000
SLOTS = 60
RAS = 4
"""RAs under AC(1), each declaring a quarter of the sites (a declaration holds at most 256)."""
SLOT_S = 60
RENDERS = 15
STATUS_SECONDS = 8.0
CONNECTIONS = 4
GOAL = 2.0
"""The comparison page in at most this many times its bare SQL."""


def _wh(site: int, slot: int) -> int:
    """Site `site`'s energy in the command's `slot`-th slot (Wh)."""
    return 300 + (site * 7 + slot) % 200


def build(path: Path) -> tuple[str, int]:
    """A TSO node's database with the command "bench" settled; returns (command, start)."""
    tso, ac = Identity.generate("tso"), Identity.generate("ac1")
    ras = [Identity.generate(f"ra{k + 1}") for k in range(RAS)]
    members = [(ac.public, "ac", None)] + [(ra.public, "ra", "ac1") for ra in ras]
    start = (int(time.time()) // 3600 - 3) * 3600
    end = start + SLOTS * SLOT_S
    clock = FixedClock(start - 600)
    db = connect(path)
    ledger = Ledger(db, tso, clock, LedgerSettings(late_after_s=30 * 86_400))
    gateways = [
        SimGateway(Identity.generate(f"gw-s{i}"), f"s{i:04d}", ("m1",)) for i in range(SITES)
    ]
    per = SITES // RAS
    with ledger.transaction():
        ledger.start(make_genesis(tso, "bench", members))
        for k, ra in enumerate(ras):
            for n, gw in enumerate(gateways[k * per : (k + 1) * per], start=1):
                reg = SiteRegistration(ra.name, n, gw.site, gw.gateway_key(), gw.meters)
                assert ledger.admit(sign(ra, reg), "mqtt").ok
        for key in author_epochs(ledger):
            for gw in gateways:
                gw.take_epoch_key(key)
        command = DrCommand("tso", "bench", start, end, SLOT_S, start, 20, (("ac1", 50_000),))
        assert ledger.admit(sign(tso, command), "mqtt").ok
        for k, ra in enumerate(ras):
            sites = tuple((gw.site, (500,)) for gw in gateways[k * per : (k + 1) * per])
            assert ledger.admit(sign(ra, DrDeclaration(ra.name, "bench", 1, sites)), "mqtt").ok
    clock.set(end + 120)
    for s in range(SLOTS):
        with ledger.transaction():
            for i, gw in enumerate(gateways):
                assert ledger.admit(gw.batch(start + s * SLOT_S, {"m1": _wh(i, s)}), "mqtt").ok
    # AC(1)'s own system: equal to the ledger but in one slot, silent on the last two.
    reported = tuple(
        (start + s * SLOT_S, sum(_wh(i, s) for i in range(SITES)) + (250 if s == 7 else 0))
        for s in range(SLOTS - 2)
    )
    with ledger.transaction():
        assert ledger.admit(sign(ac, AsReport("ac1", "bench", 1, reported)), "mqtt").ok
    while True:
        with ledger.transaction():
            if not open_sealed(ledger, 1024):
                break
    settlement = Settlement(ledger)
    with ledger.transaction():
        settlement.note_all()
        settlement.refresh(settlement.dirty())
    db.close()
    return "bench", start


@dataclass
class TracedContext(WebContext):
    """The web context whose read connections record their SQL while `traced` is set."""

    traced: list[str] | None = field(default=None)

    def reading(self) -> closing[Db]:
        db = connect(self.api.db_path, readonly=True)
        if self.traced is not None:
            db.set_trace_callback(self.traced.append)
        return closing(db)


def _get(port: int, path: str, want: int = 200) -> tuple[float, bytes]:
    """Seconds to GET `path` on a new connection (see `http_client` for why), and the body."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    elapsed = time.perf_counter() - started
    if response.status != want:
        raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
    return elapsed, body


def _median(fn: Callable[[], float], times: int) -> float:
    return statistics.median(fn() for _ in range(times))


def _replay(db_path: Path, statements: list[str]) -> float:
    """Seconds to run `statements` and fetch every row, on an open read-only connection."""
    with closing(connect(db_path, readonly=True)) as db:
        started = time.perf_counter()
        for sql in statements:
            db.execute(sql).fetchall()
        return time.perf_counter() - started


def _in_process_rate(server: WebServer, seconds: float, threads: int) -> float:
    """Status pages per second from the handler itself called by `threads` threads (no
    socket, no HTTP), as uvicorn's thread pool calls it."""
    app = server.server.config.app.app  # the FastAPI app behind the guard
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/status",
        "query_string": b"",
        "headers": [(b"host", f"127.0.0.1:{server.port}".encode())],
        "scheme": "http",
        "server": ("127.0.0.1", server.port),
        "root_path": "",
        "app": app,
    }
    counts = [0] * threads
    started = time.perf_counter()

    def work(k: int) -> None:
        while time.perf_counter() - started < seconds:
            assert status_page(Request(scope)).status_code == 200
            counts[k] += 1

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / (time.perf_counter() - started)


def _client(url: str, seconds: float) -> dict[str, float]:
    args = [sys.executable, "-m", "tests.bench.http_client", url, "--seconds", str(seconds)]
    args += ["--connections", str(CONNECTIONS)]
    done = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 120, check=True)
    result: dict[str, float] = json.loads(done.stdout)
    return result


def run() -> list[Result]:
    with tempfile.TemporaryDirectory(prefix="mlg-bench-web-") as tmp:
        work = Path(tmp)
        db_path = work / "tso.sqlite"
        started = time.perf_counter()
        command, start = build(db_path)
        print(f"   built the TSO's database in {time.perf_counter() - started:.0f} s", flush=True)
        ctx = TracedContext(
            Api(db_path, "tso", None, time.time), "token", Operators(work / "tso.web", 3600)
        )
        server = WebServer(ctx, "127.0.0.1", 0)
        server.start()
        try:
            page = f"/compare?command={command}&entity=ac1"
            drill = f"/compare/slot?command={command}&entity=ac1&slot={start + 30 * SLOT_S}"
            port = server.port
            _get(port, f"{page}&date=1999-01-01", 400)  # the templates compiled, no checks
            first, body = _get(port, page)
            assert b"check-failed" not in body and body.count("✓".encode()) > SLOTS
            ctx.traced = []
            _get(port, page)
            statements, ctx.traced = ctx.traced, None
            # Alternated, so that both see the same load on the machine.
            renders, bares = [], []
            for _ in range(RENDERS):
                renders.append(_get(port, page)[0])
                bares.append(_replay(db_path, statements))
            render, bare = statistics.median(renders), statistics.median(bares)
            drill_s = _median(lambda: _get(port, drill)[0], 5)
            served = _client(f"{server.url}status", STATUS_SECONDS)
            in_process = _in_process_rate(server, STATUS_SECONDS, CONNECTIONS)
        finally:
            server.stop()
    return [
        Result(
            name="web.comparison_page",
            figures={
                "render (median, checks remembered)": Figure(render * 1000, "ms"),
                "bare SQL behind it": Figure(bare * 1000, "ms"),
                "render / bare SQL": Figure(render / bare, "x"),
                "first view (60 checks computed)": Figure(first * 1000, "ms"),
                "drill-down to 1,000 sites": Figure(drill_s * 1000, "ms"),
            },
            limit_name="bare SQL behind it",
            limit=Figure(bare * 1000, "ms"),
            primary="render (median, checks remembered)",
            higher_is_better=False,
            goal=1 / GOAL,
            notes=(
                f"AC(1), {SITES} sites x {SLOTS} slots, one page of {SLOTS} rows with their "
                f"public checks; the bare SQL is the {len(statements)} statements the request "
                f"ran, replayed; goal: render at most {GOAL:g}x the SQL"
            ),
        ),
        Result(
            name="web.status_page",
            figures={
                "requests per second (HTTP)": Figure(served["rate"], "req/s"),
                f"handler in process, {CONNECTIONS} threads": Figure(in_process, "page/s"),
            },
            limit_name=f"handler in process, {CONNECTIONS} threads",
            limit=Figure(in_process, "page/s"),
            primary="requests per second (HTTP)",
            notes=(
                f"/status of the node above ({SITES} gateways) through uvicorn, from a client "
                f"process, {CONNECTIONS} threads, a connection per request, {STATUS_SECONDS:g} s; "
                f"{int(served['errors'])} errors"
            ),
        ),
    ]

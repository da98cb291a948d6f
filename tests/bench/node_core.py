"""Where one core's time goes per readings batch, measured in process on one thread: the
bare Ed25519 check, admission with the check (what a node without a verifying thread does)
and admission of batches verified elsewhere (the writer's share, which holds the GIL
except inside SQLite). Real ledgers on real SQLite files, one transaction per 512 batches
as the node's worker commits them.
"""

from __future__ import annotations

import time
from pathlib import Path

import nacl.signing

from ledger_node.ledger import Ledger, LedgerSettings
from ledger_node.ledger.store import connect
from ledger_node.network.genesis import make_genesis
from ledger_node.shared.clock import FixedClock
from ledger_node.shared.keys import Identity
from ledger_node.wire import SiteRegistration, Verified, parse, verify
from tests.support.sim import SimGateway, sign

BURST = 512


def _ledger(path: Path, gateways: list[SimGateway], now: float) -> Ledger:
    tso, ra = Identity.generate("tso"), Identity.generate("ra1")
    ac = Identity.generate("ac1")
    genesis = make_genesis(tso, "bench", [(ac.public, "ac", None), (ra.public, "ra", "ac1")])
    ledger = Ledger(connect(path), tso, FixedClock(now), LedgerSettings(late_after_s=30 * 86_400))
    with ledger.transaction():
        ledger.start(genesis)
        for n, gw in enumerate(gateways, start=1):
            reg = SiteRegistration("ra1", n, gw.site, gw.gateway_key(), gw.meters)
            assert ledger.admit(sign(ra, reg), "mqtt").ok
    return ledger


def _admit_all(ledger: Ledger, items: list[bytes] | list[Verified]) -> float:
    """Seconds to admit `items` in transactions of `BURST`."""
    start = time.perf_counter()
    for i in range(0, len(items), BURST):
        with ledger.transaction():
            for item in items[i : i + BURST]:
                ledger.admit(item, "mqtt")
    return time.perf_counter() - start


def core_costs(
    work: Path, gateways: list[SimGateway], raws: list[bytes], now: float
) -> dict[str, float]:
    """Microseconds per batch of each step (see the module's docstring)."""
    n = len(raws)
    keys: dict[str, nacl.signing.VerifyKey] = {
        gw.name: gw.identity.signing_key.verify_key for gw in gateways
    }
    envelopes = [parse(raw) for raw in raws]
    start = time.perf_counter()
    checked = [verify(env, keys) for env in envelopes]
    check_s = time.perf_counter() - start
    full = _ledger(work / "core-full.sqlite", gateways, now)
    full_s = _admit_all(full, raws)
    writer = _ledger(work / "core-writer.sqlite", gateways, now)
    writer_s = _admit_all(writer, checked)
    for ledger in (full, writer):
        assert ledger.log.size == n + len(gateways) + 1, "every batch must be accepted"
        ledger.db.close()
    return {
        "check_us": 1e6 * check_s / n,
        "admit_us": 1e6 * full_s / n,
        "writer_us": 1e6 * writer_s / n,
    }

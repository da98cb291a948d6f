"""What a running node tells the outside about itself: its counts of accepted and refused
messages (by reason, and per gateway) and its log's size.

The node publishes this document, retained, on ``{prefix}/node-status/{node}`` every
`STATUS_EVERY_S` (`mlg-monitor` reads it there), and serves the same numbers as
Prometheus metrics when ``[metrics] listen`` is configured.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ledger_node.ledger.store import Db, connect, counters
from ledger_node.shared.metrics import Samples

STATUS_EVERY_S = 5.0
"""Real seconds between the node's status messages."""


def refused_by(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Refusals per gateway and reason, from the ``refused_by:GATEWAY:REASON`` counters."""
    out: dict[str, dict[str, int]] = {}
    for name, n in counts.items():
        if name.startswith("refused_by:"):
            _, gateway, reason = name.split(":", 2)
            out.setdefault(gateway, {})[reason] = n
    return out


def _prefixed(counts: dict[str, int], prefix: str) -> dict[str, int]:
    return {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith(prefix + ":")}


def node_counts(db: Db, me: str, now: float) -> dict[str, Any]:
    """The document: node, t (its clock, UTC s), log size, accepted and refused counts."""
    counts = counters(db)
    size = db.execute("SELECT COALESCE(MAX(pos) + 1, 0) FROM log").fetchone()[0]
    return {
        "node": me,
        "t": int(now),
        "log_size": int(size),
        "accepted": _prefixed(counts, "accepted"),
        "refused": _prefixed(counts, "refused"),
        "refused_by": refused_by(counts),
    }


def status_message(db: Db, me: str, now: float) -> bytes:
    return json.dumps(node_counts(db, me, now), sort_keys=True).encode()


def samples(doc: dict[str, Any], prefix: str = "mlg_node") -> Samples:
    """`node_counts`' document as Prometheus samples."""
    s = Samples(prefix)
    node = {"node": doc["node"]}
    s.gauge("log_size", "entries in the node's Merkle log", doc["log_size"], node)
    for kind, n in sorted(doc["accepted"].items()):
        s.counter("accepted", "messages accepted, by type", n, {**node, "type": kind})
    for reason, n in sorted(doc["refused"].items()):
        s.counter("refused", "messages refused, by reason", n, {**node, "reason": reason})
    for gateway, reasons in sorted(doc["refused_by"].items()):
        for reason, n in sorted(reasons.items()):
            s.counter(
                "gateway_refused",
                "a gateway's batches refused, by reason",
                n,
                {**node, "gateway": gateway, "reason": reason},
            )
    return s


def read_samples(store: Path | str, me: str, now: float) -> Samples:
    """Samples from the node's database (file or URL), read on a connection of the
    caller's own (a scrape runs on the metrics server's thread)."""
    db = connect(store, readonly=True)
    try:
        return samples(node_counts(db, me, now))
    finally:
        db.close()

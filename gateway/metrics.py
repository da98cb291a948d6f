"""The gateway's Prometheus metrics (``[metrics] listen``), built at each scrape from the
daemon's status document and its outbox figures: the numbers `mlg-gateway status` shows.

It also makes the periodic status message's fields (`heartbeat_fields`), so the status
topic, the metrics and `status` agree.
"""

from __future__ import annotations

from typing import Any

from gateway.outbox import OutboxStats
from ledger_node.shared.metrics import Samples


def heartbeat_fields(status: dict[str, Any], stats: OutboxStats) -> dict[str, Any]:
    """What the periodic status message carries besides state, boot and t."""
    return {
        "outbox": {
            "depth": stats.depth,
            "bytes": stats.depth_bytes,
            "next_seq": stats.next_seq,
            "last_confirmed_seq": stats.last_confirmed_seq,
            "waiting_for_key": stats.waiting_for_key,
        },
        "alarms": sorted(a.split(":", 1)[0] for a in status["alarms"]),
        "epoch": status["epoch"],
    }


def samples(gateway: str, status: dict[str, Any], stats: OutboxStats) -> Samples:
    """The daemon's `status()` and the outbox's figures as Prometheus samples."""
    s = Samples("mlg_gateway")
    gw = {"gateway": gateway}
    s.gauge("outbox_depth", "batches stored and not yet confirmed", stats.depth, gw)
    s.gauge("outbox_bytes", "bytes of unconfirmed batches", stats.depth_bytes, gw)
    s.gauge("outbox_max_bytes", "outbox limit, bytes", stats.max_bytes, gw)
    s.gauge("next_seq", "the seq the next batch gets", stats.next_seq, gw)
    s.counter("confirmed", "batches confirmed", stats.confirmed, gw)
    s.gauge("held_slots", "slots stored unsealed until an epoch key", stats.waiting_for_key, gw)
    s.gauge("boot", "boot counter", status["boot"], gw)
    s.gauge("clock_seconds", "the gateway's clock, UTC s", status["clock"], gw)
    broker = status["broker"]
    s.gauge("broker_connected", "1 while connected to the broker", broker["connected"], gw)
    s.counter("published", "batches handed to the broker", broker["published"], gw)
    s.counter("refused_by_broker", "PUBACKs with a failure code", broker["refused_by_broker"], gw)
    s.counter("refused_batches", "batches the full outbox refused", status["refused_batches"], gw)
    for alarm in status["alarms"]:
        s.gauge("alarm", "1 while the alarm is raised", 1, {**gw, "alarm": alarm.split(":")[0]})
    for reason, n in sorted(status["refused"].items()):
        s.counter("messages_refused", "incoming messages refused", n, {**gw, "reason": reason})
    for m in status["meters"]:
        labels = {**gw, "meter": m["id"], "bus": m["bus"]}
        s.counter("meter_polls", "polls of the meter", m["polls"], labels)
        s.counter("meter_errors", "failed polls of the meter", m["errors"], labels)
    return s

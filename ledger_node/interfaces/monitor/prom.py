"""The monitor's report as Prometheus samples: the numbers `--once --json` prints."""

from __future__ import annotations

from typing import Any

from ledger_node.interfaces.monitor.watch import BROKER_KEYS
from ledger_node.shared.metrics import Samples


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def samples(report: dict[str, Any]) -> Samples:
    s = Samples("mlg_monitor")
    b = report["broker"]
    s.gauge("broker_connected", "1 while the monitor is connected to the broker", b["connected"])
    for key in BROKER_KEYS:
        if (v := _num(b.get(key))) is not None:
            s.gauge(f"broker_{key}", f"$SYS/broker/{BROKER_KEYS[key]}", v)
    for topic, value in b["sys"].items():
        s.gauge("broker_sys", "every numeric $SYS/broker/ value, by topic", value, {"topic": topic})
    for g in report["gateways"]:
        gw = {"gateway": g["gateway"]}
        s.gauge("gateway_alive", "1 while the gateway is online and heard from", g["alive"], gw)
        for key, help_text in (
            ("boot", "the gateway's boot counter"),
            ("clock_skew_s", "the gateway's clock minus the monitor's, s"),
            ("outbox_depth", "batches unconfirmed in the gateway's outbox"),
            ("next_seq", "the gateway's next seq"),
            ("heard_s_ago", "seconds since the gateway's last status"),
        ):
            if (v := _num(g[key])) is not None:
                s.gauge(f"gateway_{key}", help_text, v, gw)
        for node, m in g["marks"].items():
            labels = {**gw, "node": node}
            s.gauge("mark_next", "every seq below it is committed by the node", m["next"], labels)
            s.gauge("mark_seq_gap", "seqs missing below the node's highest", m["seq_gap"], labels)
            if (lag := _num(m["lag_batches"])) is not None:
                s.gauge("mark_lag_batches", "the gateway's next seq beyond the mark", lag, labels)
            s.gauge("mark_age_s", "seconds since the node wrote the mark", m["age_s"], labels)
    for n in report["nodes"]:
        node = {"node": n["node"]}
        s.gauge("node_alive", "1 while the node's status keeps coming", n["alive"], node)
        if (size := _num(n["log_size"])) is not None:
            s.gauge("node_log_size", "entries in the node's log", size, node)
        for reason, count in sorted(n["refused"].items()):
            s.counter(
                "node_refused", "messages the node refused", count, {**node, "reason": reason}
            )
    s.gauge("alarms", "alarms raised", len(report["alarms"]))
    return s

"""The live terminal view of the monitor's report (rich)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def render(report: dict[str, Any]) -> Group:
    """Broker, gateways, nodes and alarms as tables."""
    b = report["broker"]
    stamp = dt.datetime.fromtimestamp(report["t"], dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    head = Text(
        f"mlg-monitor  {stamp}  broker {'connected' if b['connected'] else 'NOT CONNECTED'}"
        f"  {b['version']}",
        style="bold",
    )
    broker = Table(title="broker ($SYS)", show_header=False)
    for key in ("clients_connected", "messages_received", "messages_sent", "messages_dropped",
                "store_messages", "load_received_1min", "load_sent_1min", "uptime_s"):  # fmt: skip
        broker.add_row(key, _fmt(b.get(key)))
    gateways = Table(title="gateways")
    for col in ("gateway", "state", "boot", "heard", "skew s", "outbox", "next seq", "marks"):
        gateways.add_column(col)
    for g in report["gateways"]:
        marks = ", ".join(
            f"{n} {m['next']}" + (f" gap {m['seq_gap']}" if m["seq_gap"] else "")
            for n, m in g["marks"].items()
        )
        style = "green" if g["alive"] else "red"
        gateways.add_row(
            g["gateway"],
            Text(g["state"], style=style),
            _fmt(g["boot"]),
            f"{_fmt(g['heard_s_ago'])} s ago",
            _fmt(g["clock_skew_s"]),
            _fmt(g["outbox_depth"]),
            _fmt(g["next_seq"]),
            marks,
        )
    nodes = Table(title="nodes")
    for col in ("node", "alive", "log", "refused"):
        nodes.add_column(col)
    for n in report["nodes"]:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(n["refused"].items()))
        nodes.add_row(n["node"], "yes" if n["alive"] else "NO", _fmt(n["log_size"]), refused)
    alarms = Text("\n".join(f"ALARM {a}" for a in report["alarms"]) or "no alarms")
    alarms.stylize("bold red" if report["alarms"] else "green")
    return Group(head, broker, gateways, nodes, alarms)

"""What `mlg-monitor` knows: the broker's `$SYS` counters and the project's topics, folded
into one report with its alarms.

- the broker (``$SYS/broker/…``): clients, messages received, sent, stored and dropped,
  loads; every numeric value, by its topic below ``$SYS/broker/``;
- each gateway (``status/GW``): online or offline (its birth, periodic status and last
  will), boot counter, when last heard, clock skew (its clock against the monitor's, from
  status messages received live, not retained ones), outbox depth and next seq;
- each node's marks of each gateway (``hwm/NODE/GW``): seqs missing below the highest it
  committed (a seq gap) and the confirmation lag (the gateway's next seq beyond the mark);
- each node (``node-status/NODE``): its refusal counts by reason and per gateway, log size.

The monitor reads what the broker carries; it does not verify signatures (the nodes do):
payloads are size-limited before they are parsed, and bad ones are counted.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ledger_node.wire import HighWaterMark, WireError, open_body, parse
from ledger_node.wire.topics import Topics

log = logging.getLogger("mlg.monitor")

SYS_PREFIX = "$SYS/broker/"
MAX_PAYLOAD_BYTES = 65_536
"""Larger payloads are counted as bad and not parsed."""
BROKER_KEYS = {
    "clients_connected": "clients/connected",
    "clients_total": "clients/total",
    "messages_received": "messages/received",
    "messages_sent": "messages/sent",
    "messages_stored": "messages/stored",
    "messages_dropped": "publish/messages/dropped",
    "store_messages": "store/messages/count",
    "load_received_1min": "load/messages/received/1min",
    "load_sent_1min": "load/messages/sent/1min",
    "uptime_s": "uptime",
}
"""The broker figures shown first, by their ``$SYS/broker/`` topic."""


@dataclass(frozen=True)
class Limits:
    """When the monitor raises an alarm (`[monitor]` in its config)."""

    dead_after_s: float = 45.0
    """No status from a gateway or node for this long (monitor clock, s): it is dead."""
    max_skew_s: float = 30.0
    max_lag_batches: int = 10
    """A node's mark this many batches behind the gateway's next seq."""
    max_outbox: int = 100
    """A gateway's unconfirmed batches."""


@dataclass
class GatewayState:
    status: dict[str, Any] = field(default_factory=dict)
    heard_at: float | None = None
    skew_s: float | None = None
    marks: dict[str, HighWaterMark] = field(default_factory=dict)


@dataclass
class NodeState:
    status: dict[str, Any]
    heard_at: float


class Watch:
    """Fed with every message (`on_message`); `report` gives the picture at a time."""

    def __init__(self, topics: Topics, limits: Limits) -> None:
        self.topics = topics
        self.limits = limits
        self.sys: dict[str, float] = {}
        self.version = ""
        self.gateways: dict[str, GatewayState] = {}
        self.nodes: dict[str, NodeState] = {}
        self.bad: Counter[str] = Counter()
        self.connected = False

    def _gateway(self, gw: str) -> GatewayState:
        return self.gateways.setdefault(gw, GatewayState())

    def on_message(self, topic: str, payload: bytes, retained: bool, now: float) -> None:
        """Take one message in (`now`: the monitor's clock, UTC s)."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            self.bad["oversize"] += 1
            return
        if topic.startswith(SYS_PREFIX):
            self._sys(topic[len(SYS_PREFIX) :], payload)
            return
        parsed = self.topics.parse(topic)
        if parsed is None or not payload:
            return
        try:
            if parsed.kind == "status":
                self._status(parsed.part("gateway"), payload, retained, now)
            elif parsed.kind == "hwm":
                self._mark(parsed.part("node"), parsed.part("gateway"), payload)
            elif parsed.kind == "node-status":
                status = json.loads(payload)
                if not isinstance(status, dict):
                    raise ValueError("not an object")
                heard = now if not retained else float(status.get("t", now))
                self.nodes[parsed.part("node")] = NodeState(status, heard)
        except (ValueError, TypeError, WireError) as exc:
            self.bad[parsed.kind] += 1
            log.warning("bad message on %s: %s", topic, exc)

    def _sys(self, name: str, payload: bytes) -> None:
        text = payload.decode("utf-8", "replace").strip()
        if name == "version":
            self.version = text
            return
        head = text.split(" ", 1)[0]  # "uptime" is "123 seconds"
        with contextlib.suppress(ValueError):
            self.sys[name] = float(head)

    def _status(self, gw: str, payload: bytes, retained: bool, now: float) -> None:
        status = json.loads(payload)
        if not isinstance(status, dict) or not isinstance(status.get("t"), int):
            raise ValueError("a status needs an object with an integer t")
        g = self._gateway(gw)
        if "outbox" not in status and "outbox" in g.status:  # a birth or will: keep the last
            status["outbox"] = g.status["outbox"]
        g.status = status
        if retained:
            g.heard_at = float(status["t"])  # its own stamp: the best guess of when
        else:
            g.heard_at = now
            g.skew_s = round(status["t"] - now, 1)

    def _mark(self, node: str, gw: str, payload: bytes) -> None:
        message = open_body(parse(payload, MAX_PAYLOAD_BYTES), frozenset({HighWaterMark.TYPE}))
        assert isinstance(message, HighWaterMark)
        if message.by != node or message.gateway != gw:
            raise ValueError(f"a mark by {message.by} for {message.gateway} on another's topic")
        self._gateway(gw).marks[node] = message

    # -- the report ------------------------------------------------------------------------

    def report(self, now: float) -> dict[str, Any]:
        """Everything known at `now`, with the alarms it raises."""
        alarms: list[str] = []
        gateways = [self._gateway_report(gw, now, alarms) for gw in sorted(self.gateways)]
        nodes = []
        for name, n in sorted(self.nodes.items()):
            age = round(now - n.heard_at, 1)
            alive = age <= self.limits.dead_after_s
            if not alive:
                alarms.append(f"node {name}: no status for {age:.0f} s")
            nodes.append(
                {
                    "node": name,
                    "alive": alive,
                    "age_s": age,
                    "log_size": n.status.get("log_size"),
                    "refused": n.status.get("refused", {}),
                    "refused_by": n.status.get("refused_by", {}),
                }
            )
        broker = {k: self.sys.get(v) for k, v in BROKER_KEYS.items()}
        if not self.connected:
            alarms.append("broker: not connected")
        return {
            "t": now,
            "broker": {
                "connected": self.connected,
                "version": self.version,
                **broker,
                "sys": dict(sorted(self.sys.items())),
            },
            "gateways": gateways,
            "nodes": nodes,
            "bad_messages": dict(self.bad),
            "alarms": alarms,
        }

    def _gateway_report(self, gw: str, now: float, alarms: list[str]) -> dict[str, Any]:
        g = self.gateways[gw]
        s = g.status
        outbox = s.get("outbox") or {}
        next_seq = outbox.get("next_seq")
        age = None if g.heard_at is None else round(now - g.heard_at, 1)
        state = s.get("state", "unknown")
        alive = state == "online" and age is not None and age <= self.limits.dead_after_s
        if state == "unknown":
            alarms.append(f"gateway {gw}: never announced itself on its status topic")
        elif state != "online":
            alarms.append(f"gateway {gw}: {state} ({s.get('reason', '')}), boot {s.get('boot')}")
        elif not alive:
            alarms.append(f"gateway {gw}: no status for {age:.0f} s")
        if g.skew_s is not None and abs(g.skew_s) > self.limits.max_skew_s:
            alarms.append(f"gateway {gw}: clock off by {g.skew_s:+.0f} s")
        depth = outbox.get("depth")
        if isinstance(depth, int) and depth > self.limits.max_outbox:
            alarms.append(f"gateway {gw}: {depth} batches unconfirmed in its outbox")
        marks = {}
        for node, m in sorted(g.marks.items()):
            highest = max(m.above, default=m.next - 1)
            gap = highest + 1 - m.next - len(m.above)
            lag = None if not isinstance(next_seq, int) else max(0, next_seq - m.next)
            marks[node] = {
                "next": m.next,
                "highest": highest,
                "seq_gap": gap,
                "lag_batches": lag,
                "age_s": round(now - m.t, 1),
            }
            if gap > 0:
                alarms.append(
                    f"gateway {gw}: node {node} misses {gap} seqs from {m.next} (has up to "
                    f"{highest})"
                )
            if lag is not None and lag > self.limits.max_lag_batches:
                alarms.append(f"gateway {gw}: node {node}'s mark is {lag} batches behind")
        return {
            "gateway": gw,
            "state": state,
            "alive": alive,
            "reason": s.get("reason"),
            "boot": s.get("boot"),
            "heard_s_ago": age,
            "clock_skew_s": g.skew_s,
            "outbox_depth": depth,
            "next_seq": next_seq,
            "alarms": s.get("alarms", []),
            "marks": marks,
        }

"""What `mlg-gateway status` shows: the daemon's own view, written to `status.json` every
few seconds, and the outbox figures read from the state database (true even when the
daemon is down)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig
from gateway.db import open_readonly
from gateway.outbox import read_stats


def write_status(path: Path, status: dict[str, Any]) -> None:
    """Replace `path` atomically (write a temporary file, then rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def collect(cfg: GatewayConfig, now: float | None = None) -> dict[str, Any]:
    """The status document: outbox from the database, the rest from the daemon's file."""
    conn = open_readonly(cfg.db_path)
    try:
        stats = read_stats(conn, cfg.outbox_max_bytes)
    finally:
        conn.close()
    daemon: dict[str, Any] = {}
    if cfg.status_path.exists():
        daemon = json.loads(cfg.status_path.read_text())
    now = time.time() if now is None else now
    written = daemon.get("written_at")
    return {
        "gateway": cfg.gateway_id,
        "site": cfg.site,
        "outbox": {
            "depth": stats.depth,
            "bytes": stats.depth_bytes,
            "max_bytes": stats.max_bytes,
            "next_seq": stats.next_seq,
            "last_confirmed_seq": stats.last_confirmed_seq,
            "confirmed": stats.confirmed,
            "oldest_slot": stats.oldest_slot,
            "waiting_for_key": stats.waiting_for_key,
        },
        "daemon": daemon,
        "daemon_age_s": None if written is None else round(now - written, 1),
    }


def _confirmation(d: dict[str, Any]) -> str:
    """How batches are confirmed, and each configured node's newest mark."""
    c = d.get("confirm") or {}
    if c.get("by") != "marks":
        return "confirmed by: the broker's PUBACK (no [[confirm.node]] configured)"
    marks = d.get("marks", {})
    seen = ", ".join(
        f"{n} next seq {marks[n]}" if n in marks else f"{n} no mark yet" for n in c["nodes"]
    )
    return f"confirmed by: the marks of {c['quorum']} of {len(c['nodes'])} nodes; {seen}"


def render(doc: dict[str, Any]) -> str:
    """A readable summary of `collect`'s document."""
    out = [f"gateway {doc['gateway']} (site {doc['site']})"]
    d = doc["daemon"]
    age = doc["daemon_age_s"]
    if not d:
        out.append("daemon: no status written yet (not started with this config?)")
    else:
        if not d.get("running", True):
            state = f"stopped cleanly {age} s ago"
        elif age is not None and age > 30:
            state = f"status {age} s old — STALE: is the daemon running?"
        else:
            state = f"running, status {age} s old"
        out.append(f"daemon: pid {d.get('pid')}, boot {d.get('boot')}, {state}")
        for alarm in d.get("alarms", []):
            out.append(f"ALARM: {alarm}")
    o = doc["outbox"]
    pct = 100.0 * o["bytes"] / o["max_bytes"] if o["max_bytes"] else 0.0
    last = "none" if o["last_confirmed_seq"] is None else o["last_confirmed_seq"]
    out.append(
        f"outbox: {o['depth']} unconfirmed, {o['bytes']} of {o['max_bytes']} bytes ({pct:.1f} %),"
        f" next seq {o['next_seq']}, last confirmed seq {last}, {o['confirmed']} confirmed"
    )
    if o.get("waiting_for_key"):
        out.append(
            f"held: {o['waiting_for_key']} slots stored unsealed, waiting for the site's first"
            " epoch key"
        )
    if d:
        out.append(_confirmation(d))
        b = d.get("broker", {})
        state = (
            "connected"
            if b.get("connected")
            else f"DISCONNECTED ({b.get('last_disconnect_reason') or 'never connected'})"
        )
        out.append(
            f"broker {b.get('host')}:{b.get('port')}: {state}; refused by broker "
            f"{b.get('refused_by_broker', 0)}; published {b.get('published', 0)}"
        )
        if d.get("epoch") is not None:
            out.append(f"sealing with epoch {d['epoch']}")
        if d.get("refused"):
            out.append(
                "messages refused: "
                + ", ".join(f"{k} {v}" for k, v in sorted(d["refused"].items()))
            )
        out.append(
            f"{'meter':<12}{'bus':<12}{'unit':>5}{'polls':>8}{'errors':>8}  "
            f"{'last poll (UTC)':<20} last error"
        )
        for m in d.get("meters", []):
            last_poll = m.get("last_poll")
            stamp = (
                "never"
                if last_poll is None
                else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(last_poll))
            )
            out.append(
                f"{m['id']:<12}{m['bus']:<12}{m['unit']:>5}{m['polls']:>8}{m['errors']:>8}  "
                f"{stamp:<20} {m.get('last_error', '')[:60]}"
            )
    return "\n".join(out)

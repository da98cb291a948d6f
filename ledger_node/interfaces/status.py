"""`mlg-node status`: what a node holds and how it stands with its peers and gateways.

Read from the node's database (the node need not be running): the node's id and role,
the groups and epochs it can read, its log's size and root, its last checkpoint and who
co-signed it, its agreement with each peer (closed slots whose digests agree or differ,
log consistency, anti-entropy progress), ingest counts and refusals by reason, and each
gateway's last seq, lag and the DR control actions it recorded (in the batches this node
can read). As a dict for `--json` and the API, or as text.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from ledger_node.interfaces import privacy
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db, counters, get_meta
from ledger_node.ledger.txlog import MerkleLog
from ledger_node.network.frontend import ADOPT_AFTER_S
from ledger_node.network.peer_time import MAX_SKEW_S
from ledger_node.network.report import refused_by


def gather(db: Db, me: str, now: float) -> dict[str, Any]:
    registry = Registry(db)
    txlog = MerkleLog(db)
    groups = [
        {"site": e.site, "epoch": e.epoch, "members": list(e.members)}
        for e in privacy.readable(db, me)
    ]
    shredded = [{"site": s, "epoch": e} for s, e in db.execute("SELECT site, epoch FROM shreds")]
    last = db.execute(
        "SELECT size, root, t FROM checkpoints WHERE node=? ORDER BY size DESC LIMIT 1", (me,)
    ).fetchone()
    checkpoint = None
    if last is not None:
        cosigners = [
            {"witness": w, "slots_agreed": n}
            for w, n in db.execute(
                "SELECT witness, slots FROM cosignatures WHERE node=? AND size=? ORDER BY witness",
                (me, last[0]),
            )
        ]
        checkpoint = {
            "size": last[0],
            "root": bytes(last[1]).hex(),
            "t": last[2],
            "cosigners": cosigners,
        }
    counts = counters(db)
    clock = _clock(db)
    frontends = _frontends(db)
    return {
        "node": me,
        "role": registry.role(me),
        "network": registry.network,
        "contract": registry.contract,
        "groups": groups,
        "shredded": shredded,
        "log": {"size": txlog.size, "root": txlog.root().hex()},
        "checkpoint": checkpoint,
        "peers": _peers(db),
        "accepted": {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("accepted:")},
        "refused": {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("refused:")},
        "held": int(db.execute("SELECT COUNT(*) FROM pending").fetchone()[0]),
        "alarms": {
            **{k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("alarm:")},
            **_gateway_alarms(counts),
            **({"clock_skew": round(clock["skew_s"])} if clock and clock["alarm"] else {}),
            **({"frontends_down": 1} if frontends and not frontends["live"] else {}),
        },
        "frontends": frontends,
        "clock": clock,
        "sealed": _sealed(db, me),
        "gateways": _gateways(db, now, counts),
        "schema": get_meta(db, "schema"),
    }


def _frontends(db: Db) -> dict[str, Any] | None:
    """A node past one machine: its verifying front-ends (seconds since each last beat,
    real time) and the batches queued for the sequencer; None for a node in one process."""
    rows = db.execute(
        "SELECT client_id, seen_at, adopted_by FROM frontends ORDER BY client_id"
    ).fetchall()
    if not rows:
        return None
    now = time.time()
    listed = [
        {"name": name, "seen_s_ago": round(now - seen, 1), "adopted_by": adopted}
        for name, seen, adopted in rows
    ]
    return {
        "queued": int(db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]),
        "live": sum(1 for f in listed if f["seen_s_ago"] <= ADOPT_AFTER_S and not f["adopted_by"]),
        "list": listed,
    }


def _clock(db: Db) -> dict[str, Any] | None:
    """This node's clock minus its nearest peer's (fresh checkpoints), seconds."""
    skew = get_meta(db, "clock_skew_s")
    if skew is None:
        return None
    return {
        "skew_s": skew,
        "peers": get_meta(db, "clock_skew_peers"),
        "measured_at": get_meta(db, "clock_skew_at"),
        "max_skew_s": MAX_SKEW_S,
        "alarm": abs(skew) > MAX_SKEW_S,
    }


def _peers(db: Db) -> list[dict[str, Any]]:
    out = []
    for peer, cursor, size, fetched, last_sync in db.execute(
        "SELECT peer, cursor, size, fetched, last_sync FROM peers ORDER BY peer"
    ).fetchall():
        agree, differ, waiting = db.execute(
            "SELECT COALESCE(SUM(CASE WHEN p.digest = s.digest THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN p.digest != s.digest THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN s.digest IS NULL THEN 1 ELSE 0 END), 0)"
            " FROM peer_slots p LEFT JOIN slots s"
            " ON s.slot = p.slot WHERE p.peer=?",
            (peer,),
        ).fetchone()
        cp = db.execute(
            "SELECT size, t, consistent FROM checkpoints WHERE node=? ORDER BY size DESC LIMIT 1",
            (peer,),
        ).fetchone()
        differing = [
            row[0]
            for row in db.execute(
                "SELECT p.slot FROM peer_slots p JOIN slots s ON s.slot = p.slot WHERE p.peer=?"
                " AND p.digest != s.digest ORDER BY p.slot DESC LIMIT 5",
                (peer,),
            )
        ]
        out.append(
            {
                "peer": peer,
                "checkpoint": None
                if cp is None
                else {"size": cp[0], "t": cp[1], "consistent": cp[2]},
                "slots_agree": agree,
                "slots_differ": differ,
                "slots_waiting": waiting,
                "differing_slots": differing,
                "synced_to": cursor,
                "peer_size": size,
                "fetched": fetched,
                "last_sync": last_sync,
            }
        )
    return out


def _sealed(db: Db, me: str) -> int:
    """Batches of this node's epochs not decrypted yet."""
    return int(
        db.execute(
            "SELECT COUNT(*) FROM batches b JOIN epochs e ON e.site = b.site AND e.epoch = b.epoch"
            " WHERE b.state = 'sealed' AND (',' || e.members || ',') LIKE ?",
            (f"%,{me},%",),
        ).fetchone()[0]
    )


GATEWAY_ALARMS = {"late": 3, "future": 3, "seq_gap": 3, "bad_payload": 1}
"""Refusals that, repeated this often, say a gateway's clock or state is wrong: its batches
are lost to the ledger until it is fixed. One sealed payload that does not open its own
commitments is already a broken (or tampered) gateway."""


def _gateway_alarms(counts: dict[str, int]) -> dict[str, int]:
    return {
        f"{reason}:{gateway}": n
        for gateway, reasons in refused_by(counts).items()
        for reason, n in reasons.items()
        if n >= GATEWAY_ALARMS.get(reason, n + 1)
    }


def _gateways(db: Db, now: float, counts: dict[str, int]) -> list[dict[str, Any]]:
    rows = db.execute(
        "WITH g AS (SELECT gateway, site, MAX(seq) AS seq, COUNT(*) AS n, MAX(slot) AS slot,"
        " MAX(pos) AS pos, SUM(CASE WHEN state = 'equivocated' THEN 1 ELSE 0 END) AS eq"
        " FROM batches GROUP BY gateway, site)"
        " SELECT g.gateway, g.site, g.seq, g.n, g.slot, l.received_at, g.eq FROM g"
        " JOIN log l ON l.pos = g.pos ORDER BY g.gateway"
    ).fetchall()
    out = []
    control = dict(
        db.execute(
            "SELECT b.gateway, COUNT(*) FROM control_actions c JOIN batches b ON b.pos = c.pos"
            " GROUP BY b.gateway"
        ).fetchall()
    )
    refused = refused_by(counts)
    for gateway, site, last_seq, n, last_slot, received, equivocated in rows:
        out.append(
            {
                "gateway": gateway,
                "site": site,
                "last_seq": last_seq,
                "batches": n,
                "missing_below_last": last_seq + 1 - n,
                "last_slot": last_slot,
                "lag_s": round(now - received, 1),
                "equivocations": equivocated,
                "control_actions": control.get(gateway, 0),
                "refused": refused.pop(gateway, {}),
            }
        )
    # Gateways none of whose batches was ever accepted, only refused.
    out.extend({"gateway": g, "refused": r} for g, r in sorted(refused.items()))
    return out


def _refusals(refused: dict[str, int]) -> str:
    return "".join(f", refused {reason} {n}" for reason, n in sorted(refused.items()))


def _utc(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render(s: dict[str, Any]) -> str:
    """The status as text for a terminal."""
    lines = [
        f"node {s['node']} ({s['role'] or 'not an active organisation'})"
        f"  network {s['network']}  contract {s['contract']}",
        f"log: {s['log']['size']} entries, root {s['log']['root'][:16]}…",
    ]
    cp = s["checkpoint"]
    if cp is None:
        lines.append("last checkpoint: none yet")
    else:
        signers = ", ".join(f"{c['witness']} ({c['slots_agreed']} slots)" for c in cp["cosigners"])
        lines.append(
            f"last checkpoint: size {cp['size']} at {_utc(cp['t'])}; "
            f"co-signed by {signers or 'nobody yet'}"
        )
    readable = ", ".join(f"{g['site']}#{g['epoch']}" for g in s["groups"]) or "none"
    lines.append(f"groups (site#epoch) readable here: {readable}")
    if s["shredded"]:
        lines.append("shredded: " + ", ".join(f"{g['site']}#{g['epoch']}" for g in s["shredded"]))
    lines.append("peers:")
    for p in s["peers"] or [{"peer": "(none seen yet)"}]:
        if "slots_agree" not in p:
            lines.append(f"  {p['peer']}")
            continue
        c = p["checkpoint"] or {}
        lines.append(
            f"  {p['peer']:<10} log {c.get('size', '-')} ({c.get('consistent', '-')}); slots"
            f" agree {p['slots_agree']}, differ {p['slots_differ']}, waiting"
            f" {p['slots_waiting']}; synced to {p['synced_to']}/{p['peer_size']},"
            f" fetched {p['fetched']}"
        )
    accepted = ", ".join(f"{k} {v}" for k, v in sorted(s["accepted"].items())) or "none"
    refused = ", ".join(f"{k} {v}" for k, v in sorted(s["refused"].items())) or "none"
    lines.append(f"accepted: {accepted}")
    lines.append(f"refused: {refused}")
    lines.append(f"held for a predecessor: {s['held']}; sealed, not yet decrypted: {s['sealed']}")
    fe = s.get("frontends")
    if fe:
        names = ", ".join(
            f"{f['name']} ({f['seen_s_ago']:g} s ago"
            + (f", adopted by {f['adopted_by']})" if f["adopted_by"] else ")")
            for f in fe["list"]
        )
        lines.append(
            f"front-ends: {fe['live']} live: {names}; queued for the sequencer: {fe['queued']}"
        )
    if s["alarms"]:
        lines.append("ALARMS: " + ", ".join(f"{k} {v}" for k, v in s["alarms"].items()))
    clock = s.get("clock")
    if clock and clock["alarm"]:
        lines.append(
            f"clock: {clock['skew_s']:+.0f} s off every one of {clock['peers']} peers' signed"
            f" times (more than {clock['max_skew_s']:g} s): late/future and gate closures are"
            " judged wrongly; fix this machine's clock (NTP)"
            + (
                " — or the peer's: with one peer it cannot tell which"
                if clock["peers"] == 1
                else ""
            )
        )
    lines.append("gateways:")
    for g in s["gateways"] or [{"gateway": "(none yet)"}]:
        if "site" not in g:
            lines.append(f"  {g['gateway']}" + _refusals(g.get("refused", {})))
            continue
        lines.append(
            f"  {g['gateway']:<12} site {g['site']:<8} last seq {g['last_seq']}"
            f" ({g['missing_below_last']} missing below), last slot {_utc(g['last_slot'])},"
            f" lag {g['lag_s']} s"
            + (f", {g['control_actions']} DR control actions" if g["control_actions"] else "")
            + (f", {g['equivocations']} EQUIVOCATED" if g["equivocations"] else "")
            + _refusals(g["refused"])
        )
    return "\n".join(lines)

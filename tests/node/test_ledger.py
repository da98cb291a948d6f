"""The ledger's rules, in process, on real SQLite files: registry order and roles, epoch
keys, equivocation evidence, bad payloads, lateness, and `verify`'s replay."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import nacl.secret
import pytest

from ledger_node.contract.settlement import Settlement, rewards
from ledger_node.interfaces import commands, status
from ledger_node.interfaces.api import control_actions
from ledger_node.interfaces.verify import Report, verify
from ledger_node.ledger import Ledger, author_epochs
from ledger_node.ledger.store import connect, counters
from ledger_node.network.antientropy import AntiEntropy
from ledger_node.network.witness import slot_digest
from ledger_node.shared.keys import Identity
from ledger_node.wire import (
    ControlAction,
    DrCommand,
    DrDeclaration,
    MeterCommitment,
    OrgRemove,
    ReadingsBatch,
    SiteMove,
    SlotPayload,
    SyncRequest,
    open_body,
    parse,
    pedersen,
)
from ledger_node.wire.readings import MAX_SEQ_GAP
from tests.support.ledgers import T0, Net, Where
from tests.support.sim import sign


@pytest.fixture
def net(tmp_path: Path, store: Where) -> Iterator[Net]:
    """Figure 7's registry and epoch keys at the TSO and RA(1), on each store in turn."""
    n = Net(tmp_path, where=store)
    n.everywhere(n.fig.registrations())
    n.epochs()
    yield n
    n.close()


def _verified(where: Path | str, me: Identity) -> Report:
    """`mlg-node verify` of the store at `where`, on a connection closed after."""
    with closing(connect(where, readonly=True)) as db:
        return verify(db, me)


def _sqlite_only(net: Net) -> None:
    """Skip a test of the SQLite file itself (PostgreSQL's files are the server's)."""
    if not isinstance(net.where("ra1"), Path):
        pytest.skip("a property of the SQLite file")


def _count(ledger: Ledger, name: str) -> int:
    return counters(ledger.db).get(name, 0)


def test_registry_facts_apply_in_their_authors_order_whatever_the_arrival(tmp_path: Path) -> None:
    a = Net(tmp_path / "a")
    b = Net(tmp_path / "b", fig=a.fig)  # the same facts, two replicas
    facts = a.fig.registrations()
    move1 = a.fig.move("site1", "ra2")
    move2 = a.fig.move("site1", "ra1")
    a.everywhere([*facts, move1, move2])
    for raw in (move2, *reversed(facts), move1):
        outcome = b.admit("tso", raw)
        assert outcome.status in ("accepted", "held"), outcome
    assert b.admit("tso", move2).status == "replay"  # held already: a replay too
    sites_a = a.ledgers["tso"].registry.sites
    sites_b = b.ledgers["tso"].registry.sites
    assert sites_a == sites_b and sites_b["site1"].ra == "ra1"
    assert b.ledgers["tso"].pending.size == 0
    assert _count(b.ledgers["tso"], "held:out_of_order") == 1


def test_roles_and_the_registry_are_enforced(net: Net) -> None:
    fig = net.fig
    ra1 = fig.ras["ra1"]
    as_ra = sign(
        ra1.identity,
        DrCommand("ra1", "c9", T0, T0 + 60, 60, T0, 1, (("ac1", 10),)),
    )
    outcome = net.admit("tso", as_ra)
    assert (outcome.status, outcome.reason) == ("refused", "not_allowed")
    # An RA cannot move a site, nor register another RA's site.
    move = sign(ra1.identity, SiteMove("ra1", 2, "site2", "ra1"))
    assert net.admit("tso", move).reason == "not_allowed"
    # The TSO removes RA(1): its facts are refused from then on, and site1's group
    # gets a new epoch without it.
    remove = sign(fig.tso.identity, OrgRemove("tso", fig.tso.next_n(), "ra1"))
    net.everywhere([remove])
    made = net.epochs()
    assert [(k.site, k.epoch, k.members) for k in made] == [("site1", 1, ("ac1", "tso"))]
    again = sign(ra1.identity, replace(open_body(parse(fig.registrations()[0])), n=5))  # type: ignore[type-var]
    assert net.admit("tso", again).reason == "not_allowed"


def test_registry_equivocation_is_kept_as_evidence(net: Net) -> None:
    fig = net.fig
    n = fig.tso.next_n()
    first = sign(fig.tso.identity, SiteMove("tso", n, "site1", "ra2"))
    second = sign(fig.tso.identity, SiteMove("tso", n, "site1", "ra3"))
    assert net.admit("tso", first).ok
    outcome = net.admit("tso", second)
    assert outcome.status == "equivocation"
    assert net.ledgers["tso"].registry.sites["site1"].ra == "ra2"  # the first stands
    third = sign(fig.tso.identity, SiteMove("tso", n, "site1", "ra1"))
    assert net.admit("tso", third).reason == "equivocation"
    rows = net.ledgers["tso"].db.execute("SELECT key FROM equivocations").fetchall()
    assert rows == [(f"n:{n}",)]  # one variant kept as evidence, the next only counted


def test_two_batches_with_one_seq_are_evidence_and_neither_counts(net: Net) -> None:
    gw = net.fig.gateways["site1"]
    one = gw.batch(T0 - 120, {"m1": 5, "m2": 6})
    gw.seq -= 1
    other = gw.batch(T0 - 120, {"m1": 50, "m2": 60})
    assert net.admit("ra1", one).ok
    assert net.admit("ra1", other).status == "equivocation"
    ledger = net.ledgers["ra1"]
    net.open("ra1")
    state = ledger.db.execute("SELECT state FROM batches").fetchall()
    assert state == [("equivocated",)]
    digest = slot_digest(ledger.db, T0 - 120)
    assert digest.count == 2  # both variants: replicas converge whichever came first
    assert _count(ledger, "refused:equivocation") == 1


def test_a_batch_whose_readings_do_not_open_its_commitments_is_flagged(net: Net) -> None:
    gw = net.fig.gateways["site1"]
    raw = gw.batch(T0 - 60, {"m1": 5, "m2": 6})
    batch = open_body(parse(raw))
    assert isinstance(batch, ReadingsBatch)
    forged_commit = MeterCommitment("m1", pedersen.commit(7, pedersen.random_blinding()))
    bad = replace(batch, seq=gw.seq, commitments=(forged_commit, batch.commitments[1]))
    gw.seq += 1
    assert net.admit("ra1", sign(gw.identity, bad)).ok  # signed by the gateway: kept
    net.open("ra1")
    ledger = net.ledgers["ra1"]
    assert ledger.db.execute("SELECT state FROM batches").fetchall() == [("bad",)]
    assert ledger.db.execute("SELECT COUNT(*) FROM readings").fetchone() == (0,)
    assert _count(ledger, "refused:bad_payload") == 1
    # Counted against its gateway, and at once an alarm on the node that found it.
    s = status.gather(ledger.db, "ra1", T0)
    assert s["alarms"] == {"bad_payload:gw-site1": 1}
    (row,) = [g for g in s["gateways"] if g["gateway"] == "gw-site1"]
    assert row["refused"] == {"bad_payload": 1}


def test_a_seq_far_beyond_the_gateways_highest_is_refused_and_alarmed_per_gateway(
    net: Net,
) -> None:
    """A valid batch from the real gateway key (a bad backup, a bit flip) whose seq jumps
    past `MAX_SEQ_GAP` is refused, counted against its gateway and, repeated, an alarm;
    the gateway's ordinary batches go on counting."""
    gw = net.fig.gateways["site1"]
    assert net.admit("tso", gw.batch(T0 - 120, {"m1": 1, "m2": 1})).ok
    for seq in (2**53 - 1, MAX_SEQ_GAP + 1, 2 * MAX_SEQ_GAP):
        gw.seq = seq
        outcome = net.admit("tso", gw.batch(T0 - 60, {"m1": 1, "m2": 1}))
        assert (outcome.status, outcome.reason) == ("refused", "seq_gap"), seq
    gw.seq = MAX_SEQ_GAP  # the highest is 0: exactly the gap is still taken
    assert net.admit("tso", gw.batch(T0 - 60, {"m1": 2, "m2": 2})).ok
    s = status.gather(net.ledgers["tso"].db, "tso", T0)
    assert s["alarms"] == {"seq_gap:gw-site1": 3}
    (row,) = [g for g in s["gateways"] if g["gateway"] == "gw-site1"]
    assert (row["last_seq"], row["refused"]) == (MAX_SEQ_GAP, {"seq_gap": 3})
    assert "refused seq_gap 3" in status.render(s)


def test_lateness_is_judged_on_arrival_not_on_fetching_from_a_peer(net: Net) -> None:
    gw = net.fig.gateways["site2"]
    old = gw.batch(T0 - 3600, {"m1": 1, "m2": 1})
    assert net.admit("tso", old).reason == "late"
    assert net.admit("tso", old, source="sync:ac1").ok  # a peer took it in time
    future = gw.batch(T0 + 3600, {"m1": 1, "m2": 1})
    assert net.admit("tso", future).reason == "future"


def test_an_epoch_key_before_its_site_is_held_then_applied(tmp_path: Path) -> None:
    n = Net(tmp_path, ("tso", "ac1"))
    regs = n.fig.registrations()
    n.admit("tso", regs[0])
    tso = n.ledgers["tso"]
    with tso.transaction() as changes:
        (key,) = author_epochs(tso)
    raw = changes.authored[0][1]
    assert n.admit("ac1", raw).status == "held"  # ac1 has not seen site1 yet
    assert n.admit("ac1", regs[0]).ok
    assert n.ledgers["ac1"].pending.size == 0
    assert ("site1", 0) in n.ledgers["ac1"].groups.boxes
    assert key.site == "site1"


def test_verify_replays_the_log_and_names_a_changed_derived_row(net: Net) -> None:
    gw = net.fig.gateways["site1"]
    for k in range(3):
        assert net.admit("ra1", gw.batch(T0 - 60 * (k + 1), {"m1": k, "m2": 1})).ok
    net.open("ra1")
    ledger = net.ledgers["ra1"]
    path = net.where("ra1")
    me = ledger.me
    report = _verified(path, me)
    assert report.ok, report.problems
    with ledger.transaction():
        ledger.db.execute("UPDATE readings SET wh = wh + 1 WHERE meter='m1'")
    report = _verified(path, me)
    assert not report.ok
    assert any(p.startswith("derived table readings") for p in report.problems)


def test_a_data_key_is_never_written_to_the_database(net: Net) -> None:
    ledger = net.ledgers["ra1"]
    box = ledger.groups.boxes[("site1", 0)]
    key = bytes(box)  # SecretBox exposes its key as bytes
    if isinstance(net.where("ra1"), Path):
        ledger.db.close()
        raw = b"".join(p.read_bytes() for p in net.tmp.glob("ra1.sqlite*"))
    else:  # every value of every table the server holds for the node
        tables = ledger.db.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        assert len(tables) > 20
        raw = b"".join(
            v if isinstance(v, bytes) else str(v).encode()
            for (t,) in tables
            for row in ledger.db.execute(f"SELECT * FROM {t}")
            for v in row
        )
    assert key not in raw
    assert isinstance(box, nacl.secret.SecretBox)


def test_the_sealed_payload_is_bound_to_its_batch(net: Net) -> None:
    gw = net.fig.gateways["site1"]
    raw = gw.batch(T0 - 60, {"m1": 5, "m2": 6})
    batch = open_body(parse(raw))
    assert isinstance(batch, ReadingsBatch)
    payload = gw.sealed[-1][1]
    moved = SlotPayload(payload.gateway, payload.seq + 1, payload.readings)
    box = nacl.secret.SecretBox(gw.keys[0]).encrypt(moved.to_bytes())
    copy = replace(batch, box=bytes(box))
    assert net.admit("ra1", sign(gw.identity, copy)).ok
    net.open("ra1")
    state = net.ledgers["ra1"].db.execute("SELECT state FROM batches").fetchone()
    assert state == ("bad",)


def test_the_database_is_readable_by_its_owner_only(net: Net) -> None:
    _sqlite_only(net)
    for path in net.tmp.glob("ra1.sqlite*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_dr_control_actions_are_read_by_members_only_and_shredded_with_the_readings(
    net: Net,
) -> None:
    on, off = ControlAction("dr-1", 1, T0 - 118, True), ControlAction("dr-1", 0, T0 - 61, False)
    site1, site3 = net.fig.gateways["site1"], net.fig.gateways["site3"]
    net.everywhere(
        [
            site1.batch(T0 - 120, {"m1": 5, "m2": 6}, control=(on, off)),
            site3.batch(T0 - 120, {"m1": 1, "m2": 1}, control=(on,)),
        ]
    )
    for name in ("tso", "ra1"):
        net.open(name)

    def seen(name: str) -> list[tuple[str, int, int, bool]]:
        rows = control_actions(net.ledgers[name].db, "dr-1")
        return [(r["site"], r["state"], r["t"], r["ok"]) for r in rows]

    assert seen("ra1") == [("site1", 1, T0 - 118, True), ("site1", 0, T0 - 61, False)]
    assert seen("tso") == [
        ("site1", 1, T0 - 118, True),
        ("site3", 1, T0 - 118, True),
        ("site1", 0, T0 - 61, False),
    ]
    path, me = net.where("ra1"), net.ledgers["ra1"].me
    assert _verified(path, me).ok
    with net.ledgers["ra1"].transaction():
        net.ledgers["ra1"].db.execute("UPDATE control_actions SET ok = 1")
    report = _verified(path, me)
    assert any(p.startswith("derived table control_actions") for p in report.problems)
    # Shredding site1's epoch erases what its gateway did along with what it measured.
    tso = net.ledgers["tso"]
    with tso.transaction() as changes:
        commands.VERBS["shred"].author(tso, {"site": "site1", "epoch": 0})
    net.everywhere([raw for _, raw in changes.authored])
    assert seen("ra1") == []
    assert seen("tso") == [("site3", 1, T0 - 118, True)]


def test_a_flood_from_unknown_signers_never_crowds_out_a_known_signers_early_fact(
    net: Net,
) -> None:
    """1,100 facts claimed by strangers fill only their own bounded pool; RA(1)'s
    declaration, sent before its command, is held and counts once the command comes."""
    tso = net.ledgers["tso"]
    strangers = [Identity.generate(f"x{i}") for i in range(1100)]
    outcomes = [
        net.admit("tso", sign(s, DrDeclaration(s.name, "c1", 1, (("site1", (1,)),))))
        for s in strangers
    ]
    held = [o for o in outcomes if o.status == "held"]
    refused = [o for o in outcomes if o.reason == "pending_full"]
    limits = tso.pending.limits
    assert (len(held), len(refused)) == (limits.unknown, 1100 - limits.unknown)
    # One claimed author cannot take the whole pool either.
    one = Identity.generate("x-one")
    again = [
        net.admit("tso", sign(one, DrDeclaration("x-one", f"c{k}", 1, (("site1", (1,)),))))
        for k in range(3)
    ]
    assert {o.reason for o in again} == {"pending_full"}
    early = net.fig.declaration("ra1", "c1", {"site1": 400})
    assert net.admit("tso", early).status == "held"  # its command is not there yet
    command = net.fig.command("c1", T0 + 3600, 2, T0 + 1800, {"ac1": 100})
    assert net.admit("tso", command).ok
    row = tso.db.execute("SELECT rev FROM declarations WHERE command='c1' AND ra='ra1'")
    assert row.fetchone() == (1,)  # the early declaration counts
    assert tso.pending.sizes == {True: 0, False: limits.unknown}
    # Held facts expire: the strangers' are gone a day later, counted.
    net.clock.set(T0 + limits.ttl_s + 1)
    with tso.transaction():
        assert tso.expire_pending() == limits.unknown
    assert tso.pending.size == 0 and _count(tso, "refused:expired") == limits.unknown


def test_shredding_the_current_epoch_starts_the_next_at_once(net: Net) -> None:
    """The TSO shreds site1's current epoch: its next re-keying starts epoch 1 for the same
    group (readings go on), and no shredded epoch is ever started again."""
    tso = net.ledgers["tso"]
    with tso.transaction() as changes:
        commands.VERBS["shred"].author(tso, {"site": "site1", "epoch": 0})
    assert changes.shredded
    net.everywhere([raw for _, raw in changes.authored])
    with tso.transaction():
        made = author_epochs(tso)
    assert [(k.site, k.epoch) for k in made] == [("site1", 1)]
    assert made[0].members == tso.groups.epochs[("site1", 0)].members  # the same group
    with tso.transaction():
        assert author_epochs(tso) == []  # the group has a readable epoch again


def test_a_replayed_sync_request_is_not_answered_and_answers_are_rate_limited(net: Net) -> None:
    tso = net.ledgers["tso"]
    sync = AntiEntropy(tso, 64 * 1024)

    def request(rid: bytes) -> SyncRequest:
        return SyncRequest("ac1", "tso", rid, "ids", 0, 10, (), 64 * 1024)

    first = request(b"\x01" * 16)
    assert sync.on_request(first) is not None
    assert sync.on_request(first) is None  # the same request again: a replay
    answered = sum(sync.on_request(request(os.urandom(16))) is not None for _ in range(100))
    assert 15 <= answered <= 25  # a second's worth (20), not a hundred
    with tso.transaction():
        pass  # counters are written with the next transaction
    assert _count(tso, "refused:sync_replay") == 1
    assert _count(tso, "refused:sync_rate") == 100 - answered


def _verify(net: Net, name: str) -> list[str]:
    ledger = net.ledgers[name]
    return _verified(net.where(name), ledger.me).problems


def test_verify_names_a_changed_reward_a_deleted_entry_and_ignores_decryption_lag(
    net: Net,
) -> None:
    tso = net.ledgers["tso"]
    start = T0 - 180
    # The command and declarations as fetched from a peer (their gate closure long past).
    net.admit("tso", net.fig.command("c1", start, 2, start, {"ac1": 100}), "sync:ra1")
    net.admit("tso", net.fig.declaration("ra1", "c1", {"site1": 400}), "sync:ra1")
    net.admit("tso", net.fig.declaration("ra2", "c1", {"site2": 400}), "sync:ra1")
    for site in ("site1", "site2"):
        gw = net.fig.gateways[site]
        for slot in (start, start + 60):
            assert net.admit("tso", gw.batch(slot, {"m1": 100, "m2": 150})).ok
    # One batch stays sealed (a running node decrypts shortly after the commit): no error.
    late = net.fig.gateways["site2"].batch(start + 120, {"m1": 1, "m2": 1})
    net.open("tso")
    settlement = Settlement(tso)
    with tso.transaction():
        assert settlement.refresh(settlement.dirty())  # what the ledger queued: c1
    assert net.admit("tso", late).ok
    assert tso.db.execute("SELECT COUNT(*) FROM batches WHERE state='sealed'").fetchone() == (1,)
    assert _verify(net, "tso") == []
    (before,) = rewards(tso.db, "c1")
    assert before["reward_yen"] == 4  # 2 slots x min(800 - 500, 100) Wh at 20 yen/kWh
    # A settled reward raised by 1,000 yen in the database.
    with tso.transaction():
        tso.db.execute("UPDATE rewards SET reward_yen = reward_yen + 1000")
    (problem,) = _verify(net, "tso")
    assert problem.startswith("reward of ac1 for c1: stored 1004 yen"), problem
    with tso.transaction():
        tso.db.execute("UPDATE rewards SET reward_yen = reward_yen - 1000")
    # A log entry deleted: named as missing, not as a problem of the next one.
    with tso.transaction():
        tso.db.execute("DELETE FROM log WHERE pos = 5")
    problems = _verify(net, "tso")
    assert problems == ["entry 5 is missing from the log (its row was deleted)"], problems


def test_verify_judges_every_settled_result_and_waits_for_queued_ones(net: Net) -> None:
    """Results lag decryption by up to a second on a running node: a command queued to
    settle again (in the transaction that decrypted its slots) is not judged; once
    settled, a result changed in the database is named."""
    tso = net.ledgers["tso"]
    start = T0 - 180
    net.admit("tso", net.fig.command("c1", start, 2, start, {"ac1": 100}), "sync:ra1")
    net.admit("tso", net.fig.declaration("ra1", "c1", {"site1": 400}), "sync:ra1")
    settlement = Settlement(tso)
    with tso.transaction():
        settlement.refresh(settlement.dirty())
    gw = net.fig.gateways["site1"]
    assert net.admit("tso", gw.batch(start, {"m1": 100, "m2": 150})).ok
    net.open("tso")  # decrypted; the contract has not settled it yet
    report = _verified(net.where("tso"), tso.me)
    assert report.problems == [] and "1 commands being settled" in " ".join(report.checked)
    with tso.transaction():
        assert settlement.dirty() == {"c1"}
        settlement.refresh({"c1"})
    assert _verify(net, "tso") == []
    with tso.transaction():
        tso.db.execute("UPDATE results SET actual_wh = actual_wh + 1 WHERE kind = 'ra'")
    problems = _verify(net, "tso")
    assert problems and all("recomputation" in p for p in problems), problems


def test_an_equivocation_after_decryption_verifies_as_in_replay(net: Net) -> None:
    gw = net.fig.gateways["site1"]
    one = gw.batch(T0 - 120, {"m1": 5, "m2": 6})
    gw.seq -= 1
    other = gw.batch(T0 - 120, {"m1": 50, "m2": 60})
    assert net.admit("ra1", one).ok
    net.open("ra1")  # decrypted before the second variant arrives
    assert net.admit("ra1", other).status == "equivocation"
    ledger = net.ledgers["ra1"]
    assert ledger.db.execute("SELECT COUNT(*) FROM readings").fetchone() == (0,)
    assert _verify(net, "ra1") == []

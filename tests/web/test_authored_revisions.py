"""An RA's declarations as its declaration screen lists them, from a real ledger file:
the revision that counts, the one it superseded, and an equivocation's two facts (the
same revision signed twice with other contents), each named so on the screen."""

from __future__ import annotations

from pathlib import Path

from ledger_node.interfaces.web.screens.authored import revisions
from ledger_node.interfaces.web.templating import environment
from ledger_node.ledger import Ledger, LedgerSettings
from ledger_node.ledger.store import connect
from ledger_node.shared.clock import FixedClock
from ledger_node.wire import DrDeclaration
from tests.support.sim import Figure7

T0 = 1_800_000_000 - 1_800_000_000 % 60


def test_revisions_name_the_one_that_counts_the_superseded_and_the_evidence(
    tmp_path: Path,
) -> None:
    fig = Figure7.make()
    ra1 = fig.ras["ra1"]
    ledger = Ledger(
        connect(tmp_path / "ra1.sqlite"), ra1.identity, FixedClock(T0), LedgerSettings()
    )
    facts = [
        *fig.registrations(),
        fig.command("c1", T0 + 600, 5, T0 + 300, {"ac1": 1000}),
        fig.declaration("ra1", "c1", {"site1": 100}, rev=1),
        fig.declaration("ra1", "c1", {"site1": 200}, rev=1),  # rev 1 again, other bytes
        fig.declaration("ra1", "c1", {"site1": 300}, rev=2),
        fig.declaration("ra2", "c1", {"site2": 400}, rev=1),  # another RA's: not listed
    ]
    with ledger.transaction():
        ledger.start(fig.genesis)
        outcomes = [ledger.admit(raw, "mqtt", hold_unknown=True) for raw in facts]
    assert [o.status for o in outcomes[-4:]] == ["accepted", "equivocation", "accepted", "accepted"]
    first, second, newest = (outcomes[-4].pos, outcomes[-3].txid, outcomes[-2].pos)
    evidence = ledger.log.pos_of(second)

    listed = revisions(ledger.db, DrDeclaration, "ra1", "declarations", "ra", "declaration")
    assert list(listed) == ["c1"]
    got = [(r.message.rev, r.message.sites, r.status, r.entry.pos, r.other) for r in listed["c1"]]
    assert got == [
        (2, (("site1", (300,)),), "current", newest, None),
        (1, (("site1", (200,)),), "evidence", evidence, first),
        (1, (("site1", (100,)),), "equivocated", first, evidence),
    ]
    status = environment("ja").get_template("_authoring.html").module.status  # type: ignore[attr-defined]
    shown = [str(status(r)) for r in listed["c1"]]
    assert "有効" in shown[0]
    assert f"二重署名の証拠: 同じ版の別のファクト（項目 {first} を参照）" in shown[1]
    assert f"項目 {evidence} を参照" in shown[2]
    ledger.db.close()

"""Whose DR declarations switch a site: only its current RA's, as the TSO's newest epoch
key names the group. In process, on a real state database; no broker needed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from nacl.utils import random

from gateway.db import Database
from gateway.facts import DrPlan, EpochKeys
from gateway.trust import Trust
from ledger_node.shared.clock import FixedClock
from ledger_node.shared.keys import Identity
from ledger_node.wire import DrCommand, DrDeclaration
from tests.gateway.conftest import epoch_key
from tests.support.sim import sign

SITE = "site1"
SLOT_S = 60
T0 = 1_800_000_000


def test_only_the_sites_current_ra_switches_it(tmp_path: Path) -> None:
    ids = {n: Identity.generate(n) for n in ("tso", "ac1", "ra1", "ra2")}
    gw = Identity.generate("gw-site1")
    db = Database(tmp_path / "state.sqlite")
    clock = FixedClock(T0)
    trust = Trust([p.public for p in ids.values()])
    keys = EpochKeys(db, gw, SITE, "tso", None)
    plan = DrPlan(db, SITE, "tso", ("ra1", "ra2"), clock, keys.members)
    start = T0 + 10 * SLOT_S
    for command, ra in (("cmd1", "ra1"), ("cmd2", "ra2")):
        cmd = DrCommand("tso", command, start, start + SLOT_S, SLOT_S, start - SLOT_S, 20,
                        (("ac1", 500),))  # fmt: skip
        assert plan.offer_command(trust, sign(ids["tso"], cmd))
        decl = DrDeclaration(ra, command, 1, ((SITE, (100,)),))
        assert plan.offer_declaration(trust, sign(ids[ra], decl))

    # No epoch key yet: the configured RAs are all the gateway knows.
    assert [w.command for w in plan.windows()] == ["cmd1", "cmd2"]
    # Epoch 0: the site is RA(1)'s; RA(2)'s declaration for it does not count.
    key0 = epoch_key(SITE, 0, random(32), [ids[m] for m in ("ac1", "ra1", "tso")], gw)
    assert keys.offer(trust, sign(ids["tso"], key0)) == 0
    assert keys.members() == {"tso", "ac1", "ra1"}
    assert [w.command for w in plan.windows()] == ["cmd1"]
    # The site moves to RA(2): the TSO's epoch 1 names it, and the old RA stops counting.
    key1 = epoch_key(SITE, 1, random(32), [ids[m] for m in ("ac1", "ra2", "tso")], gw)
    assert keys.offer(trust, sign(ids["tso"], key1)) == 1
    assert [w.command for w in plan.windows()] == ["cmd2"]
    db.close()


def test_a_state_file_from_before_members_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE epoch_keys (site TEXT NOT NULL, epoch INTEGER NOT NULL, key BLOB NOT NULL,"
        " PRIMARY KEY (site, epoch))"
    )
    old.execute("INSERT INTO epoch_keys VALUES (?, 0, ?)", (SITE, bytes(32)))
    old.commit()
    old.close()
    db = Database(path)
    keys = EpochKeys(db, Identity.generate("gw-site1"), SITE, "tso", None)
    assert keys.current().epoch == 0  # the key it held is still there
    assert keys.members() is None  # unknown: the configured RAs count, as before
    db.close()

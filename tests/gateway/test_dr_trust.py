"""Whose DR declarations switch a site: only its current RA's, as the TSO's newest epoch
key names the group. In process, on a real state database; no broker needed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from nacl.utils import random

from gateway.db import Database
from gateway.errors import GatewayError
from gateway.facts import DrPlan, EpochKeys
from gateway.trust import Refused, Trust
from ledger_node.shared.clock import FixedClock
from ledger_node.shared.keys import Identity
from ledger_node.wire import DrCommand, DrDeclaration, EpochShred
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


def test_a_shredded_epoch_is_erased_and_holds_sealing_until_the_next(tmp_path: Path) -> None:
    """The TSO shreds the site's current epoch: the gateway erases its key (nowhere in the
    state file, its WAL included), refuses that epoch's key if it comes again, seals with
    no older epoch meanwhile, and takes the TSO's next epoch."""
    ids = {n: Identity.generate(n) for n in ("tso", "ac1", "ra1")}
    gw = Identity.generate("gw-site1")
    path = tmp_path / "state.sqlite"
    db = Database(path)
    trust = Trust([p.public for p in ids.values()])
    keys = EpochKeys(db, gw, SITE, "tso", None)
    group = [ids[m] for m in ("ac1", "ra1", "tso")]
    secret0, secret1 = random(32), random(32)
    key0 = sign(ids["tso"], epoch_key(SITE, 0, random(32), group, gw))
    key1 = sign(ids["tso"], epoch_key(SITE, 1, secret1, group, gw))
    assert keys.offer(trust, key0) == 0 and keys.offer(trust, key1) == 1
    assert keys.current().key == secret1
    shred = sign(ids["tso"], EpochShred("tso", SITE, 1))
    assert keys.offer_shred(trust, shred) == 1
    assert keys.offer_shred(trust, shred) is None  # once
    assert not keys.ready  # epoch 0 is older than the shredded one: never sealed with again
    with pytest.raises(GatewayError, match="epoch 1 of site site1 was shredded"):
        keys.current()
    with pytest.raises(Refused, match="shredded"):
        keys.offer(trust, key1)
    on_disk = b"".join(
        p.read_bytes() for p in (path, path.with_name(path.name + "-wal")) if p.exists()
    )
    assert secret1 not in on_disk
    other = sign(ids["tso"], EpochShred("tso", "site9", 0))
    with pytest.raises(Refused, match="site9"):
        keys.offer_shred(trust, other)
    key2 = sign(ids["tso"], epoch_key(SITE, 2, secret0, group, gw))
    assert keys.offer(trust, key2) == 2 and keys.current().epoch == 2
    db.close()

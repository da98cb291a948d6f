"""Admission of envelopes whose signature was checked elsewhere (the node's verifying
thread, a front-end): the key the check used must still be the signer's at admission.

Real ledgers on real SQLite files (`tests.support.ledgers`), real signed envelopes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger_node.ledger.store import counters
from ledger_node.shared.keys import Identity
from ledger_node.wire import SiteRegistration, Verified, parse, verify
from tests.support.ledgers import T0, Net
from tests.support.sim import SimGateway, sign


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Net]:
    n = Net(tmp_path)
    n.everywhere(n.fig.registrations())
    n.epochs()
    yield n
    for ledger in n.ledgers.values():
        ledger.db.close()


def _checked(net: Net, raw: bytes) -> Verified:
    """What the verifying thread hands the writer: checked against the registry now."""
    return verify(parse(raw), net.ledgers["ra1"].registry.verify_keys)


def _register(net: Net, gw: SimGateway) -> None:
    """RA(1) registers site1 again, with `gw` as its gateway."""
    ra = net.fig.ras["ra1"]
    reg = SiteRegistration(ra.name, ra.next_n(), "site1", gw.gateway_key(), gw.meters)
    assert net.admit("ra1", sign(ra.identity, reg)).ok


def test_a_batch_checked_with_the_current_key_is_admitted(net: Net) -> None:
    gw = net.fig.gateways["site1"]
    checked = _checked(net, gw.batch(T0 - 60, {"m1": 5, "m2": 6}))
    assert checked.key == bytes(gw.identity.signing_key.verify_key)
    outcome = net.admit("ra1", checked)
    assert outcome.ok and outcome.kind == "readings"
    assert net.admit("ra1", checked.envelope.raw).status == "replay"


def test_a_batch_checked_before_its_gateway_key_was_rotated_is_refused(net: Net) -> None:
    gw = net.fig.gateways["site1"]
    checked = _checked(net, gw.batch(T0 - 60, {"m1": 5, "m2": 6}))
    # The gateway's key is replaced (same gateway id, new key) between check and write.
    rotated = SimGateway(Identity.generate(gw.name), "site1", gw.meters)
    _register(net, rotated)
    ledger = net.ledgers["ra1"]
    before = counters(ledger.db).get("refused:bad_signature", 0)
    outcome = net.admit("ra1", checked)
    assert (outcome.status, outcome.reason) == ("refused", "bad_signature")
    assert counters(ledger.db).get("refused:bad_signature", 0) == before + 1
    assert ledger.db.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 0


def test_a_batch_checked_before_its_gateway_was_replaced_is_refused(net: Net) -> None:
    gw = net.fig.gateways["site1"]
    checked = _checked(net, gw.batch(T0 - 60, {"m1": 5, "m2": 6}))
    # site1 gets another gateway: the old one's key is no longer registered at all.
    _register(net, SimGateway(Identity.generate("gw-site1b"), "site1", gw.meters))
    ledger = net.ledgers["ra1"]
    with ledger.transaction():
        outcome = ledger.admit(checked, "mqtt")
    assert (outcome.status, outcome.reason) == ("refused", "unknown_signer")
    assert ledger.db.execute("SELECT COUNT(*) FROM batches").fetchone()[0] == 0

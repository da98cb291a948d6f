"""Enrolment through real nodes and Mosquitto: a new gateway's request, published on its
enrolment topic, waits on RA(1)'s node; `mlg-node enrol` with a wrong code is refused and
registers nothing; with the code it registers the site (and the TSO keys it); the same
code is refused for a second gateway and for the first one again, registering nothing."""

from __future__ import annotations

import pytest

from ledger_node.localnet.wait import wait_until
from ledger_node.shared.keys import Identity
from ledger_node.wire import EnrolmentRequest
from ledger_node.wire.enrol import make_proof, new_code
from tests.support.sim import SimNet

pytestmark = pytest.mark.slow


def _request(gateway: str, site: str, code: str) -> tuple[str, bytes, bool]:
    gw = Identity.generate(gateway)
    ed, x = bytes(gw.signing_key.verify_key), bytes(gw.box_secret.public_key)
    message = EnrolmentRequest(
        gateway, site, ("m1", "m2"), ed, x, 1_800_000_000, make_proof(code, gateway, site, ed, x)
    )
    return (f"mlg/v1/enrol/{site}/{gateway}", message.seal(gw), True)


def _sites(fig7: SimNet, node: str) -> set[str]:
    return {s["site"] for s in fig7.net.get(node, "/api/registry")["sites"]}


def _waiting(fig7: SimNet) -> set[str]:
    return {r["gateway"] for r in fig7.net.get("ra1", "/api/enrolments")}


def test_a_request_is_approved_once_and_only_with_its_code(fig7: SimNet) -> None:
    code = new_code()
    before = _sites(fig7, "ra1")
    fig7.publish([_request("gw-site4", "site4", code)])
    wait_until(lambda: _waiting(fig7) == {"gw-site4"}, 20, "RA(1) holds the request")
    assert fig7.net.get("tso", "/api/enrolments") == []  # only an RA's node takes them

    wrong = new_code()
    done = fig7.net.cli("ra1", "enrol", "--gateway", "gw-site4", "--code", wrong)
    assert done.returncode == 1 and "is not the one gw-site4's request was made with" in done.stderr
    done = fig7.net.cli("ra1", "enrol", "--gateway", "gw-site4", "--code", "not-a-code")
    assert done.returncode == 1 and "an enrolment code is 16 characters" in done.stderr
    assert _sites(fig7, "ra1") == before and _waiting(fig7) == {"gw-site4"}

    done = fig7.net.cli("ra1", "enrol", "--gateway", "gw-site4", "--code", code.lower())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("site accepted as entry "), done.stdout
    assert _sites(fig7, "ra1") == before | {"site4"} and _waiting(fig7) == set()
    site4 = next(s for s in fig7.net.get("ra1", "/api/registry")["sites"] if s["site"] == "site4")
    assert (site4["ra"], site4["gateway"], site4["meters"]) == ("ra1", "gw-site4", ["m1", "m2"])
    wait_until(lambda: "site4" in _sites(fig7, "tso"), 20, "the TSO's node holds site4")

    # A second gateway whose request is bound to the same code (a copied image), and the
    # first gateway's request again: the code is spent.
    fig7.publish([_request("gw-site5", "site5", code), _request("gw-site4", "site4", code)])
    wait_until(lambda: _waiting(fig7) == {"gw-site4", "gw-site5"}, 20, "the two requests")
    for gateway in ("gw-site5", "gw-site4"):
        done = fig7.net.cli("ra1", "enrol", "--gateway", gateway, "--code", code)
        assert done.returncode == 1 and "this code already enrolled gw-site4" in done.stderr
    assert _sites(fig7, "ra1") == before | {"site4"}
    done = fig7.net.cli("ra1", "enrol", "--gateway", "gw-site9", "--code", code)
    assert done.returncode == 1 and "no enrolment request from 'gw-site9'" in done.stderr
    refused = fig7.status("ra1")["refused"]
    assert refused["enrol_wrong_code"] == 2 and refused["enrol_code_used"] == 2, refused
    log = fig7.net.log_path("ra1").read_text()
    assert "mlg.node.enrol WARNING enrolment refused (enrol_code_used)" in log
    assert code not in log and code.replace("-", "") not in log  # the code is never logged

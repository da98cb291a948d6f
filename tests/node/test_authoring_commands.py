"""The table of authoring commands against both ends that are made from it: every row's
CLI verb parses to that row and its API route answers, and each verb's request, sent by
`mlg-node` to a node's API, becomes a fact of the row's type on in-process ledgers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from ledger_node.interfaces import api, cli, commands
from ledger_node.ledger import author_epochs
from ledger_node.network import enrolments
from ledger_node.shared.keys import Identity
from ledger_node.wire import EnrolmentRequest
from ledger_node.wire.enrol import make_proof
from tests.node.conftest import T0, Org, post

# Each verb in an order the ledgers accept: who runs it, and its arguments besides -c.
STEPS = (
    ("tso", "org-add", ["--pub", "ra4.key.pub", "--role", "ra", "--ac", "ac1"]),
    ("ra1", "site", ["--site", "site9", "--gateway", "gw-site9.key.pub", "--meter", "m1"]),
    (
        "tso",
        "command",
        [
            *("--id", "c7", "--start", "2027-01-15T18:00:00+09:00", "--end", str(T0 + 9000)),
            *("--slot-s", "1800", "--gate-closure", str(T0 + 3600), "--price", "20"),
            *("--target", "ac1=500"),
        ],
    ),
    ("ra1", "declare", ["--command", "c7", "--site", "site9=400"]),
    ("ra1", "enrol", ["--gateway", "gw-site8", "--code", "K7QM-4ZTW-PX2D-9HVN"]),
    ("ra1", "as-report", ["--command", "c7", "--csv", "report.csv"]),
    ("tso", "site-move", ["--site", "site9", "--to", "ra4"]),
    ("tso", "shred", ["--site", "site9", "--epoch", "0"]),
    ("tso", "org-remove", ["--id", "ra4"]),
)


# The public names: the README's verbs and the routes the web screens and scripts use.
PUBLIC = {
    ("org-add", "/api/orgs"),
    ("org-remove", "/api/orgs/remove"),
    ("site", "/api/sites"),
    ("site-move", "/api/site-moves"),
    ("command", "/api/commands"),
    ("declare", "/api/declarations"),
    ("as-report", "/api/as-reports"),
    (None, "/api/as-reports"),
    ("shred", "/api/shred"),
    ("enrol", "/api/enrolments"),
}


def test_every_verb_parses_to_its_row_and_every_route_answers(orgs: dict[str, Org]) -> None:
    assert {(row.verb, row.route) for row in commands.COMMANDS} == PUBLIC
    samples = {verb: args for _, verb, args in STEPS}
    assert set(samples) == set(commands.VERBS)
    parser = cli._parser()
    for row in commands.COMMANDS:
        if row.verb is not None:
            args = parser.parse_args([row.verb, "-c", "node.toml", *samples[row.verb]])
            assert args.handler.args == (row,), row.verb
        listed = re.search(re.escape(row.route) + r"(?![\w/-])", api.__doc__ or "")
        assert listed, f"{row.route} is missing from the API's reference"
        # An empty body reaches the row's builder, which names what is missing.
        status, answer = post(orgs["tso"], row.route + "?command=c7", b"", row.content)
        assert (status, list(answer)) == (400, ["error"]), (row.route, row.content, answer)
    status, answer = post(orgs["tso"], "/api/no-such-command", b"{}", commands.JSON)
    assert (status, answer) == (404, {"error": "no such resource /api/no-such-command"})


def test_each_verb_sent_by_the_cli_becomes_its_rows_fact(
    orgs: dict[str, Org], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.csv").write_text(f"slot,kwh\n{T0 + 5400},0.25\n")
    for who, verb, args in STEPS:
        if verb == "enrol":  # gw-site8's request, bound to the code, has reached RA(1)'s node
            _enrolment_request(orgs["ra1"], "gw-site8", "K7QM-4ZTW-PX2D-9HVN")
        if verb == "shred":  # the TSO's node starts site9's (and site8's) first epoch first
            with orgs["tso"].ledger.transaction():
                keys = author_epochs(orgs["tso"].ledger)
                assert sorted((k.site, k.epoch) for k in keys) == [("site8", 0), ("site9", 0)]
        code = cli.main([verb, "-c", str(orgs[who].config), *args])
        out, err = capsys.readouterr()
        assert code == 0, f"{verb}: {err}"
        assert out.startswith(f"{commands.VERBS[verb].fact.TYPE} accepted as entry "), out
    # The JSON form of the AS report, which has no verb, through its route.
    body = {"command": "c7", "slots": [{"slot": T0 + 5400, "wh": 240}]}
    status, answer = post(orgs["ra1"], "/api/as-reports", json.dumps(body).encode(), commands.JSON)
    assert (status, answer["type"]) == (200, "as_report"), answer
    # A verb the ledger refuses exits 1 with the reason: an RA moves no site.
    code = cli.main(["site-move", "-c", str(orgs["ra1"].config), "--site", "site9", "--to", "ra1"])
    assert code == 1 and "refused (not_allowed)" in capsys.readouterr().err


def _enrolment_request(org: Org, gateway: str, code: str) -> None:
    """A new gateway's request for site8, bound to `code`, as the node keeps it."""
    gw = Identity.generate(gateway)
    ed, x = bytes(gw.signing_key.verify_key), bytes(gw.box_secret.public_key)
    proof = make_proof(code, gateway, "site8", ed, x)
    raw = EnrolmentRequest(gateway, "site8", ("m1",), ed, x, T0, proof).seal(gw)
    enrolments.ensure(org.ledger.db)
    assert enrolments.offer(org.ledger.db, "site8", gateway, raw, T0) == ""

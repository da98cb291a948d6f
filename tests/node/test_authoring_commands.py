"""The table of authoring commands against both ends that are made from it: every row's
CLI verb parses to that row and its API route answers, and each verb's request, sent by
`mlg-node` to a node's API, becomes a fact of the row's type on in-process ledgers."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from ledger_node.interfaces import api, cli, commands
from ledger_node.interfaces.api import Api, ApiServer
from ledger_node.ledger import Ledger, LedgerSettings, author_epochs
from ledger_node.ledger.store import connect
from ledger_node.network.genesis import make_genesis
from ledger_node.network.node import Node
from ledger_node.shared.clock import FixedClock
from ledger_node.shared.keys import Identity

T0 = 1_800_000_000
T = TypeVar("T")


class InProcessNode:
    """What the API asks of a node: its ledger, and `submit` running in a transaction.
    Facts it authors go to its peers' ledgers, as the node would publish them."""

    def __init__(self, ledger: Ledger, peers: list[Ledger]) -> None:
        self.ledger = ledger
        self.peers = peers

    def submit(self, fn: Callable[[], T]) -> T:
        with self.ledger.transaction() as changes:
            out = fn()
        for peer in self.peers:
            with peer.transaction():
                for _, raw in changes.authored:
                    peer.admit(raw, "mqtt", hold_unknown=True)
        return out


@dataclass
class Org:
    ledger: Ledger
    server: ApiServer
    config: Path


@pytest.fixture
def orgs(tmp_path: Path) -> Iterator[dict[str, Org]]:
    """The TSO and RA(1) (of AC(1)), each with a ledger and an API; RA(4)'s and a
    gateway's .pub files to register."""
    ids = {name: Identity.generate(name) for name in ("tso", "ac1", "ra1", "ra4", "gw-site9")}
    for name in ("ra4", "gw-site9"):
        ids[name].save(tmp_path / f"{name}.key")
    members = [(ids["ac1"].public, "ac", None), (ids["ra1"].public, "ra", "ac1")]
    genesis = make_genesis(ids["tso"], "net", members, t=T0 - 3600)
    clock = FixedClock(T0)
    ledgers = {}
    for name in ("tso", "ra1"):
        ledger = Ledger(connect(tmp_path / f"{name}.sqlite"), ids[name], clock, LedgerSettings())
        with ledger.transaction():
            ledger.start(genesis)
        ledgers[name] = ledger
    out = {}
    for name, ledger in ledgers.items():
        node = InProcessNode(ledger, [p for p in ledgers.values() if p is not ledger])
        db_path = tmp_path / f"{name}.sqlite"
        server = ApiServer(Api(db_path, name, cast(Node, node), clock.now), "127.0.0.1", 0)
        server.start()
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'[node]\nid = "{name}"\nkey = "{name}.key"\ngenesis = "genesis.mlg"\n'
            f'db = "{name}.sqlite"\n[api]\nlisten = "127.0.0.1:{server.port}"\n'
        )
        out[name] = Org(ledger, server, config)
    yield out
    for org in out.values():
        org.server.stop()
        org.ledger.db.close()


def _post(org: Org, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{org.server.port}{path}",
        data=body,
        method="POST",
        headers={"Content-Type": content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


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
        status, answer = _post(orgs["tso"], row.route + "?command=c7", b"", row.content)
        assert (status, list(answer)) == (400, ["error"]), (row.route, row.content, answer)
    status, answer = _post(orgs["tso"], "/api/no-such-command", b"{}", commands.JSON)
    assert (status, answer) == (404, {"error": "no such resource /api/no-such-command"})


def test_each_verb_sent_by_the_cli_becomes_its_rows_fact(
    orgs: dict[str, Org], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "report.csv").write_text(f"slot,kwh\n{T0 + 5400},0.25\n")
    for who, verb, args in STEPS:
        if verb == "shred":  # the TSO's node starts site9's first key epoch first
            with orgs["tso"].ledger.transaction():
                assert [k.epoch for k in author_epochs(orgs["tso"].ledger)] == [0]
        code = cli.main([verb, "-c", str(orgs[who].config), *args])
        out, err = capsys.readouterr()
        assert code == 0, f"{verb}: {err}"
        assert out.startswith(f"{commands.VERBS[verb].fact.TYPE} accepted as entry "), out
    # The JSON form of the AS report, which has no verb, through its route.
    body = {"command": "c7", "slots": [{"slot": T0 + 5400, "wh": 240}]}
    status, answer = _post(orgs["ra1"], "/api/as-reports", json.dumps(body).encode(), commands.JSON)
    assert (status, answer["type"]) == (200, "as_report"), answer
    # A verb the ledger refuses exits 1 with the reason: an RA moves no site.
    code = cli.main(["site-move", "-c", str(orgs["ra1"].config), "--site", "site9", "--to", "ra1"])
    assert code == 1 and "refused (not_allowed)" in capsys.readouterr().err

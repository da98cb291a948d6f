"""The node area's fixtures: figure 7's nodes as processes, fed by simulated gateways; and
in-process ledgers behind real web servers (`orgs`), for the API and its door."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from ledger_node.interfaces.api import Api
from ledger_node.interfaces.web import WebContext, WebServer
from ledger_node.interfaces.web.auth import Operators, ensure_token
from ledger_node.ledger import Ledger, LedgerSettings
from ledger_node.ledger.store import connect
from ledger_node.localnet.broker import Broker
from ledger_node.network.config import token_path
from ledger_node.network.genesis import make_genesis
from ledger_node.network.node import Node
from ledger_node.shared.clock import FixedClock
from ledger_node.shared.keys import Identity
from tests.support.sim import SimNet


@contextmanager
def fig7_nodes(work: Path, broker_port: int, **kw: Any) -> Iterator[SimNet]:
    """The TSO's, AC(1)'s and RA(1)'s nodes running (`LocalNet` options in `kw`), every
    site registered by its RA and every simulated gateway holding its epoch key."""
    sim = SimNet(work, broker_port, ("tso", "ac1", "ra1"), **kw)
    try:
        sim.net.start()
        sim.register()
        sim.take_epoch_keys(3)
        yield sim
    finally:
        sim.net.stop()


@pytest.fixture
def fig7(tmp_path: Path, broker: Broker) -> Iterator[SimNet]:
    with fig7_nodes(tmp_path, broker.port) as sim:
        yield sim


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
    server: WebServer
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
        ctx = WebContext(
            Api(db_path, name, cast(Node, node), clock.now),
            ensure_token(token_path(db_path)),
            Operators(tmp_path / f"{name}.web", 3600),
        )
        server = WebServer(ctx, "127.0.0.1", 0)
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


def post(
    org: Org, path: str, body: bytes, content_type: str, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """POST to `org`'s API with its token (unless `headers` say otherwise): status, JSON."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{org.server.port}{path}",
        data=body,
        method="POST",
        headers={
            "Content-Type": content_type,
            "Authorization": f"Bearer {org.server.ctx.token}",
            **(headers or {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())

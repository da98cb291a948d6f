"""The web area's fixtures: the paper's figure 6 on figure 7's node processes, an
operator per node; the browser (`browser`, `page`) is every area's (tests/conftest.py).

`fig6`: the TSO issues command c1 to AC(1) for five one-minute slots; RA(1) declares
site1 and RA(2) site2; the simulated gateways report AC(1)'s slot totals of the paper's
figure 6 (4, 3, 5, 10 and 2 kWh, a quarter per meter), site3 (AC(2)) reports too; RA(1)
and AC(1) submit AS reports equal to the ledger but in one slot each. Screenshots go to
`tests/artifacts/screens/` (git-ignored).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from ledger_node.localnet.wait import wait_until
from ledger_node.wire import DrDeclaration
from tests.conftest import SCREENS, mosquitto
from tests.support.sim import SimNet

NODES = ("tso", "ac1", "ra1")
FIG6_KWH = (4, 3, 5, 10, 2)
"""AC(1)'s totals per slot in the paper's figure 6 (kWh)."""
PASSWORD = "correct horse battery"
SLOT_S = 60


@dataclass
class Fig6:
    sim: SimNet
    command: str
    start: int
    slots: list[int]
    as_differs: dict[str, int]
    """Per AS report author, the slot where its report differs from the ledger."""

    def url(self, node: str, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.sim.net.api_port(node)}{path}"

    def login_link(self, node: str) -> str:
        link = self.sim.net.login_link(node, "operator")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/login/link\?token=[\w-]+", link), link
        return link

    def get(self, node: str, path: str) -> Any:
        return self.sim.net.get(node, path)


@pytest.fixture(scope="session")
def fig6(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fig6]:
    work = tmp_path_factory.mktemp("fig6")
    with mosquitto(work / "broker") as broker:
        sim = SimNet(work, broker.port, NODES, speed=30.0)
        try:
            sim.net.start()
            sim.register()
            sim.take_epoch_keys(3)
            for node in NODES:
                sim.net.add_operator(node, "operator", PASSWORD)
            yield _fig6(sim)
        finally:
            sim.net.stop()


def _fig6(sim: SimNet) -> Fig6:
    net = sim.net
    start = (int(sim.sim_now()) // SLOT_S + 2) * SLOT_S
    slots = [start + k * SLOT_S for k in range(len(FIG6_KWH))]
    net.post(
        "tso",
        "/api/commands",
        {
            "id": "c1",
            "start": start,
            "end": start + len(slots) * SLOT_S,
            "slot_s": SLOT_S,
            "gate_closure": start,
            "price_yen_per_kwh": 20,
            "targets": {"ac1": 2500},
        },
    )
    wait_until(lambda: net.get("ra1", "/api/commands"), 30, "c1 at RA(1)", alive=net.check_alive)
    net.post("ra1", "/api/declarations", {"command": "c1", "sites": {"site1": 3000}})
    net.publish_fact("ra2", DrDeclaration("ra2", "c1", 1, (("site2", (3000,)),)))
    wait_until(
        lambda: sim.sim_now() >= slots[-1] + SLOT_S, 60, "the window's end", alive=net.check_alive
    )
    quarter = {slot: kwh * 250 for slot, kwh in zip(slots, FIG6_KWH, strict=True)}
    sim.publish(
        [
            sim.batch(site, slot, {"m1": quarter[slot], "m2": quarter[slot]})
            for slot in slots
            for site in ("site1", "site2", "site3")
        ]
    )
    # AS reports: equal to the ledger but in one slot each (+100 Wh).
    differs = {"ra1": slots[1], "ac1": slots[3]}
    ra1 = {s: 2 * quarter[s] + (100 if s == differs["ra1"] else 0) for s in slots}
    ac1 = {s: 4 * quarter[s] + (100 if s == differs["ac1"] else 0) for s in slots}
    for org, report in (("ra1", ra1), ("ac1", ac1)):
        slots_wh = [{"slot": s, "wh": w} for s, w in report.items()]
        net.post(org, "/api/as-reports", {"command": "c1", "slots": slots_wh})

    def settled() -> bool:
        rows = net.get("tso", "/api/results?command=c1")["results"]
        return len(rows) == 3 * len(slots) and all(r["reported"] == r["declared"] for r in rows)

    wait_until(settled, 60, "c1 settled on the TSO's node", alive=net.check_alive)
    for node in ("ac1", "ra1"):
        wait_until(
            lambda n=node: net.get(n, "/api/results?command=c1")["results"],  # type: ignore[misc]
            60,
            f"c1 settled on {node}",
            alive=net.check_alive,
        )
    return Fig6(sim, "c1", start, slots, differs)


def shot(page: Page, name: str) -> Path:
    """A full-page screenshot of `page` as the test artefact `name`.png."""
    path = SCREENS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Page, fig6: Fig6, node: str) -> None:
    """Log in to `node`'s screens with a one-time link, as `mlg-demo` prints one."""
    page.goto(fig6.login_link(node))
    assert page.url.endswith("/"), page.url

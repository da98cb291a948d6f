"""What a network `mlg-net up` runs holds, read from outside as an operator would: its
clock, each node's slot totals, the slots every node holds, the emulators' ground truth
and each gateway's status. For the demo, `mlg-net status` and the tests."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from firmware.emulator.truth import read_truth
from gateway import status as gateway_status
from gateway.config import load_config as load_gateway_config
from ledger_node.localnet.net.run import CLOCK_FILE, Lab, api_get


def sim_now(out: Path) -> float:
    """The running network's clock (UTC s, accelerated as `lab/clock.json` says)."""
    clock = json.loads((out / CLOCK_FILE).read_text())
    origin = float(clock["origin"])
    return origin + (time.time() - origin) * float(clock["scale"])


def totals(out: Path, node: str) -> dict[tuple[str, int], int]:
    """`node`'s slot totals: Wh by (site, slot start in UTC s)."""
    return {(r["site"], r["slot"]): r["wh"] for r in api_get(out, node, "/api/totals")}


Totals = Callable[[str], dict[tuple[str, int], int]]
"""A node's slot totals by (site, slot), as `totals` reads them."""


def slots_in_common(held: Totals, reads: Mapping[str, Iterable[str]]) -> list[int]:
    """Slots that every node of `reads` holds (`held`) for every site it reads."""
    slots: set[int] | None = None
    for node, sites in reads.items():
        mine_all = held(node)
        for site in sites:
            mine = {slot for s, slot in mine_all if s == site}
            slots = mine if slots is None else slots & mine
    return sorted(slots or ())


def common_slots(lab: Lab) -> list[int]:
    """Slots that every node of the running network holds for every site it reads."""
    reads = {node: lab.topo.reads(node) for node in lab.topo.nodes}
    return slots_in_common(lambda node: totals(lab.out, node), reads)


def wait_for_common(
    common: Callable[[], list[int]],
    alive: Callable[[], object],
    count: int,
    budget_s: float,
    on_progress: Callable[[int], object] = lambda n: None,
) -> list[int]:
    """Wait up to `budget_s` until `common` gives `count` slots (told to `on_progress` as
    their number changes), `alive` raising when a part died; the slots it gave last."""
    deadline = time.monotonic() + budget_s
    seen = -1
    slots: list[int] = []
    while time.monotonic() < deadline:
        alive()
        try:
            slots = common()
        except OSError:
            slots = []
        if len(slots) != seen:
            seen = len(slots)
            on_progress(seen)
        if len(slots) >= count:
            return slots
        time.sleep(0.3)
    return slots


def slots_budget_s(count: int, slot_s: int, speed: float) -> float:
    """Real seconds to wait for `count` slots at every node: the unreported first slot
    and a slow machine allowed for."""
    return (count + 4) * slot_s / speed + 45


def wait_for_slots(
    lab: Lab, count: int, on_progress: Callable[[int], object] = lambda n: None
) -> list[int]:
    """Wait until every node holds `count` common slots; the slots held then, or when
    the time is up."""
    topo = lab.topo
    budget = slots_budget_s(count, topo.slot_s, topo.speed)
    return wait_for_common(lambda: common_slots(lab), lab.check_alive, count, budget, on_progress)


def read_truths(
    paths: Mapping[str, Path], slots: Iterable[int] = (), timeout_s: float = 10.0
) -> dict[tuple[str, int], float]:
    """The emulators' true energy per (site, slot), Wh, from each site's truth CSV.

    Waits (up to `timeout_s`) until every site's emulator has written each of `slots`:
    an emulator writes a slot's row shortly after the slot ends, which can be after the
    ledger has it.
    """
    wanted = {(site, slot) for site in paths for slot in slots}
    deadline = time.monotonic() + timeout_s
    while True:
        out: dict[tuple[str, int], float] = defaultdict(float)
        for site, path in paths.items():
            if path.exists():
                for row in read_truth(path):
                    out[(site, int(row["slot_start"]))] += float(row["energy_wh"])
        if wanted <= out.keys() or time.monotonic() > deadline:
            return dict(out)
        time.sleep(0.1)


def truth(
    lab: Lab, slots: Iterable[int] = (), timeout_s: float = 10.0
) -> dict[tuple[str, int], float]:
    """The running network's ground truth (`lab/truth-SITE.csv`), as `read_truths`."""
    paths = {site: lab.lab / f"truth-{site}.csv" for site in lab.topo.sites}
    return read_truths(paths, slots, timeout_s)


def gateway_doc(out: Path, site: str) -> dict[str, Any]:
    """What `mlg-gateway status --json` says of `site`'s gateway as `up` runs it."""
    doc: dict[str, Any] = gateway_status.collect(
        load_gateway_config(out / "lab" / f"gateway-{site}.toml")
    )
    return doc

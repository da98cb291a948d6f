"""A chain for a fault scenario: its own Mosquitto, emulated meters, real gateways and
ledger nodes as processes (`ledger_node.localnet.Chain`), a tap on the readings, the
scenario's figures, and the after-check at its end.

Sizes: each scenario runs at a fast size in `make test` and at its full size, marked
`soak`, in `make soak` (`sizes`)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from ledger_node.interfaces.api import totals
from ledger_node.ledger.store import connect
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.chain import Chain, Site
from ledger_node.localnet.network import LocalNet, terminate
from ledger_node.localnet.wait import wait_until
from tests.faults.invariants import Findings, after_check, settle
from tests.faults.tap import Tap

FIGURES = Path(__file__).parents[1] / "artifacts" / "fault-figures.txt"
"""Every scenario's figures, appended run after run (git-ignored)."""

SLOT_S = 60
SPEED = 30.0
"""Two seconds of wall time per 60 s slot."""


def sizes(fast: dict[str, Any] | None, full: dict[str, Any], timeout_s: int = 1500) -> Any:
    """`pytest.mark.parametrize` over the scenario's two sizes: `fast` (in `make test`;
    None: the scenario runs in `make soak` only, to keep `make test` within its time)
    and `full` (marked `soak`, with its own time bound)."""
    soak = pytest.param(full, id="soak", marks=[pytest.mark.soak, pytest.mark.timeout(timeout_s)])
    return pytest.mark.parametrize(
        "size", [soak] if fast is None else [pytest.param(fast, id="fast"), soak]
    )


def command_declared_by_ra1(
    net: LocalNet, command: str, start: int, end: int, target_wh: int, site1_wh: int
) -> None:
    """The TSO issues `command` (60 s slots, gate closure at `start`, 20 yen/kWh) to AC(1)
    for `target_wh` a slot through its node's API; RA(1) declares site1's baseline
    `site1_wh` through its own once the command reached it."""
    net.post(
        "tso",
        "/api/commands",
        {
            "id": command,
            "start": start,
            "end": end,
            "slot_s": SLOT_S,
            "gate_closure": start,
            "price_yen_per_kwh": 20,
            "targets": {"ac1": target_wh},
        },
    )
    wait_until(lambda: net.get("ra1", "/api/commands"), 30, "the command at RA(1)")
    net.post("ra1", "/api/declarations", {"command": command, "sites": {"site1": site1_wh}})


class Rig:
    """`sites` (default: one SDM120 site of RA(1)) behind `nodes`; readings are taken
    `late_after_s` after their slot (default ten slots, so that an outage of a few slots
    loses nothing to lateness)."""

    def __init__(
        self,
        work: Path,
        name: str,
        *,
        sites: dict[str, Site] | None = None,
        nodes: tuple[str, ...] = ("tso", "ra1"),
        late_after_s: int = 10 * SLOT_S,
        persistence: bool = False,
        speed: float = SPEED,
    ) -> None:
        self.work = work
        self.name = name
        self.t0 = time.monotonic()
        self.broker = Broker(work / "broker", persistence=persistence).start()
        sites = sites or {"site1": Site("ra1", "sdm120", "steps:1200,3600,2400")}
        self.chain = Chain(
            work, self.broker.port, SLOT_S, speed, sites, nodes, late_after_s=late_after_s
        )
        keys = {f"gw-{s}": i.signing_key.verify_key for s, i in self.chain.gateways.items()}
        self.tap = Tap(self.broker.port, keys)
        self.lines: list[str] = []

    @property
    def net(self) -> LocalNet:
        return self.chain.net

    @property
    def gateway_dbs(self) -> dict[str, Path]:
        return {
            f"gw-{site}": self.work / f"gateway-{site}" / "state.sqlite"
            for site in self.chain.sites
        }

    def start(self, gateway_args: dict[str, list[str]] | None = None) -> None:
        """Meters, nodes, the sites' registrations, then the gateways (with `gateway_args`
        per site)."""
        self.chain.start_emulators()
        self.chain.start_nodes()
        self.chain.register_sites()
        for site in self.chain.sites:
            self.chain.start_gateway(site, *(gateway_args or {}).get(site, []))

    def figure(self, text: str) -> None:
        """Print one of the scenario's figures (and keep it for the figures file)."""
        line = f"[{self.name}] {text}"
        self.lines.append(line)
        print(line, flush=True)

    def stop_gateways(self, sites: Iterable[str] | None = None) -> None:
        for site in sites or self.chain.sites:
            proc = self.chain.procs.pop(f"gateway-{site}", None)
            if proc is not None:
                terminate(proc, signal.SIGTERM)

    def finish(self, settle_s: float = 90, min_closed: int = 1) -> Findings:
        """The after-check: wait until the nodes hold (or refused) every batch stored so
        far, stop the gateways and nodes, verify each node and compare their digests.
        AssertionError with every problem found."""
        return check_after(
            self.net,
            self.gateway_dbs,
            self.tap,
            self.figure,
            settle_s=settle_s,
            min_closed=min_closed,
            alive=self.chain.check_alive,
            before_stop=self.stop_gateways,
        )

    def close(self) -> None:
        self.tap.close()
        self.chain.stop()
        self.broker.stop()
        keep_figures(self.lines)


def keep_figures(lines: list[str]) -> None:
    """Append a scenario's figures to `FIGURES`."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    with FIGURES.open("a") as out:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        out.writelines(f"{stamp} {line}\n" for line in lines)


def check_after(
    net: LocalNet,
    gateway_dbs: dict[str, Path],
    tap: Tap,
    figure: Callable[[str], None],
    *,
    settle_s: float = 90,
    min_closed: int = 1,
    below: dict[str, int] | None = None,
    alive: Callable[[], object] | None = None,
    before_stop: Callable[[], object] = lambda: None,
) -> Findings:
    """The after-check on a running network: wait until its nodes hold (or refused)
    every batch stored so far (or every seq under `below`), call `before_stop`, stop the
    nodes, verify each and compare their digests. AssertionError with every problem."""
    waited = time.monotonic()
    findings, below = settle(
        net, gateway_dbs, tap, settle_s, alive=alive, below=below, min_closed=min_closed
    )
    figure(f"settled in {time.monotonic() - waited:.1f} s: seqs below {below}")
    before_stop()
    net.stop()
    findings = after_check(net, gateway_dbs, tap, below, min_closed=min_closed)
    figure(findings.figures())
    assert not findings.problems, "\n".join(findings.problems[:40])
    return findings


def energy_against_truth(rig: Rig, node: str = "tso") -> tuple[int, int, float]:
    """`node`'s totals (read from its database, running or not) against the emulators'
    truth, per site over the unbroken run of slots it holds: (slots, exact slots, largest
    |difference| of the run's sum, Wh). AssertionError if a slot inside the run is
    missing, or a slot differs from the truth without a quality flag (silently). A slot
    estimated over a gap may split energy differently from the truth, but a run's sum
    telescopes to the meter's advance: it must equal the truth's."""
    db = connect(rig.net.db(node), readonly=True)
    try:
        rows = totals(db, None)
        held = {(r["site"], r["slot"]): r["wh"] for r in rows}
        flagged = {(r["site"], r["slot"]) for r in rows if r["flagged"]}
    finally:
        db.close()
    slots_n = exact = silent = 0
    worst = 0.0
    for site in rig.chain.sites:
        slots = sorted(slot for s, slot in held if s == site)
        assert slots, f"{node} holds no slot of {site}"
        run = list(range(slots[0], slots[-1] + SLOT_S, SLOT_S))
        assert slots == run, f"{site}: slots missing at {node}: {sorted(set(run) - set(slots))}"
        truth = rig.chain.truth(slots)
        run = [s for s in run if (site, s) in truth]
        slots_n += len(run)
        exact += sum(held[(site, s)] == truth[(site, s)] for s in run)
        for s in run:
            if held[(site, s)] != truth[(site, s)]:
                flag = "flagged" if (site, s) in flagged else "NOT FLAGGED"
                wh, true_wh = held[(site, s)], truth[(site, s)]
                rig.figure(f"{node} {site} slot {s}: {wh} Wh, truth {true_wh}, {flag}")
                silent += (site, s) not in flagged
        worst = max(worst, abs(sum(held[(site, s)] - truth[(site, s)] for s in run)))
    assert not silent, f"{silent} slots at {node} differ from the truth without a quality flag"
    return slots_n, exact, worst

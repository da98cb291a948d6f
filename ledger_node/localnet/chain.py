"""The whole chain on one machine, meter to ledger, as processes: an emulator per site (its
meter on a pseudo-terminal), a gateway per site, and the ledger nodes of `LocalNet`. For
the end-to-end tests, with their fault injection (nodes stopped and started, gateway
options, a TLS broker, metrics); the demo runs through `net.run.Lab`.

Each gateway takes its site group's epoch keys from the TSO's `EpochKey` facts (it holds
its slots until the first arrives), counts a batch as delivered once two of the nodes
(or the one node) have committed it (their high-water marks), and, at a site with DR
control, switches its adapter meter's relay for the windows its RA declared it for.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.emulator.wisun.dongle import DEFAULT_ID, DEFAULT_PASSWORD
from gateway.broute.credentials import Credentials, write_credentials
from gateway.config import BusConfig, ControlConfig
from gateway.config_file import MeterEntry, write_config
from gateway.config_wisun import WisunOptions
from ledger_node.localnet.net.probe import (
    read_truths,
    slots_budget_s,
    slots_in_common,
    wait_for_common,
)
from ledger_node.localnet.net.run import emulated_profile
from ledger_node.localnet.net.topology import Topology
from ledger_node.localnet.network import FIGURE_7, LocalNet, OrgSpec, terminate
from ledger_node.localnet.wait import wait_until
from ledger_node.shared.keys import Identity
from ledger_node.wire import GatewayKey, SiteRegistration

METER = "m1"
METER_UNIT = 1


@dataclass(frozen=True)
class Site:
    """A consumer site: its RA and its one meter.

    `model` is the emulated meter: `sdm120`, or `adapter` (the firmware counting the S0
    pulses of its load, with the DR relay the gateway switches). `profile` is a topology
    meter's (an emulator profile, or `slots:WH,…`: each slot's energy drawn in its middle
    half, pausing a quarter slot either side of every boundary: a pulse counter reads a
    boundary exactly only if no pulse falls between the polls around it, so the pause
    keeps the adapter's slot energies equal to the truth as long as the gateway's polls
    around a boundary are less than a quarter slot late). `dr_drop` is the fraction the
    load drops by while the relay is on.
    """

    ra: str
    model: str
    profile: str
    dr_drop: float = 0.0
    emulator_options: tuple[str, ...] = ()
    """More `mlg-emulator` options (for a `broute` meter: the dongle, its faults)."""
    dongle: str = "bp35c0"
    """For a `broute` meter (a B-route smart meter behind a Wi-SUN dongle): its dialect."""

    @property
    def controlled(self) -> bool:
        return self.model == "adapter"

    @property
    def broute(self) -> bool:
        return self.model == "broute"


def sites_of(topo: Topology) -> dict[str, Site]:
    """A topology's sites (one meter each) as `Chain` runs them: the demo's network
    (`net/demo.toml`) for the tests."""
    return {
        s.id: Site(s.ra, s.meters[0].model, s.meters[0].profile, s.meters[0].dr_drop)
        for s in topo.sites.values()
    }


class Chain:
    """Emulators, gateways and nodes as child processes in `work`, each logging to a file.

    `nodes` run as processes (the others sign their facts themselves); `sites` each get an
    emulator and a gateway. Readings are accepted until `late_after_s` after their slot
    (default two slots, so that slots close and the witnesses compare them quickly).
    """

    def __init__(
        self,
        work: Path,
        broker_port: int,
        slot_s: int,
        speed: float,
        sites: dict[str, Site],
        nodes: tuple[str, ...],
        orgs: tuple[OrgSpec, ...] = FIGURE_7,
        late_after_s: int | None = None,
    ) -> None:
        self.work = work
        self.slot_s = slot_s
        self.speed = speed
        self.sites = sites
        self.nodes = nodes
        self.broker_port = broker_port
        self.net = LocalNet(
            work,
            broker_port,
            orgs,
            nodes,
            speed=speed,
            late_after_s=2 * slot_s if late_after_s is None else late_after_s,
            checkpoint_every_s=1.0,
            sync_every_s=2.0,
            network="chain",
        )
        self.gateways: dict[str, Identity] = {}
        for site in sites:
            path = work / "keys" / f"gw-{site}.key"
            if not path.exists():
                Identity.generate(f"gw-{site}").save(path)
            self.gateways[site] = Identity.load(path)
            self._gateway_config(site)
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def quorum(self) -> int:
        """Nodes whose marks confirm a batch: two replicas when there are two or more."""
        return min(2, len(self.nodes))

    def reads(self, node: str) -> set[str]:
        """The sites `node` can decrypt: all for the TSO, its own for an RA, its RAs' for
        an AC (the brief's figure 7)."""
        orgs = self.net.orgs
        role = orgs[node].role
        return {
            site
            for site, s in self.sites.items()
            if role == "tso" or s.ra == node or orgs[s.ra].ac == node
        }

    def _gateway_config(self, site: str) -> None:
        spec = self.sites[site]
        write_config(
            self.gateway_config(site),
            gateway_id=f"gw-{site}",
            site=site,
            key_path=Path(f"keys/gw-{site}.key"),
            state_dir=Path(f"gateway-{site}"),
            slot_seconds=self.slot_s,
            tso=Path("keys/tso.key.pub"),
            ras=[Path(f"keys/{spec.ra}.key.pub")] if spec.controlled else [],
            confirm_nodes=[Path(f"keys/{n}.key.pub") for n in self.nodes],
            quorum=self.quorum,
            mqtt=self.net.mqtt_settings(f"gw-{site}"),
            buses=[self._bus(site)],
            meters=[
                MeterEntry(
                    METER,
                    METER_UNIT,
                    spec.model,
                    bus=self._bus(site).name,
                    poll_seconds=self._poll_s(spec),
                )
            ],
            control=ControlConfig(METER, coil=None, register=None) if spec.controlled else None,
        )

    def _poll_s(self, spec: Site) -> float:
        """1 s for a Modbus meter; for a B-route meter its 0xEA readings at 30-minute slots,
        else 0xE0 every 5 s at most."""
        if not spec.broute:
            return 1.0
        return float(self.slot_s if self.slot_s == 1800 else min(self.slot_s, 5))

    def _bus(self, site: str) -> BusConfig:
        """The site's line: RS-485 to its meter, or a Wi-SUN dongle to a B-route meter (the
        emulator's, with its test credentials)."""
        port = str(self.work / f"meter-{site}")
        spec = self.sites[site]
        if not spec.broute:
            return BusConfig("rs485-0", port=port, timeout_s=0.3)
        creds = self.work / "keys" / f"broute-{site}.toml"
        if not creds.exists():
            write_credentials(creds, Credentials(DEFAULT_ID, DEFAULT_PASSWORD))
        options = WisunOptions(creds, spec.dongle, answer_timeout_s=1.0, refused_retry_s=2.0)
        return BusConfig.for_wisun("wisun-0", port, options, timeout_s=1.0)

    def gateway_config(self, site: str) -> Path:
        return self.work / f"gateway-{site}.toml"

    # -- processes ---------------------------------------------------------------------------

    def start_process(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        with (self.work / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, *args, *self.net.clock_args],
                cwd=self.work,
                stdout=log,
                stderr=log,
            )
        self.procs[name] = proc
        return proc

    def start_emulators(self) -> None:
        for site, spec in self.sites.items():
            profile = emulated_profile(spec.profile, self.work / f"load-{site}.csv", self.slot_s)
            extra = ["--utc-offset-h", "0"] if spec.profile.startswith("slots:") else []
            if spec.dr_drop:
                extra += ["--dr-drop", str(spec.dr_drop)]
            if spec.model == "adapter":
                extra += ["--state-dir", str(self.work / f"adapter-{site}")]
            if spec.broute:
                extra += ["--dongle", spec.dongle, *spec.emulator_options]
            self.start_process(
                f"emulator-{site}",
                [
                    "-m",
                    "firmware.emulator.cli",
                    "--meter",
                    f"{METER_UNIT}:{spec.model}:{profile}",
                    "--link",
                    str(self.work / f"meter-{site}"),
                    "--truth",
                    f"truth-{site}.csv",
                    "--slot-seconds",
                    str(self.slot_s),
                    *extra,
                ],
            )
        for site in self.sites:
            device = self.work / f"meter-{site}"
            wait_until(device.exists, 10, "serial devices", alive=self.check_alive)

    def start_nodes(self) -> None:
        self.net.start()

    def start_gateway(self, site: str, *extra: str) -> None:
        """Start `site`'s gateway (`extra`: more options of `mlg-gateway run`)."""
        self.start_process(
            f"gateway-{site}",
            ["-m", "gateway.cli", "run", "-c", str(self.gateway_config(site)), *extra],
        )

    def start_gateways(self, extra: Mapping[str, Sequence[str]] | None = None) -> None:
        """Start every site's gateway (`extra`: a site's more `mlg-gateway run` options)."""
        for site in self.sites:
            self.start_gateway(site, *(extra or {}).get(site, ()))

    def start(self, extra: Mapping[str, Sequence[str]] | None = None) -> None:
        """The whole chain in order: meters, nodes, the sites' registrations, gateways."""
        self.start_emulators()
        self.start_nodes()
        self.register_sites()
        self.start_gateways(extra)

    def register_sites(self) -> None:
        """Each RA registers its site: through its node's API if it runs one, else signed
        by itself. Waits until every node holds the epoch keys of the sites it reads."""
        signed: Counter[str] = Counter()  # registry facts each RA without a node signed
        for site, spec in self.sites.items():
            gw = self.gateways[site].public
            if spec.ra in self.nodes:
                self.net.post(
                    spec.ra,
                    "/api/sites",
                    {"site": site, "gateway": gw.to_json(), "meters": [METER]},
                )
            else:
                key = GatewayKey(gw.name, bytes(gw.verify_key), bytes(gw.box_key))
                signed[spec.ra] += 1
                fact = SiteRegistration(spec.ra, signed[spec.ra], site, key, (METER,))
                self.net.publish_fact(spec.ra, fact)
        for node in self.nodes:
            wait_until(self._holds_keys(node), 60, f"{node}'s epoch keys", alive=self.check_alive)

    def _holds_keys(self, node: str) -> Callable[[], bool]:
        return lambda: (
            {g["site"] for g in self.net.get(node, "/api/status")["groups"]} == (self.reads(node))
        )

    def sim_now(self) -> float:
        """The chain's clock (UTC s, accelerated)."""
        return self.net.origin + (time.time() - self.net.origin) * self.speed

    def check_alive(self) -> None:
        self.net.check_alive()
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.work / f"{name}.log").read_text()[-1500:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            terminate(self.procs.pop(name), timeout_s=10)
        self.net.stop()

    # -- what the parts hold -----------------------------------------------------------------

    def totals(self, node: str) -> dict[tuple[str, int], int]:
        return {(r["site"], r["slot"]): r["wh"] for r in self.net.get(node, "/api/totals")}

    def common_slots(self) -> list[int]:
        """Slots that every node holds for every site it reads."""
        return slots_in_common(self.totals, {node: self.reads(node) for node in self.nodes})

    def wait_for_slots(
        self, count: int, on_progress: Callable[[int], None] = lambda n: None
    ) -> list[int]:
        """Wait until every node holds `count` common slots; the slots held then, or when
        the time is up."""
        budget = slots_budget_s(count, self.slot_s, self.speed)
        return wait_for_common(self.common_slots, self.check_alive, count, budget, on_progress)

    def truth(
        self, slots: Iterable[int] = (), timeout_s: float = 10.0
    ) -> dict[tuple[str, int], float]:
        """The emulators' true energy per (site, slot), Wh (`read_truths`)."""
        paths = {site: self.work / f"truth-{site}.csv" for site in self.sites}
        return read_truths(paths, slots, timeout_s)

    def gateway_status(self, site: str) -> dict[str, Any]:
        """What `mlg-gateway status --json` says of the site's gateway."""
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "gateway.cli",
                "status",
                "--json",
                "-c",
                str(self.gateway_config(site)),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if not done.stdout.strip():
            raise RuntimeError(f"mlg-gateway status failed: {done.stderr}")
        doc: dict[str, Any] = json.loads(done.stdout)
        return doc

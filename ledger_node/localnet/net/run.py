"""`mlg-net up`: a network's topology run on this machine, from the files `init` wrote.

Mosquitto on loopback at the topology's port; each organisation's node; per site an
emulator serving its lines on pseudo-terminals (`lab/meter-SITE-LINE`, its ground truth in
`lab/truth-SITE.csv`) and its gateway (`lab/gateway-SITE.toml`, the topology's gateway on
those lines); every process logging to `logs/NAME.log`, all on one clock (`--speed`,
written to `lab/clock.json` for the commands run beside it). Each site not yet in the
registry is registered by its RA: through its node, or, for an RA without one, signed
offline and published (`mlg-node sign site`, `mlg-node publish`). Stops everything on
SIGINT (Ctrl-C) or SIGTERM.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledger_node.interfaces.client import read_address
from ledger_node.localnet.broker import Broker
from ledger_node.localnet.net.files import gateway_config, node_config, tls_lines
from ledger_node.localnet.net.topology import Site, Topology
from ledger_node.localnet.network import terminate
from ledger_node.localnet.wait import wait_until
from ledger_node.network.config import api_addr_path, token_path
from ledger_node.shared.errors import MeterledgerError

CLOCK_FILE = "lab/clock.json"


def clock_args(out: Path) -> list[str]:
    """The running network's clock options (`--clock-scale`, `--clock-origin`)."""
    try:
        clock = json.loads((out / CLOCK_FILE).read_text())
    except OSError:
        return []
    return ["--clock-scale", repr(clock["scale"]), "--clock-origin", repr(clock["origin"])]


def node_api(out: Path, org: str) -> str:
    """The running node's API base URL (OSError or ValueError while it is not up)."""
    host, port = read_address(api_addr_path(out / org / f"{org}.sqlite"))
    return f"http://{host}:{port}"


def api_get(out: Path, org: str, path: str) -> Any:
    """GET `path` from `org`'s running node, as JSON."""
    with urllib.request.urlopen(node_api(out, org) + path, timeout=10) as response:  # noqa: S310
        return json.loads(response.read())


def api_post(out: Path, org: str, path: str, body: dict[str, Any]) -> Any:
    """POST `body` to `path` on `org`'s running node with its API token; the answer, as
    JSON (`urllib.error.HTTPError` on a refusal)."""
    token = token_path(out / org / f"{org}.sqlite").read_text().strip()
    request = urllib.request.Request(  # noqa: S310 (http only: node_api's own URL)
        node_api(out, org) + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return json.loads(response.read())


def write_slots_profile(path: Path, wh_per_slot: list[float], slot_s: int) -> Path:
    """A day of `seconds,watts` rows (UTC) drawing `wh_per_slot` in turn, one a slot, in
    the slot's middle half (nothing a quarter slot either side of each boundary)."""
    pause = slot_s / 4
    rows = ["0,0"]
    for i, start in enumerate(range(0, 86_400, slot_s)):
        watts = wh_per_slot[i % len(wh_per_slot)] * 3600 / (slot_s / 2)
        rows += [f"{start + pause:g},{watts:.10g}", f"{start + slot_s - pause:g},0"]
    path.write_text("\n".join(rows) + "\n")
    return path


def emulated_profile(profile: str, path: Path, slot_s: int) -> str:
    """The emulator's profile for a topology meter's: a `slots:WH,…` one written as a
    `csv:` day (UTC) at `path`, any other as it is."""
    if not profile.startswith("slots:"):
        return profile
    whs = [float(v) for v in profile.removeprefix("slots:").split(",")]
    return f"csv:{write_slots_profile(path, whs, slot_s).resolve()}"


class Lab:
    """The processes of a network run from `out` (what `init` wrote there)."""

    def __init__(
        self, topo: Topology, out: Path, broker: str = "mosquitto", tls: bool = False
    ) -> None:
        """`broker`: the one to start (`mosquitto`, or `amqtt`, which speaks MQTT 3.1.1
        only: the topology's protocol must say so). `tls`: Mosquitto runs the set-up
        `init` wrote in `broker/` (TLS, client certificates from its CA, its ACL) on
        loopback at the topology's port, and every part connects with its certificate."""
        missing = [
            p
            for p in [
                out / "genesis.mlg",
                *(out / "keys" / f"{i}.key" for i in topo.orgs),
                *(out / "keys" / f"{s.gateway}.key" for s in topo.sites.values()),
            ]
            if not p.exists()
        ]
        if tls:
            missing += [p for p in [out / "broker" / "mosquitto.conf"] if not p.exists()]
        if missing:
            raise MeterledgerError(
                f"{missing[0]} is missing: `up` runs a whole network from `mlg-net init`"
                " without --org (every key on this machine)"
            )
        self.topo = topo
        self.out = out
        self.lab = out / "lab"
        self.logs = out / "logs"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.tls = tls
        if tls and broker != "mosquitto":
            raise MeterledgerError("the TLS broker set-up is Mosquitto's")
        config = self.lab / "broker-tls.conf" if tls else None
        self.broker = Broker(self.lab / "broker", port=topo.port, config=config)
        self.prefer = broker
        self.clock: list[str] = []

    def _start(self, name: str, args: list[str]) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, *args, *self.clock], cwd=self.out, stdout=log, stderr=log
            )

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text()[-1500:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")

    def _emulator(self, site: Site) -> Path:
        """`site`'s emulator config: its lines on pseudo-terminals, its meters' loads."""
        lines = [
            "[emulator]",
            f"slot_seconds = {self.topo.slot_s}",
            f'truth = "truth-{site.id}.csv"',
            "utc_offset_h = 0",
            f'state_dir = "adapter-{site.id}"',
        ]
        for ln in site.lines:
            lines += ["", "[[line]]", f'name = "{ln.name}"', f'link = "meter-{site.id}-{ln.name}"']
            lines.append(f"baud = {ln.baud}")
            for m in (m for m in site.meters if m.line == ln.name):
                load = self.lab / f"load-{site.id}-{m.id}.csv"
                profile = emulated_profile(m.profile, load, self.topo.slot_s)
                lines += ["", "[[line.meter]]", f"unit = {m.unit}", f'model = "{m.model}"']
                lines += [f'profile = "{profile}"', f"dr_drop = {m.dr_drop}"]
        path = self.lab / f"emulator-{site.id}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def up(self, say: Callable[[str], object] = lambda step: None) -> None:
        """Start everything and register the sites, telling `say` each step done;
        `BrokerError`, `RuntimeError` or `TimeoutError` if a part does not come up."""
        for d in (self.lab, self.logs):
            d.mkdir(parents=True, exist_ok=True)
        origin = time.time()
        (self.out / CLOCK_FILE).write_text(json.dumps({"scale": self.topo.speed, "origin": origin}))
        self.clock = clock_args(self.out)
        if self.tls:
            self._tls_broker()
        self.broker.start(prefer=self.prefer)
        say("broker")
        for org in self.topo.nodes:
            node_toml = f"{org}/node.toml"
            if self.tls:  # beside node.toml: the same database, key and API
                node_toml = f"{org}/node-tls.toml"
                (self.out / node_toml).write_text(node_config(self.topo, org, tls=True))
            self._start(org, ["-m", "ledger_node.interfaces.cli", "run", "-c", node_toml])
        for site in self.topo.sites.values():
            config = self._emulator(site)
            self._start(f"emulator-{site.id}", ["-m", "firmware.emulator.cli", "-c", str(config)])
        for site in self.topo.sites.values():
            for ln in site.lines:
                link = self.lab / f"meter-{site.id}-{ln.name}"
                wait_until(link.exists, 20, f"{link}", alive=self.check_alive)
        for org in self.topo.nodes:
            wait_until(
                lambda o=org: api_get(self.out, o, "/api/log"),  # type: ignore[misc]
                60,
                f"{org}'s node",
                alive=self.check_alive,
            )
        say("nodes")
        self.register_sites()
        say("sites")
        for site in self.topo.sites.values():
            ports = {ln.name: str(self.lab / f"meter-{site.id}-{ln.name}") for ln in site.lines}
            config = self.lab / f"gateway-{site.id}.toml"
            gateway_config(self.topo, site, config, ports, root="../", tls=self.tls)
            self._start(f"gateway-{site.id}", ["-m", "gateway.cli", "run", "-c", str(config)])
        say("gateways")

    def mlg(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`mlg-node ARGS` in the network's folder (`stdin` its input); with `check`, a
        `RuntimeError` with its message when it fails."""
        done = subprocess.run(
            [sys.executable, "-m", "ledger_node.interfaces.cli", *args],
            cwd=self.out,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"mlg-node {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done

    def sign(self, org: str, verb: str, *args: str) -> Path:
        """`org` (which runs no node) signs a fact with its key offline (`mlg-node sign
        VERB ARGS`, its numbers read from its facts on the broker unless given); the
        envelope file."""
        signed = self.lab / f"{verb}-{org}.mlg"
        signed.unlink(missing_ok=True)
        key = ["--key", f"keys/{org}.key", "--out", str(signed)]
        self.mlg("sign", verb, *args, *key, "--mqtt", str(self._mqtt(org)))
        return signed

    def publish(self, org: str, signed: Path) -> None:
        """Publish `org`'s signed fact on the broker (`mlg-node publish`)."""
        self.mlg("publish", str(signed), "--mqtt", str(self._mqtt(org)))

    def _mqtt(self, org: str) -> Path:
        """How `org`'s offline commands reach the broker: an [mqtt] table."""
        path = self.lab / f"mqtt-{org}.toml"
        lines = ["[mqtt]", f'host = "{self.topo.host}"', f"port = {self.topo.port}"]
        lines.append(f'protocol = "{self.topo.protocol}"')
        path.write_text("\n".join(lines + (tls_lines(org, "../") if self.tls else [])) + "\n")
        return path

    def _tls_broker(self) -> None:
        """`init`'s broker configuration, listening on loopback at the topology's port and
        keeping its state in `lab/broker/`."""
        here = {
            "listener": f"listener {self.topo.port} 127.0.0.1",
            "persistence_location": f"persistence_location {self.lab / 'broker'}/",
        }
        lines = [
            here.get(line.split(" ", 1)[0], line)
            for line in (self.out / "broker" / "mosquitto.conf").read_text().splitlines()
        ]
        assert self.broker.config is not None
        self.broker.config.write_text("\n".join(lines) + "\n")

    def register_sites(self) -> None:
        """Each site not yet in the registry, by its RA: through the RA's node, or signed
        offline and published to the broker. Waits until each node holds the epoch keys
        of the sites it reads."""
        held = {s["site"] for s in api_get(self.out, self.topo.tso, "/api/registry")["sites"]}
        for site in self.topo.sites.values():
            if site.id in held:
                continue
            fact = ["--site", site.id, "--gateway", f"keys/{site.gateway}.key.pub"]
            for m in site.meters:
                fact += ["--meter", m.id]
            if self.topo.orgs[site.ra].node:
                self.mlg("site", "-c", f"{site.ra}/node.toml", *fact)
            else:
                self.publish(site.ra, self.sign(site.ra, "site", *fact))
        for org in self.topo.nodes:
            wanted = set(self.topo.reads(org))
            wait_until(
                lambda o=org, w=wanted: (
                    {  # type: ignore[misc]
                        g["site"] for g in api_get(self.out, o, "/api/status")["groups"]
                    }
                    == w
                ),
                60,
                f"{org}'s epoch keys",
                alive=self.check_alive,
            )

    def stop(self) -> None:
        for name in reversed(list(self.procs)):
            terminate(self.procs.pop(name), timeout_s=10)
        self.broker.stop()

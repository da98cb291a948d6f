"""A network's topology file (TOML), read and checked; errors name the key.

```toml
[network]
name = "paper"            # the genesis' network name
slot_seconds = 60         # the gateways' slot length
speed = 1.0               # `up`: time runs this much faster (a lab)
late_after_s = 3600       # the nodes' lateness limit

[broker]
host = "127.0.0.1"        # where nodes and gateways connect
port = 1883               # `up` starts Mosquitto here, on loopback
protocol = "5"            # the MQTT version nodes and gateways speak ("5" or "3.1.1")

[[org]]
id = "tso"
role = "tso"              # tso, ac or ra
node = true               # runs a ledger node (default true); without, it signs offline

[[org]]
id = "ra2"
role = "ra"
ac = "ac1"                # an RA's AC
node = false

[[site]]
id = "site2"
ra = "ra2"
[[site.line]]
name = "rs485-0"
port = "/dev/ttyUSB0"     # the real line on the gateway (`up` emulates it)
baud = 9600
[[site.meter]]
id = "m1"
line = "rs485-0"          # default: the site's first line
unit = 1
model = "sdm630"
profile = "slots:2000,1000"   # `up`: the emulator's load (below)
max_power_w = 700000      # the gateway's plausibility limit, if not the model's
dr_drop = 0.5             # `up`: the load drops by this while the DR relay is on
```

A meter's `profile` is the emulator's (`constant:W`, `steps:…`, `household:…`, `csv:…`)
or `slots:WH1,WH2,…`: each slot's energy (Wh), drawn in the middle half of the slot (no
load a quarter slot either side of each boundary, so every reading is exact), cycling
through the list from 00:00 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ledger_node.shared.config import Section, load_toml
from ledger_node.shared.errors import ConfigError
from ledger_node.shared.ids import ID_PATTERN
from ledger_node.shared.mqtt import PROTOCOLS
from ledger_node.wire import DEFAULT_SLOT_S

ROLES = ("tso", "ac", "ra")


@dataclass(frozen=True)
class Org:
    id: str
    role: str
    ac: str | None
    node: bool


@dataclass(frozen=True)
class Line:
    name: str
    port: str
    baud: int


@dataclass(frozen=True)
class Meter:
    id: str
    line: str
    unit: int
    model: str
    profile: str
    max_power_w: float | None
    dr_drop: float


@dataclass(frozen=True)
class Site:
    id: str
    ra: str
    lines: tuple[Line, ...]
    meters: tuple[Meter, ...]

    @property
    def gateway(self) -> str:
        return f"gw-{self.id}"


@dataclass(frozen=True)
class Topology:
    name: str
    slot_s: int
    speed: float
    late_after_s: int
    host: str
    port: int
    orgs: dict[str, Org]
    sites: dict[str, Site]
    protocol: str = "5"

    @property
    def tso(self) -> str:
        return next(o.id for o in self.orgs.values() if o.role == "tso")

    @property
    def nodes(self) -> tuple[str, ...]:
        return tuple(o.id for o in self.orgs.values() if o.node)

    def reads(self, org: str) -> list[str]:
        """The sites `org` reads: every one for the TSO, an AC its RAs', an RA its own."""
        role = self.orgs[org].role
        return [
            s.id
            for s in self.sites.values()
            if role == "tso" or s.ra == org or self.orgs[s.ra].ac == org
        ]


def _id(s: Section, key: str) -> str:
    value = s.get(key, str)
    if not ID_PATTERN.fullmatch(value):
        raise ConfigError(f"{s.where}.{key} = {value!r} must match {ID_PATTERN.pattern}")
    return value


def _org(s: Section) -> Org:
    org = Org(_id(s, "id"), s.get("role", str), s.optional("ac", str), s.get("node", bool, True))
    if org.role not in ROLES:
        raise ConfigError(f"{s.where}.role must be one of {', '.join(ROLES)}")
    if (org.role == "ra") != (org.ac is not None):
        raise ConfigError(f"{s.where}: an RA names its ac, and only an RA")
    s.check_unknown()
    return org


def _site(s: Section, orgs: dict[str, Org]) -> Site:
    site_id, ra = _id(s, "id"), s.get("ra", str)
    if orgs.get(ra, Org("", "", None, False)).role != "ra":
        raise ConfigError(f"{s.where}.ra = {ra!r} is no RA of the topology")
    lines = tuple(
        Line(_id(ln, "name"), ln.get("port", str, "/dev/ttyUSB0"), ln.get("baud", int, 9600))
        for ln in s.sections("line")
    ) or (Line("rs485-0", "/dev/ttyUSB0", 9600),)
    for ln in s.sections("line"):
        ln.check_unknown()
    meters = []
    for m in s.sections("meter"):
        meter = Meter(
            _id(m, "id"),
            m.get("line", str, lines[0].name),
            m.get("unit", int, 1),
            m.get("model", str, "sdm120"),
            m.get("profile", str, "constant:1000"),
            m.optional("max_power_w", float),
            m.get("dr_drop", float, 0.0),
        )
        if meter.line not in {ln.name for ln in lines}:
            raise ConfigError(f"{m.where}.line = {meter.line!r} names no line of {site_id}")
        m.check_unknown()
        meters.append(meter)
    if not meters:
        raise ConfigError(f"{s.where}: a site needs at least one [[site.meter]]")
    s.check_unknown()
    return Site(site_id, ra, lines, tuple(meters))


def load_topology(path: Path) -> Topology:
    """The topology in `path`; `ConfigError` naming the key for anything wrong."""
    root = Section(load_toml(path), "", path.parent)
    net = root.section("network", required=False)
    broker = root.section("broker", required=False)
    orgs: dict[str, Org] = {}
    for s in root.sections("org"):
        org = _org(s)
        if org.id in orgs:
            raise ConfigError(f"{s.where}.id = {org.id!r} twice")
        orgs[org.id] = org
    if [o.role for o in orgs.values()].count("tso") != 1:
        raise ConfigError("the topology needs exactly one [[org]] with role = 'tso'")
    for org in orgs.values():
        if org.ac is not None and orgs.get(org.ac, org).role != "ac":
            raise ConfigError(f"org {org.id}: ac = {org.ac!r} is no AC of the topology")
    sites: dict[str, Site] = {}
    for s in root.sections("site"):
        site = _site(s, orgs)
        if site.id in sites:
            raise ConfigError(f"{s.where}.id = {site.id!r} twice")
        sites[site.id] = site
    topo = Topology(
        name=net.get("name", str, "meterledger"),
        slot_s=net.get("slot_seconds", int, DEFAULT_SLOT_S),
        speed=net.get("speed", float, 1.0),
        late_after_s=net.get("late_after_s", int, 3600),
        host=broker.get("host", str, "127.0.0.1"),
        port=broker.get("port", int, 1883),
        orgs=orgs,
        sites=sites,
        protocol=broker.get("protocol", str, "5"),
    )
    if not 1 <= topo.slot_s <= 86_400 or 86_400 % topo.slot_s:
        raise ConfigError("network.slot_seconds must divide a day")
    if topo.protocol not in PROTOCOLS:
        raise ConfigError(f"broker.protocol must be one of {', '.join(sorted(PROTOCOLS))}")
    if topo.speed <= 0:
        raise ConfigError("network.speed must be positive")
    if not topo.orgs[topo.tso].node:
        raise ConfigError(f"org {topo.tso}: the TSO runs a node (it starts the key epochs)")
    net.check_unknown()
    broker.check_unknown()
    root.check_unknown()
    return topo

"""`mlg-net init`: a network's files from its topology, in one folder.

```
keys/ORG.key, .pub          each organisation's key (mode 0600); with --org X only X's,
                            the others' .pub copied from --pub DIR
keys/gw-SITE.key, .pub      each site's gateway key (for a lab; on a real gateway
                            `mlg-flash` has it made on the device)
genesis.mlg                 signed by the TSO: where its key is here
ORG/node.toml               each organisation with a node
gateway-SITE.toml           each site's gateway, on the topology's lines
broker.toml, broker/        `mlg-node broker-config`'s inventory and its production
                            set-up (CA, certificates, ACL, mosquitto.conf)
systemd/                    a unit per node and per gateway
```

Keys and the genesis are never overwritten: `init` again keeps them and rewrites the rest.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from gateway.config import BusConfig, ControlConfig
from gateway.config_file import MeterEntry, write_config
from ledger_node.interfaces.broker.config import load_inventory, write_all
from ledger_node.localnet.net.topology import Site, Topology
from ledger_node.network.genesis import make_genesis
from ledger_node.shared.errors import MeterledgerError
from ledger_node.shared.keys import Identity, load_public
from ledger_node.shared.mqtt import MqttSettings

NODE_UNIT = """\
# meterledger ledger node of {org}: install with
#   install -m 0644 mlg-node-{org}.service /etc/systemd/system/
#   systemctl daemon-reload && systemctl enable --now mlg-node-{org}
[Unit]
Description=meterledger ledger node of {org}
After=network-online.target time-sync.target
Wants=network-online.target

[Service]
Type=simple
User=mlg
Group=mlg
ExecStart=/usr/local/bin/mlg-node run -c /etc/meterledger/{org}/node.toml
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=always
RestartSec=5
StateDirectory=meterledger
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=/var/lib/meterledger /etc/meterledger/{org}
ProtectHome=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""


def client_tls(identity: str, root: str) -> tuple[Path, Path, Path]:
    """How `identity` connects to the broker set-up in `broker/` (`root`: the network's
    folder relative to the config): the project CA, its client certificate and key."""
    clients = f"{root}broker/clients/{identity}"
    return Path(f"{root}broker/ca/ca.pem"), Path(f"{clients}.pem"), Path(f"{clients}.key")


def tls_lines(identity: str, root: str) -> list[str]:
    """`client_tls` as the lines of an [mqtt] table."""
    keys = ("ca_file", "cert_file", "key_file")
    return [f'{k} = "{p}"' for k, p in zip(keys, client_tls(identity, root), strict=True)]


def node_config(topo: Topology, org: str, port: int | None = None, tls: bool = False) -> str:
    """`org`'s node.toml (paths relative to its folder; the API on a free loopback port,
    written beside its database); with `tls`, connecting with its client certificate
    from `broker/`."""
    return "\n".join(
        [
            "[node]",
            f'id = "{org}"',
            f'key = "../keys/{org}.key"',
            'genesis = "../genesis.mlg"',
            f'db = "{org}.sqlite"',
            f"late_after_s = {topo.late_after_s}",
            "checkpoint_every_s = 2.0",
            "sync_every_s = 2.0",
            "",
            "[mqtt]",
            f'host = "{topo.host}"',
            f"port = {topo.port if port is None else port}",
            f'protocol = "{topo.protocol}"',
            *(tls_lines(org, "../") if tls else []),
            "",
            "[api]",
            'listen = "127.0.0.1:0"',
            "",
        ]
    )


def gateway_config(
    topo: Topology,
    site: Site,
    path: Path,
    ports: dict[str, str] | None = None,
    root: str = "",
    tls: bool = False,
) -> Path:
    """`site`'s gateway config at `path`, `root` the network's folder relative to it: its
    lines' ports are the topology's, or `ports` (line → device, the emulators' for `up`);
    with `tls`, connecting with its client certificate from `broker/`."""
    controlled = [m for m in site.meters if m.model == "adapter"]
    ca, cert, key = client_tls(site.gateway, root) if tls else (None, None, None)
    nodes = topo.nodes
    return write_config(
        path,
        gateway_id=site.gateway,
        site=site.id,
        key_path=Path(f"{root}keys/{site.gateway}.key"),
        state_dir=Path(f"{root}state/{site.gateway}"),
        slot_seconds=topo.slot_s,
        tso=Path(f"{root}keys/{topo.tso}.key.pub"),
        ras=[Path(f"{root}keys/{site.ra}.key.pub")] if controlled else [],
        confirm_nodes=[Path(f"{root}keys/{n}.key.pub") for n in nodes],
        quorum=min(2, len(nodes)),
        mqtt=MqttSettings(
            host=topo.host,
            port=topo.port,
            client_id=site.gateway,
            keepalive_s=5,
            protocol=topo.protocol,
            ca_file=ca,
            cert_file=cert,
            key_file=key,
        ),
        buses=[
            BusConfig(ln.name, port=(ports or {}).get(ln.name, ln.port), baud=ln.baud)
            for ln in site.lines
        ],
        meters=[MeterEntry(m.id, m.unit, m.model, m.line, 1.0, m.max_power_w) for m in site.meters],
        control=ControlConfig(controlled[0].id, coil=None, register=None) if controlled else None,
    )


def _keys(out: Path, ids: Iterable[str], mine: set[str] | None, pubs: Path | None) -> list[str]:
    """Make the keys of `mine` (all of `ids` when None) and copy the others' .pub from
    `pubs`; what was done."""
    keys = out / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    done = []
    for ident in ids:
        path = keys / f"{ident}.key"
        pub = keys / f"{ident}.key.pub"
        if mine is None or ident in mine:
            if not path.exists():
                Identity.generate(ident).save(path)
                done.append(f"made {path} (mode 0600)")
        elif not pub.exists():
            given = None if pubs is None else pubs / f"{ident}.key.pub"
            if given is None or not given.exists():
                continue
            load_public(given)  # a bad file is refused here, not on the network
            shutil.copyfile(given, pub)
            done.append(f"took {ident}'s public key from {given}")
    return done


def init_network(topo: Topology, out: Path, org: str | None, pubs: Path | None) -> list[str]:
    """Write the network's files into `out` (for `org` alone when given); what was done."""
    if org is not None and org not in topo.orgs:
        raise MeterledgerError(f"--org {org}: no such organisation in the topology")
    gateways = [s.gateway for s in topo.sites.values()]
    if org is None:
        done = _keys(out, [*topo.orgs, *gateways], None, None)
    else:
        done = _keys(out, [*topo.orgs, *gateways], {org}, pubs)
    genesis = out / "genesis.mlg"
    missing = [o for o in topo.orgs if not (out / "keys" / f"{o}.key.pub").exists()]
    if not genesis.exists() and (org is None or org == topo.tso):
        if missing:
            raise MeterledgerError(
                f"the genesis needs every organisation's public key: {', '.join(missing)}"
                " missing (give --pub DIR with their ORG.key.pub files)"
            )
        tso = Identity.load(out / "keys" / f"{topo.tso}.key")
        members = [
            (load_public(out / "keys" / f"{o.id}.key.pub"), o.role, o.ac)
            for o in topo.orgs.values()
            if o.role != "tso"
        ]
        genesis.write_bytes(make_genesis(tso, topo.name, members))
        done.append(f"signed {genesis} as {topo.tso}")
    mine = [o for o in topo.nodes if org in (None, o)]
    units = out / "systemd"
    units.mkdir(exist_ok=True)
    for name in mine:
        (out / name).mkdir(exist_ok=True)
        (out / name / "node.toml").write_text(node_config(topo, name))
        (units / f"mlg-node-{name}.service").write_text(NODE_UNIT.format(org=name))
        done.append(f"wrote {out / name / 'node.toml'} and its unit")
    for site in topo.sites.values():
        if org in (None, topo.tso, site.ra):
            gateway_config(topo, site, out / f"gateway-{site.id}.toml")
            done.append(f"wrote {out / f'gateway-{site.id}.toml'}")
    if genesis.exists():
        done += _broker(topo, out)
    return done


def _broker(topo: Topology, out: Path) -> list[str]:
    """`mlg-node broker-config`'s inventory of the network, and its set-up in broker/."""
    lines = [
        "[broker]",
        'out = "broker"',
        f'names = ["{topo.host}"]',
        'listen = "0.0.0.0:8883"',
        'genesis = "genesis.mlg"',
        f"slot_seconds = {topo.slot_s}",
        "",
    ]
    for site in topo.sites.values():
        lines += ["[[gateway]]", f'id = "{site.gateway}"', f'site = "{site.id}"']
        lines += [f'ras = ["{site.ra}"]', ""]
    (out / "broker.toml").write_text("\n".join(lines))
    return [f"wrote {out / 'broker.toml'}", *write_all(load_inventory(out / "broker.toml"))]

"""A stream of readings batches from many simulated gateways, registered at RA(2), sealed
for groups the receiving node is not in (it keeps their ciphertext): for ingest tests and
benchmarks."""

from __future__ import annotations

from pathlib import Path

import nacl.utils

from ledger_node.localnet.network import FIGURE_7, LocalNet
from ledger_node.shared.keys import Identity
from ledger_node.wire import SiteRegistration
from tests.support.sim import SimGateway

Item = tuple[str, bytes, bool]
"""A message to publish: topic, payload, retained."""


def ingest_net(
    work: Path, port: int, database: str | None = None, checkpoint_every_s: float = 1.0
) -> LocalNet:
    """RA(1)'s node of figure 7 alone (a ciphertext-only node for RA(2)'s sites), taking
    readings for 30 days after their slot; on PostgreSQL at `database` if given."""
    return LocalNet(
        work,
        port,
        FIGURE_7,
        ("ra1",),
        late_after_s=30 * 86_400,
        checkpoint_every_s=checkpoint_every_s,
        sync_every_s=3600.0,
        databases={"ra1": database} if database else None,
    )


def sim_gateways(prefix: str, count: int, meters: int) -> list[SimGateway]:
    """`count` gateways of `meters` meters each, at sites `site-{prefix}{i}`."""
    names = tuple(f"m{i}" for i in range(meters))
    gateways = [
        SimGateway(Identity.generate(f"gw-{prefix}{i}"), f"site-{prefix}{i}", names)
        for i in range(count)
    ]
    for gw in gateways:
        gw.keys[0] = nacl.utils.random(32)  # sealed for groups the node is not in
    return gateways


def registrations(net: LocalNet, gateways: list[SimGateway]) -> list[Item]:
    """RA(2)'s retained registry facts for the gateways' sites, signed with its key."""
    return [
        (
            f"mlg/v1/facts/site/ra2/{n}",
            net.sign("ra2", SiteRegistration("ra2", n, gw.site, gw.gateway_key(), gw.meters)),
            True,
        )
        for n, gw in enumerate(gateways, start=1)
    ]


def batches(gateways: list[SimGateway], per_gateway: int, now: float) -> list[Item]:
    """`per_gateway` batches from each gateway, for the slots before `now` (UTC s), the
    gateways taking turns."""
    base = int(now) // 60 * 60 - 60
    out = []
    for k in range(per_gateway):
        for gw in gateways:
            topic = f"mlg/v1/readings/{gw.site}/{gw.name}"
            whs = {m: 10 + k % 50 for m in gw.meters}
            out.append((topic, gw.batch(base - 60 * k, whs), False))
    return out

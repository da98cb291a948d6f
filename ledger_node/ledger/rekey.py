"""Re-keying, on the TSO's node: a new epoch for every site whose privacy group changed
or whose newest epoch was shredded.

A site's group is {TSO, its AC, its RA} and its gateway; when the registry changes it (a
new site, a move to another RA, a member added or removed, a new gateway), the TSO signs
a new epoch key wrapped for the new group, so a removed member reads nothing newer. When
the newest epoch is shredded, a new one starts at once, so the site's readings go on.
"""

from __future__ import annotations

import logging

from ledger_node.ledger.admission import Ledger
from ledger_node.ledger.groups import make_epoch_key
from ledger_node.wire import EpochKey

log = logging.getLogger("mlg.node.groups")


def author_epochs(ledger: Ledger) -> list[EpochKey]:
    """As the TSO: start a new epoch for every site whose group differs from its latest
    epoch's, or whose latest epoch is shredded. Returns the keys authored (none on other
    nodes)."""
    registry, groups = ledger.registry, ledger.groups
    if registry.tso != ledger.me.name:
        return []
    made = []
    for site in sorted(registry.sites):
        members, gateway = registry.group(site)
        latest = groups.latest(site)
        if (
            latest is not None
            and (site, latest.epoch) not in groups.shredded
            and (latest.members, latest.gateway) == (members, gateway)
        ):
            continue
        epoch = 0 if latest is None else latest.epoch + 1
        while (site, epoch) in groups.shredded:
            epoch += 1
        key = make_epoch_key(ledger.me.name, site, epoch, members, gateway, registry)
        outcome = ledger.author(key)
        if outcome.ok:
            made.append(key)
            log.info("epoch %d of %s started for %s", epoch, site, ", ".join(members))
        else:
            log.error("could not start epoch %d of %s: %s", epoch, site, outcome.reason)
    return made

"""The ledger's rules, one per fact type: the table `RULES` says which function checks and
applies each type of fact (as `ledger_node.wire.messages` registers the message types).

A rule is given the ledger's state and the arrival of a fact whose envelope, signature and
schema already passed. It checks the fact against the registry and what is held, appends
it to the log and applies it to the derived tables, and returns its log position; or it
keeps it as evidence of an equivocation (None), or raises `Refused`, `Held` or `Replay`.
A rule raises before it changes anything, so a refused fact leaves no trace but its count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from ledger_node.ledger.arrival import Arrival
from ledger_node.ledger.rules.dr import as_report, command, declaration, load_command
from ledger_node.ledger.rules.epochs import epoch_key, epoch_shred, replay_shredded
from ledger_node.ledger.rules.readings import readings
from ledger_node.ledger.rules.registry_facts import genesis_elsewhere, registry_fact
from ledger_node.ledger.state import LedgerState
from ledger_node.wire import (
    AsReport,
    DrCommand,
    DrDeclaration,
    EpochKey,
    EpochShred,
    Genesis,
    OrgAdd,
    OrgRemove,
    ReadingsBatch,
    SiteMove,
    SiteRegistration,
)

Rule = Callable[[LedgerState, Arrival], int | None]

RULES: Mapping[str, Rule] = MappingProxyType(
    {
        Genesis.TYPE: genesis_elsewhere,
        OrgAdd.TYPE: registry_fact,
        OrgRemove.TYPE: registry_fact,
        SiteRegistration.TYPE: registry_fact,
        SiteMove.TYPE: registry_fact,
        ReadingsBatch.TYPE: readings,
        EpochKey.TYPE: epoch_key,
        EpochShred.TYPE: epoch_shred,
        DrCommand.TYPE: command,
        DrDeclaration.TYPE: declaration,
        AsReport.TYPE: as_report,
    }
)

LEDGER_TYPES = frozenset(RULES)
"""Types that are ledger facts (checkpoints, co-signatures, sync messages and high-water
marks are not: they travel between nodes and gateways and are not logged)."""

__all__ = ["LEDGER_TYPES", "RULES", "Rule", "load_command", "replay_shredded"]

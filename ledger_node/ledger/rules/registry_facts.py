"""Registry facts (org_add, org_remove, site, site_move): each applied in its author's `n`
order; the genesis only as the first entry of a log (`Ledger.start`)."""

from __future__ import annotations

from ledger_node.ledger.arrival import Arrival
from ledger_node.ledger.refusals import EQUIVOCATION, NOT_ALLOWED, Refused
from ledger_node.ledger.state import LedgerState


def registry_fact(state: LedgerState, a: Arrival) -> int | None:
    """An organisation or site fact, in sequence; the same `n` with other bytes is kept as
    evidence."""
    message = a.message
    state.registry.check_author(message.TYPE, message.author)
    n: int = message.n  # type: ignore[attr-defined]
    key = f"n:{n}"
    first = state.keyed(message.author, key)
    try:
        state.registry.check_sequence(message.author, n, first)
    except Refused as exc:
        if exc.reason == EQUIVOCATION and first is not None:
            state.equivocation(a, key, first)
            return None
        raise
    pos = state.append(a)
    state.registry.apply(message, pos)
    state.key(message.author, key, pos)
    state.changes.registry = True
    return pos


def genesis_elsewhere(state: LedgerState, a: Arrival) -> int | None:
    raise Refused(NOT_ALLOWED, "a genesis is only the first entry of a log")

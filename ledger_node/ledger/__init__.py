"""The ledger core: admit a signed fact, check it against the rules of its type, append it
to the Merkle log, apply it to the state derived from the log.

`admission` (the one way in), `registry` (organisations, roles, sites, groups), `groups`
(epoch keys), `refusals` (why a fact is not taken), `store` (the SQLite database),
`txlog` and `merkle` (the RFC 6962 log), `proofs` (inclusion and consistency proofs).

May import: `ledger_node.wire`, `ledger_node.shared`.
"""

from ledger_node.ledger.admission import Ledger, LedgerSettings, Outcome
from ledger_node.ledger.refusals import Held, Refused
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import connect, transaction
from ledger_node.ledger.txlog import MerkleLog

__all__ = [
    "Held",
    "Ledger",
    "LedgerSettings",
    "MerkleLog",
    "Outcome",
    "Refused",
    "Registry",
    "connect",
    "transaction",
]

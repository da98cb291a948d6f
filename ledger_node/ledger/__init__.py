"""The ledger core: admit a signed fact, check it against the rule of its type, append it
to the Merkle log, apply it to the state derived from the log.

`admission` (the one way in: `Ledger.admit`), `arrival` (a fact on its way in; what a
transaction changed), `rules` (the table of each fact type's rule, with its SQL), `state`
(what the rules work on), `pending` (facts held for a predecessor), `decrypt` (opening
the batches of this node's groups), `rekey` (the TSO's new epochs), `registry`
(organisations, roles, sites, groups), `groups` (epoch keys), `refusals` (why a fact is
not taken), `store` (the database: SQLite, or `pgstore`'s PostgreSQL through the same
`Db`), `txlog` and `merkle` (the RFC 6962 log), `proofs` (inclusion and consistency
proofs), `retention` (old slots archived out of the log, their leaves kept).

May import: `ledger_node.wire`, `ledger_node.shared`; psycopg (only `pgstore`, and `store`
when it is installed).
"""

from ledger_node.ledger.admission import Ledger, Outcome
from ledger_node.ledger.arrival import Arrival, BatchInfo, Changes
from ledger_node.ledger.decrypt import open_sealed
from ledger_node.ledger.refusals import Held, Refused
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.rekey import author_epochs
from ledger_node.ledger.rules import LEDGER_TYPES, RULES, load_command
from ledger_node.ledger.state import LedgerSettings
from ledger_node.ledger.store import connect, transaction
from ledger_node.ledger.txlog import MerkleLog

__all__ = [
    "LEDGER_TYPES",
    "RULES",
    "Arrival",
    "BatchInfo",
    "Changes",
    "Held",
    "Ledger",
    "LedgerSettings",
    "MerkleLog",
    "Outcome",
    "Refused",
    "Registry",
    "author_epochs",
    "connect",
    "load_command",
    "open_sealed",
    "transaction",
]

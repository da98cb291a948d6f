"""The DR aggregation contract and its settlement on a node's data.

`dr1` is the contract itself, version ``dr-1``: a pure function from a command, its
declarations and the readings to per-slot results (with their Pedersen totals) and the
reward. `settlement` runs it on the node's database for the scopes this node can read,
stores and reads the results, reconciles AS reports and checks a published total from
public data alone.

May import: `ledger_node.ledger`, `ledger_node.wire`, `ledger_node.shared`.
"""

from ledger_node.contract.checks import TotalChecks, check_result
from ledger_node.contract.dr1 import CONTRACT_VERSION, CONTRACTS, TotalCheckError, settle
from ledger_node.contract.settlement import Settlement, reconcile, results, rewards

__all__ = [
    "CONTRACTS",
    "CONTRACT_VERSION",
    "Settlement",
    "TotalCheckError",
    "TotalChecks",
    "check_result",
    "reconcile",
    "results",
    "rewards",
    "settle",
]

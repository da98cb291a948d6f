"""What operators use: the `mlg-node` command line, the JSON API, status, verify, the
requests by which an organisation authors its facts, authoring without a node
(`offline`: sign a fact with the organisation's key, publish it), and retention
(`archive`: `mlg-node prune`, `archive-check`).

May import: `ledger_node.network` and every layer below it; never `gateway` or `firmware`.
"""

from ledger_node.interfaces.api import Api
from ledger_node.interfaces.status import gather, render
from ledger_node.interfaces.verify import verify

__all__ = ["Api", "gather", "render", "verify"]

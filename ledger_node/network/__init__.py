"""The running node and the network it belongs to.

`node` (MQTT in, one writer thread, MQTT out), `frontend` and `sequencer` (a node past one
machine: verifying front-ends queue readings in PostgreSQL, one elected sequencer admits
them), `bursts` (taking work in bursts, timers: what the two share), `witness`
(checkpoints and co-signatures),
`antientropy` (fetching missed facts from any peer), `marks` (high-water marks for the
gateways), `genesis` (the network's first fact), `config` (the node's TOML file) and
`retained` (one-shot broker clients for the commands that run without a node).

May import: `ledger_node.contract`, `ledger_node.ledger`, `ledger_node.wire`,
`ledger_node.shared`.
"""

from ledger_node.network.config import NodeConfig, load_config
from ledger_node.network.genesis import load_genesis, make_genesis
from ledger_node.network.node import Node

__all__ = ["Node", "NodeConfig", "load_config", "load_genesis", "make_genesis"]

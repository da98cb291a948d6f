"""Whole networks on one machine, for the demo, the tests and the lab.

`net` (`mlg-net`: a network from one topology file, its files and its processes),
`demo` (`mlg-demo`: the brief's figure 7, the topology `net/demo.toml` run through `net`,
and the seed paper's DR sequence on it, set out in `demo_scenario` and checked by
`demo_checks`), `chain` (the tests' network with fault injection: emulators and gateways
in front of `network`'s nodes), `network` (organisations' keys, the genesis and the nodes
as processes), `broker` (a Mosquitto or amqtt broker on loopback), `postgres` (a
throwaway PostgreSQL server in a folder of its own) and `wait`
(`wait_until`, the polling loop they and the tests share). In that order each imports
only those after it.

The one layer that may import `gateway` and `firmware`, besides every layer of
`ledger_node`; nothing imports it but the tests.
"""

from ledger_node.localnet.broker import Broker, BrokerError, find_mosquitto, free_port
from ledger_node.localnet.chain import Chain, Site
from ledger_node.localnet.network import LocalNet
from ledger_node.localnet.wait import wait_until

__all__ = [
    "Broker",
    "BrokerError",
    "Chain",
    "LocalNet",
    "Site",
    "find_mosquitto",
    "free_port",
    "wait_until",
]

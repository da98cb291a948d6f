"""Whole networks on one machine, for the demo, the tests and the lab.

`broker` (a Mosquitto or amqtt broker on loopback), `network` (organisations' keys, the
genesis and the nodes as processes), `chain` (emulators and gateways in front of them),
`demo` (`mlg-demo`: the brief's figure 7 through the seed paper's DR sequence, set out in
`demo_scenario` and checked by `demo_checks`) and `wait` (`wait_until`, the polling loop
they and the tests share).

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

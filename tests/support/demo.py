"""The demo's network (`ledger_node/localnet/net/demo.toml`) as the tests' `Chain` runs
it: its sites and the organisations that run nodes."""

from __future__ import annotations

from ledger_node.localnet.chain import sites_of
from ledger_node.localnet.demo_scenario import TOPOLOGY
from ledger_node.localnet.net.topology import load_topology

DEMO = load_topology(TOPOLOGY)
SITES = sites_of(DEMO)
NODES = DEMO.nodes

"""A production MQTT broker for a meterledger network: `mlg-node broker-config`.

`plan` (who reads and writes which topics, from `ledger_node.wire.topics`), `pki` (the
project CA and a certificate per identity, with the `cryptography` library) and `config`
(the inventory TOML, Mosquitto's configuration and ACL files).

May import: `ledger_node.network` (the nodes' packet limit, the genesis) and the layers
below it.
"""

from ledger_node.interfaces.broker.config import Inventory, load_inventory, write_all
from ledger_node.interfaces.broker.plan import Gateway, Plan, acl_text

__all__ = ["Gateway", "Inventory", "Plan", "acl_text", "load_inventory", "write_all"]

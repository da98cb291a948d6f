"""`mlg-net`: a network from one topology file (TOML: the organisations with their roles,
the sites with their RA, meters and lines, the broker).

`topology` (reading and checking the file), `files` (`init`: keys, genesis, node and
gateway configs, the broker's inventory and set-up, systemd units), `run` (`up`: broker,
nodes, emulators and gateways as processes, sites registered, a clean stop), `cli`
(`mlg-net init | up | status`).

Part of `ledger_node.localnet`: may import every layer of `ledger_node`, `gateway` and
`firmware`; `cli` → `run` → `files` → `topology`.
"""

"""`mlg-net`: a network from one topology file (TOML: the organisations with their roles,
the sites with their RA, meters and lines, the broker).

`topology` (reading and checking the file), `files` (`init`: keys, genesis, node and
gateway configs, the broker's inventory and set-up, systemd units), `run` (`up`: broker,
nodes, emulators and gateways as processes, sites registered, facts signed offline, a
clean stop), `probe` (what the running network holds: its clock, the nodes' totals, the
ground truth, the gateways' status), `cli` (`mlg-net init | up | status`). Two networks
ship: `paper.toml` (the seed paper's figures 6 and 7) and `demo.toml` (`mlg-demo`'s).

Part of `ledger_node.localnet`: may import every layer of `ledger_node`, `gateway` and
`firmware`; `cli` → `probe` → `run` → `files` → `topology`.
"""

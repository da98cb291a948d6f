"""meterledger gateway: poll meters on slot boundaries, seal each slot's readings for the
site's privacy group, sign them, keep them in a durable outbox and publish them over MQTT.

Data flow: config → meters (register tables, block plans) → bus (Modbus client) → poll
(slot boundaries) → timegate (polls wait for a trusted time) → slots (energy per slot) →
sealing (when a slot is due) → seal (encrypt, commit, sign) → outbox (SQLite) → publish
(MQTT). Beside it: timekeeping (the clock kept to the nodes' signed time), trust (signed
facts in), facts (epoch keys, DR commands and declarations), confirm (the nodes'
high-water marks), control (the DR relay), enrol, alarms, status, metrics, plain (the
opt-in local plain view: unsigned, for home automation); run wires it all, cli is
`mlg-gateway`. `config_file` writes the config file
that `config` reads (for local networks and tests).

May import: `ledger_node.wire` and `ledger_node.shared` only; within the package, each
module only those below it in the data flow (import-linter contracts in pyproject.toml).
"""

"""meterledger gateway: poll meters on slot boundaries, seal each slot's readings for the
site's privacy group, sign them, keep them in a durable outbox and publish them over MQTT.

Data flow: config → meters (register tables, block plans) → bus (Modbus client) → slots
(energy per slot) → seal (encrypt, commit, sign) → outbox (SQLite) → publish (MQTT).
`config_file` writes the config file that `config` reads (for local networks and tests).
"""

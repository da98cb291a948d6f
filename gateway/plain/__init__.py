"""The local plain view (opt-in, `[plain]`): the gateway's status, each meter's live values
and its last slot's energy as plain retained MQTT topics on the consumer's own broker, with
Home Assistant MQTT discovery. Unsigned and unencrypted, for the consumer's home automation;
beside the signed, encrypted path and never instead of it.

discovery: the Home Assistant discovery messages (pure); view: the connection and what it
publishes. May import the gateway's lower layers (config, meters, bus, slots) and
`ledger_node.shared`; the daemon (`gateway.run`) drives it.
"""

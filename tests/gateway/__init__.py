"""The gateway: config, register tables, slots, outbox, and the daemon against emulated
meters on pseudo-terminals and a real broker."""

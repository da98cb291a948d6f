"""Meters to ledgers end to end: emulators, gateways and nodes as processes on a real broker."""

"""The protocol and the shared layer: wire and node-fact vectors, Pedersen totals, key files."""

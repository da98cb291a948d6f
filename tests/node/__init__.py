"""The ledger node: its rules in process, the Merkle log, the DR contract, the authoring
table, and node processes on a real broker fed by simulated gateways."""

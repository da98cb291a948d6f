"""meterledger ledger node: verify, log, decrypt and total the readings of its privacy groups.

`ledger_node.wire` (and the crypto modules beside it) is the transaction format shared with
the gateway; nothing here imports `gateway`.
"""

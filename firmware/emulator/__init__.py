"""Host-only meter emulator (`mlg-emulator`): the firmware's Modbus slave served over
pseudo-terminals with RS-485 wire timing or over Modbus TCP, with Eastron models built from
the gateway's register tables, the adapter firmware itself, load profiles, DR response,
faults on demand and a ground-truth record of each meter's energy per slot; and (`wisun/`)
a Wi-SUN dongle with a B-route smart meter behind it.

May import: the board code beside it, `gateway.meters` (the register tables),
`gateway.broute.echonet` (the ECHONET Lite codec) and
`ledger_node.shared`/`ledger_node.wire`; never the node's other layers (import-linter).
Not part of the board image.
"""

"""Host-only meter emulator (`mlg-emulator`): the firmware's Modbus slave served over
pseudo-terminals with RS-485 wire timing or over Modbus TCP, with Eastron models built from
the gateway's register tables, the adapter firmware itself, load profiles, DR response,
faults on demand and a ground-truth record of each meter's energy per slot."""

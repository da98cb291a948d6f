"""Host-only meter emulator: the firmware's Modbus slave served over pseudo-terminals,
with meter models built from the gateway's register tables, load profiles, wire timing
and a ground-truth record of each meter's energy per slot."""

"""Host tools that put meterledger onto field devices (`mlg-flash`).

`gateway_image` (what a gateway's Raspberry Pi OS image gets: its config, trusted keys, a
one-time enrolment code, the first-boot hook and `firstboot.sh`, which makes the
gateway's keys on the device), `fat` (the image's FAT boot partition through mtools,
never mounted), `board` (the adapter firmware onto a MicroPython board through mpremote)
and `cli`.

It sits beside `firmware.emulator`, above `gateway`: it may import `gateway` (the config
it validates and writes), `ledger_node.wire` (the enrolment code) and
`ledger_node.shared`, and reads the board code as files (never imports it); nothing
imports it.
"""

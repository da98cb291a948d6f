"""Host tools that put meterledger onto field devices (`mlg-flash`).

`gateway_image` (what a gateway's Raspberry Pi OS image gets: its config, trusted keys, a
one-time enrolment code, the first-boot hook and `firstboot.sh`, which makes the
gateway's keys on the device), `fat` (the image's FAT boot partition through mtools,
never mounted), `mpy` (a MicroPython board's raw REPL through mpremote's library),
`board` (the adapter firmware and its settings onto a board through `mpy`) and `cli`.

It sits beside `firmware.emulator`, above `gateway`: it may import `gateway` (the config
it validates and writes), `ledger_node.wire` (the enrolment code) and
`ledger_node.shared`, and mpremote. It copies the board code as files; on the host it
imports of it only what checks its input the way the board will (`firmware.settings`'s
ranges, `firmware.pinmap`'s parser) and the firmware's `VERSION`. Nothing imports it.
"""

"""B-route: a Japanese low-voltage smart meter read over ECHONET Lite through a Wi-SUN
dongle on a serial port (SKSTACK IP text commands).

`echonet` encodes and decodes the ECHONET Lite frames and the smart meter's properties
(also used by the emulator); `skstack` drives the dongle (scan, PANA, UDP) in both the
BP35A1 and the BP35C0/C2 dialect; `credentials` reads the B-route ID and password from
their own 0600 file; `session` keeps a meter joined (re-authentication, rescan, back-off
after a refused password) and reads its properties; `poll` is the bus thread that turns
them into the gateway's samples: the meter's own 30-minute fixed-time readings (0xEA, its
INF notifications, the 0xE2 history to backfill) or 0xE0 polls for shorter slots.

May import: `gateway.config`, `gateway.errors`, `gateway.meters`, `gateway.slots` and the
shared layer of `ledger_node`; `gateway.run` and `gateway.cli` import it (import-linter).
"""

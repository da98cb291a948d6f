"""The emulator's B-route side: a Wi-SUN dongle (SKSTACK IP, BP35A1 or BP35C0 dialect) on
a pseudo-terminal with a low-voltage smart meter (ECHONET Lite object 0x028801) behind it.

`smartmeter` holds the meter's properties over a load profile (the same profiles, DR
windows and ground truth as the Modbus models); `dongle` is the dongle's command
interpreter with its faults; `line` serves it on a pseudo-terminal at the serial line's
speed with the radio's delay.

May import: `gateway.broute.echonet` (the frame codec both ends share), the emulator's
profiles, DR and line modules, and `ledger_node.shared`.
"""

# The board's pin map (hw/pico-adapter/pins.json) as the firmware reads it, and the
# errors for maps that would wire the board wrongly.
import json

import check

from firmware import pinmap

count = 0
pins = pinmap.load("pins.json")
check.eq((pins.uart_id, pins.tx, pins.rx, pins.de), (0, 0, 1, 2), "RS-485 UART pins")
check.eq((pins.s0, pins.s0_pull_up), (15, True), "S0 input")
check.eq((pins.relay, pins.relay_active_high, pins.led), (16, True, 25), "relay and LED")
count += 1

with open("pins.json") as f:
    good = json.load(f)


def refused(change, key):
    obj = json.loads(json.dumps(good))
    change(obj)
    try:
        pinmap.PinMap(obj)
    except pinmap.PinMapError as exc:
        check.true(str(exc).startswith(key), "error names %s: %s" % (key, exc))
        return
    raise AssertionError("accepted a pin map with a bad " + key)


refused(lambda o: o["uart"].update({"tx": 3}), "uart.tx")
refused(lambda o: o["uart"].update({"rx": 0}), "uart.rx")
refused(lambda o: o["uart"].update({"id": 2}), "uart.id")
refused(lambda o: o["s0"].update({"pin": 30}), "s0.pin")
refused(lambda o: o["s0"].update({"pull_up": 1}), "s0.pull_up")
refused(lambda o: o["relay"].update({"pin": 15}), "GPIO 15")
refused(lambda o: o.pop("led"), "led")
refused(lambda o: o["uart"].update({"de": True}), "uart.de")
count += 8
try:
    pinmap.parse("{not json")
    raise AssertionError("accepted a pin map that is not JSON")
except pinmap.PinMapError:
    count += 1

check.done("pinmap", count)

"""The board's pin map: which GPIO does what, read from `pins.json` (from `hw/`).

{"uart": {"id", "tx", "rx", "de"}, "s0": {"pin", "pull_up"},
 "relay": {"pin", "active_high"}, "led": {"pin"}}. `de` drives the RS-485 transceiver's
driver enable (and, tied to it, its inverted receiver enable).
"""

import json

from .compat import const

# RP2040 pins each UART's TX and RX can be routed to (datasheet, GPIO function table).
UART_PINS = {0: ((0, 12, 16, 28), (1, 13, 17, 29)), 1: ((4, 8, 20, 24), (5, 9, 21, 25))}
_N_GPIO = const(30)


class PinMapError(ValueError):
    """The pin map is malformed; the message names the key."""


class PinMap:
    def __init__(self, obj: dict) -> None:
        uart = _table(obj, "uart")
        self.uart_id = _int(uart, "uart.id", 0, 1)
        self.tx = _int(uart, "uart.tx", 0, _N_GPIO - 1)
        self.rx = _int(uart, "uart.rx", 0, _N_GPIO - 1)
        self.de = _int(uart, "uart.de", 0, _N_GPIO - 1)
        tx_ok, rx_ok = UART_PINS[self.uart_id]
        if self.tx not in tx_ok:
            raise PinMapError(
                "uart.tx: GPIO %d is not a TX pin of UART%d" % (self.tx, self.uart_id)
            )
        if self.rx not in rx_ok:
            raise PinMapError(
                "uart.rx: GPIO %d is not an RX pin of UART%d" % (self.rx, self.uart_id)
            )
        s0 = _table(obj, "s0")
        self.s0 = _int(s0, "s0.pin", 0, _N_GPIO - 1)
        self.s0_pull_up = _bool(s0, "s0.pull_up")
        relay = _table(obj, "relay")
        self.relay = _int(relay, "relay.pin", 0, _N_GPIO - 1)
        self.relay_active_high = _bool(relay, "relay.active_high")
        self.led = _int(_table(obj, "led"), "led.pin", 0, _N_GPIO - 1)
        used = [self.tx, self.rx, self.de, self.s0, self.relay, self.led]
        for pin in used:
            if used.count(pin) > 1:
                raise PinMapError("GPIO %d is used twice" % pin)


def parse(text: str) -> PinMap:
    try:
        obj = json.loads(text)
    except ValueError:
        raise PinMapError("pin map: not valid JSON") from None
    if not isinstance(obj, dict):
        raise PinMapError("pin map: not a JSON object")
    return PinMap(obj)


def load(path: str) -> PinMap:
    with open(path) as f:
        return parse(f.read())


def _table(obj: dict, key: str) -> dict:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise PinMapError(key + ": missing or not an object")
    return value


def _int(table: dict, key: str, low: int, high: int) -> int:
    value = table.get(key[key.find(".") + 1 :])
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise PinMapError("%s: must be an integer %d..%d" % (key, low, high))
    return value


def _bool(table: dict, key: str) -> bool:
    value = table.get(key[key.find(".") + 1 :])
    if not isinstance(value, bool):
        raise PinMapError(key + ": must be true or false")
    return value

"""The board: the only module that touches hardware (Raspberry Pi Pico, RP2040).

RS-485 through a half-duplex transceiver on a UART (driver enable on its own pin), the
S0 input on a GPIO interrupt, the DR relay, the LED, the watchdog and the ticks. Pin
numbers come from the pin map (`pinmap.py`, `hw/pico-adapter/pins.json`).
"""

import time

import machine
import micropython

from . import pinmap, ticks
from .compat import const

micropython.alloc_emergency_exception_buf(100)

_PARITY = const((None, 0, 1))  # settings index N, E, O → machine.UART's parity argument
_WATCHDOG_MS = const(8000)


class Board:
    def __init__(self, pins: pinmap.PinMap) -> None:
        self.pins = pins
        self._de = machine.Pin(pins.de, machine.Pin.OUT, value=0)
        self._relay = machine.Pin(pins.relay, machine.Pin.OUT, value=self._relay_level(False))
        self._led = machine.Pin(pins.led, machine.Pin.OUT, value=0)
        if pins.s0_pull_up:
            self._s0 = machine.Pin(pins.s0, machine.Pin.IN, machine.Pin.PULL_UP)
        else:  # an external pull-up only
            self._s0 = machine.Pin(pins.s0, machine.Pin.IN)
        self._uart = machine.UART(pins.uart_id)
        self._wdt = None
        # MicroPython's ticks are opaque: the logic gets their distance from boot, wrapped
        # to the same period, so only differences of them mean anything.
        self._boot_ms = time.ticks_ms()
        self._boot_us = time.ticks_us()

    # -- time ------------------------------------------------------------------------
    def ticks_ms(self) -> int:
        return ticks.wrap(time.ticks_diff(time.ticks_ms(), self._boot_ms))

    def ticks_us(self) -> int:
        return ticks.wrap(time.ticks_diff(time.ticks_us(), self._boot_us))

    # -- RS-485 ----------------------------------------------------------------------
    def open_line(self, baud: int, parity: int) -> None:
        """(Re)configure the UART: 8 data bits, `parity` 0 N / 1 E / 2 O, 1 stop bit."""
        self._uart.init(
            baudrate=baud,
            bits=8,
            parity=_PARITY[parity],
            stop=1,
            tx=machine.Pin(self.pins.tx),
            rx=machine.Pin(self.pins.rx),
            rxbuf=512,
            timeout=0,
        )

    def receive(self) -> bytes | None:
        """The bytes received since the last call, or None."""
        if not self._uart.any():
            return None
        return self._uart.read()

    def send(self, frame: bytes | memoryview) -> None:
        """Drive the bus, send `frame`, release the bus once its last stop bit is out."""
        self._de.value(1)
        self._led.value(1)
        self._uart.write(frame)
        while not self._uart.txdone():
            pass
        self._de.value(0)
        self._led.value(0)

    # -- S0, relay, watchdog ---------------------------------------------------------
    def watch_s0(self, edge) -> None:  # noqa: ANN001 (a bound method; no typing on the board)
        """Call `edge(now_ms, level)` on every S0 level change, in interrupt context."""
        pin = self._s0

        def handler(p: machine.Pin) -> None:
            edge(self.ticks_ms(), p.value())

        pin.irq(
            handler=handler, trigger=machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING, hard=True
        )

    def s0_level(self) -> int:
        return self._s0.value()

    def relay(self, on: bool) -> None:
        self._relay.value(self._relay_level(on))

    def _relay_level(self, on: bool) -> int:
        return 1 if on == self.pins.relay_active_high else 0

    def start_watchdog(self) -> None:
        self._wdt = machine.WDT(timeout=_WATCHDOG_MS)

    def feed_watchdog(self) -> None:
        if self._wdt is not None:
            self._wdt.feed()

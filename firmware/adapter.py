"""The meter adapter: an S0 pulse counter and a DR relay behind SDM120-compatible registers.

Input registers (function code 04), float32 high word first where the SDM120 has the
quantity and the adapter can honestly derive it, then the adapter's own past its map:

    0x000C  power          float32  W    mean over the last pulse interval
    0x0048  import_energy  float32  kWh  counted pulses
    0x0180  status         uint16        bits: see STATUS_BITS
    0x0182  flash_writes   uint32        counter writes since boot
    0x0184  bounces        uint32        S0 level changes rejected by the debounce
    0x0186  pulses         uint32        S0 pulses counted since boot

Holding registers (03, 06, 16), one word each: 0 unit id (1..247), 1 baud / 100,
2 parity (0 N, 1 E, 2 O), 3 pulses per kWh, 4 debounce (ms); 5-6 the energy in Wh
(uint32, high word first), read as counted, written (function 16, both words) to align
the count with the meter's display, never below the present count.
Coil 0 switches the DR relay (on = load shed).

`INPUT_MAP` is the same table as `gateway/meters/adapter.toml`; a test checks they agree.
"""

from . import counter_store, settings
from .compat import const
from .counter_store import CounterStore
from .pulses import PulseCounter
from .registers import COIL, HOLDING, ILLEGAL_VALUE, RegisterBank
from .settings import Settings

TYPE_CHECKING = False  # type checkers take it as true; MicroPython has no typing module
if TYPE_CHECKING:
    from collections.abc import Callable

POWER = const(0x000C)
IMPORT_ENERGY = const(0x0048)
STATUS = const(0x0180)
FLASH_WRITES = const(0x0182)
BOUNCES = const(0x0184)
PULSES = const(0x0186)
N_INPUT = const(0x0188)

# name, address, words, type, scale (register value × scale is Wh, W or a count)
INPUT_MAP = (
    ("power", POWER, 2, "float32", 1),
    ("import_energy", IMPORT_ENERGY, 2, "float32", 1000),
    ("status", STATUS, 1, "uint16", 1),
    ("flash_writes", FLASH_WRITES, 2, "uint32", 1),
    ("bounces", BOUNCES, 2, "uint32", 1),
    ("pulses", PULSES, 2, "uint32", 1),
)

H_UNIT = const(0)
H_BAUD = const(1)
H_PARITY = const(2)
H_PPK = const(3)
H_DEBOUNCE = const(4)
H_ENERGY = const(5)  # and 6
N_HOLDING = const(7)
HOLDING_SETTINGS = const(("unit", "baud", "parity", "pulses_per_kwh", "debounce_ms"))

DR_COIL = const(0)
RELAY_ON = const(0x0040)  # status bit

STATUS_BITS = (
    ("counter_missing", counter_store.MISSING),
    ("counter_corrupt", counter_store.CORRUPT),
    ("counter_resumed", counter_store.RESUMED),
    ("counter_write_failed", counter_store.WRITE_FAILED),
    ("settings_corrupt", settings.CORRUPT),
    ("settings_save_failed", settings.SAVE_FAILED),
    ("relay_on", RELAY_ON),
)

RESERVE_PULSES = const(20)
"""Headroom of each counter write: one flash write per ~18 pulses; after a power loss
the count resumes at most this many pulses high (status bit counter_resumed)."""
MARGIN_PULSES = const(2)
_UWH_PER_KWH = const(1_000_000_000)


class Adapter(RegisterBank):
    """The adapter's registers over its flash directory `state_dir`.

    `now_ms()` returns tick milliseconds (`time.ticks_ms` on the board); `relay(on)`
    switches the DR relay. `line_changed` is set when unit id, baud or parity were
    written: the caller applies them after the answer has gone out.
    """

    def __init__(
        self,
        state_dir: str,
        now_ms: "Callable[[], int]",
        relay: "Callable[[bool], None] | None" = None,
    ) -> None:
        super().__init__(N_INPUT, N_HOLDING, 1)
        self.now_ms = now_ms
        self.relay = relay
        self.settings = Settings(state_dir + "/settings.dat")
        self.settings.load()
        self.counter = PulseCounter(self.settings.get("debounce_ms"), now_ms())
        self.store = CounterStore(state_dir, 0, 0)
        self._set_pulse_value(self.settings.get("pulses_per_kwh"))
        self._base_uwh = self.store.load()
        self._base_pulses = 0
        self.line_changed = False
        self._show_settings()
        self.service(now_ms())

    # -- the count -------------------------------------------------------------------
    def energy_uwh(self) -> int:
        """Energy counted, µWh: exact for pulse values that divide 10**9 µWh."""
        return self._base_uwh + (self.counter.pulses - self._base_pulses) * self._uwh_per_pulse

    def service(self, now_ms: int) -> None:
        """Main-loop work: settle the S0 level and keep the stored ceiling above the count."""
        self.counter.poll(now_ms)
        for _ in range(8):  # more than one only after a burst of pulses
            if not self.store.maybe_save(self.energy_uwh(), now_ms):
                break

    def shutdown(self) -> None:
        """Store the exact count before a deliberate stop."""
        self.store.flush(self.energy_uwh())

    def status(self) -> int:
        relay = RELAY_ON if self.coils[DR_COIL] else 0
        return self.store.status | self.settings.status | relay

    def _set_pulse_value(self, ppk: int) -> None:
        self._uwh_per_pulse = _UWH_PER_KWH // ppk
        self.store.reserve = RESERVE_PULSES * self._uwh_per_pulse
        self.store.margin = MARGIN_PULSES * self._uwh_per_pulse

    def set_energy(self, uwh: int) -> bool:
        """Align the count with the meter's display (µWh); False, nothing changed, when
        that would take it backwards."""
        if uwh < self.energy_uwh():
            return False
        self._rebase(uwh)
        return True

    def _rebase(self, uwh: int) -> None:
        self._base_uwh = uwh
        self._base_pulses = self.counter.pulses
        self.store.rebase(uwh)

    # -- register bank hooks ---------------------------------------------------------
    def refresh(self) -> None:
        now = self.now_ms()
        self.service(now)
        ppk = self.settings.get("pulses_per_kwh")
        uwh = self.energy_uwh()
        self.set_float(POWER, self.counter.power_w(now, ppk))
        self.set_float(IMPORT_ENERGY, uwh / 1e9)
        self.set_uint(STATUS, self.status(), 1)
        self.set_uint(FLASH_WRITES, self.store.writes, 2)
        self.set_uint(BOUNCES, self.counter.bounces, 2)
        self.set_uint(PULSES, self.counter.pulses, 2)
        wh = uwh // 1_000_000
        self.set_holding(H_ENERGY, (wh >> 16) & 0xFFFF)
        self.set_holding(H_ENERGY + 1, wh & 0xFFFF)

    def check_holding(self, address: int, words: list) -> int:
        end = address + len(words)
        for i in range(len(words)):
            a = address + i
            if a < H_ENERGY:
                value = words[i] * 100 if a == H_BAUD else words[i]
                if not settings.valid(HOLDING_SETTINGS[a], value):
                    return ILLEGAL_VALUE
        if address <= H_ENERGY + 1 and end > H_ENERGY:
            if address > H_ENERGY or end < H_ENERGY + 2:
                return ILLEGAL_VALUE  # the energy is written whole
            i = H_ENERGY - address
            wh = (words[i] << 16) | words[i + 1]
            if wh * 1_000_000 < self.energy_uwh():
                return ILLEGAL_VALUE  # never backwards
        return 0

    def written(self, kind: int, address: int, count: int) -> None:
        if kind == COIL:
            if self.relay is not None:
                self.relay(bool(self.coils[DR_COIL]))
            return
        if kind != HOLDING:
            return
        for a in range(address, address + count):
            if a == H_ENERGY:
                wh = (self.get_holding(H_ENERGY) << 16) | self.get_holding(H_ENERGY + 1)
                self.set_energy(wh * 1_000_000)
            elif a < H_ENERGY:
                value = self.get_holding(a)
                name = HOLDING_SETTINGS[a]
                if a == H_BAUD:
                    value *= 100
                if value == self.settings.get(name):
                    continue
                if a == H_PPK:
                    uwh = self.energy_uwh()
                    self._set_pulse_value(value)
                    self._rebase(uwh)
                elif a == H_DEBOUNCE:
                    self.counter.debounce_ms = value
                else:
                    self.line_changed = True
                self.settings.update(name, value)

    def _show_settings(self) -> None:
        for i in range(len(HOLDING_SETTINGS)):
            value = self.settings.get(HOLDING_SETTINGS[i])
            self.set_holding(i, value // 100 if i == H_BAUD else value)

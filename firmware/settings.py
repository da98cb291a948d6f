"""The adapter's configuration on flash: Modbus unit id, line settings, S0 pulse value.

Stored as one sealed record (`records.py`), replaced atomically when a holding register
write changes it. A missing file means the defaults (first boot); a corrupt one means the
defaults too, with status bit `CORRUPT` set, never a silent reset.
"""

from . import records
from .compat import const

_MAGIC = const("MLS1")

# Status bits, as the adapter reports them.
CORRUPT = const(0x0010)  # the settings file failed its check; defaults in use
SAVE_FAILED = const(0x0020)  # a changed setting could not be stored; in use until reboot

_BAUDS = const((1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200))
PARITIES = ("N", "E", "O")  # index = the stored value and the holding register's

# name: (default, lowest, highest), in the order of the record and the holding registers.
_FIELDS = const(
    (
        ("unit", 1, 1, 247),
        ("baud", 9600, 1200, 115200),
        ("parity", 0, 0, 2),
        ("pulses_per_kwh", 1000, 1, 50000),
        ("debounce_ms", 10, 1, 30),
    )
)


def valid(name: str, value: int) -> bool:
    if name == "baud":
        return value in _BAUDS
    for field in _FIELDS:
        if field[0] == name:
            return field[2] <= value <= field[3]
    return False


class Settings:
    def __init__(self, path: str) -> None:
        self.path = path
        self.values = [f[1] for f in _FIELDS]
        self.status = 0

    def get(self, name: str) -> int:
        for i in range(len(_FIELDS)):
            if _FIELDS[i][0] == name:
                return self.values[i]
        raise KeyError(name)

    def load(self) -> None:
        data = records.read(self.path)
        if data is None:
            return
        rec = records.unseal(data, _MAGIC, len(_FIELDS))
        if rec is None or not all(valid(_FIELDS[i][0], rec[i]) for i in range(len(_FIELDS))):
            self.status |= CORRUPT
            return
        self.values = rec

    def update(self, name: str, value: int) -> bool:
        """Set and store one value; False (nothing changed) when it is out of range."""
        if not valid(name, value):
            return False
        for i in range(len(_FIELDS)):
            if _FIELDS[i][0] == name and self.values[i] != value:
                self.values[i] = value
                try:
                    self.save()
                    self.status &= ~SAVE_FAILED
                except OSError:
                    self.status |= SAVE_FAILED
        return True

    def save(self) -> None:
        """Store every value (replacing the file atomically); OSError when the flash
        refuses. `mlg-flash board` writes a board's settings with it."""
        records.write_atomic(self.path, records.seal(_MAGIC, self.values))

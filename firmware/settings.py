"""The adapter's configuration on flash: Modbus unit id, line settings, S0 pulse value.

Stored as one sealed record (`records.py`), replaced atomically when a holding register
write changes it. A missing file means the defaults (first boot); a corrupt one means the
defaults too, with status bit `CORRUPT` set, never a silent reset.
"""

from . import records

MAGIC = "MLS1"
CORRUPT = 0x0010  # status bit: the settings file failed its check; defaults in use
SAVE_FAILED = 0x0020  # status bit: a changed setting could not be stored; in use until reboot

BAUDS = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
PARITIES = ("N", "E", "O")  # index = the holding register's value

# name: (default, lowest, highest), in the order of the record and the holding registers.
FIELDS = (
    ("unit", 1, 1, 247),
    ("baud", 9600, 1200, 115200),
    ("parity", 0, 0, 2),
    ("pulses_per_kwh", 1000, 1, 50000),
    ("debounce_ms", 10, 1, 30),
)


def valid(name: str, value: int) -> bool:
    if name == "baud":
        return value in BAUDS
    for field in FIELDS:
        if field[0] == name:
            return field[2] <= value <= field[3]
    return False


class Settings:
    def __init__(self, path: str) -> None:
        self.path = path
        self.values = [f[1] for f in FIELDS]
        self.status = 0

    def get(self, name: str) -> int:
        for i in range(len(FIELDS)):
            if FIELDS[i][0] == name:
                return self.values[i]
        raise KeyError(name)

    def load(self) -> None:
        data = records.read(self.path)
        if data is None:
            return
        rec = records.unseal(data, MAGIC, len(FIELDS))
        if rec is None or not all(valid(FIELDS[i][0], rec[i]) for i in range(len(FIELDS))):
            self.status |= CORRUPT
            return
        self.values = rec

    def update(self, name: str, value: int) -> bool:
        """Set and store one value; False (nothing changed) when it is out of range."""
        if not valid(name, value):
            return False
        for i in range(len(FIELDS)):
            if FIELDS[i][0] == name and self.values[i] != value:
                self.values[i] = value
                try:
                    records.write_atomic(self.path, records.seal(MAGIC, self.values))
                    self.status &= ~SAVE_FAILED
                except OSError:
                    self.status |= SAVE_FAILED
        return True

"""The ground truth: each emulated meter's exact energy per slot, appended to a CSV.

This is the "aggregation system" side (AS values) that the ledger's totals are reconciled
against. A row is written once a slot has ended in the emulator's clock. For the Eastron
models it is the integral of the load; for the adapter, the whole S0 pulses of it, which
is what a correct adapter counts.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, TextIO


class _Metered(Protocol):
    @property
    def model_name(self) -> str: ...

    def energy_wh(self, t: float) -> float: ...


class MeterOnLine(Protocol):
    """What the record needs of a meter on a line (Modbus or Wi-SUN)."""

    @property
    def line(self) -> str: ...

    @property
    def unit(self) -> int: ...

    @property
    def meter(self) -> _Metered: ...


COLUMNS = (
    "unit",
    "model",
    "slot_start",
    "slot_start_utc",
    "slot_s",
    "energy_wh",
    "cumulative_start_wh",
    "cumulative_end_wh",
    "line",
)


class TruthRecorder:
    """Appends one row per meter and ended slot, from the slot the emulator started in."""

    def __init__(
        self, path: Path, meters: Sequence[MeterOnLine], slot_s: int, start: float
    ) -> None:
        self.meters = meters
        self.slot_s = slot_s
        self.next_slot = math.floor(start / slot_s) * slot_s
        new = not path.exists() or path.stat().st_size == 0
        self._file: TextIO = path.open("a", newline="")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(COLUMNS)
            self._file.flush()

    def record_until(self, now: float) -> int:
        """Write rows for every slot that ended by `now`; return how many slots."""
        written = 0
        while self.next_slot + self.slot_s <= now:
            start, end = self.next_slot, self.next_slot + self.slot_s
            stamp = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            for m in self.meters:
                e0, e1 = m.meter.energy_wh(start), m.meter.energy_wh(end)
                self._csv.writerow(
                    (
                        m.unit,
                        m.meter.model_name,
                        start,
                        stamp,
                        self.slot_s,
                        f"{e1 - e0:.6f}",
                        f"{e0:.6f}",
                        f"{e1:.6f}",
                        m.line,
                    )
                )
            self.next_slot = end
            written += 1
        if written:
            self._file.flush()
        return written

    def close(self) -> None:
        self._file.close()


def read_truth(path: Path) -> list[dict[str, str]]:
    """The rows of a ground-truth CSV as dicts (column name → text)."""
    with path.open(newline="") as f:
        return list(csv.DictReader(f))

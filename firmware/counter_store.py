"""The cumulative energy counter on flash: it never goes backwards, its writes are
bounded, each write is atomic, and a missing or corrupt copy is detected and reported.

Two copies (`counter0.dat`, `counter1.dat`) are written alternately, each a sealed record
`MLC1,seq,uwh,clean` (`records.py`) replaced atomically. A running adapter never stores
its exact count: it stores a ceiling `uwh` a reserve above it and writes the next one
just before the count reaches it, so the flash sees one write per reserve of energy
however often it is read. After a power loss the counter resumes from the ceiling: never
below what was counted, at most one reserve above it (status bit `RESUMED`). A clean stop
(`flush`) stores the exact count. Each ceiling is at most one reserve above the previous
copy's, so when one copy is missing or corrupt the other, plus one reserve, still bounds
every count that was ever reported.
"""

from . import records, ticks
from .compat import const

_MAGIC = const("MLC1")

# Status bits, as the adapter reports them.
MISSING = const(0x0001)  # a counter copy was missing at boot (on first boot: both)
CORRUPT = const(0x0002)  # a counter copy failed its check at boot; kept as counterN.dat.bad
RESUMED = const(0x0004)  # resumed from a ceiling after an unclean stop: up to one reserve high
WRITE_FAILED = const(0x0008)  # the last write to flash failed; retried every RETRY_MS

RETRY_MS = const(10_000)


class CounterStore:
    """Energy in µWh (integers). `reserve` is the headroom of each write; `margin` how
    close the count may come to the ceiling before the next write."""

    def __init__(self, directory: str, reserve_uwh: int, margin_uwh: int) -> None:
        self.paths = (directory + "/counter0.dat", directory + "/counter1.dat")
        self.reserve = reserve_uwh
        self.margin = margin_uwh
        self.seq = 0  # of the newest record written or read
        self.ceiling = 0  # the newest record's value
        self.status = 0
        self.writes = 0  # since boot
        self._failed_at = 0

    def load(self) -> int:
        """Read both copies; return the energy (µWh) to resume from and set `status`."""
        best = None
        bad = 0
        for i in (0, 1):
            path = self.paths[i]
            data = records.read(path)
            if data is None:
                continue
            rec = records.unseal(data, _MAGIC, 3)
            if rec is None or rec[0] < 1 or rec[1] < 0:
                bad += 1
                self._keep_bad(path)
            elif best is None or rec[0] > best[0]:
                best = rec
        if best is None:
            self.status |= CORRUPT if bad else MISSING
            return 0
        seq, uwh, clean = best
        self.seq = seq
        self.ceiling = uwh
        if bad:
            self.status |= CORRUPT
        elif seq > 1 and not records.exists(self.paths[(seq + 1) % 2]):
            self.status |= MISSING  # the older copy is gone: it may have been newer
        else:
            if not clean:
                self.status |= RESUMED
            return uwh
        # The lost copy may have been one write newer: its ceiling was at most one
        # reserve above this one. Store that bound before counting on from it.
        resume = uwh + self.reserve
        self._write(resume, 0)
        return resume

    def maybe_save(self, uwh: int, now_ms: int) -> bool:
        """Write the next ceiling when the count `uwh` comes within the margin of the
        stored one; True when a write happened."""
        if uwh + self.margin < self.ceiling:
            return False
        if self.status & WRITE_FAILED and ticks.diff(now_ms, self._failed_at) < RETRY_MS:
            return False
        base = uwh if uwh < self.ceiling else self.ceiling
        if not self._write(base + self.reserve, 0):
            self._failed_at = now_ms
            return False
        return True

    def rebase(self, uwh: int) -> bool:
        """Store a count set by hand (or at a new pulse value) in both copies."""
        return self._write(uwh + self.reserve, 0) and self._write(uwh + self.reserve, 0)

    def flush(self, uwh: int) -> bool:
        """Store the exact count before a clean stop."""
        return self._write(uwh, 1)

    def _write(self, uwh: int, clean: int) -> bool:
        seq = self.seq + 1
        try:
            records.write_atomic(self.paths[seq % 2], records.seal(_MAGIC, [seq, uwh, clean]))
        except OSError:
            self.status |= WRITE_FAILED
            return False
        self.status &= ~WRITE_FAILED
        self.seq = seq
        self.ceiling = uwh
        self.writes += 1
        return True

    def _keep_bad(self, path: str) -> None:
        try:
            records.write_atomic(path + ".bad", records.read(path) or b"")
        except OSError:
            pass

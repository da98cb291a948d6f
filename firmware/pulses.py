"""S0 pulse counting (IEC 62053-31) with debounce, and power from the pulse interval.

The board calls `edge(now_ms, level)` from the pin interrupt on both edges (a hard IRQ:
this method allocates nothing) and `poll(now_ms)` from its main loop. A level counts
only once it has lasted `debounce_ms`; a pulse is the line going low (the meter's
output transistor closing) and staying low. Bounces shorter than `debounce_ms`, on
either edge, are ignored and counted in `bounces`. IEC 62053-31 pulses last at least
30 ms, so a debounce below that never rejects a real pulse.
"""

from . import ticks
from .compat import const

LOW = const(0)
HIGH = const(1)

MIN_DEBOUNCE_MS = const(1)
MAX_DEBOUNCE_MS = const(30)
_IDLE_POWER_MS = const(3_600_000)
"""No pulse for an hour: the power is reported as 0 W."""


class PulseCounter:
    def __init__(self, debounce_ms: int, now_ms: int, level: int = HIGH) -> None:
        self.debounce_ms = debounce_ms
        self.pulses = 0  # accepted pulses since boot
        self.bounces = 0  # level changes too short to count
        self.last_pulse_ms = 0  # when the last accepted pulse began
        self.interval_ms = 0  # between the last two accepted pulses; 0 until there are two
        self._stable = level
        self._raw = level
        self._raw_since = now_ms

    def edge(self, now_ms: int, level: int) -> None:
        """The pin changed to `level` at `now_ms` (interrupt context: no allocation)."""
        if level == self._raw:
            return
        if ticks.diff(now_ms, self._raw_since) >= self.debounce_ms:
            self._settle(self._raw, self._raw_since)
        else:
            self.bounces += 1
        self._raw = level
        self._raw_since = now_ms

    def poll(self, now_ms: int) -> None:
        """Accept the present level once it has lasted the debounce time; forget the pulse
        interval after an hour without pulses (before the tick difference could wrap)."""
        if ticks.diff(now_ms, self._raw_since) >= self.debounce_ms:
            self._settle(self._raw, self._raw_since)
        if self.interval_ms and ticks.diff(now_ms, self.last_pulse_ms) > _IDLE_POWER_MS:
            self.interval_ms = 0

    def _settle(self, level: int, since_ms: int) -> None:
        if level == self._stable:
            return
        self._stable = level
        if level == LOW:
            if self.pulses:
                gap = ticks.diff(since_ms, self.last_pulse_ms)
                self.interval_ms = gap if 0 < gap <= _IDLE_POWER_MS else 0
            self.pulses += 1
            self.last_pulse_ms = since_ms

    def power_w(self, now_ms: int, pulses_per_kwh: int) -> float:
        """Mean power over the last pulse interval, W; bounded by the time since the last
        pulse when that is longer (the load dropped), 0 after an hour without pulses."""
        if self.interval_ms <= 0:
            return 0.0
        since = ticks.diff(now_ms, self.last_pulse_ms)
        if since > _IDLE_POWER_MS:
            return 0.0
        span = since if since > self.interval_ms else self.interval_ms
        # One pulse is 1000 / ppk Wh; W = Wh * 3600 s/h / (span_ms / 1000 ms/s).
        return 3_600_000_000 / (pulses_per_kwh * span)

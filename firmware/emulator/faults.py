"""Faults on demand: each kind at a configured rate per request, each counted.

For every request a meter would answer, at most one fault is drawn: `crc` (the answer's
CRC is wrong), `silent` (no answer), `exception` (an exception response, code 04 by
default), `slow` (the answer comes `slow_s` late), `garbage` (noise bytes on the line
before the answer), `jump` (the energy registers read far too high, for that answer
only), `reset` (the energy counter restarts from zero, for good).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

KINDS = ("crc", "silent", "exception", "slow", "garbage", "jump", "reset")
VALUE_KINDS = ("jump", "reset")
"""Faults in the meter's values rather than on the line (Eastron models only)."""


@dataclass(frozen=True)
class FaultRates:
    """Probability of each kind per request (their sum at most 1) and their parameters."""

    rates: Mapping[str, float] = field(default_factory=dict)
    exception_code: int = 4
    slow_s: float = 1.0
    jump_wh: float = 10_000_000.0
    garbage_bytes: int = 8

    def __post_init__(self) -> None:
        for kind, rate in self.rates.items():
            if kind not in KINDS:
                raise ValueError(f"unknown fault {kind!r}; known: {', '.join(KINDS)}")
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault {kind}: rate must be between 0 and 1, not {rate}")
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError("fault rates add up to more than 1")
        if not 1 <= self.exception_code <= 255:
            raise ValueError("fault exception_code must be 1..255")
        if self.slow_s < 0 or self.jump_wh <= 0 or not 1 <= self.garbage_bytes <= 64:
            raise ValueError("fault slow_s >= 0, jump_wh > 0 and garbage_bytes 1..64")

    @property
    def any(self) -> bool:
        return any(rate > 0 for rate in self.rates.values())


class Faults:
    """Draws the fault (or none) for each request; `counts` says how many of each."""

    def __init__(self, rates: FaultRates, rng: random.Random) -> None:
        self.rates = rates
        self.rng = rng
        self.counts = dict.fromkeys(KINDS, 0)

    def draw(self) -> str | None:
        u = self.rng.random()
        for kind in KINDS:
            rate = self.rates.rates.get(kind, 0.0)
            if u < rate:
                self.counts[kind] += 1
                return kind
            u -= rate
        return None

    def noise(self) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(self.rates.garbage_bytes))

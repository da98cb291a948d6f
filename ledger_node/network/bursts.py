"""What a node's worker and a front-end share: taking what has arrived in bursts, and
doing background work every so often."""

from __future__ import annotations

import queue
import time
from typing import TypeVar

T = TypeVar("T")


def take_burst(inbox: queue.Queue[T], limit: int, timeout_s: float) -> list[T]:
    """Wait up to `timeout_s` seconds for one item, then take what else has arrived, up to
    `limit` in all; [] if nothing came."""
    try:
        items = [inbox.get(timeout=timeout_s)]
    except queue.Empty:
        return []
    while len(items) < limit:
        try:
            items.append(inbox.get_nowait())
        except queue.Empty:
            break
    return items


class Timers:
    """Named intervals on the monotonic clock: `due(name, s)` is True at most once every
    `s` seconds (and the first time it is asked)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def due(self, name: str, seconds: float) -> bool:
        now = time.monotonic()
        if now - self._last.get(name, -float("inf")) < seconds:
            return False
        self._last[name] = now
        return True

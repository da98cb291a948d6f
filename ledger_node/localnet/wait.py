"""Waiting until a condition holds: the one polling loop of the local networks, the demo
and the tests; and serving a running network until Ctrl-C."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

NOT_YET = (OSError, ValueError, KeyError, AssertionError)
"""What a check raises while the parts it looks at are still coming up: an API not
listening yet, a file half written, a key or an assertion not true yet."""


def wait_until(
    check: Callable[[], T],
    timeout_s: float,
    what: str,
    *,
    alive: Callable[[], object] | None = None,
    step: float = 0.2,
) -> T:
    """Call `check` every `step` s until it returns something truthy, and return that.

    A `NOT_YET` exception from `check` counts as not yet. `alive`, called before each
    try, raises when a process the wait depends on has exited. After `timeout_s`, a
    TimeoutError names `what` and the last exception.
    """
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            value = check()
        except NOT_YET as exc:
            last = exc
        else:
            if value:
                return value
        time.sleep(step)
    raise TimeoutError(f"waited {timeout_s} s for {what}" + (f" ({last!r})" if last else ""))


def serve_until_interrupted(check_alive: Callable[[], None], seconds: float | None = None) -> None:
    """Return on SIGINT (Ctrl-C) or SIGTERM (or after `seconds`); `check_alive` raises
    `RuntimeError` when a part of the network died on its own meanwhile."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while not stop.wait(1.0):
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                check_alive()
            except RuntimeError:
                if stop.wait(1.0):  # Ctrl-C in a terminal reaches the parts too
                    break
                raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

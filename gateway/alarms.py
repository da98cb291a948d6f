"""The gateway's standing alarms: name → what is wrong, in words.

An alarm is logged (`mlg.gateway`, ERROR) when raised and again every
`ALARM_LOG_EVERY_S` while it stands, so a log reader sees it without a flood; it is shown
by `status`, the status topic and the metrics until cleared.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("mlg.gateway")

ALARM_LOG_EVERY_S = 60.0
"""Real seconds between repeats of a standing alarm in the log."""


class Alarms(dict[str, str]):
    """The alarms standing now (a dict: name → text)."""

    def __init__(self) -> None:
        super().__init__()
        self._logged: dict[str, float] = {}

    def on(self, name: str, text: str) -> None:
        """Raise (or restate) alarm `name`."""
        self[name] = text
        last = self._logged.get(name)
        if last is None or time.monotonic() - last >= ALARM_LOG_EVERY_S:
            self._logged[name] = time.monotonic()
            log.error("ALARM %s: %s", name, text)

    def off(self, name: str) -> None:
        """Clear alarm `name` if it stands."""
        if self.pop(name, None) is not None:
            log.warning("alarm %s cleared", name)
        self._logged.pop(name, None)

    def lines(self) -> list[str]:
        return [f"{k}: {v}" for k, v in sorted(self.items())]

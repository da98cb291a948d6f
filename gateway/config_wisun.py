"""The options of a Wi-SUN `[[bus]]` (a B-route meter behind a dongle), validated.

kind = "wisun"
dongle = "bp35c0"          # bp35c0 (also BP35C2, RL7023 Stick-D/IPS) or bp35a1
credentials = "broute.toml" # the B-route ID and password, mode 0600
answer_timeout_s = 10      # how long to wait for the meter's answer (s)
refused_retry_s = 900      # real seconds between joins after a refused password
scan_duration = 6          # SKSCAN's duration exponent (6: ~18 s a scan)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gateway.errors import ConfigError
from ledger_node.shared.config import Section

DONGLES = ("bp35a1", "bp35c0")
WISUN_LINE_DEFAULTS: dict[str, float] = {"baud": 115200, "timeout_s": 5.0, "retries": 2}
"""A dongle's serial line: its baud rate, seconds per command, more sends of a request."""


@dataclass(frozen=True)
class WisunOptions:
    """The dongle's dialect, the credentials file, the meter's answer timeout (s), the real
    seconds to wait after a refused password, the scan's duration exponent."""

    credentials: Path
    dongle: str = "bp35c0"
    answer_timeout_s: float = 10.0
    refused_retry_s: float = 900.0
    scan_duration: int = 6


def wisun_from_section(b: Section) -> WisunOptions:
    d = WisunOptions(Path())
    options = WisunOptions(
        credentials=b.path("credentials"),
        dongle=b.get("dongle", str, d.dongle),
        answer_timeout_s=b.get("answer_timeout_s", float, d.answer_timeout_s),
        refused_retry_s=b.get("refused_retry_s", float, d.refused_retry_s),
        scan_duration=b.get("scan_duration", int, d.scan_duration),
    )
    if options.dongle not in DONGLES:
        raise ConfigError(f"{b.where}.dongle must be one of {DONGLES}")
    if not 0 < options.answer_timeout_s <= 60:
        raise ConfigError(f"{b.where}.answer_timeout_s must be in (0, 60] seconds")
    if not 0 < options.refused_retry_s <= 86_400:
        raise ConfigError(f"{b.where}.refused_retry_s must be in (0, 86400] seconds")
    if not 2 <= options.scan_duration <= 14:
        raise ConfigError(f"{b.where}.scan_duration must be 2..14")
    return options

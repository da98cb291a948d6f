"""`mlg-gateway scan` and `read` on a Wi-SUN bus: find the meter, read it once."""

from __future__ import annotations

import json
import math
import sys
import time

from gateway.broute.credentials import load_credentials
from gateway.broute.meter import BrouteMeter
from gateway.broute.session import BrouteSession
from gateway.broute.skstack import Dongle
from gateway.config import BusConfig

UNITS = {
    "import_energy": "Wh",
    "export_energy": "Wh",
    "power": "W",
    "current_r": "A",
    "current_t": "A",
    "fixed_energy": "Wh",
    "fixed_at": "UTC",
}


def _dongle(bus: BusConfig) -> Dongle:
    assert bus.wisun is not None
    return Dongle(bus.port, bus.baud, bus.wisun.dongle, bus.timeout_s)


def scan(bus: BusConfig, as_json: bool) -> bool:
    """Active scan with the bus's credentials; print the PAN found. True if one was."""
    assert bus.wisun is not None
    w = bus.wisun
    creds = load_credentials(w.credentials)
    dongle = _dongle(bus)
    print(
        f"scanning from {bus.port} ({w.dongle}, duration {w.scan_duration}):"
        f" up to {0.0096 * (2**w.scan_duration + 1) * 28:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    try:
        dongle.open()
        dongle.set_credentials(creds.rbid, creds.password)
        pan = dongle.scan(w.scan_duration)
        ip6 = dongle.link_local(pan.mac) if pan else ""
    finally:
        dongle.close()
    found = [] if pan is None else [{**pan.__dict__, "pan_id": f"{pan.pan_id:04X}", "ip6": ip6}]
    if as_json:
        print(json.dumps({"port": bus.port, "found": found}, indent=2))
    elif pan is None:
        print(f"no B-route meter answered on {bus.port}: move the dongle closer to the meter")
    else:
        print(
            f"meter {pan.mac} ({ip6}): channel {pan.channel}, PAN {pan.pan_id:04X}, LQI {pan.lqi}"
        )
    return pan is not None


def read(bus: BusConfig, as_json: bool) -> None:
    """Join the meter and print every reading once."""
    assert bus.wisun is not None
    w = bus.wisun
    session = BrouteSession(
        _dongle(bus),
        load_credentials(w.credentials),
        w.answer_timeout_s,
        bus.retries,
        w.scan_duration,
    )
    try:
        values = BrouteMeter(session).read_all()
    finally:
        session.close()
    if as_json:
        clean = {k: None if v is None or not math.isfinite(v) else v for k, v in values.items()}
        print(json.dumps({"model": "broute", "values": clean, "units": UNITS}, indent=2))
        return
    print(f"B-route meter via {bus.port} ({w.dongle})")
    print(f"{'reading':<16}{'value':>22}  unit")
    for name, value in values.items():
        if name == "fixed_at" and value is not None:
            shown = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))
        else:
            shown = "refused" if value is None else f"{value:,.3f}"
        print(f"{name:<16}{shown:>22}  {UNITS[name]}")

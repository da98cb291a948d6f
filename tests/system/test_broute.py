"""A B-route meter end to end: the emulated Wi-SUN dongle and smart meter on a pseudo-
terminal → the gateway → Mosquitto → ledger nodes, on a sped-up clock. The nodes' slot
totals equal the emulator's ground truth: exactly at 30-minute slots (the meter's own
0xEA readings), within the 1 Wh of a reading at 1-minute slots (0xE0 polls, interpolated
at the boundaries like a Modbus meter's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger_node.localnet.chain import Chain, Site
from tests.conftest import mosquitto

FINE = ("--broute-unit", "0x04", "--broute-digits", "8", "--radio-latency-ms", "0")
"""A meter counting 0.1 Wh (0xE1 = 0x04) on 8 digits, answering at once."""
PROFILE = "steps:1200,2400,840"
"""One level per slot, changing mid-slot; multiples of 120 W: every boundary of a 60 s or
1800 s slot falls on a whole Wh."""


def broute_chain(work: Path, port: int, slot_s: int, speed: float, dongle: str) -> Chain:
    sites = {"site1": Site("ra1", "broute", PROFILE, emulator_options=FINE, dongle=dongle)}
    return Chain(work, port, slot_s, speed, sites, ("tso", "ra1"), late_after_s=10 * slot_s)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("slot_s", "speed", "dongle", "tolerance_wh"),
    [(1800, 300.0, "bp35a1", 0), (60, 30.0, "bp35c0", 1)],
    ids=["30min-0xEA-bp35a1", "1min-0xE0-bp35c0"],
)
def test_slot_totals_equal_the_ground_truth(
    tmp_path: Path, slot_s: int, speed: float, dongle: str, tolerance_wh: int
) -> None:
    with mosquitto(tmp_path / "broker") as broker:
        chain = broute_chain(tmp_path, broker.port, slot_s, speed, dongle)
        try:
            chain.start_emulators()
            chain.start_nodes()
            chain.register_sites()
            chain.start_gateways()
            slots = chain.wait_for_slots(3)
            assert len(slots) >= 3, f"only {len(slots)} slots reached every node"
            truth = chain.truth(slots)
            for node in chain.nodes:
                totals = chain.totals(node)
                for slot in slots:
                    assert abs(totals[("site1", slot)] - truth[("site1", slot)]) <= tolerance_wh, (
                        node,
                        slot,
                        totals[("site1", slot)],
                        truth[("site1", slot)],
                    )
            status = chain.gateway_status("site1")
            assert not status["daemon"]["alarms"], status["daemon"]["alarms"]
        finally:
            chain.stop()

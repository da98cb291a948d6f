"""A B-route meter end to end: the emulated Wi-SUN dongle and smart meter on a pseudo-
terminal → the gateway → Mosquitto → ledger nodes, on a sped-up clock. The nodes' slot
totals equal the emulator's ground truth: exactly at 30-minute slots (the meter's own
0xEA readings), within the 1 Wh of a reading at 1-minute slots (0xE0 polls, interpolated
at the boundaries like a Modbus meter's)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from firmware.emulator.wisun.dongle import DEFAULT_ID
from gateway.broute.credentials import Credentials, write_credentials
from ledger_node.localnet.chain import Chain, Site
from ledger_node.localnet.network import terminate
from ledger_node.localnet.wait import wait_until
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
    [(1800, 600.0, "bp35a1", 0), (60, 30.0, "bp35c0", 1)],
    ids=["30min-0xEA-bp35a1", "1min-0xE0-bp35c0"],
)
def test_slot_totals_equal_the_ground_truth(
    tmp_path: Path, slot_s: int, speed: float, dongle: str, tolerance_wh: int
) -> None:
    with mosquitto(tmp_path / "broker") as broker:
        chain = broute_chain(tmp_path, broker.port, slot_s, speed, dongle)
        try:
            chain.start()
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


def _check_truth(chain: Chain, slots: list[int]) -> None:
    truth = chain.truth(slots)
    for node in chain.nodes:
        totals = chain.totals(node)
        assert [totals.get(("site1", s)) for s in slots] == [
            round(truth[("site1", s)]) for s in slots
        ], node


@pytest.mark.slow
def test_expiry_lost_answers_and_two_hours_down_cost_no_slot(tmp_path: Path) -> None:
    """Sessions expire every 10 minutes (half the re-authentications fail), a fifth of the
    meter's answers are lost, and the gateway is down for two hours: the missed slots come
    from the meter's history, every slot is on every node once, equal to the truth."""
    slot_s, speed = 1800, 600.0
    faults = ("--session-lifetime-s", "600", "--wisun-fault", "reauth_fail=0.5")
    faults += ("--wisun-fault", "lost=0.2", "--seed", "5")
    sites = {"site1": Site("ra1", "broute", PROFILE, emulator_options=FINE + faults)}
    with mosquitto(tmp_path / "broker") as broker:
        chain = Chain(
            tmp_path, broker.port, slot_s, speed, sites, ("tso", "ra1"), late_after_s=20 * slot_s
        )
        try:
            chain.start()
            before = chain.wait_for_slots(2)
            assert len(before) >= 2
            terminate(chain.procs.pop("gateway-site1"))
            down_at = chain.sim_now()
            wait_until(lambda: chain.sim_now() >= down_at + 7200, 60, "two hours")
            chain.start_gateway("site1")
            slots = chain.wait_for_slots(len(before) + 4)
            assert slots == list(range(slots[0], slots[-1] + slot_s, slot_s)), "a slot is missing"
            assert slots[-1] - before[-1] >= 7200 - slot_s
            _check_truth(chain, slots)
            log = (tmp_path / "gateway-site1.log").read_text()
            assert "missed boundaries read from the history" in log
            assert "/estimated" not in log  # every boundary is the meter's own reading
        finally:
            chain.stop()
    emulator_log = (tmp_path / "emulator-site1.log").read_text()
    assert "reauth_fail" in emulator_log and "lost" in emulator_log


@pytest.mark.slow
def test_a_wrong_password_is_an_alarm_and_not_retried_in_a_loop(tmp_path: Path) -> None:
    sites = {"site1": Site("ra1", "broute", PROFILE, emulator_options=FINE)}
    with mosquitto(tmp_path / "broker") as broker:
        chain = Chain(tmp_path, broker.port, 1800, 300.0, sites, ("tso",))
        creds = tmp_path / "keys" / "broute-site1.toml"
        write_credentials(creds, Credentials(DEFAULT_ID, "NOTTHEPASSWD"))
        try:
            chain.start_emulators()
            chain.start_gateways()

            def alarm() -> str:
                try:
                    alarms = chain.gateway_status("site1")["daemon"].get("alarms", [])
                except RuntimeError:  # no state yet: the gateway is starting
                    return ""
                return next((a for a in alarms if a.startswith("broute_refused")), "")

            wait_until(lambda: bool(alarm()), 30, "the broute_refused alarm")
            assert "ID or password is wrong" in alarm()
            time.sleep(5)  # refused_retry_s is 2 s here: two or three more tries at most
        finally:
            chain.stop()
    log = (tmp_path / "gateway-site1.log").read_text()
    assert "NOTTHEPASSWD" not in log
    tries = log.count("the utility's letter); trying again in 2 s")  # once per try
    assert 2 <= tries <= 5, tries
    joins = re.search(r"joins (\d+)", (tmp_path / "emulator-site1.log").read_text())
    assert joins is not None and int(joins.group(1)) <= 5

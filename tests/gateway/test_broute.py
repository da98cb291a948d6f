"""The B-route driver against the emulated dongle and meter on a real pseudo-terminal:
both dialects, the scale and wrap, refused passwords, lost answers, garbled lines,
session expiry, the history; and the credentials file's rules."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from firmware.emulator.wisun.dongle import WisunFaults
from gateway.broute import echonet
from gateway.broute.credentials import load_credentials
from gateway.broute.meter import BrouteMeter
from gateway.broute.session import BrouteSession, NoBeacon, PasswordRefused
from gateway.broute.skstack import Dongle
from gateway.errors import ConfigError, NoAnswerError
from tests.support.wisun import RIGHT, WRONG_PASSWORD, SteppedClock, credentials_file, wisun_line

T0 = 1_800_000_000.0  # a 30-minute boundary (UTC s)


def session(device: str, dialect: str, creds=RIGHT, answer_s: float = 0.5) -> BrouteSession:
    return BrouteSession(Dongle(device, 115200, dialect, 0.5), creds, answer_s, retries=2)


@pytest.mark.parametrize("dialect", ["bp35a1", "bp35c0"])
def test_reads_the_meter_in_both_dialects(dialect: str) -> None:
    clock = SteppedClock(T0 + 600)
    with wisun_line(clock, dialect, watts=1200.0) as line:
        s = session(line.pty.device, dialect)
        meter = BrouteMeter(s)
        try:
            values = meter.read_all()
            assert values["power"] == 1200.0
            assert values["current_r"] == 6.0
            # 1 000 000 Wh at start, 0.1 kWh counts: the counter reads whole 100 Wh.
            assert values["import_energy"] == 1_000_000.0
            clock.set(T0 + 1800 + 3)
            t, wh = meter.fixed_wh()
            assert t == T0 + 1800
            assert wh == pytest.approx(1_000_000.0 + 1200.0 * 1200 / 3600, abs=100)
            assert line.meter.counter(T0 + 1800) * 100.0 == wh
        finally:
            s.close()
        assert line.dongle.counts["joins"] == 1


def test_a_wrong_password_is_refused_as_such() -> None:
    clock = SteppedClock(T0)
    with wisun_line(clock) as line:
        s = session(line.pty.device, "bp35c0", WRONG_PASSWORD)
        with pytest.raises(PasswordRefused, match="ID or password is wrong"):
            s.ensure()
        s.close()


def test_a_wrong_id_finds_no_beacon_and_so_does_the_fault() -> None:
    clock = SteppedClock(T0)
    wrong_id = type(RIGHT)("F" * 32, RIGHT.password)
    with wisun_line(clock) as line:
        s = session(line.pty.device, "bp35c0", wrong_id)
        with pytest.raises(NoBeacon, match="no B-route meter answered"):
            s.ensure()
        s.close()
    with wisun_line(clock, faults=WisunFaults({"no_beacon": 1.0})) as line:
        s = session(line.pty.device, "bp35c0")
        with pytest.raises(NoBeacon):
            s.ensure()
        s.close()


def test_lost_answers_are_asked_again_and_a_silent_meter_is_scanned_for() -> None:
    clock = SteppedClock(T0)
    with wisun_line(clock, faults=WisunFaults({"lost": 0.5}), seed=7) as line:
        s = session(line.pty.device, "bp35a1" if False else "bp35c0", answer_s=0.3)
        meter = BrouteMeter(s)
        got = 0
        for _ in range(10):
            try:
                meter.energy_wh()
                got += 1
            except NoAnswerError:
                pass
        s.close()
        assert s.lost > 0  # answers were lost...
        assert got >= 8  # ...and asked again: nearly every read still succeeded
        assert line.dongle.counts["lost"] == s.lost


def test_garbled_lines_are_counted_and_skipped() -> None:
    clock = SteppedClock(T0)
    with wisun_line(clock, faults=WisunFaults({"garbled": 0.05}), seed=3) as line:
        s = session(line.pty.device, "bp35c0", answer_s=0.3)
        meter = BrouteMeter(s)
        ok = 0
        for _ in range(30):
            try:
                meter.energy_wh()
                ok += 1
            except Exception:
                s.drop()
        s.close()
        assert line.dongle.counts["garbled"] > 0
        assert s.dongle.garbled + s.bad_frames > 0
        assert ok >= 20


def test_session_expiry_is_followed_without_losing_a_read() -> None:
    clock = SteppedClock(T0)
    faults = WisunFaults({"reauth_fail": 0.5}, session_lifetime_s=60.0)
    with wisun_line(clock, faults=faults, seed=2) as line:
        s = session(line.pty.device, "bp35c0")
        meter = BrouteMeter(s)
        for i in range(8):
            clock.set(T0 + 61 * (i + 1))  # past each session's lifetime
            meter.energy_wh()
        s.close()
        assert line.dongle.counts["reauth_fail"] > 0
        assert s.joins > 1  # joined again after a failed re-authentication


def test_history_backfill_values_match_the_meter() -> None:
    clock = SteppedClock(T0 + 3 * 3600 + 60)
    with wisun_line(clock) as line:
        s = session(line.pty.device, "bp35c0")
        meter = BrouteMeter(s)
        meter.ensure()
        entries = meter.history_raw(0, clock.now())
        s.close()
    known = [(t, v) for t, v in entries if v is not None]
    assert known, "today's history has entries up to now"
    for t, v in known:
        assert t <= clock.now()
        assert v == line.meter.counter(t)


def test_counter_wraps_at_its_effective_digits() -> None:
    assert echonet.unwrap(5, 999_998, 10**6) == 1_000_005
    assert echonet.unwrap(999_999, 1_999_990, 10**6) == 1_999_999
    assert echonet.unwrap(3, None, 10**6) == 3
    # A small step back is not a wrap: left for the plausibility check to flag.
    assert echonet.unwrap(999_000, 999_100, 10**6) == 999_000
    clock = SteppedClock(T0)
    # 4 digits of 0.1 kWh wrap at 1000 kWh: start just below it.
    with wisun_line(clock, origin_wh=999_000.0, digits=4, watts=36000.0) as line:
        s = session(line.pty.device, "bp35c0")
        meter = BrouteMeter(s)
        first = meter.energy_wh()
        clock.set(T0 + 200)  # 2 kWh later: the counter wrapped
        second = meter.energy_wh()
        s.close()
    assert line.meter.counter(T0 + 200) < line.meter.counter(T0)
    assert second - first == pytest.approx(2000.0, abs=100)


def test_credentials_file_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = credentials_file(tmp_path / "broute.toml")
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    creds = load_credentials(path)
    assert creds == RIGHT
    assert RIGHT.password not in repr(creds) and RIGHT.rbid not in repr(creds)
    os.chmod(path, 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_credentials(path)
    bad = tmp_path / "bad.toml"
    bad.write_text('id = "short"\npassword = "0123456789AB"\n')
    os.chmod(bad, 0o600)
    with pytest.raises(ConfigError, match="32 letters and digits") as exc:
        load_credentials(bad)
    assert "0123456789AB" not in str(exc.value)


def test_credentials_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    clock = SteppedClock(T0)
    with wisun_line(clock) as line:
        s = session(line.pty.device, "bp35c0", WRONG_PASSWORD)
        with pytest.raises(PasswordRefused):
            s.ensure()
        s.close()
    text = caplog.text
    assert "SKSETPWD ****" in text
    for secret in (WRONG_PASSWORD.password, RIGHT.rbid):
        assert secret not in text

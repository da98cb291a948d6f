"""The emulated Wi-SUN dongle and B-route meter against an independent client (momonga,
from PyPI) in both dialects, and our ECHONET Lite codec against momonga's and against
frames spelled out from the specification, byte for byte."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import momonga
import pytest
from momonga.momonga_echonet_data import EchonetDataParser, EchonetProperty, EchonetPropertyWithData
from momonga.momonga_echonet_enum import EchonetPropertyCode as Epc
from momonga.momonga_echonet_enum import EchonetServiceCode

from firmware.emulator import cli
from firmware.emulator.config import load_config
from firmware.emulator.wisun.dongle import DEFAULT_ID, DEFAULT_PASSWORD, WisunFaults
from gateway.broute import echonet
from gateway.broute.echonet import Frame
from ledger_node.shared.clock import SystemClock
from ledger_node.shared.errors import ConfigError
from tests.support.wisun import wisun_line


def _momonga(device: str) -> momonga.Momonga:
    mo = momonga.Momonga(DEFAULT_ID, DEFAULT_PASSWORD, device)
    mo.internal_xmit_interval = 0.05  # its pauses are for a real meter's sake
    mo.recv_timeout = 2
    return mo


@pytest.mark.parametrize(("dialect", "kind"), [("bp35a1", "BP35A1"), ("bp35c0", "BP35C2")])
def test_momonga_reads_the_emulated_meter(dialect: str, kind: str) -> None:
    clock = SystemClock()
    with wisun_line(clock, dialect, watts=1500.0, unit_code=0x02, digits=8) as line:
        before = clock.now()  # a half-hour boundary may pass while momonga reads
        with _momonga(line.pty.device) as mo:
            assert mo.session_manager.skw.device_type.name == kind
            power = mo.get_instantaneous_power()
            energy_kwh = mo.get_measured_cumulative_energy()
            fixed = mo.get_cumulative_energy_measured_at_fixed_time()
            currents = mo.get_instantaneous_current()
            digits = mo.get_number_of_effective_digits_for_cumulative_energy()
            history = mo.get_historical_cumulative_energy_1(day=0)
        t = clock.now()
        counts = line.meter.counter(t)
        assert power == 1500
        assert currents["r phase current"] == pytest.approx(7.5)
        assert digits == 8
        assert abs(energy_kwh * 100 - counts) <= 1  # 0.01 kWh counts, read a moment ago
        boundaries = {line.meter.last_boundary(before), line.meter.last_boundary(t)}
        at_fixed = fixed["cumulative energy"]
        (boundary,) = [
            b for b in boundaries if at_fixed == pytest.approx(line.meter.counter(b) / 100)
        ]
        jst = dt.datetime.fromtimestamp(boundary, echonet.JST).replace(tzinfo=None)
        assert fixed["timestamp"] == jst
        assert len(history) == 48
        assert line.dongle.counts["joins"] == 1
        assert line.dongle.ascii  # momonga switched the payloads to ASCII (WOPT 01)


def test_momonga_reports_a_wrong_password_and_no_beacon() -> None:
    clock = SystemClock()
    with wisun_line(clock) as line:
        mo = momonga.Momonga(DEFAULT_ID, "WRONGPASSWRD", line.pty.device)
        with pytest.raises(momonga.MomongaSkJoinFailure):
            mo.open()
    faults = WisunFaults({"no_beacon": 1.0}, scan_s=0.05)
    with wisun_line(clock, faults=faults) as line, pytest.raises(momonga.MomongaSkScanFailure):
        _momonga(line.pty.device).open()


# -- the codec ---------------------------------------------------------------------------
SPEC_FRAMES = [
    # Get of instantaneous power (0xE7) from a controller to a low-voltage smart meter,
    # laid out as in the ECHONET Lite specification (part II, 3.2): EHD1 EHD2 TID SEOJ
    # DEOJ ESV OPC EPC PDC.
    ("10 81 00 01 05 FF 01 02 88 01 62 01 E7 00", Frame(1, echonet.CONTROLLER,
        echonet.SMART_METER, 0x62, ((0xE7, b""),))),
    # Its Get_Res: 1200 W.
    ("10 81 00 01 02 88 01 05 FF 01 72 01 E7 04 00 00 04 B0", Frame(1, echonet.SMART_METER,
        echonet.CONTROLLER, 0x72, ((0xE7, (1200).to_bytes(4, "big")),))),
    # Get_SNA naming the property the meter cannot serve (empty EDT).
    ("10 81 00 02 02 88 01 05 FF 01 52 02 D3 00 E1 01 01", Frame(2, echonet.SMART_METER,
        echonet.CONTROLLER, 0x52, ((0xD3, b""), (0xE1, b"\x01")))),
    # INF of the fixed-time reading: 2026-11-30 12:30:00 JST, 12345 counts.
    ("10 81 00 00 02 88 01 05 FF 01 73 01 EA 0B 07 EA 0B 1E 0C 1E 00 00 00 30 39",
        Frame(0, echonet.SMART_METER, echonet.CONTROLLER, 0x73,
        ((0xEA, bytes.fromhex("07EA0B1E0C1E0000003039")),))),
]  # fmt: skip


@pytest.mark.parametrize(("hexes", "frame"), SPEC_FRAMES)
def test_frames_agree_with_the_specifications_layout(hexes: str, frame: Frame) -> None:
    raw = bytes.fromhex(hexes)
    assert frame.encode() == raw
    assert Frame.decode(raw) == frame


def test_requests_agree_with_momonga_byte_for_byte() -> None:
    mo = momonga.Momonga.__new__(momonga.Momonga)  # only its frame builders, no port
    for tid, epcs in ((1, [0xE7]), (0x1234, [0xD3, 0xD7, 0xE1]), (0xFFFF, [0xEA, 0xE0])):
        theirs = mo._build_request_payload(
            tid, EchonetServiceCode.get, [EchonetProperty(Epc(e)) for e in epcs]
        )
        assert echonet.get_request(tid, epcs) == theirs
    theirs = mo._build_request_payload_with_data(
        7, EchonetServiceCode.set_c, [EchonetPropertyWithData(Epc(0xE5), b"\x02")]
    )
    assert echonet.set_request(7, [(0xE5, b"\x02")]) == theirs


def test_answers_decode_alike_in_momonga_and_ours() -> None:
    """The emulated meter's answers, parsed by momonga's decoder and by ours."""
    clock = SystemClock()
    with wisun_line(clock, unit_code=0x02, digits=7, watts=2345.0) as line:
        meter = line.meter
        epcs = [0xD3, 0xD7, 0xE1, 0xE0, 0xE7, 0xE8, 0xEA, 0xE2]
        answer = meter.answer(Frame.decode(echonet.get_request(9, epcs)))
    assert answer is not None
    raw = answer.encode()
    theirs = momonga.Momonga._extract_response_payload(
        raw, 9, [EchonetProperty(Epc(e)) for e in epcs]
    )
    edts = {int(p.epc): p.edt for p in theirs}
    assert edts == dict(Frame.decode(raw).props)
    p = EchonetDataParser
    assert p.parse_coefficient_for_cumulative_energy(edts[0xD3]) == echonet.coefficient(edts[0xD3])
    assert p.parse_number_of_effective_digits_for_cumulative_energy(edts[0xD7]) == echonet.digits(
        edts[0xD7]
    )
    assert p.parse_unit_for_cumulative_energy(edts[0xE1]) * 1000 == echonet.unit_wh(edts[0xE1])
    assert p.parse_instantaneous_power(edts[0xE7]) == echonet.power_w(edts[0xE7])
    r, t = echonet.currents_a(edts[0xE8])
    assert p.parse_instantaneous_current(edts[0xE8]) == {
        "r phase current": pytest.approx(r),
        "t phase current": pytest.approx(t),
    }
    fixed_t, fixed_counts = echonet.fixed(edts[0xEA])
    theirs_fixed = p.parse_cumulative_energy_measured_at_fixed_time(edts[0xEA], 1, 1)
    assert theirs_fixed["cumulative energy"] == fixed_counts
    assert theirs_fixed["timestamp"].replace(tzinfo=echonet.JST).timestamp() == fixed_t
    day, values = echonet.history(edts[0xE2])
    theirs_history = p.parse_historical_cumulative_energy_1(edts[0xE2], 1, 1)
    assert [h["cumulative energy"] for h in theirs_history] == values
    assert day == 0


def test_bad_frames_are_refused_with_a_reason() -> None:
    good = echonet.get_request(1, [0xE7, 0xE0])
    for bad, why in (
        (good[:11], "not an ECHONET Lite"),
        (b"\x10\x82" + good[2:], "not an ECHONET Lite"),
        (good[:-1] + b"\x05", "truncated"),
        (good + b"\x00", "after the last property"),
        (good[:12] + b"\xe7\x09", "truncated"),
        (b"\x10\x81" + bytes(2000), "exceeds"),
    ):
        with pytest.raises(echonet.EchonetError, match=why):
            Frame.decode(bad)


def test_config_file_and_flags_describe_a_wisun_line(tmp_path: Path) -> None:
    path = tmp_path / "emulator.toml"
    path.write_text(
        '[[line]]\nname = "w"\ndongle = "bp35a1"\nunit_code = 4\ndigits = 8\n'
        "[line.wisun_faults]\nlost = 0.1\nsession_lifetime_s = 600\n"
        '[[line.meter]]\nunit = 1\nmodel = "broute"\nprofile = "constant:500"\n'
    )
    spec = load_config(path)
    wisun = spec.lines[0].wisun
    assert wisun is not None
    assert (wisun.dialect, wisun.baud, wisun.unit_code, wisun.digits) == ("bp35a1", 115200, 4, 8)
    assert wisun.faults.rates == {"lost": 0.1}
    assert wisun.faults.session_lifetime_s == 600
    args = cli._parser().parse_args(
        ["--meter", "1:broute:constant:500", "--dongle", "bp35c0", "--wisun-fault", "garbled=0.2"]
    )
    flags = cli.spec_from_args(args).lines[0].wisun
    assert flags is not None and flags.faults.rates == {"garbled": 0.2}
    path.write_text('[[line]]\n[[line.meter]]\nunit = 1\nmodel = "broute"\n')
    with pytest.raises(ConfigError, match="alone behind a Wi-SUN dongle"):
        load_config(path)
    bad = cli._parser().parse_args(["--meter", "1:broute", "--wisun-fault", "silent=0.1"])
    with pytest.raises(ConfigError, match="KIND one of no_beacon"):
        cli.spec_from_args(bad)

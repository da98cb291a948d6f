"""`mlg-emulator` as a process: several unit ids on one line, a config file with a
pseudo-terminal line and a Modbus TCP line, clean exit on SIGTERM and SIGINT with its
links removed, the ground truth written, and clear usage errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pymodbus.client import ModbusSerialClient, ModbusTcpClient

from firmware.emulator.truth import read_truth
from tests.conftest import run_module


@contextmanager
def emulator(args: list[str], cwd: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """The emulator as a child process, and the lines it printed (one per line served)."""
    with subprocess.Popen(
        [sys.executable, "-m", "firmware.emulator.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline().strip()
            assert first, "the emulator printed nothing"
            yield proc, [first]
        finally:
            if proc.poll() is None:
                proc.kill()


def _stop(proc: subprocess.Popen[str], signum: int) -> str:
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return err


def _energy_kwh(client: ModbusSerialClient | ModbusTcpClient, unit: int) -> float:
    rr = client.read_input_registers(0x48, count=2, device_id=unit)
    assert not rr.isError(), rr
    value = client.convert_from_registers(rr.registers, client.DATATYPE.FLOAT32)
    assert isinstance(value, float)
    return value


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_two_units_on_one_line_and_a_clean_stop(tmp_path: Path, signum: int) -> None:
    link = tmp_path / "meterA"
    args = ["--meter", "1:sdm120:constant:1000", "--meter", "2:adapter:constant:3600"]
    args += ["--link", str(link), "--truth", "truth.csv", "--slot-seconds", "1"]
    args += ["--energy-start-kwh", "42", "--clock-scale", "20", "--state-dir", "flash"]
    with emulator(args, tmp_path) as (proc, printed):
        assert printed == [str(link)] and link.is_symlink()
        client = ModbusSerialClient(port=str(link), baudrate=9600, timeout=2, retries=2)
        assert client.connect()
        try:
            assert _energy_kwh(client, 1) >= 42.0
            assert _energy_kwh(client, 2) >= 42.0
        finally:
            client.close()
        time.sleep(0.5)
        log = _stop(proc, signum)
    assert not link.exists(), "the link was left behind"
    assert "line line0 unit 1:" in log and "stopped" in log
    rows = read_truth(tmp_path / "truth.csv")
    assert {r["unit"] for r in rows} == {"1", "2"}
    assert all(r["line"] == "line0" for r in rows)
    assert (tmp_path / "flash" / "line0-unit2" / "counter0.dat").exists()


def test_config_file_with_a_pty_line_and_a_tcp_line(tmp_path: Path) -> None:
    (tmp_path / "day.csv").write_text("seconds,watts\n0,500\n43200,1500\n")
    (tmp_path / "emulator.toml").write_text(
        """
[emulator]
slot_seconds = 60
seed = 3

[[line]]
name = "rs485-0"
link = "meterA"
baud = 19200
parity = "N"

[[line.meter]]
unit = 1
model = "sdm630"
profile = "household:5000"

[[line.meter]]
unit = 2
model = "sdm120"
profile = "csv:day.csv"
dr_drop = 0.5
dr_windows = ["17:00-18:00"]

[[line]]
name = "tcp"
tcp = "127.0.0.1:0"

[[line.meter]]
unit = 9
model = "sdm120"
energy_start_kwh = 7
"""
    )
    with emulator(["-c", "emulator.toml"], tmp_path) as (proc, printed):
        assert proc.stdout is not None
        pty_path, tcp_path = printed[0], proc.stdout.readline().strip()
        assert pty_path == str(tmp_path / "meterA")
        serial_client = ModbusSerialClient(port=pty_path, baudrate=19200, timeout=2)
        assert serial_client.connect()
        try:
            assert _energy_kwh(serial_client, 1) == pytest.approx(1000.0, abs=1.0)
            assert _energy_kwh(serial_client, 2) == pytest.approx(1000.0, abs=1.0)
        finally:
            serial_client.close()
        host, port = tcp_path.split(":")
        tcp_client = ModbusTcpClient(host, port=int(port), timeout=2)
        assert tcp_client.connect()
        try:
            # 1000 W since the start of the slot: at most 17 Wh more.
            assert 7.0 <= _energy_kwh(tcp_client, 9) <= 7.02
        finally:
            tcp_client.close()
        _stop(proc, signal.SIGTERM)
    assert not (tmp_path / "meterA").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--meter", "0:sdm120"], "unit id must be 1..247"),
        (["--meter", "1:sdm999"], "model must be one of"),
        (["--meter", "1:sdm120:sawtooth:5"], "unknown profile"),
        (["--meter", "1:sdm120", "--fault", "fire=0.1"], "bad fault"),
        (["--meter", "1:sdm120", "--fault", "crc=0.7", "--fault", "silent=0.7"], "more than 1"),
        (["--meter", "1:adapter", "--fault", "jump=0.1"], "no jump faults"),
        (["--meter", "1:sdm120", "--dr-window", "25:00-26:00"], "bad DR window"),
        (["-c", "emulator.toml", "--meter", "1:sdm120"], "--meter cannot be used with --config"),
        (["-c", "missing.toml"], "cannot read config"),
    ],
)
def test_usage_errors_exit_2_with_a_message(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "emulator.toml").write_text("")
    result = run_module("firmware.emulator.cli", *args, cwd=tmp_path, timeout_s=30)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "emulator.toml").write_text(
        '[[line]]\nname = "a"\n[[line.meter]]\nunit = 1\nprofle = "constant:5"\n'
    )
    result = run_module("firmware.emulator.cli", "-c", "emulator.toml", cwd=tmp_path, timeout_s=30)
    assert result.returncode == 2
    assert "unknown key line[0].meter[0].profle" in result.stderr

"""`mlg-flash board` against the real MicroPython interpreter serving its REPL on a
pseudo-terminal (`tests/support/board.py`), as a Pico does on its USB serial port: mpremote
opens it like a board. What the tool did is checked in a separate mpremote session: the
files' SHA-256 computed on the board, the settings record read from its filesystem."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from mpremote.transport_serial import SerialTransport

import firmware
from firmware import records
from tests.firmware.conftest import ROOT
from tests.support.board import Corrupt, PtyBoard

pytestmark = pytest.mark.slow

HOST = {f"/firmware/{p.name}": p.read_bytes() for p in sorted((ROOT / "firmware").glob("*.py"))}
HOST["/pins.json"] = (ROOT / "hw" / "pico-adapter" / "pins.json").read_bytes()
HOST["/main.py"] = (ROOT / "hw" / "pico-adapter" / "main.py").read_bytes()


@pytest.fixture(autouse=True)
def _node() -> None:
    if not (ROOT / "node_modules" / "@micropython").is_dir() or shutil.which("node") is None:
        pytest.fail("the MicroPython interpreter is not installed: run `make test`")


def flash(board: PtyBoard | str, *args: str) -> subprocess.CompletedProcess[str]:
    port = board if isinstance(board, str) else board.path
    return subprocess.run(
        [sys.executable, "-m", "firmware.flash.cli", "board", port, *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@contextmanager
def session(board: PtyBoard) -> Iterator[SerialTransport]:
    """mpremote's own session with the board, to look at what is on it."""
    t = SerialTransport(board.path, baudrate=115200)
    t.use_raw_paste = False  # the WebAssembly port's event-driven REPL cannot do it
    t.enter_raw_repl(soft_reset=False)
    try:
        yield t
    finally:
        t.exit_raw_repl()
        t.close()


def exists(t: SerialTransport, path: str) -> bool:
    """Whether `path` is on the board. (mpremote's fs_exists maps the error by its errno
    name, which this port's Emscripten errors, "OSError: 44", do not carry.)"""
    code = f"import os\ntry:\n os.stat({path!r})\n print(1)\nexcept OSError:\n print(0)"
    return bool(t.exec(code).strip() == b"1")


def on_board(t: SerialTransport) -> dict[str, str]:
    """SHA-256 of each of our files on the board (absent files left out)."""
    return {path: t.fs_hashfile(path, "sha256").hex() for path in HOST if exists(t, path)}


def settings_on_board(t: SerialTransport) -> list[int] | None:
    """The settings record as the firmware stores it (records.py, magic MLS1)."""
    if not exists(t, "/state/settings.dat"):
        return None
    return records.unseal(bytes(t.fs_readfile("/state/settings.dat")), "MLS1", 5)


def actions(stderr: str) -> dict[str, str]:
    """Each file's line of progress: path -> what was done."""
    out = {}
    for line in stderr.splitlines():
        if line.startswith("[") and "): " in line:
            path = line.split("] ", 1)[1].split(" (", 1)[0]
            out[path] = line.rsplit("): ", 1)[1]
    return out


def test_a_new_board_gets_verified_files_its_settings_and_a_rerun_skips_them() -> None:
    with PtyBoard() as board:
        dry = flash(board, "--dry-run", "--unit", "7")
        assert dry.returncode == 0, dry.stderr
        assert set(actions(dry.stderr).values()) == {"would copy"}
        assert "settings: would write unit 7, 9600 8N1" in dry.stderr
        with session(board) as t:
            assert on_board(t) == {} and settings_on_board(t) is None  # nothing written

        sent = board.sent
        done = flash(
            board, "--unit", "7", "--baud", "19200", "--parity", "E", "--pulses-per-kwh", "800"
        )
        first = board.sent - sent
        assert done.returncode == 0, done.stderr
        assert set(actions(done.stderr)) == set(HOST)
        assert set(actions(done.stderr).values()) == {"copied, sha256 verified"}
        assert "restarted" in done.stderr and "[16/16]" in done.stderr
        with session(board) as t:
            assert on_board(t) == {p: hashlib.sha256(d).hexdigest() for p, d in HOST.items()}
            assert settings_on_board(t) == [7, 19200, 1, 800, 10]
        assert "board: JS with Emscripten (webassembly), MicroPython 1.27.0" in done.stdout
        assert f"firmware: {firmware.VERSION} (build " in done.stdout
        assert "settings: unit 7, 19200 8E1, 800 pulses/kWh, debounce 10 ms" in done.stdout

        # Again, with only the unit id: every file is skipped, the other settings kept.
        sent = board.sent
        again = flash(board, "--unit", "9", "--json")
        assert again.returncode == 0, again.stderr
        assert board.sent - sent < first / 5  # hashes and settings, no file copied
        report = json.loads(again.stdout)
        assert {f["action"] for f in report["files"]} == {"unchanged"}
        assert report["settings"] == {
            "unit": 9, "baud": 19200, "parity": "E", "pulses_per_kwh": 800, "debounce_ms": 10
        }  # fmt: skip
        assert report["firmware"]["version"] == firmware.VERSION and report["restarted"]
        with session(board) as t:
            assert settings_on_board(t) == [9, 19200, 1, 800, 10]


def test_a_changed_file_is_replaced_and_stale_modules_removed() -> None:
    with PtyBoard() as board:
        assert flash(board).returncode == 0
        with session(board) as t:
            t.fs_writefile("/firmware/crc.py", b"def crc16(data): return 0\n")  # damaged
            t.fs_writefile("/firmware/old_module.py", b"x = 1\n")  # from an older version
            t.fs_mkdir("/firmware/emulator")  # a hand copy of host-only code
            t.fs_writefile("/firmware/emulator/cli.py", b"\n")
            t.fs_writefile("/state/settings.dat", b"MLS1,5,4800,2,2000,20,0000\n")  # bad CRC
        done = flash(board)
        assert done.returncode == 0, done.stderr
        changed = {p: a for p, a in actions(done.stderr).items() if a != "unchanged"}
        assert changed == {"/firmware/crc.py": "replaced, sha256 verified"}
        assert "/firmware/old_module.py: removing (stale)" in done.stderr
        assert "/firmware/emulator: removing (stale)" in done.stderr
        assert "settings file is corrupt" in done.stderr
        with session(board) as t:
            assert on_board(t) == {p: hashlib.sha256(d).hexdigest() for p, d in HOST.items()}
            assert [e.name for e in t.fs_listdir("/firmware")] == [
                p.rsplit("/", 1)[1] for p in HOST if p.startswith("/firmware/")
            ]
            assert settings_on_board(t) == [1, 9600, 0, 1000, 10]  # the defaults, stored


def test_a_copy_corrupted_on_the_wire_is_detected_and_not_installed() -> None:
    # records.py holds a "%" (its CRC format); the byte after its copy starts flips.
    fault = Corrupt(after=b"/firmware/records.py.new'", old=ord("%"), new=ord("&"))
    with PtyBoard(corrupt=fault) as board:
        done = flash(board)
        assert fault.done
        assert done.returncode == 1, done.stderr
        assert "hash mismatch: /firmware/records.py arrived changed on the board" in done.stderr
        assert "it was not installed" in done.stderr and "Traceback" not in done.stderr
        with session(board) as t:
            held = on_board(t)
            assert "/firmware/records.py" not in held  # neither installed nor left beside
            assert not exists(t, "/firmware/records.py.new")
            assert (
                held["/firmware/pulses.py"]
                == hashlib.sha256(HOST["/firmware/pulses.py"]).hexdigest()
            )
            assert settings_on_board(t) is None
        again = flash(board)  # the fault is spent: the rest is copied, the verified skipped
        assert again.returncode == 0, again.stderr
        steps = actions(again.stderr)
        assert steps["/firmware/pulses.py"] == "unchanged"
        assert steps["/firmware/records.py"] == "copied, sha256 verified"
        with session(board) as t:
            assert on_board(t) == {p: hashlib.sha256(d).hexdigest() for p, d in HOST.items()}


def test_errors_say_what_to_do(tmp_path: Path) -> None:
    gone = flash(str(tmp_path / "ttyACM9"))
    assert gone.returncode == 1 and "no board at" in gone.stderr
    master, slave = pty.openpty()  # a serial line with nothing answering on it
    try:
        silent = flash(os.ttyname(slave), "--timeout", "1")
    finally:
        os.close(master)
        os.close(slave)
    assert silent.returncode == 1
    assert "did not answer as MicroPython's raw REPL within 1 s" in silent.stderr
    bad = flash("auto", "--baud", "9601")
    assert bad.returncode == 2 and "invalid baud value" in bad.stderr
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps({"uart": {"id": 0, "tx": 3, "rx": 1, "de": 2}}))
    wrong = flash("auto", "--pins", str(pins))
    assert wrong.returncode == 1 and "uart.tx: GPIO 3 is not a TX pin of UART0" in wrong.stderr
    with PtyBoard() as board:
        assert flash(board).returncode == 0
        frozen = flash(board, "--frozen")  # this interpreter has no frozen firmware
        assert frozen.returncode == 1 and "no frozen firmware package" in frozen.stderr
        with session(board) as t:  # and the firmware on its flash is still there
            assert len(on_board(t)) == len(HOST)


def test_the_firmware_version_is_the_projects() -> None:
    assert importlib.metadata.version("meterledger") == firmware.VERSION

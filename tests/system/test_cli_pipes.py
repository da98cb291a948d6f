"""Every command line, its output piped into a reader that stops reading (`| head`): a
quiet exit 141 (128 + SIGPIPE, as a shell tool ends), never a `BrokenPipeError`
traceback; and the demo stops its broker on the way out."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _closed_pipe(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m module ARGS` with its stdout a pipe whose reader has gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)


@pytest.mark.parametrize(
    ("module", "args"),
    [
        ("ledger_node.interfaces.cli", ("keygen", "--id", "tso", "--out", "tso.key")),
        ("gateway.cli", ("keygen", "--id", "gw", "--out", "gw.key")),
        # It prints its pseudo-terminal's path first, then serves until stopped.
        ("firmware.emulator.cli", ("--meter", "1:sdm120")),
        ("ledger_node.localnet.demo", ("--workdir", "demo", "--slots", "1")),
    ],
)
def test_a_closed_pipe_ends_quietly(module: str, args: tuple[str, ...], tmp_path: Path) -> None:
    done = _closed_pipe(module, *args, cwd=tmp_path)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
    assert done.returncode == 141, done.stderr
    if module.endswith("demo"):
        # Its broker was started before the first line, and is stopped after it.
        conf = (tmp_path / "demo" / "lab" / "broker" / "mosquitto.conf").read_text()
        port = int(conf.split()[1])
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()

"""What every area uses: a real Mosquitto on a free loopback port, our command lines run
as child processes, and Debian's Chromium through Playwright (never a downloaded browser),
one for the whole session; screenshots go to the git-ignored `tests/artifacts/screens/`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ledger_node.localnet.broker import Broker, find_mosquitto
from ledger_node.localnet.postgres import Postgres, find_postgres
from tests.support.ledgers import Where

CHROMIUM = "/usr/bin/chromium"
LOG_TAIL_LINES = 25
"""Lines of each child's log shown under a failed test (`pytest_runtest_makereport`)."""
SCREENS = Path(__file__).parent / "artifacts" / "screens"


@contextmanager
def mosquitto(workdir: Path) -> Iterator[Broker]:
    """Mosquitto for the block, its files in `workdir`; its log must show no error."""
    if find_mosquitto() is None:
        pytest.fail("Mosquitto is not installed: run `make test`, which installs it")
    b = Broker(workdir).start()
    try:
        yield b
    finally:
        b.stop()
    log = b.log_path.read_text()
    assert "Error" not in log, f"broker log shows errors:\n{log}"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """Mosquitto for one test."""
    with mosquitto(tmp_path / "broker") as b:
        yield b


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """Debian's PostgreSQL, one server per test worker, started when a test first asks."""
    if find_postgres() is None:
        pytest.fail("PostgreSQL is not installed: run `make test`, which installs it")
    server = Postgres(durable=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Where:
    """Each node's store by its name, on each of the two stores in turn: a SQLite file in
    `tmp_path`, or a new database on the worker's PostgreSQL server."""
    if request.param == "sqlite":
        return lambda name: tmp_path / f"{name}.sqlite"
    server: Postgres = request.getfixturevalue("postgres")
    made: dict[str, str] = {}

    def where(name: str) -> str:
        if name not in made:
            made[name] = server.create_database()
        return made[name]

    return where


def run_module(
    module: str, *args: str, cwd: Path | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m module ARGS` in `cwd`, its output captured as text; its exit code is the
    caller's to check."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, for the whole session of a worker (each screenshot is written
    anew; two workers share the folder, so neither empties it)."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run `make test`, which installs it")
    SCREENS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page (its own cookies), 1280x900, Japanese locale."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Under a failed test, the last lines of each log its child processes wrote in its
    `tmp_path` (gateways, nodes, emulators, the broker): a failure on a CI machine is then
    readable without rerunning it."""
    report = yield
    tmp = getattr(item, "funcargs", {}).get("tmp_path")
    if report.failed and call.when == "call" and isinstance(tmp, Path):
        for log in sorted(tmp.rglob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            report.sections.append((f"log {log.relative_to(tmp)}", "\n".join(lines)))
    return report

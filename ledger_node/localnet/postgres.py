"""A throwaway PostgreSQL server for the tests and the benchmarks: Debian's PostgreSQL
(`apt-get install postgresql`; `make test` installs it) in a folder of its own, listening
on a Unix socket in that folder only (no TCP at all), trust authentication for its one
role `mlg`.

`initdb` and `pg_ctl` refuse to run as root: as root the folder belongs to the `postgres`
user and they run under `runuser`; as anyone else they run as that user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from ledger_node.localnet.broker import free_port
from ledger_node.shared.errors import MeterledgerError

BIN_GLOB = "/usr/lib/postgresql/*/bin"
ROLE = "mlg"


class PostgresError(MeterledgerError):
    pass


def find_postgres() -> Path | None:
    """The folder of Debian's PostgreSQL server programs (the newest), or None."""
    found = sorted(glob.glob(BIN_GLOB), key=lambda p: int(Path(p).parent.name))
    return Path(found[-1]) if found else None


@dataclass
class Postgres:
    """A server in `folder` (made if absent): `start`, `create_database`, `stop`.

    `durable=False` (the tests) turns fsync off: a test's crash is a killed process, whose
    committed writes the operating system keeps; a benchmark keeps PostgreSQL's default.
    """

    folder: Path | None = None
    durable: bool = True
    port: int = field(default_factory=free_port)
    _bin: Path | None = None
    _databases: int = 0

    def _run(self, program: str, *args: str) -> None:
        assert self._bin is not None and self.folder is not None
        command = [str(self._bin / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise PostgresError(f"{program} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> Postgres:
        self._bin = find_postgres()
        if self._bin is None:
            raise PostgresError("PostgreSQL is not installed: apt-get install postgresql")
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="mlg-pg-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
        self.folder.chmod(0o700)
        data = self.folder / "data"
        if not data.exists():
            self._run("initdb", "-D", str(data), "-A", "trust", "-U", ROLE, "-E", "UTF8")
        options = f"-k {self.folder} -p {self.port} -c listen_addresses=''"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = self.folder / "server.log"
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for `database` on this server (over its Unix socket)."""
        return f"postgresql://{ROLE}@/{database}?host={self.folder}&port={self.port}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (named `name`, else the next `db<N>`); its URL."""
        self._databases += 1
        name = name or f"db{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def files(self, url: str) -> list[Path]:
        """The data files of the database at `url`, written out first (CHECKPOINT): what
        its tables leave on disk (not the write-ahead log)."""
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CHECKPOINT")
            row = conn.execute(
                "SELECT oid FROM pg_database WHERE datname = current_database()"
            ).fetchone()
        assert row is not None and self.folder is not None
        return sorted(p for p in (self.folder / "data" / "base" / str(row[0])).iterdir())

    def stop(self) -> None:
        if self._bin is None or self.folder is None:
            return
        with contextlib.suppress(PostgresError):  # not running
            self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
        self._bin = None

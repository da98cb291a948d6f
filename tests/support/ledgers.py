"""In-process ledgers of figure 7 on real SQLite files (or PostgreSQL databases), one per
node, fed the facts the simulated parties sign (`tests.support.sim`): for the ledger's
rules, the screens' tests and the fault suite's fuzzing and determinism scenarios."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ledger_node.ledger import Ledger, LedgerSettings, Outcome, author_epochs, open_sealed
from ledger_node.ledger.store import connect
from ledger_node.shared.clock import FixedClock
from ledger_node.wire import EpochKey, Verified
from tests.support.sim import Figure7

T0 = 1_800_000_000 - 1_800_000_000 % 60

Where = Callable[[str], "Path | str"]
"""A node's store by its name: a SQLite file, or a PostgreSQL database's URL."""


class Net:
    """Figure 7's facts and one in-process ledger per node."""

    def __init__(
        self,
        tmp: Path,
        nodes: tuple[str, ...] = ("tso", "ra1"),
        fig: Figure7 | None = None,
        where: Where | None = None,
    ) -> None:
        self.fig = Figure7.make() if fig is None else fig
        tmp.mkdir(parents=True, exist_ok=True)
        self.clock = FixedClock(T0)
        self.tmp = tmp
        self.where: Where = where or (lambda name: tmp / f"{name}.sqlite")
        """Each node's store (SQLite files in `tmp` unless told)."""
        self.ledgers: dict[str, Ledger] = {}
        for name in nodes:
            party = self.party(name)
            db = connect(self.where(name))
            ledger = Ledger(db, party.identity, self.clock, LedgerSettings(late_after_s=600))
            with ledger.transaction():
                ledger.start(self.fig.genesis)
            self.ledgers[name] = ledger

    def close(self) -> None:
        for ledger in self.ledgers.values():
            ledger.db.close()

    def party(self, name: str) -> object:
        f = self.fig
        return {"tso": f.tso, **f.acs, **f.ras}[name]

    def admit(self, name: str, raw: bytes | Verified, source: str = "mqtt") -> Outcome:
        ledger = self.ledgers[name]
        with ledger.transaction():
            return ledger.admit(raw, source, hold_unknown=True)

    def everywhere(self, raws: list[bytes]) -> None:
        for name in self.ledgers:
            for raw in raws:
                self.admit(name, raw)

    def epochs(self) -> list[EpochKey]:
        tso = self.ledgers["tso"]
        with tso.transaction() as changes:
            made = author_epochs(tso)
        self.everywhere([raw for _, raw in changes.authored])
        for key in made:
            for gw in self.fig.gateways.values():
                gw.take_epoch_key(key)
        return made

    def open(self, name: str) -> None:
        ledger = self.ledgers[name]
        with ledger.transaction():
            while open_sealed(ledger):
                pass

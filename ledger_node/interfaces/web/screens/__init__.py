"""The screens, one module each, and the table of them: `SCREENS` names each screen's
navigation entry and its routes (the app includes them in this order: the paper's two
screens first, then the other authoring screens, then what a node holds)."""

from __future__ import annotations

from fastapi import APIRouter

from ledger_node.interfaces.web.pages import Screen
from ledger_node.interfaces.web.screens import (
    as_report,
    command,
    compare,
    declare,
    privacy,
    proof,
    status,
)

SCREENS: tuple[tuple[Screen, APIRouter], ...] = (
    (compare.SCREEN, compare.router),
    (declare.SCREEN, declare.router),
    (command.SCREEN, command.router),
    (as_report.SCREEN, as_report.router),
    (status.SCREEN, status.router),
    (privacy.SCREEN, privacy.router),
    (proof.SCREEN, proof.router),
)

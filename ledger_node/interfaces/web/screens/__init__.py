"""The screens, one module each, and the table of them: `SCREENS` names each screen's
navigation entry and its routes (the app includes them in this order)."""

from __future__ import annotations

from fastapi import APIRouter

from ledger_node.interfaces.web.pages import Screen
from ledger_node.interfaces.web.screens import as_report, command, declare, status

SCREENS: tuple[tuple[Screen, APIRouter], ...] = (
    (status.SCREEN, status.router),
    (declare.SCREEN, declare.router),
    (command.SCREEN, command.router),
    (as_report.SCREEN, as_report.router),
)

"""The screens, one module each, and the table of them: `SCREENS` names each screen's
navigation entry and its routes (the app includes them in this order)."""

from __future__ import annotations

from fastapi import APIRouter

from ledger_node.interfaces.web.pages import Screen
from ledger_node.interfaces.web.screens import compare, privacy, proof, status

SCREENS: tuple[tuple[Screen, APIRouter], ...] = (
    (compare.SCREEN, compare.router),
    (status.SCREEN, status.router),
    (privacy.SCREEN, privacy.router),
    (proof.SCREEN, proof.router),
)

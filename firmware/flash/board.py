"""`mlg-flash board`: the adapter firmware onto a MicroPython board (mpremote)."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Not built yet."""

"""The AS report CSV reader: every line with its slot and Wh or its problem (what the
import screen previews), and the parser of the API and the CLI, which refuses a file at
its first bad line."""

from __future__ import annotations

import pytest

from ledger_node.interfaces.as_csv import AS_WH, CSV_PROBLEMS, parse_as_csv, read_as_csv
from ledger_node.interfaces.authoring import RequestError
from ledger_node.wire import DrCommand

T0 = 1_768_316_400  # 2026-01-14 00:00 JST
COMMAND = DrCommand("tso", "c1", T0, T0 + 300, 60, T0 - 600, 20, (("ac1", 1000),))


def test_each_line_has_its_slot_and_wh_or_its_problem() -> None:
    text = (
        "Slot, kWh\n"
        f"{T0},1.5\n"
        "2026-01-14T00:01+09:00,0.25\n"
        f"{T0 + 120},12x\n"
        f"{T0 + 120},\n"
        f"{T0 + 150},1\n"
        f"{T0 + 300},1\n"
        f"{T0 + 60},2\n"
        f"{T0 + 180},1.0005\n"
        f"{T0 + 180},-1\n"
        "2026-01-14T00:03,1\n"
        "\n"
        f"{T0 + 240},Infinity\n"
        f"{T0 + 240},{AS_WH.hi // 1000 + 1}\n"
    )
    lines = read_as_csv(text, COMMAND)
    got = [(ln.line, ln.slot, ln.wh, ln.problem) for ln in lines]
    assert got == [
        (2, T0, 1500, ""),
        (3, T0 + 60, 250, ""),
        (4, T0 + 120, None, "number"),
        (5, T0 + 120, None, "missing"),
        (6, T0 + 150, 1000, "boundary"),
        (7, T0 + 300, 1000, "outside"),
        (8, T0 + 60, 2000, "duplicate"),
        (9, T0 + 180, None, "fraction"),
        (10, T0 + 180, -1000, "range"),
        (11, None, None, "slot"),
        (13, T0 + 240, None, "number"),  # line 12 is blank: not a line of data
        (14, T0 + 240, AS_WH.hi + 1000, "range"),
    ]
    assert lines[6].message == CSV_PROBLEMS["duplicate"] % {"first": 3}
    assert "needs its offset" in lines[9].message
    # Without a command, the window is nobody's concern.
    assert [ln.problem for ln in read_as_csv(f"slot,wh\n{T0 + 150},1\n")] == [""]


def test_the_parser_refuses_a_file_at_its_first_bad_line() -> None:
    assert parse_as_csv(f"slot,wh\n{T0},5\n\n{T0 + 60},7\n") == {T0: 5, T0 + 60: 7}
    with pytest.raises(RequestError, match="CSV line 3: the value is not a number"):
        parse_as_csv(f"slot,wh\n{T0},5\n{T0 + 60},x\n{T0 + 120},y\n")
    with pytest.raises(RequestError, match=r"CSV line 3: the slot appears twice \(first on"):
        parse_as_csv(f"slot,wh\n{T0},5\n{T0},6\n")
    with pytest.raises(RequestError, match="CSV line 2: no value"):
        parse_as_csv(f"slot,wh\n{T0},\n")  # once a KeyError, answered as a bare 400
    with pytest.raises(RequestError, match="header"):
        parse_as_csv("when,wh\n1,2\n")
    with pytest.raises(RequestError, match="no rows"):
        parse_as_csv("slot,wh\n")

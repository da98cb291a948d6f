"""The performance comparison screen (実績比較画面) in the browser, on the paper's figure 6
as node processes: the table is the contract's results slot by slot, the slot whose AS
report differs is highlighted with its difference, the CSV is the table, each node drills
down to exactly the readings its groups let it read (and says why not elsewhere), bad
parameters are refused in the page, and a tampered total fails its public check loudly.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Locator, Page

from ledger_node.contract.checks import Published, TotalChecks
from ledger_node.contract.settlement import result_rows
from ledger_node.interfaces.api import Api
from ledger_node.interfaces.web import WebContext, WebServer
from ledger_node.interfaces.web.auth import Operators
from ledger_node.interfaces.web.templating import jst, kwh, slot_span
from ledger_node.ledger import LedgerSettings
from ledger_node.ledger.registry import Registry
from ledger_node.ledger.store import Db, connect
from ledger_node.localnet.wait import wait_until
from ledger_node.wire import DrDeclaration
from tests.web.conftest import FIG6_KWH, SLOT_S, Fig6, log_in, shot

NOT_IN_GROUP = "このノードはこの需要家のグループに属していません"


def _url(fig6: Fig6, node: str, path: str, **query: object) -> str:
    return fig6.url(node, path + ("?" + urlencode(query) if query else ""))


def _table(page: Page) -> tuple[list[str], list[list[str]], Locator]:
    """The comparison table's header and cell texts, and its rows."""
    header = page.locator("table.compare thead th").all_inner_texts()
    rows = page.locator("table.compare tbody tr")
    return header, [r.locator("td").all_inner_texts() for r in rows.all()], rows


def _row(page: Page, slot: int) -> Locator:
    return page.locator(f"table.compare tbody tr[data-slot='{slot}']")


def _site(page: Page, site: str) -> Locator:
    return page.locator(f"table.readings tbody[data-site='{site}']")


def _meter_readings(page: Page, site: str) -> list[str]:
    return _site(page, site).locator("tr.meter td.wh").all_inner_texts()


def test_the_table_is_the_contracts_results_and_highlights_the_differing_slot(
    page: Page, fig6: Fig6
) -> None:
    log_in(page, fig6, "tso")
    page.goto(_url(fig6, "tso", "/compare", command=fig6.command, entity="ac1"))
    assert page.locator("h1").inner_text() == "実績比較"
    header, texts, rows = _table(page)
    assert header[:6] == [
        "名前",
        "指令ID",
        "日付",
        "時間帯 (JST)",
        "BC集計値 (kWh)",
        "AS集計値 (kWh)",
    ]
    results = {
        r["slot"]: r
        for r in fig6.get("tso", f"/api/results?command={fig6.command}&scope=ac1")["results"]
    }
    assert sorted(results) == fig6.slots and rows.count() == len(fig6.slots)
    col = {name: header.index(name) for name in header}
    for slot, cells in zip(fig6.slots, texts, strict=True):
        r = results[slot]
        assert cells[: col["BC集計値 (kWh)"]] == [
            "ac1",
            fig6.command,
            jst(slot, "%Y/%m/%d"),
            slot_span(slot, SLOT_S),
        ]
        assert cells[col["BC集計値 (kWh)"]] == kwh(r["actual_wh"])
        assert cells[col["ベースライン (kWh)"]] == kwh(r["baseline_wh"])
        assert cells[col["削減目標 (kWh)"]] == kwh(r["target_wh"])
        assert cells[col["削減実績 (kWh)"]] == kwh(r["delivered_wh"])
        assert cells[col["メーター 報告/宣言"]] == f"{r['reported']}/{r['declared']}"
        assert cells[col["集計値の公開検証"]] == "✓ 検証済み"
        assert cells[col["状態"]] == "確定"  # ended, every meter reported
    # Figure 6: AC(1)'s totals 4, 3, 5, 10 and 2 kWh.
    assert [c[col["BC集計値 (kWh)"]] for c in texts] == [f"{k:.3f}" for k in FIG6_KWH]
    # AC(1)'s AS report differs by +100 Wh in one slot: that row alone is highlighted.
    differing = fig6.as_differs["ac1"]
    for slot, cells in zip(fig6.slots, texts, strict=True):
        row_class = _row(page, slot).get_attribute("class") or ""
        bc, as_, diff = (
            cells[col[k]] for k in ("BC集計値 (kWh)", "AS集計値 (kWh)", "差 AS−BC (kWh)")
        )
        if slot == differing:
            assert "differs" in row_class.split() and diff == "+0.100"
            assert round(float(as_) * 1000) == round(float(bc) * 1000) + 100
        else:
            assert "differs" not in row_class.split() and diff == "" and as_ == bc
    assert page.locator("tr.differs").count() == 1
    assert page.locator("svg.chart path.series").count() == 3  # target, baseline, actual
    assert "目標水準" in page.locator("svg.chart .legend").text_content() or ""
    shot(page, "compare-ja")
    page.get_by_role("link", name="English").click()
    assert page.locator("h1").inner_text() == "Performance comparison"
    header_en, texts_en, _ = _table(page)
    assert header_en[4:6] == ["BC total (kWh)", "AS total (kWh)"]
    assert [c[4] for c in texts_en] == [c[4] for c in texts]
    assert "Target (baseline − reduction target)" in page.locator("svg.chart").text_content() or ""
    shot(page, "compare-en")


def test_the_csv_download_is_the_table(page: Page, fig6: Fig6, tmp_path: Path) -> None:
    for lang, label in (("ja", "CSV ダウンロード"), ("en", "Download CSV")):
        page.goto(_url(fig6, "tso", "/compare", command=fig6.command, entity="ac1", lang=lang))
        header, texts, _ = _table(page)
        with page.expect_download() as download:
            page.get_by_role("link", name=label).click()
        path = tmp_path / f"{lang}.csv"
        download.value.save_as(path)
        raw = path.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with a BOM: Excel reads Japanese
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        assert rows == [header, *texts]
        assert (
            download.value.suggested_filename == f"compare-c1-ac1-{jst(fig6.start, '%Y-%m-%d')}.csv"
        )
    assert "BC total (kWh)" in rows[0]


def _drill(page: Page, fig6: Fig6, node: str, slot: int, **query: str) -> None:
    """Open the comparison on `node` and click the BC total of `slot`."""
    page.goto(_url(fig6, node, "/compare", command=query.pop("command", fig6.command), **query))
    _row(page, slot).locator("td.bc a").click()
    page.wait_for_url("**/compare/slot?*")


def test_ra1_reads_site1_and_says_why_not_site2(page: Page, fig6: Fig6) -> None:
    log_in(page, fig6, "ra1")
    slot = fig6.as_differs["ra1"]
    page.goto(_url(fig6, "ra1", "/compare", command=fig6.command))
    # An RA compares itself only.
    assert page.locator("select[name=entity] option").all_inner_texts() == ["ra1 (RA)"]
    _, texts, _ = _table(page)
    assert len(texts) == len(fig6.slots)
    assert page.locator("tr.differs").get_attribute("data-slot") == str(slot)
    _drill(page, fig6, "ra1", slot)
    quarter = f"{FIG6_KWH[fig6.slots.index(slot)] * 250:,}"
    assert _meter_readings(page, "site1") == [quarter, quarter]
    assert _site(page, "site2").locator(".reason").inner_text() == NOT_IN_GROUP
    assert _site(page, "site2").locator("td.wh").count() == 0  # never a blank or a zero
    assert _site(page, "site3").count() == 0  # not in this command
    totals = page.locator("table.totals tr[data-org='ra1']")
    assert "differs" in (totals.get_attribute("class") or "")
    assert totals.locator("td.diff").inner_text() == "+100"
    shot(page, "compare-drill-ra1-not-in-group-ja")


def test_ac1_reads_both_of_its_sites(page: Page, fig6: Fig6) -> None:
    slot = fig6.slots[3]
    page.goto(_url(fig6, "ac1", "/compare", command=fig6.command))
    entities = page.locator("select[name=entity] option").all_inner_texts()
    assert [e.strip() for e in entities] == ["ac1 (AC)", "ra1 (RA)", "ra2 (RA)"]
    _drill(page, fig6, "ac1", slot)
    quarter = f"{FIG6_KWH[3] * 250:,}"
    for site in ("site1", "site2"):
        assert _meter_readings(page, site) == [quarter, quarter]
        assert _site(page, site).locator(".reason").count() == 0
    assert (
        page.locator("table.totals tr[data-org='ra1'] td.bc").inner_text()
        == f"{FIG6_KWH[3] * 500:,}"
    )
    shot(page, "compare-drill-ac1-ja")


@dataclass
class Fig7Command:
    """A command to both ACs, with every site declared (site3 under AC(2)/RA(3))."""

    command: str
    slots: list[int]


@pytest.fixture(scope="module")
def all_sites(fig6: Fig6) -> Fig7Command:
    net, sim = fig6.sim.net, fig6.sim
    start = (int(sim.sim_now()) // SLOT_S + 2) * SLOT_S
    slots = [start, start + SLOT_S]
    net.post(
        "tso",
        "/api/commands",
        {
            "id": "c-all",
            "start": start,
            "end": start + 2 * SLOT_S,
            "slot_s": SLOT_S,
            "gate_closure": start,
            "price_yen_per_kwh": 20,
            "targets": {"ac1": 500, "ac2": 300},
        },
    )
    wait_until(
        lambda: any(c["id"] == "c-all" for c in net.get("ra1", "/api/commands")),
        30,
        "c-all at RA(1)",
        alive=net.check_alive,
    )
    net.post("ra1", "/api/declarations", {"command": "c-all", "sites": {"site1": 2000}})
    net.publish_fact("ra2", DrDeclaration("ra2", "c-all", 1, (("site2", (2000,)),)))
    net.publish_fact("ra3", DrDeclaration("ra3", "c-all", 1, (("site3", (1500,)),)))
    wait_until(
        lambda: sim.sim_now() >= start + 2 * SLOT_S, 60, "c-all's end", alive=net.check_alive
    )
    sim.publish(
        [
            sim.batch(site, slot, {"m1": 300 + 10 * n, "m2": 400})
            for slot in slots
            for n, site in enumerate(("site1", "site2", "site3"), start=1)
        ]
    )

    def settled() -> bool:
        rows = net.get("tso", "/api/results?command=c-all")["results"]
        return len(rows) == 5 * len(slots) and all(r["reported"] == r["declared"] for r in rows)

    wait_until(settled, 60, "c-all settled on the TSO's node", alive=net.check_alive)
    return Fig7Command("c-all", slots)


def test_the_tso_reads_all_three_sites_in_both_languages(
    page: Page, fig6: Fig6, all_sites: Fig7Command
) -> None:
    log_in(page, fig6, "tso")
    page.goto(_url(fig6, "tso", "/compare", command=all_sites.command))
    entities = [e.strip() for e in page.locator("select[name=entity] option").all_inner_texts()]
    assert entities == ["ac1 (AC)", "ra1 (RA)", "ra2 (RA)", "ac2 (AC)", "ra3 (RA)"]
    _drill(page, fig6, "tso", all_sites.slots[0], command=all_sites.command, entity="ac2")
    assert _meter_readings(page, "site3") == ["330", "400"]
    assert _meter_readings(page, "site1") == ["310", "400"]
    assert _meter_readings(page, "site2") == ["320", "400"]
    assert page.locator("table.readings .reason").count() == 0
    assert page.locator("table.totals tr[data-org='ac2'] td.bc").inner_text() == "730"
    shot(page, "compare-drill-ja")
    page.get_by_role("link", name="English").click()
    assert page.locator("h1").inner_text() == "Consumers' readings"
    assert _meter_readings(page, "site3") == ["330", "400"]
    shot(page, "compare-drill-en")
    # RA(1)'s node, in the same command: site1 only, and why not the two others.
    page.goto(
        _url(fig6, "ra1", "/compare/slot", command="c-all", entity="ra1", slot=all_sites.slots[0])
    )
    assert _meter_readings(page, "site1") == ["310", "400"]
    for site in ("site2", "site3"):
        assert _site(page, site).locator(".reason").inner_text() == "not in this site's group"


@pytest.mark.parametrize(
    ("node", "query", "field", "says"),
    [
        ("tso", {"command": "c9"}, "command", "このノードに DR指令 c9 はありません"),
        ("ac1", {"command": "c1", "entity": "ac2"}, "entity", "このノードは ac2 を表示できません"),
        ("ra1", {"command": "c1", "entity": "ra2"}, "entity", "このノードは ra2 を表示できません"),
        (
            "tso",
            {"command": "c1", "entity": "nobody"},
            "entity",
            "nobody という AC・RA はありません",
        ),
        ("tso", {"command": "c1", "date": "2021-13-45"}, "date", "2021-13-45 は日付ではありません"),
        (
            "tso",
            {"command": "c1", "date": "1999-01-01"},
            "date",
            "1999-01-01（JST）のスロットがありません",
        ),
    ],
)
def test_a_bad_parameter_is_named_next_to_its_field(
    page: Page, fig6: Fig6, node: str, query: dict[str, str], field: str, says: str
) -> None:
    for path in ("/compare", "/compare.csv"):
        response = page.goto(_url(fig6, node, path, **query))
        assert response is not None and response.status == 400
        error = page.locator(f"form.filters label:has([name={field}]) .field-error")
        assert says in error.inner_text()
        assert page.locator("table.compare").count() == 0
        assert "Traceback" not in page.content()


def test_a_bad_drill_down_is_refused_in_the_page(page: Page, fig6: Fig6) -> None:
    for query, says in (
        (
            {"command": "c1", "entity": "ac1", "slot": "soon"},
            "soon は DR指令 c1 のスロット開始時刻ではありません",
        ),
        (
            {"command": "c1", "entity": "ac1", "slot": fig6.start + 1},
            "のスロット開始時刻ではありません",
        ),
        ({"command": "c1", "entity": "ac2"}, "このノードは ac2 を表示できません"),
        ({"command": "nope", "entity": "ac1", "slot": fig6.start}, "DR指令 nope はありません"),
    ):
        response = page.goto(_url(fig6, "ac1", "/compare/slot", **query))
        assert response is not None and response.status == 400
        assert says in page.locator("p.error").inner_text()


@pytest.fixture
def tso_copy(fig6: Fig6, tmp_path: Path) -> Path:
    """A copy of the TSO's database, taken through SQLite's backup."""
    copy = tmp_path / "tso.sqlite"
    source = connect(fig6.sim.net.db("tso"), readonly=True)
    with closing(source), closing(sqlite3.connect(copy)) as dst:
        source.backup(dst)
    return copy


def _checks(db: Db, checks: TotalChecks) -> list[str | None]:
    rows = result_rows(db, "c1", "ac", "ac1")
    return checks.check(db, Registry(db), [Published.of_row(r) for r in rows])


def test_remembered_checks_follow_the_public_data(fig6: Fig6, tso_copy: Path) -> None:
    checks = TotalChecks(100)
    with closing(sqlite3.connect(tso_copy, isolation_level=None)) as db:
        assert _checks(db, checks) == [None] * len(fig6.slots)
        assert _checks(db, checks) == [None] * len(fig6.slots)  # remembered
        # A batch of site2 disappears from the public data of the third slot: that slot's
        # total no longer checks, though the total itself did not change.
        db.execute(
            "DELETE FROM batches WHERE site='site2' AND slot=? AND slot_s=?",
            (fig6.slots[2], SLOT_S),
        )
        verdicts = _checks(db, checks)
        assert verdicts[2] is not None and "no public commitment" in verdicts[2]
        assert verdicts[:2] + verdicts[3:] == [None] * (len(fig6.slots) - 1)


def test_a_tampered_total_fails_its_check_loudly(page: Page, fig6: Fig6, tso_copy: Path) -> None:
    tampered = fig6.slots[2]
    with closing(sqlite3.connect(tso_copy, isolation_level=None)) as db:
        db.execute(
            "UPDATE results SET actual_wh = actual_wh + 1, v_wh = v_wh + 1"
            " WHERE command='c1' AND scope='ac1' AND slot=?",
            (tampered,),
        )
    ctx = WebContext(
        Api(tso_copy, "tso", None, time.time), "token", Operators(tso_copy.with_suffix(".web"), 60)
    )
    server = WebServer(ctx, "127.0.0.1", 0)
    server.start()
    try:
        page.goto(f"{server.url}compare?command=c1&entity=ac1")
        assert (
            "公開検証に失敗しました（5 スロット中 1）" in page.locator("p.check-alarm").inner_text()
        )
        row = _row(page, tampered)
        assert "check-failed" in (row.get_attribute("class") or "")
        assert "✗ 検証失敗: Σ C of 4 readings" in row.locator("td.check").inner_text()
        assert page.locator("tr.check-failed").count() == 1
        shot(page, "compare-check-failed-ja")
    finally:
        server.stop()


def test_totals_are_open_and_no_reward_shows_before_the_window_closes(
    page: Page, fig6: Fig6, tso_copy: Path
) -> None:
    """The same results seen at three times: before the window (every total open, no
    reward), while a meter's reading may still come (open, a provisional reward), and
    after (final)."""
    end = fig6.slots[-1] + SLOT_S
    with closing(sqlite3.connect(tso_copy, isolation_level=None)) as db:
        # Site2's reading of the last slot has not come yet, as far as this copy knows.
        db.execute(
            "UPDATE results SET reported = reported - 1 WHERE command='c1' AND slot=?",
            (fig6.slots[-1],),
        )
    seen = []
    for now in (fig6.start - 60, end + 60, end + LedgerSettings().late_after_s):
        ctx = WebContext(
            Api(tso_copy, "tso", None, lambda t=now: t),  # type: ignore[misc]
            "token",
            Operators(tso_copy.with_suffix(".web"), 60),
        )
        server = WebServer(ctx, "127.0.0.1", 0)
        server.start()
        try:
            page.goto(f"{server.url}compare?command=c1&entity=ac1")
            header, texts, _ = _table(page)
            states = [cells[header.index("状態")] for cells in texts]
            reward = page.locator("table.reward").count()
            notes = page.locator("p.reward-pending, p.reward-state").all_inner_texts()
            seen.append((states, reward, notes))
        finally:
            server.stop()
    before, provisional, final = seen
    assert before[0] == ["未確定"] * 5 and before[1] == 0
    assert before[2][0].startswith("指令の時間帯が終わる")
    assert provisional[0] == ["確定"] * 4 + ["未確定"] and provisional[1] == 1
    assert provisional[2][0].startswith("暫定")
    assert final[0] == ["確定"] * 5 and final[1] == 1 and final[2][0].startswith("確定")

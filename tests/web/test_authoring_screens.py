"""The screens that author facts, in the browser on figure 6's node processes: the TSO
issues a DR command on its command screen, RA(1) declares on its declaration screen and
imports an AS report; every bad input gets its error next to its field and authors
nothing; a form without its CSRF token, a POST from another origin and a request without
session or token are refused.

The network runs at 30x: a minute of the nodes' time is two seconds of the test's. Each
test issues its own commands (ids "web-…"), leaving fig6's c1 as the other tests know it.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from playwright.sync_api import Browser, Page

from ledger_node.localnet.wait import wait_until
from tests.web.conftest import Fig6, log_in, shot

JST = dt.timezone(dt.timedelta(hours=9))
SLOT_S = 60


def log_size(fig6: Fig6, node: str) -> int:
    return int(fig6.get(node, "/api/log")["size"])


def sizes(fig6: Fig6) -> dict[str, int]:
    """Every node's log size: equal before and after a refused request, nothing authored."""
    return {node: log_size(fig6, node) for node in ("tso", "ac1", "ra1")}


def form_time(t: float) -> str:
    """UTC s as an operator types it in the command form: JST, "2026/11/30 21:00:30"."""
    return dt.datetime.fromtimestamp(t, JST).strftime("%Y/%m/%d %H:%M:%S")


def command(fig6: Fig6, cid: str) -> dict[str, Any] | None:
    """Command `cid` as the TSO's node's API shows it, with each RA's declaration."""
    return next((c for c in fig6.get("tso", "/api/commands") if c["id"] == cid), None)


def issue(
    fig6: Fig6, cid: str, gate_in_s: float, slots: int = 5, ac: str = "ac1"
) -> dict[str, Any]:
    """Issue command `cid` to `ac` through the TSO's API, its gate closure `gate_in_s`
    seconds of the network's time from now; wait until RA(1)'s node holds it."""
    gate = int(fig6.sim.sim_now() + gate_in_s)
    start = (gate // SLOT_S + 1) * SLOT_S
    body = {
        "id": cid,
        "start": start,
        "end": start + slots * SLOT_S,
        "slot_s": SLOT_S,
        "gate_closure": gate,
        "price_yen_per_kwh": 20,
        "targets": {ac: 1000},
    }
    fig6.sim.net.post("tso", "/api/commands", body)
    net = fig6.sim.net
    wait_until(
        lambda: any(c["id"] == cid for c in net.get("ra1", "/api/commands")),
        30,
        f"{cid} at RA(1)",
        alive=net.check_alive,
    )
    return body


@contextmanager
def second_page(browser: Browser) -> Iterator[Page]:
    """A page in a browser context of its own (a second operator at another node: cookies
    do not tell ports apart)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    try:
        yield context.new_page()
    finally:
        context.close()


def field_error(page: Page, name: str) -> str:
    """The error shown next to form field `name`."""
    return page.locator(f"#error-{name}").inner_text()


def test_the_tso_issues_a_command_and_ra1_declares_it_through_the_forms(
    page: Page, browser: Browser, fig6: Fig6
) -> None:
    log_in(page, fig6, "tso")
    page.goto(fig6.url("tso", "/command"))
    assert page.locator("h1").inner_text() == "DR指令"
    now = fig6.sim.sim_now()
    gate = int(now) + 20 * 60  # twenty minutes of the network's time: 40 s of the test's
    start = (gate // SLOT_S + 1) * SLOT_S
    page.get_by_label("指令 ID").fill("web-c2")
    page.get_by_label("開始（JST）").fill(form_time(start))
    page.get_by_label("終了（JST）").fill(form_time(start + 5 * SLOT_S))
    page.get_by_label("コマの長さ").select_option("60")
    page.get_by_label("ゲートクローズ（JST）").fill(form_time(gate))
    page.get_by_label("単価（円/kWh）").fill("25")
    page.locator("input[name=target-ac1]").fill("2000")
    page.get_by_role("button", name="署名して指令を発行").click()
    banner = page.locator(".accepted")
    assert "台帳に登録しました" in banner.inner_text()
    txid = page.locator(".accepted code.txid").inner_text()
    issued = command(fig6, "web-c2")
    assert issued is not None
    assert (issued["start"], issued["end"], issued["slot_s"]) == (start, start + 300, 60)
    assert (issued["gate_closure"], issued["price_yen_per_kwh"]) == (gate, 25)
    assert issued["targets"] == {"ac1": 2000}
    proof = fig6.get("tso", f"/api/proof?txid={txid}")
    assert proof["txid"] == txid
    row = page.locator("table.issued tr", has_text="web-c2")
    assert "ac1 2,000 Wh" in row.inner_text()
    shot(page, "command-ja")
    page.get_by_role("link", name="English").click()
    assert page.locator("h1").inner_text() == "DR command"
    shot(page, "command-en")

    wait_until(
        lambda: any(c["id"] == "web-c2" for c in fig6.get("ra1", "/api/commands")),
        30,
        "web-c2 at RA(1)",
    )
    with second_page(browser) as ra:
        log_in(ra, fig6, "ra1")
        ra.goto(fig6.url("ra1", "/declare"))
        assert ra.locator("h1").inner_text() == "DR宣言登録"
        open_row = ra.locator("table.commands tr", has_text="web-c2")
        assert "未宣言" in open_row.inner_text()
        countdown = open_row.locator(".countdown")
        left = countdown.inner_text()  # h:mm:ss of wall time until the gate closes
        hours, minutes, seconds = (int(x) for x in left.split(":"))
        assert 0 < hours * 3600 + minutes * 60 + seconds <= 40, left
        open_row.get_by_role("link", name="宣言する").click()
        assert "web-c2" in ra.locator("h2", has_text="への宣言").inner_text()
        assert ra.locator("#site-site1").is_checked()
        ra.locator("input[name=baseline-site1]").fill("2800")
        ra.get_by_role("button", name="署名して宣言を登録").click()
        assert "台帳に登録しました" in ra.locator(".accepted").inner_text()
        history = ra.locator("table.history", has_text="web-c2")
        assert "site1: 2800" in history.inner_text()
        assert "有効" in history.locator("tr.rev.current").inner_text()
        # On the TSO's node: RA(1)'s declaration of web-c2, as signed through the form.
        wait_until(
            lambda: "ra1" in (command(fig6, "web-c2") or {}).get("declarations", {}),
            30,
            "RA(1)'s declaration at the TSO",
        )
        declared = command(fig6, "web-c2")
        assert declared is not None
        assert declared["declarations"]["ra1"] == {"rev": 1, "sites": {"site1": [2800]}}

        # A revision with a baseline per slot: it counts, the first is superseded.
        ra.goto(fig6.url("ra1", "/declare?command=web-c2"))
        assert ra.locator("input[name=baseline-site1]").input_value() == "2800"
        ra.locator("input[name=baseline-site1]").fill("2800, 2900, 3000, 3100, 3200")
        ra.get_by_role("button", name="署名して宣言を登録").click()
        assert "台帳に登録しました" in ra.locator(".accepted").inner_text()
        revs = ra.locator("table.history", has_text="web-c2")
        assert "site1: 2800, 2900, 3000, 3100, 3200" in revs.locator("tr.current").inner_text()
        assert "site1: 2800" in revs.locator("tr.superseded").inner_text()
        wait_until(
            lambda: (command(fig6, "web-c2") or {})["declarations"]["ra1"]["rev"] == 2,
            30,
            "revision 2 at the TSO",
        )
        # ... and on the TSO's comparison screen: RA(1)'s declared baselines, slot by slot.
        wait_until(  # settled again with revision 2's baselines (within a second of it)
            lambda: any(
                r["baseline_wh"] == 3100
                for r in fig6.get("tso", "/api/results?command=web-c2&scope=ra1")["results"]
            ),
            30,
            "web-c2 settled with revision 2 for RA(1) on the TSO's node",
        )
        tso = ra.context.new_page()
        log_in(tso, fig6, "tso")
        tso.goto(fig6.url("tso", "/compare?command=web-c2&entity=ra1"))
        table = tso.locator("table.compare").inner_text()
        for kwh in ("2.800", "2.900", "3.000", "3.100", "3.200"):
            assert kwh in table, (kwh, table)
        tso.close()
        shot(ra, "declare-ja")
        ra.get_by_role("link", name="English").click()
        assert ra.locator("h1").inner_text() == "DR declaration"
        shot(ra, "declare-en")


def test_a_declaration_after_gate_closure_is_refused_by_the_ledger(page: Page, fig6: Fig6) -> None:
    gate = issue(fig6, "web-late", gate_in_s=5 * 60)["gate_closure"]
    log_in(page, fig6, "ra1")
    page.goto(fig6.url("ra1", "/declare?command=web-late"))
    page.locator("input[name=baseline-site1]").fill("1234")
    wait_until(lambda: fig6.sim.sim_now() > gate + 30, 30, "web-late's gate closure")
    before = sizes(fig6)
    page.get_by_role("button", name="署名して宣言を登録").click()
    assert "ゲートクローズを過ぎた" in page.locator("#error-form").inner_text()
    assert page.locator("input[name=baseline-site1]").input_value() == "1234"  # kept
    assert sizes(fig6) == before
    assert (command(fig6, "web-late") or {})["declarations"] == {}
    late = page.locator("table.commands tr", has_text="web-late")
    assert late.count() == 0  # no longer among the open commands


def test_every_bad_declaration_gets_its_error_next_to_its_field(page: Page, fig6: Fig6) -> None:
    issue(fig6, "web-bad", gate_in_s=60 * 60)
    issue(fig6, "web-ac2", gate_in_s=60 * 60, ac="ac2")
    log_in(page, fig6, "ra1")
    page.goto(fig6.url("ra1", "/declare?command=web-bad"))
    before = sizes(fig6)
    baseline = page.locator("input[name=baseline-site1]")
    submit = page.get_by_role("button", name="署名して宣言を登録")
    for typed, error in (
        ("", "ベースラインを入力"),
        ("12.5", "12.5 は Wh の整数ではありません"),
        ("-5", "負の値"),
        ("1000000001", "1,000,000,000 Wh 以下"),
        ("100, 200", "5 個"),
    ):
        baseline.fill(typed)
        submit.click()
        assert error in field_error(page, "baseline-site1"), typed
        assert baseline.input_value() == typed  # the form keeps what was typed
        assert baseline.get_attribute("aria-invalid") == "true"
    shot(page, "declare-errors-ja")
    baseline.fill("3000")
    page.locator("#site-site1").uncheck()
    submit.click()
    assert "少なくとも 1 つ" in field_error(page, "sites")
    # Forged fields: another RA's site, a site that does not exist.
    for site, error in (("site2", "ra2 の需要家"), ("site9", "site9 という需要家はありません")):
        page.locator("#site-site1").evaluate(
            "(e, site) => { e.checked = true; e.value = site; }", site
        )
        submit.click()
        assert error in field_error(page, "sites"), site
    # Forged commands: one that does not exist, one to another AC.
    page.goto(fig6.url("ra1", "/declare?command=web-bad"))
    baseline.fill("3000")
    for cid, error in (
        ("web-none", "web-none はありません"),
        ("web-ac2", "自社の AC（ac1）向けでは"),
    ):
        page.locator("form#declaration input[name=command]").evaluate("(e, c) => e.value = c", cid)
        submit.click()
        assert error in field_error(page, "command"), cid
        assert baseline.input_value() == "3000"
    assert sizes(fig6) == before
    assert (command(fig6, "web-bad") or {})["declarations"] == {}
    assert (command(fig6, "web-ac2") or {})["declarations"] == {}


def test_every_bad_command_gets_its_error_next_to_its_field(page: Page, fig6: Fig6) -> None:
    log_in(page, fig6, "tso")
    page.goto(fig6.url("tso", "/command"))
    start = (int(fig6.sim.sim_now()) // 3600 + 3) * 3600
    before = sizes(fig6)

    def fill(**fields: str) -> None:
        values = {
            "id": "web-form",
            "start": form_time(start),
            "end": form_time(start + 3600),
            "gate_closure": form_time(start - 600),
            "price": "20",
            "target-ac1": "1000",
        } | fields
        for name, value in values.items():
            page.locator(f"[name={name}]").fill(value)
        page.get_by_label("コマの長さ").select_option("1800")
        page.get_by_role("button", name="署名して指令を発行").click()

    fill(end=form_time(start - 1800))
    assert "終了は開始より後" in field_error(page, "end")
    fill(gate_closure=form_time(start + 60))
    assert "開始より後にはできません" in field_error(page, "gate_closure")
    fill(end=form_time(start + 2700))
    assert "1800 秒のコマの整数倍" in field_error(page, "end")
    fill(id="c1")
    assert "c1 はすでにあります" in field_error(page, "id")
    fill(id="Web C!")
    assert "英小文字" in field_error(page, "id")
    fill(price="twenty", **{"target-ac1": ""})
    assert "twenty は整数ではありません" in field_error(page, "price")
    assert "少なくとも 1 つの AC" in field_error(page, "targets")
    assert page.locator("[name=price]").input_value() == "twenty"  # kept as typed
    shot(page, "command-errors-ja")
    # A forged target for an AC that is not in the registry.
    page.locator("[name=target-ac1]").evaluate("e => e.name = 'target-ac9'")
    page.get_by_role("button", name="署名して指令を発行").click()
    assert "ac9 という有効な AC はありません" in field_error(page, "targets")
    assert sizes(fig6) == before
    assert command(fig6, "web-form") is None


def as_csv(rows: list[tuple[str, str]], unit: str = "wh") -> bytes:
    return (f"slot,{unit}\n" + "".join(f"{s},{v}\n" for s, v in rows)).encode()


def test_the_as_import_previews_each_line_and_authors_only_a_good_file(
    page: Page, fig6: Fig6
) -> None:
    body = issue(fig6, "web-as", gate_in_s=60 * 60, slots=4)
    slots = list(range(body["start"], body["end"], SLOT_S))
    log_in(page, fig6, "ra1")
    page.goto(fig6.url("ra1", "/as-report?command=web-as"))
    assert page.locator("h1").inner_text() == "AS実績取込"
    before = sizes(fig6)
    bad = as_csv(
        [
            (str(slots[0]), "1200"),
            (str(slots[1]), "12x"),  # not a number
            (str(slots[1] + 30), "900"),  # not on a slot boundary
            (str(body["end"]), "900"),  # after the window
            (str(slots[0]), "1300"),  # the first line's slot again
            ("2026-01-14 09:00", "5"),  # no offset
        ]
    )
    page.get_by_label("DR指令").select_option("web-as")
    page.get_by_label("CSV ファイル").set_input_files(
        {"name": "bad.csv", "mimeType": "text/csv", "buffer": bad}
    )
    page.get_by_role("button", name="ファイルを確認").click()
    problems = [r.inner_text() for r in page.locator("table.preview tbody tr td.diff").all()]
    assert problems[0] == ""
    assert "数値ではありません" in problems[1]
    assert "コマの境界" in problems[2]
    assert "指令の期間外" in problems[3]
    assert "2 回目（最初は 2 行目）" in problems[4]
    assert "時刻ではありません" in problems[5]
    assert page.locator("table.preview tr.differs").count() == 5
    assert page.locator("form#submit-report").count() == 0  # nothing to sign
    shot(page, "as-report-errors-ja")
    assert sizes(fig6) == before

    # A file over the door's limit: said next to the field, and never sent.
    page.get_by_label("CSV ファイル").set_input_files(
        {"name": "big.csv", "mimeType": "text/csv", "buffer": b"slot,wh\n" + b"0" * 1_100_000}
    )
    assert "1.0 MiB を超えています" in page.locator("[data-file-error]").inner_text()
    page.get_by_role("button", name="ファイルを確認").click()
    assert page.locator("table.preview").count() == 1  # still the last preview: not sent
    assert sizes(fig6) == before

    good = as_csv(
        [
            (dt.datetime.fromtimestamp(s, JST).isoformat(), f"{1.2 + k / 10:.3f}")
            for k, s in enumerate(slots)
        ],
        "kwh",
    )
    page.get_by_label("CSV ファイル").set_input_files(
        {"name": "good.csv", "mimeType": "text/csv", "buffer": good}
    )
    page.get_by_role("button", name="ファイルを確認").click()
    assert page.locator("table.preview tr.differs").count() == 0
    assert "4 コマ中 4 コマ" in page.locator("p.ok").inner_text()
    # The previewed text is checked again when it comes back: a forged one is refused.
    hidden = page.locator("form#submit-report input[name=text]")
    hidden.evaluate("(e, bad) => e.value = bad", bad.decode())
    page.get_by_role("button", name="署名して AS 実績を送信").click()
    assert page.locator("table.preview tr.differs").count() == 5
    assert sizes(fig6) == before
    page.get_by_label("CSV ファイル").set_input_files(
        {"name": "good.csv", "mimeType": "text/csv", "buffer": good}
    )
    page.get_by_role("button", name="ファイルを確認").click()
    page.get_by_role("button", name="署名して AS 実績を送信").click()
    assert "台帳に登録しました" in page.locator(".accepted").inner_text()
    history = page.locator("table.history", has_text="web-as")
    assert "有効" in history.locator("tr.current").inner_text()
    assert "5.400" in history.locator("tr.current").inner_text()  # 1.2 + 1.3 + 1.4 + 1.5
    reported = fig6.get("ra1", "/api/reconciliation?command=web-as")
    assert {r["slot"]: r["as_wh"] for r in reported} == {
        s: 1200 + 100 * k for k, s in enumerate(slots)
    }
    shot(page, "as-report-ja")
    page.get_by_role("link", name="English").click()
    assert page.locator("h1").inner_text() == "AS report import"
    shot(page, "as-report-en")


def _post(url: str, data: bytes, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(url, data, headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@contextmanager
def foreign_site(html: str) -> Iterator[str]:
    """A page served by another HTTP server on another port (another origin): its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_authoring_without_csrf_token_session_or_origin_is_refused(page: Page, fig6: Fig6) -> None:
    issue(fig6, "web-csrf", gate_in_s=60 * 60)
    log_in(page, fig6, "ra1")
    page.goto(fig6.url("ra1", "/declare?command=web-csrf"))
    page.locator("input[name=baseline-site1]").fill("1000")
    before = sizes(fig6)
    # The form without its CSRF token.
    page.locator("form#declaration input[name=csrf]").evaluate("e => e.value = ''")
    page.get_by_role("button", name="署名して宣言を登録").click()
    assert "CSRF" in page.locator(".error").inner_text()
    # A page of another origin posting the form, with the operator's cookie and even the
    # right CSRF token: the door refuses it.
    page.goto(fig6.url("ra1", "/declare?command=web-csrf"))
    token = page.locator("form#declaration input[name=csrf]").input_value()
    target = fig6.url("ra1", "/declare")
    html = (
        f'<form method="post" action="{target}"><input name="csrf" value="{token}">'
        '<input name="command" value="web-csrf"><input name="site" value="site1">'
        '<input name="baseline-site1" value="1000"><button>go</button></form>'
    )
    with foreign_site(html) as url:
        page.goto(url)
        page.get_by_role("button", name="go").click()
        assert page.url == target
        assert "403" in page.locator("h1").inner_text()
        assert "may not change anything" in page.locator(".error").inner_text()
    # Without a session or the token: the screen's POST and the API's.
    form = b"command=web-csrf&site=site1&baseline-site1=1000"
    status, text = _post(target, form, {"content-type": "application/x-www-form-urlencoded"})
    assert status == 401, text
    api = fig6.url("ra1", "/api/declarations")
    body = json.dumps({"command": "web-csrf", "sites": {"site1": 1000}}).encode()
    for headers in ({}, {"authorization": "Bearer not-the-token"}):
        status, text = _post(api, body, {"content-type": "application/json", **headers})
        assert status == 401, text
    # A session of another node's role: the TSO's node does not declare.
    log_in(page, fig6, "tso")
    page.goto(fig6.url("tso", "/declare"))
    assert "RA" in page.locator(".notice").inner_text()
    assert page.locator("form#declaration").count() == 0
    csrf = page.locator("form[action='/logout'] input[name=csrf]").input_value()
    answer = page.request.post(
        fig6.url("tso", "/declare"),
        form={"csrf": csrf, "command": "web-csrf", "site": "site1", "baseline-site1": "1"},
    )
    assert answer.status == 403
    answer = page.request.post(
        fig6.url("tso", "/as-report"),
        multipart={
            "csrf": csrf,
            "command": "web-csrf",
            "file": {"name": "ok.csv", "mimeType": "text/csv", "buffer": b"slot,wh\n0,1\n"},
        },
    )
    assert answer.status == 403
    # A body over the door's limit, sent without the page's check.
    answer = page.request.post(
        fig6.url("tso", "/as-report"),
        multipart={
            "csrf": csrf,
            "command": "web-csrf",
            "file": {"name": "big.csv", "mimeType": "text/csv", "buffer": b"0" * 1_100_000},
        },
    )
    assert answer.status == 413
    assert sizes(fig6) == before
    assert (command(fig6, "web-csrf") or {})["declarations"] == {}


def test_each_screen_says_whom_it_is_for(page: Page, fig6: Fig6) -> None:
    for node, path, role in (
        ("ra1", "/command", "TSO"),
        ("ac1", "/declare", "RA"),
        ("tso", "/as-report", "AC"),
    ):
        page.goto(fig6.url(node, path))
        assert role in page.locator(".notice").inner_text(), (node, path)
        assert page.locator("main form").count() == 0
    page.goto(fig6.url("ac1", "/"))
    nav = page.locator("nav.screens").inner_text()
    assert "AS実績取込" in nav
    assert "DR宣言登録" not in nav
    assert "DR指令" not in nav

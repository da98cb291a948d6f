"""What every screen stands on, in the browser: logging in (one-time link, password),
the language switch, the CSRF token of every form, and a catalog with every label."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from playwright.sync_api import Page

from ledger_node.interfaces.web import templating
from tests.web.conftest import PASSWORD, Fig6, log_in, shot


def test_every_label_has_its_japanese_text() -> None:
    web = Path(templating.__file__).parent
    methods = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    ids = {
        msg if isinstance(msg, str) else msg[0]
        for _, _, msg, _, _ in extract_from_dir(web, methods, options_map=options)
    }
    with (web / "locale" / "ja" / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale="ja")
    untranslated = sorted(i for i in ids if not (catalog.get(i) and catalog.get(i).string))
    assert not untranslated, f"add these to the Japanese catalog: {untranslated}"
    assert len(ids) > 40


def test_login_by_link_and_password_and_the_language_switch(page: Page, fig6: Fig6) -> None:
    page.goto(fig6.url("tso", "/status"))
    assert page.locator("h1").inner_text() == "ノード状態"  # Japanese unless asked otherwise
    page.get_by_role("link", name="English").click()
    assert page.locator("h1").inner_text() == "Node status"
    shot(page, "status-en")
    page.get_by_role("link", name="日本語").click()
    shot(page, "status-ja")
    # A wrong password is refused with its reason, in the page's language.
    page.goto(fig6.url("ac1", "/login"))
    page.get_by_label("オペレーター").fill("operator")
    page.get_by_label("パスワード").fill("not the password")
    page.get_by_role("button", name="ログイン").click()
    assert "パスワードが違います" in page.locator(".error").inner_text()
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    assert page.locator(".operator").inner_text() == "operator"
    shot(page, "home-ja")
    # A one-time link logs in once.
    link = fig6.login_link("ra1")
    page.goto(link)
    assert page.locator(".operator").inner_text() == "operator"
    page.goto(link)
    assert "使用済み" in page.locator(".error").inner_text()


def test_a_form_without_its_csrf_token_changes_nothing(page: Page, fig6: Fig6) -> None:
    log_in(page, fig6, "tso")
    # The logout form with its token emptied: refused, and the operator stays logged in.
    page.locator("form[action='/logout'] input[name=csrf]").evaluate("e => e.value = ''")
    page.get_by_role("button", name="ログアウト").click()
    assert "CSRF" in page.locator(".error").inner_text()
    page.goto(fig6.url("tso", "/"))
    assert page.locator(".operator").inner_text() == "operator"
    page.get_by_role("button", name="ログアウト").click()
    assert page.locator(".operator").count() == 0

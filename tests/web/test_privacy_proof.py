"""The privacy and proof screens in the browser, on figure 7's node processes (`fig6`).

- Each node's privacy screen shows exactly the sites whose data keys its status lists
  (RA(1) site1; AC(1) site1 and site2; the TSO all three), says why not the others, and
  counts the batches it decrypted as `/api/totals` has them; the matrix is figure 7's.
- The proof screen's downloaded proof verifies with `mlg-node check-proof` and the node's
  public key; a tampered copy, or the proof checked against another node's key, does not.
- Bad txids and filters get their error in the page and change nothing.
- After a site moves and an epoch is shredded (in-process ledgers with real facts), each
  node's view tells the epochs it holds, the one it left, the one from before it joined
  and the shredded one apart, and the page says why for each.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Page

from ledger_node.interfaces import commands, privacy
from ledger_node.interfaces.web.templating import render
from tests.conftest import run_module
from tests.support.ledgers import T0, Net
from tests.web.conftest import Fig6, shot

SITES = ("site1", "site2", "site3")
FIG7 = {
    "tso": ("site1", "site2", "site3"),
    "ac1": ("site1", "site2"),
    "ac2": ("site3",),
    "ra1": ("site1",),
    "ra2": ("site2",),
    "ra3": ("site3",),
}
"""The brief's figure 7: whose readings each organisation sees."""


def _privacy(page: Page, fig6: Fig6, node: str) -> None:
    """`node`'s privacy screen: what it reads, why not the rest, and its batches."""
    page.goto(fig6.url(node, "/privacy"))
    reads = {g["site"] for g in fig6.get(node, "/api/status")["groups"]}
    assert reads == set(FIG7[node]), reads
    mine = page.locator("#matrix tr.me")
    assert mine.get_attribute("data-org") == node
    assert page.locator("#summary .reads").inner_text() == ", ".join(FIG7[node])
    # The matrix is figure 7, the same on every node: the groups are public.
    for org, sites in FIG7.items():
        row = page.locator(f"#matrix tr[data-org={org}]")
        cells = {s: row.locator(f"td[data-site={s}]").get_attribute("data-sees") for s in SITES}
        assert cells == {s: "current" if s in sites else "none" for s in SITES}, (node, org)
    totals = fig6.get(node, "/api/totals")
    for site in SITES:
        epoch = page.locator(f"#epochs tbody[data-site={site}] tr")
        assert epoch.count() == 1  # figure 7's groups never changed: epoch 0
        text = epoch.inner_text()
        cells = epoch.locator("td.num")
        decrypted, ciphertext = int(cells.nth(1).inner_text()), int(cells.nth(2).inner_text())
        if site in reads:
            assert epoch.get_attribute("data-access") == "reads"
            assert "データ鍵を保持" in text
            assert decrypted == len([t for t in totals if t["site"] == site]) >= 5
            assert ciphertext == 0
        else:
            assert epoch.get_attribute("data-access") == "not_member"
            assert "この需要家のグループに属していません" in text, text
            assert decrypted == 0 and ciphertext >= 5  # stored, never opened
            assert not [t for t in totals if t["site"] == site]


def test_each_node_reads_its_groups_and_says_why_not_the_others(page: Page, fig6: Fig6) -> None:
    for node in ("ra1", "ac1", "tso"):
        _privacy(page, fig6, node)
    page.goto(fig6.url("ra1", "/privacy"))
    why = page.locator("#epochs tbody[data-site=site2] td.why").inner_text()
    assert "site2 は ra2 の需要家" in why, why
    why = page.locator("#epochs tbody[data-site=site3] td.why").inner_text()
    assert "site3 は ra3 の需要家" in why, why
    page.goto(fig6.url("ac1", "/privacy"))
    why = page.locator("#epochs tbody[data-site=site3] td.why").inner_text()
    assert "site3 の RA ra3 は ac2 が束ねています" in why, why
    page.goto(fig6.url("ra1", "/privacy"))
    shot(page, "privacy-ja")
    page.goto(fig6.url("ra1", "/privacy?lang=en"))
    assert page.locator("h1").inner_text() == "Privacy groups: who reads whose readings"
    why = page.locator("#epochs tbody[data-site=site2] td.why").inner_text()
    assert "not in this site's group" in why and "site2 is ra2's site" in why, why
    shot(page, "privacy-en")


def _check_proof(proof: Path, key: Path) -> tuple[int, str]:
    done = run_module(
        "ledger_node.interfaces.cli", "check-proof", str(proof), "--node-key", str(key)
    )
    return done.returncode, done.stdout + done.stderr


def test_a_downloaded_proof_verifies_and_a_tampered_one_does_not(
    page: Page, fig6: Fig6, tmp_path: Path
) -> None:
    keys = fig6.sim.net.work / "keys"
    # Pick RA(1)'s declaration from the TSO's log, as an operator would.
    page.goto(fig6.url("tso", "/proof?type=dr_declaration"))
    rows = page.locator("#log tbody tr")
    assert rows.count() >= 2 and all(
        "dr_declaration" in t for t in rows.locator("td:nth-child(3)").all_inner_texts()
    )
    page.locator("#log tbody tr", has_text="ra1").first.locator("a").click()
    txid = parse_qs(urlparse(page.url).query)["txid"][0]
    api = fig6.get("tso", f"/api/proof?txid={txid}")
    assert page.locator("#leaf-index").inner_text() == str(api["leaf_index"])
    assert page.locator("#checked").get_attribute("class") == "ok"
    assert "under its signed checkpoint" in page.locator("#checked").inner_text()
    assert page.locator("#cosigners tbody tr").count() >= 1
    assert f"mlg-node check-proof proof-tso-{api['leaf_index']}.json" in page.inner_text("main")
    shot(page, "proof-ja")
    with page.expect_download() as info:
        page.locator("#download").click()
    download = info.value
    assert download.suggested_filename == f"proof-tso-{api['leaf_index']}.json"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    doc = json.loads(path.read_text())
    for field in ("txid", "leaf_index", "leaf_hash", "envelope", "node", "hash"):
        assert doc[field] == api[field], field
    assert doc["checkpoint"] and len(doc["proof"]) >= 1
    response = page.request.get(fig6.url("tso", f"/proof.json?txid={txid}"))
    assert response.headers["content-disposition"].startswith("attachment;")
    # The CLI accepts it, with the TSO's key; not under another node's key.
    code, out = _check_proof(path, keys / "tso.key.pub")
    assert code == 0 and "under its signed checkpoint" in out, out
    code, out = _check_proof(path, keys / "ra1.key.pub")
    assert code == 1 and "checkpoint does not verify" in out, out
    # Tampered copies fail: a hash of the audit path, the leaf's index, the root.
    for change in (
        lambda d: d["proof"].__setitem__(0, "00" * 32),
        lambda d: d.__setitem__("leaf_index", d["leaf_index"] + 1),
        lambda d: d.__setitem__("root", "11" * 32),
    ):
        bad = json.loads(path.read_text())
        change(bad)
        tampered = tmp_path / "tampered.json"
        tampered.write_text(json.dumps(bad))
        code, out = _check_proof(tampered, keys / "tso.key.pub")
        assert code == 1 and "OK" not in out, out
    page.goto(fig6.url("tso", f"/proof?txid={txid}&lang=en"))
    assert page.locator("h1").inner_text() == "Inclusion proofs"
    shot(page, "proof-en")


def test_bad_txids_get_their_error_in_the_page(page: Page, fig6: Fig6) -> None:
    page.goto(fig6.url("ac1", "/proof"))
    field = page.get_by_label("トランザクション ID（txid）")
    for text, error, status in (
        ("not-a-txid", "txid ではありません", 400),
        ("abcd", "64 桁", 400),
        ("00" * 32, "このノードのログにありません", 404),
    ):
        field.fill(text)
        with page.expect_response(lambda r: "/proof?" in r.url) as answer:
            page.get_by_role("button", name="証明を表示").click()
        assert answer.value.status == status
        assert error in page.locator("#lookup .field-error").inner_text()
        assert page.locator("#proof").count() == 0
        field = page.get_by_label("トランザクション ID（txid）")
        assert field.input_value() == text  # kept, to correct
    page.goto(fig6.url("ac1", "/proof?type=no_such_type&before=x"))
    errors = page.locator("form.filters .field-error").all_inner_texts()
    assert len(errors) == 2, errors
    assert page.locator("#log tbody tr").count() >= 1  # the newest entries all the same
    for txid in ("zz", "00" * 32):
        response = page.request.get(fig6.url("ac1", f"/proof.json?txid={txid}"))
        assert response.status in (400, 404)
        assert "attachment" not in response.headers.get("content-disposition", "")


def _page(node: str, view: dict[str, Any]) -> str:
    """The privacy template for `node`, in Japanese, as its text."""
    layout = {"me": node, "role": "ra", "operator": None, "csrf": "", "nav": []}
    return render("ja", "privacy.html", {**layout, "path": "/privacy", "here": "/", "v": view})


def test_moves_and_shreds_show_which_epochs_a_node_holds_and_why(tmp_path: Path) -> None:
    net = Net(tmp_path, nodes=("tso", "ra1", "ra2"))
    net.everywhere(net.fig.registrations())
    net.epochs()
    gws = net.fig.gateways
    net.everywhere([gws[s].batch(T0 - 180, {"m1": 1, "m2": 2}) for s in ("site1", "site2")])
    net.everywhere([net.fig.move("site1", "ra2")])  # RA(1) leaves site1's group, RA(2) joins
    assert [(k.site, k.epoch) for k in net.epochs()] == [("site1", 1)]
    net.everywhere([gws["site1"].batch(T0 - 120, {"m1": 3, "m2": 4})])
    tso = net.ledgers["tso"]
    with tso.transaction() as changes:
        commands.VERBS["shred"].author(tso, {"site": "site2", "epoch": 0})
    net.everywhere([raw for _, raw in changes.authored])
    for name in net.ledgers:
        net.open(name)
    views = {n: privacy.gather(net.ledgers[n].db, n) for n in ("ra1", "ra2")}
    ra1, ra2 = views["ra1"], views["ra2"]
    cells = {r["org"]: r["cells"] for r in ra1["matrix"]}
    assert cells == {r["org"]: r["cells"] for r in ra2["matrix"]}  # the same ledger
    assert cells["ra1"] == {"site1": "past", "site2": "none", "site3": "none"}
    assert cells["ra2"] == {"site1": "current", "site2": "shredded", "site3": "none"}
    assert cells["tso"] == {"site1": "current", "site2": "shredded", "site3": "current"}

    def epochs(view: dict[str, Any], site: str) -> list[tuple[int, str, dict[str, int]]]:
        (s,) = [s for s in view["sites"] if s["site"] == site]
        return [(e["epoch"], e["access"], e["batches"]) for e in s["epochs"]]

    one = {"decrypted": 1, "ciphertext": 0, "flagged": 0}
    sealed = {"decrypted": 0, "ciphertext": 1, "flagged": 0}
    assert epochs(ra1, "site1") == [(0, "reads", one), (1, "not_member", sealed)]
    assert epochs(ra2, "site1") == [(0, "not_member", sealed), (1, "reads", one)]
    assert epochs(ra2, "site2") == [(0, "shredded", sealed)]  # its readings erased
    assert epochs(ra1, "site2") == [(0, "not_member", sealed)]
    # What each node reads is what its status lists.
    for name, view in views.items():
        groups = {e.site for e in privacy.readable(net.ledgers[name].db, name)}
        assert set(view["reads"]) == groups
    text = _page("ra2", ra2)
    assert "データ鍵なし：シュレッド済み" in text
    assert "このノードが需要家のグループに加わる前のエポックです" in text
    text = _page("ra1", ra1)
    assert "site1 は ra2 の需要家です" in text  # it left: the site is RA(2)'s now

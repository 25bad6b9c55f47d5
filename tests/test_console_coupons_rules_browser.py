"""The coupons and programme-rules sections in a real browser (Playwright, Debian's
chromium), in Russian and in English, each test keeping a screenshot: issuing a batch
(a bad count refused on the form, then issued), downloading its PDF sheet (its QR codes
read back as the issued tokens) and CSV, personal coupons and revoking one coupon and a
whole issue; the active programme, a file loaded into the editor, checked with its
difference, a cheque previewed, a version published for later and one at once."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.rules import programme_to_dict
from agent.seed import demo_programme
from kassa.demo_sync import LoopbackServer
from sync.backoffice.db import Database
from sync.backoffice.people import users
from sync.backoffice.service import Backoffice
from tests.conftest import FakeClock
from tests.test_console_browser import ARTIFACTS, PASSWORD, browser, page, sign_in
from tests.test_console_coupons_rules_pages import decode_pdf_qr

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]
__all__ = ["browser", "page"]  # fixtures used by the tests below


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backoffice, str]]:
    bo = Backoffice(Database.open(str(tmp_path_factory.mktemp("bo") / "bo.db")), FakeClock())
    bo.seed_demo({"s1": "Тверская"}, 20)
    users.add_user(bo.context, "owner", PASSWORD, "owner", name="Ольга")
    try:
        with LoopbackServer(bo, verifier=False) as server:
            yield bo, server.url + "/console/"
    finally:
        bo.db.close()


@pytest.fixture
def url(office: tuple[Backoffice, str]) -> str:
    return office[1]


def shot(page: Any, name: str) -> None:
    """A screenshot of a step inside a test (the ``page`` fixture keeps the last one)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def english(page: Any, url: str) -> None:
    page.goto(url)
    page.click("#lang-switch")


def fill_issue(page: Any, mode: str, value: str, **fields: str) -> None:
    page.select_option("#mode", mode)
    page.select_option("#kind", fields.pop("kind", "percent"))
    page.fill("#value", value)
    page.fill("#valid_from", "2026-06-15")
    page.fill("#valid_until", "2026-07-15")
    for name, text in fields.items():
        page.fill(f"#{name}", text)
    page.click("#issue-button")


def test_issue_a_batch_and_download_its_sheet_in_russian(page: Any, url: str, office) -> None:
    bo, _ = office
    sign_in(page, url)
    page.wait_for_url(url)
    page.goto(url + "coupons")
    assert page.locator("h1").inner_text() == "Купоны"
    fill_issue(page, "batch", "10", count="0", note="Листовка")
    assert page.locator("#error").inner_text() == "в партии от 1 до 2000 кодов"
    assert page.locator("#note").input_value() == "Листовка"  # what was typed is kept
    page.fill("#count", "14")
    page.click("#issue-button")
    assert page.locator("#notice").inner_text() == "Выпущено купонов: 14."
    assert page.locator("#codes tbody tr").count() == 14
    shot(page, "coupons-batch-issued-ru")
    batch_id = page.url.split("/coupons/")[1].split("?")[0]
    found = bo.coupon_batch(batch_id)
    assert found is not None
    tokens = [c.token for c in found[1]]
    with page.expect_download() as pdf:
        page.click("#sheet-pdf")
    assert decode_pdf_qr(Path(pdf.value.path()).read_bytes()) == tokens
    with page.expect_download() as codes:
        page.click("#codes-csv")
    rows = list(csv.DictReader(io.StringIO(Path(codes.value.path()).read_text("utf-8"))))
    assert [r["token"] for r in rows] == tokens
    page.goto(url + "coupons")
    assert page.locator(f"tr[data-batch='{batch_id}']").count() == 1


def test_personal_coupons_and_revoking_in_english(page: Any, url: str, office) -> None:
    bo, _ = office
    with bo.db.reading() as tx:
        codes = [str(r[0]) for r in tx.all("SELECT code FROM members ORDER BY code LIMIT 2")]
    english(page, url)
    sign_in(page, url)
    page.wait_for_url(url)
    page.goto(url + "coupons")
    fill_issue(page, "members", "500", kind="fixed", members="1234567")
    assert page.locator("#error").inner_text() == "'1234567' is not a member code"
    shot(page, "coupons-bad-member-en")
    page.fill("#members", "\n".join(codes))
    page.click("#issue-button")
    assert page.locator("#notice").inner_text() == "Coupons issued: 2."
    assert page.locator("#terms-text").inner_text() == "−500.00\u00a0₽"
    first = page.locator("#codes tbody tr").first
    first.locator("button").click()  # no reason given
    assert page.locator("#error").inner_text() == (
        "give the reason for revoking (up to 200 characters)"
    )
    first = page.locator("#codes tbody tr").first
    first.locator("input[name=reason]").fill("sent to the wrong member")
    first.locator("button").click()
    assert page.locator("#notice").inner_text() == "Coupons revoked: 1."
    assert "revoked" in page.locator("#codes tbody tr .state").first.inner_text()
    page.fill("#revoke-all-reason", "campaign cancelled")
    page.click("#revoke-all-button")
    assert page.locator("#notice").inner_text() == "Coupons revoked: 1."
    assert page.locator("#revoked-count").inner_text() == "2"
    assert page.locator("#revoke-all").count() == 0


def _draft(version: int, **changes: object) -> str:
    doc = programme_to_dict(demo_programme()) | {"version": version} | changes
    return json.dumps(doc, ensure_ascii=False, indent=2)


def test_rules_check_preview_and_publish_later_in_russian(
    page: Any, url: str, office, tmp_path: Path
) -> None:
    bo, _ = office
    sign_in(page, url)
    page.wait_for_url(url)
    page.goto(url + "rules")
    assert page.locator("#active-title").inner_text().startswith("Действующая версия 1")
    assert page.locator("#tiers tbody tr").count() == len(demo_programme().tiers)
    file = tmp_path / "summer.json"
    file.write_text(_draft(2, name="Лето", redeem_cap_bp=5000), encoding="utf-8")
    page.set_input_files("#rules-file", str(file))
    page.wait_for_function("document.getElementById('rules-text').value.includes('Лето')")
    page.click("#check")
    assert page.locator("#check-ok").inner_text().startswith("Правила верны: версия 2")
    assert page.locator("#diff tr[data-path=redeem_cap_bp] .rules-new").inner_text() == "5000"
    shot(page, "rules-diff-ru")
    cat = sorted(demo_programme().categories)[0]
    page.fill("#lines", f"{cat} 1000 2")
    page.click("#preview")
    assert page.locator("#quote-lines tbody tr").count() == 1
    assert "Начислится бонусов" in page.locator("#quote-total").inner_text()
    shot(page, "rules-preview-ru")
    later = (bo.clock.now() + timedelta(days=5)).astimezone(demo_programme().tz)
    page.fill("#effective_at", later.strftime("%Y-%m-%dT%H:%M"))
    page.click("#publish")
    assert "вступит в силу" in page.locator("#notice").inner_text()
    assert page.locator("#schedule tr[data-version='2']").get_attribute("data-state") == (
        "scheduled"
    )
    assert page.locator("#active-title").inner_text().startswith("Действующая версия 1")


def test_rules_bad_draft_and_publish_now_in_english(page: Any, url: str, office) -> None:
    bo, _ = office
    english(page, url)
    sign_in(page, url)
    page.wait_for_url(url)
    page.goto(url + "rules")
    page.fill("#rules-text", _draft(3, redeem_cap_bp=20_000))
    page.click("#check")
    assert "redeem_cap_bp" in page.locator("#error").inner_text()
    assert "20000" in page.locator("#rules-text").input_value()  # the text is kept
    shot(page, "rules-bad-draft-en")
    page.fill("#rules-text", _draft(3, name="Autumn"))
    page.click("#publish")
    assert page.locator("#notice").inner_text() == "Version 3 is published and active."
    assert page.locator("#active-title").inner_text() == "Active version 3: “Autumn”"
    assert bo.active_rules().version == 3
    page.click("#schedule tr[data-version='3'] a")
    assert page.locator("h1").inner_text() == "Version 3: “Autumn”"

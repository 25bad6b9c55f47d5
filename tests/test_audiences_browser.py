"""The segments page in a real browser (Playwright, Debian's chromium; the ``browser``
fixture and helpers of ``test_console_browser``): marketing types rules and the live
count (htmx) follows the fields, a bad value is said naming its field, the segment is
created, evaluated, and its CSV downloaded with the members counted. A screenshot is kept
under ``tests/artifacts/``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import Cluster
from synchelp import portal

from kassa.demo_sync import LoopbackServer
from sync.backoffice.people import users
from tests.test_console_browser import PASSWORD, browser, new_page, open_section

__all__ = ["browser"]

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    """30 members; M1 bought twice at a real till, M2 once; a marketing user."""
    tmp = tmp_path_factory.mktemp("segments")
    with portal() as p:
        c = Cluster(tmp, str(tmp / "bo.db"), p, members=30)
        users.add_user(c.bo.context, "mk", PASSWORD, "marketing", name="Марина")
        till = c.till()
        till.sale("R1", "m00000001", ("DR-1001", 1))
        till.sale("R2", "m00000001", ("SH-2001", 1))
        till.sale("R3", "m00000002", ("SH-2001", 1))
        till.client.drain()
        try:
            with LoopbackServer(c.bo, verifier=False) as server:
                yield c, server.url + "/console/"
        finally:
            c.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    with new_page(browser, request, (1280, 1400)) as p:
        yield p


def test_live_count_create_evaluate_download(page: Any, office: tuple[Cluster, str]) -> None:
    cluster, url = office
    open_section(page, url, "segments", "ru", "mk")
    count = page.locator("#preview-count")
    count.wait_for()
    consenting = cluster.ledger("SELECT count(*) FROM members WHERE consent_marketing = 1")
    assert count.get_attribute("data-count") == str(consenting[0][0])  # ticked by default
    assert consenting[0][0] < 30
    page.uncheck("#f-marketing_consent")
    page.locator('#preview-count[data-count="30"]').wait_for()
    page.fill("#f-frequency-min", "1")
    page.locator('#preview-count[data-count="2"]').wait_for()
    page.fill("#f-frequency-min", "2")
    page.locator('#preview-count[data-count="1"]').wait_for()
    assert page.locator("#preview-count").inner_text() == "Сейчас подходит участников: 1"
    page.fill("#f-birthday_months", "13")
    error = page.locator("#preview-error")
    error.wait_for()
    assert error.get_attribute("data-field") == "birthday_months.0"
    assert "birthday_months.0" in error.inner_text()
    page.fill("#f-birthday_months", "")
    page.locator('#preview-count[data-count="1"]').wait_for()
    page.fill("#f-name", "Купили дважды")
    page.fill("#f-control_pct", "0")
    page.click("#segment-save")
    page.locator("#notice").wait_for()
    assert page.locator("#segment-name").inner_text() == "Купили дважды"
    page.click("#evaluate")
    assert "1" in page.locator("#notice").inner_text()
    with page.expect_download() as got:
        page.click("#csv-semicolon")
    body = got.value.path().read_bytes()
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    assert [r[0] for r in rows[1:]] == ["m00000001"]
    [seg] = cluster.bo.segments()
    assert seg.members == 1 and seg.rules.frequency is not None

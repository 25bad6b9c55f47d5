"""The stores-and-tills page in a real browser (Playwright, Debian's chromium; the
``browser`` fixture and ``sign_in`` of ``test_console_browser``), in Russian and in
English: the silent-till alarm and each till's queue, adding a store (refused, then
added), an enrollment code shown once, the silence threshold (refused, then set), the
closed-launch table over a period (a bad date said on the form), a store manager's view of
their store only, and the people page's lockout column. Each test keeps a screenshot under
``tests/artifacts/``."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from cluster import Cluster
from synchelp import portal

from agent.seed import demo_phone
from kassa.demo_sync import LoopbackServer
from sync.backoffice.people import users
from sync.enroll import enroll_till
from tests.test_console_browser import (
    ARTIFACTS,
    PASSWORD,
    browser,
    new_page,
    open_section,
    sign_in,
)

__all__ = ["browser"]

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    """Two stores: s1's till sold (a typed phone, a refund) and then went quiet for 40
    minutes with a cheque unsent; s2's till calls in. An owner, s2's manager, and an
    analyst locked out by wrong passwords."""
    tmp = tmp_path_factory.mktemp("stores")
    with portal() as p:
        c = Cluster(tmp, str(tmp / "bo.db"), p, members=30)
        ctx = c.bo.context
        users.add_user(ctx, "owner", PASSWORD, "owner", name="Ольга")
        users.add_user(ctx, "boss2", PASSWORD, "store_manager", name="Борис", store_id="s2")
        users.add_user(ctx, "ana", PASSWORD, "analyst", name="Аня")
        c.bo.add_store("s2", "Арбат", actor="owner")
        one = c.till("till-1")
        card = one.agent.identify(demo_phone(1))
        for n in range(3):
            one.sale(
                f"S-{n}", card.member_id, ("DR-1001", 1), cashier="anna", identified_by="phone"
            )
        one.agent.refund("SR-1", "S-0", {1: 1}, cashier_id="anna")
        one.client.drain()
        one.client.pull_once()
        enroll_till(
            tmp / "t2.db", c.http, c.bo.enroll_code("s2"), name="Арбат 1", terminal_id="till-2"
        )
        c.clock.advance(minutes=40)
        one.sale("S-9", card.member_id, ("DR-1001", 1), cashier="anna")
        from agent.service import Agent
        from agent.store import Store
        from sync.client import SyncClient

        with Store(tmp / "t2.db") as s2:
            SyncClient(Agent(s2, c.clock), c.http).pull_once()
        for _ in range(users.LOCK_AFTER):  # locked now, for LOCK_FOR
            c.bo.sign_in("ana", "not the password")
        try:
            with LoopbackServer(c.bo, verifier=False) as server:
                yield c, server.url + "/console/"
        finally:
            c.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    with new_page(browser, request, (1280, 900)) as p:
        yield p


def _open(page: Any, url: str, lang: str, login: str = "owner") -> None:
    open_section(page, url, "stores", lang, login)


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_alarm_and_the_tills(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    _, url = office
    _open(page, url, lang)
    alarm = page.locator("#alarm").inner_text()
    assert (
        alarm
        == {
            "ru": "Молчат касс: 1 — дольше 30 мин без связи с бэк-офисом.",
            "en": "Silent tills: 1 — no contact with the back office for over 30 min.",
        }[lang]
    )
    one = page.locator('tr[data-till="till-1"]')
    assert (
        one.locator("[data-state]").inner_text()
        == {
            "ru": "молчит 40 мин",
            "en": "silent 40 min",
        }[lang]
    )
    assert one.locator("[data-waiting]").inner_text() == "0"
    assert "kassa-agent/" in one.inner_text()
    two = page.locator('tr[data-till="till-2"]')
    assert two.locator("[data-state]").inner_text() == {"ru": "на связи", "en": "calling in"}[lang]
    anna = page.locator('tr[data-cashier="anna"]').inner_text()
    assert re.search(r"anna\ts1\t0\t2\t1\t1\t3\t100 %\t0 %", anna), anna
    page.click('a[data-nav="stores"]')
    assert page.url == url + "stores"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_adding_a_store(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    cluster, url = office
    _open(page, url, lang)
    new = f"s-{lang}"
    page.fill('#add-store input[name="store_id"]', f"{new} !")
    page.fill('#add-store input[name="name"]', "Садовая")
    page.click("#store-add")
    assert (
        page.locator("#error")
        .inner_text()
        .startswith({"ru": "код магазина: 1-32", "en": "a store id is 1-32"}[lang])
    )
    assert page.locator('#add-store input[name="name"]').input_value() == "Садовая"
    page.fill('#add-store input[name="store_id"]', new)
    page.click("#store-add")
    page.wait_for_url(url + "stores")
    assert "Садовая" in page.locator(f'tr[data-store="{new}"]').inner_text()
    assert new in [s.store_id for s in cluster.bo.stores_overview().stores]


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_an_enrollment_code(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    _, url = office
    _open(page, url, lang)
    page.click('button[data-code-for="s2"]')
    code = page.locator("#code-value").inner_text()
    assert re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}", code)
    text = page.locator("#new-code").inner_text()
    assert {"ru": "действует до", "en": "valid until"}[lang] in text
    page.screenshot(path=str(ARTIFACTS / f"console-stores-code-shown-{lang}.png"), full_page=True)
    page.goto(url + "stores")
    assert page.locator("#new-code").count() == 0  # shown once


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_silence_threshold(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    cluster, url = office
    _open(page, url, lang)
    page.fill('#threshold input[name="minutes"]', "3")
    page.click("#threshold-save")
    assert (
        page.locator("#threshold-error")
        .inner_text()
        .startswith(
            {"ru": "порог: целое число минут от 5", "en": "the threshold is a whole number"}[lang]
        )
    )
    page.fill('#threshold input[name="minutes"]', "45")
    page.click("#threshold-save")
    page.wait_for_url(url + "stores")
    assert page.locator("#alarm").get_attribute("data-silent") == "0"
    page.screenshot(path=str(ARTIFACTS / f"console-stores-threshold-45-{lang}.png"))
    cluster.bo.set_silent_threshold(30, actor="owner")  # the next tests see the alarm


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_closed_launch_period(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    _, url = office
    _open(page, url, lang)
    page.fill('#period input[name="from"]', "2026-13-01")
    page.click("#period-show")
    assert "2026-13-01" in page.locator("#period-error").inner_text()
    page.fill('#period input[name="from"]', "2026-06-01")
    page.fill('#period input[name="to"]', "2026-06-30")
    page.click("#period-show")
    assert page.locator("#period-error").count() == 0
    assert page.locator('tr[data-cashier="anna"]').count() == 1
    page.fill('#period input[name="from"]', "2027-01-01")
    page.fill('#period input[name="to"]', "")
    page.click("#period-show")
    assert page.locator("#cashiers").count() == 0


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_a_store_manager_sees_their_store(
    page: Any, office: tuple[Cluster, str], lang: str
) -> None:
    _, url = office
    _open(page, url, lang, "boss2")
    assert page.locator('tr[data-till="till-2"]').count() == 1
    assert page.locator('tr[data-till="till-1"]').count() == 0
    assert page.locator('tr[data-store="s1"]').count() == 0
    assert page.locator("#add-store, #threshold, button[data-code-for]").count() == 0
    assert page.locator("#alarm").get_attribute("data-silent") == "0"


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_the_people_page_shows_a_lockout(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    _, url = office
    sign_in(page, url)
    page.wait_for_url(url)
    if lang == "en":
        page.click("#lang-switch")
    page.goto(url + "users")
    row = page.locator('tr[data-login="ana"]')
    assert (
        row.locator("[data-locked]")
        .inner_text()
        .startswith({"ru": "вход заблокирован до 2026-", "en": "sign-in locked until 2026-"}[lang])
    )
    assert page.locator('tr[data-login="owner"] [data-locked]').count() == 0

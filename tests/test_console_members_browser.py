"""The members section in a real browser (Playwright, Debian's chromium; the ``browser``
fixture and ``sign_in`` of ``test_console_browser``), in Russian and in English: a search
typed into the box (htmx swaps the results), the profile with a cheque's points explained,
an adjustment (refused without a reason, then posted), blocking and unblocking, a merge
(refused with oneself, then done), and an erasure (refused unconfirmed, then done) with
its printable act. Each test keeps a screenshot under ``tests/artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cluster import Cluster
from synchelp import portal

from agent.seed import demo_phone
from kassa.demo_sync import LoopbackServer
from sync.backoffice.people import users
from tests.test_console_browser import PASSWORD, browser, new_page, sign_in

__all__ = ["browser"]

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

LANGS = ("ru", "en")
FIRST = {"ru": 1, "en": 11}
"""Each language's tests act on their own members (m00000001.., m00000011..)."""


def mid(lang: str, k: int = 0) -> str:
    return f"m{FIRST[lang] + k:08d}"


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    """One back office with a till's cheques for both languages' first members."""
    tmp = tmp_path_factory.mktemp("members")
    with portal() as p:
        c = Cluster(tmp, str(tmp / "bo.db"), p, members=30)
        users.add_user(c.bo.context, "sup", PASSWORD, "support", name="Семён")
        till = c.till()
        for lang in LANGS:
            till.sale(f"R-{lang}", mid(lang), ("DR-1001", 2), ("SH-2001", 1))
            till.sale(f"R-{lang}-5", mid(lang, 5), ("DR-1001", 1))  # erased: kept in the act
        till.client.drain()
        try:
            with LoopbackServer(c.bo, verifier=False) as server:
                yield c, server.url + "/console/"
        finally:
            c.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    with new_page(browser, request, (1100, 800)) as p:
        yield p


def open_member(page: Any, office: tuple[Cluster, str], lang: str, k: int = 0) -> str:
    """Sign in as support in ``lang`` and open member ``k`` of that language's range."""
    url = office[1]
    page.goto(url)
    if lang == "en":
        page.click("#lang-switch")
    sign_in(page, url, "sup")
    page.wait_for_url(url)
    member = mid(lang, k)
    page.goto(f"{url}members/{member}")
    return member


def code_of(cluster: Cluster, member_id: str) -> str:
    return str(cluster.ledger("SELECT code FROM members WHERE member_id = ?", (member_id,))[0][0])


@pytest.mark.parametrize("lang", LANGS)
def test_search_and_profile(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    url = office[1]
    page.goto(url)
    if lang == "en":
        page.click("#lang-switch")
    sign_in(page, url, "sup")
    page.wait_for_url(url)
    page.click("[data-nav=members]")
    page.wait_for_url(url + "members")
    page.fill("#q", demo_phone(FIRST[lang]))  # htmx: the results block swapped in as typed
    page.locator(f"tr[data-member={mid(lang)}]").wait_for()
    found = page.locator("#found-kind").inner_text()
    assert found == ("Found by phone" if lang == "en" else "Найдено по телефону")
    page.click(f"tr[data-member={mid(lang)}] a")
    page.wait_for_url(f"{url}members/{mid(lang)}")
    page.click("details.members-why summary")
    why = page.locator("details.members-why").inner_text()
    assert ("the tier's base rate" if lang == "en" else "базовая ставка уровня") in why
    assert page.locator("#history tr[data-kind=purchase]").count() == 1
    assert page.locator("#lots tr[data-status=pending]").count() >= 1


@pytest.mark.parametrize("lang", LANGS)
def test_adjust_points(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    cluster, _ = office
    member = open_member(page, office, lang, 1)
    before = cluster.server_balance(member)
    page.fill("#adjust-points", "150")
    page.click("#adjust-do")
    error = page.locator("#adjust #error").inner_text()
    assert error.startswith("reason: say why" if lang == "en" else "причина: укажите")
    assert page.locator("#adjust-points").input_value() == "150"
    page.fill("#adjust-reason", "сбой кассы" if lang == "ru" else "till fault")
    page.click("#adjust-do")
    page.locator("#done").wait_for()
    assert cluster.server_balance(member) == before + 150
    assert page.locator("#history tr[data-kind=adjustment]").count() == 1


@pytest.mark.parametrize("lang", LANGS)
def test_block_and_unblock(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    open_member(page, office, lang, 2)
    page.fill("#block-reason", "утеряна" if lang == "ru" else "card lost")
    page.click("#block-do")
    page.locator("#blocked").wait_for()
    assert page.locator("#blocked").inner_text() == ("blocked" if lang == "en" else "заблокирован")
    page.fill("#block-reason", "нашлась" if lang == "ru" else "found")
    page.click("#block-do")
    page.locator("#done").wait_for()
    assert page.locator("#blocked").count() == 0
    assert page.locator("#flags li").count() == 2


@pytest.mark.parametrize("lang", LANGS)
def test_merge(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    cluster, _ = office
    member = open_member(page, office, lang, 3)
    page.fill("#merge-code", code_of(cluster, member))
    page.fill("#merge-reason", "дубль")
    page.click("#merge-do")
    error = page.locator("#merge #error").inner_text()
    assert ("merged with themselves" if lang == "en" else "с самим собой") in error
    page.fill("#merge-code", code_of(cluster, mid(lang, 4)))
    page.fill("#merge-reason", "дубль")
    page.click("#merge-do")
    page.locator("#merged").wait_for()
    assert page.locator("#merged").inner_text() == mid(lang, 4)


@pytest.mark.parametrize("lang", LANGS)
def test_erase_and_the_act(page: Any, office: tuple[Cluster, str], lang: str) -> None:
    cluster, url = office
    member = open_member(page, office, lang, 5)
    page.fill("#erase-reason", "заявление № 12" if lang == "ru" else "request No. 12")
    page.click("#erase-do")
    error = page.locator("#erase #error").inner_text()
    assert error == (
        "confirm the erasure: tick the box"
        if lang == "en"
        else "подтвердите уничтожение: отметьте флажок"
    )
    assert page.locator("#erase-reason").input_value()  # kept
    page.check("#erase-confirm")
    page.click("#erase-do")
    page.locator("#erased").wait_for()
    assert page.locator("#phone").inner_text() == "—"
    page.click("#act-link")
    page.wait_for_url(f"{url}members/{member}/act")
    title = page.locator("h1").inner_text()
    assert title.startswith("Act of destruction" if lang == "en" else "Акт об уничтожении")
    assert page.locator("#extract tr[data-kind=purchase]").count() == 1
    assert cluster.ledger("SELECT first_name FROM members WHERE member_id = ?", (member,)) == [
        (None,)
    ]

"""The console in a real browser: Playwright driving Debian's chromium (``/usr/bin/chromium``,
or ``$KASSA_CHROMIUM``), against the back office served on loopback. Sign-in in Russian and
English, the wrong-password and lockout messages, a forged CSRF token refused, sign-out,
a page the role may not open, and the audit page with its htmx chain check. Each test
keeps a screenshot under ``$KASSA_ARTIFACTS`` (default ``tests/artifacts/``, ignored by git).

``make test`` and ``.ci/run`` install chromium (apt-get, as root) when it is missing; the
tests skip, saying so, only where there is none.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kassa.demo_sync import LoopbackServer
from sync.backoffice.db import Database
from sync.backoffice.people import roles, users
from sync.backoffice.service import Backoffice
from tests.conftest import FakeClock

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

CHROMIUM = Path(os.environ.get("KASSA_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("KASSA_ARTIFACTS", Path(__file__).parent / "artifacts"))
PASSWORD = "correct horse 1"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"no chromium at {CHROMIUM}: `apt-get install chromium` (make test does it as root)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses root otherwise
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield b
        b.close()


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One back office for the module (each test has its own browser context, so its own
    cookies); the lockout test locks a login of its own."""
    bo = Backoffice(Database.open(str(tmp_path_factory.mktemp("bo") / "bo.db")), FakeClock())
    bo.initialise()
    for login, role, name in [("owner", "owner", "Ольга"), ("sup", "support", "Семён")]:
        users.add_user(bo.context, login, PASSWORD, role, name=name)
    users.add_user(bo.context, "locked", PASSWORD, "analyst")
    try:
        with LoopbackServer(bo, verifier=False) as server:
            yield server.url + "/console/"
    finally:
        bo.db.close()


@contextlib.contextmanager
def new_page(
    browser: Any, request: pytest.FixtureRequest, viewport: tuple[int, int] = (1024, 700)
) -> Iterator[Any]:
    """A page in a browser context of its own (its own cookies), whose screenshot is kept
    under ``ARTIFACTS`` as ``console-<test name>.png`` when the test ends. Waits for an
    element up to 20 s: a shared CI machine may be slow."""
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height})
    p = context.new_page()
    p.set_default_timeout(20_000)
    try:
        yield p
    finally:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = request.node.name.replace("[", "-").replace("]", "")
        p.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)
        context.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    with new_page(browser, request) as p:
        yield p


def sign_in(page: Any, url: str, login: str = "owner", password: str = PASSWORD) -> None:
    page.goto(url)
    page.fill("#login", login)
    page.fill("#password", password)
    page.click("#signin")


def open_section(page: Any, url: str, section: str, lang: str, login: str = "owner") -> None:
    """Sign in as ``login``, switch to ``lang``, open the console's ``section`` page."""
    sign_in(page, url, login)
    page.wait_for_url(url)
    if lang == "en":
        page.click("#lang-switch")
    page.goto(url + section)


def test_sign_in_in_russian(page: Any, url: str):
    page.goto(url + "audit")  # no session: the sign-in page, back to the audit page after
    assert page.url.startswith(url + "signin")
    assert page.locator("h1").inner_text() == "Вход в консоль"
    page.fill("#login", "owner")
    page.fill("#password", PASSWORD)
    page.click("#signin")
    page.wait_for_url(url + "audit")
    page.goto(url)
    assert page.locator("#role").inner_text() == "владелец программы"
    assert page.locator("#me").inner_text() == "Ольга (owner)"
    assert page.locator("#sections li").count() == len(roles.sections("owner"))


def test_sign_in_in_english(page: Any, url: str):
    page.goto(url)
    page.click("#lang-switch")
    assert page.locator("h1").inner_text() == "Sign in to the console"
    sign_in(page, url)
    page.wait_for_url(url)
    assert page.locator("h1").inner_text() == "Home"
    assert page.locator("#role").inner_text() == "programme owner"
    assert "in development" not in page.locator("#sections").inner_text()
    page.click("#lang-switch")
    assert page.locator("h1").inner_text() == "Главная"


def test_wrong_password_message(page: Any, url: str):
    sign_in(page, url, password="not the one")
    assert page.locator("#error").inner_text() == "Неверный логин или пароль."
    assert page.locator("#login").input_value() == "owner"


def test_lockout(page: Any, url: str):
    for _ in range(5):
        sign_in(page, url, "locked", password="not the one")
    assert page.locator("#error").inner_text() == (
        "Вход заблокирован после 5 неудачных попыток. Попробуйте через 15 мин 0 с."
    )
    sign_in(page, url, "locked")  # the right password, still locked
    assert "Вход заблокирован" in page.locator("#error").inner_text()


def test_forged_csrf_token_is_refused(page: Any, url: str):
    sign_in(page, url)
    page.wait_for_url(url)
    page.eval_on_selector("form[action$='/signout'] input[name=csrf]", "e => e.value = 'forged'")
    page.click("#signout")
    assert page.locator("#message").get_attribute("data-kind") == "csrf"
    assert page.locator("h1").inner_text() == "Запрос отклонён"
    page.goto(url)
    assert page.locator("h1").inner_text() == "Главная"  # still signed in


def test_sign_out(page: Any, url: str):
    sign_in(page, url)
    page.wait_for_url(url)
    page.click("#signout")
    page.wait_for_url(url + "signin")
    page.goto(url)
    assert page.url.startswith(url + "signin")


def test_a_role_restricted_page_is_refused(page: Any, url: str):
    sign_in(page, url, "sup")
    page.wait_for_url(url)
    assert page.locator("#sections li").all_inner_texts()[0].startswith("Участники")
    assert page.goto(url + "audit").status == 403
    assert page.locator("h1").inner_text() == "Нет доступа"


def test_audit_page(page: Any, url: str):
    sign_in(page, url, password="not the one")
    sign_in(page, url)
    page.goto(url + "audit")
    actions = page.locator("#log tbody tr").evaluate_all("rows => rows.map(r => r.dataset.action)")
    assert actions[:2] == ["sign_in", "sign_in_failed"] and actions[-1] == "user_added"
    page.click("#verify")  # htmx: POST with the CSRF header, the verdict block swapped in
    assert page.locator("#verdict .ok").inner_text() == f"Цепочка цела, записей: {len(actions)}."


def test_users_page_in_english(page: Any, url: str):
    page.goto(url)
    page.click("#lang-switch")
    sign_in(page, url)
    page.goto(url + "users")
    page.fill("#add-user input[name=login]", "mgr2")
    page.select_option("#add-user select[name=role]", "store_manager")
    page.fill("#add-user input[name=password]", PASSWORD)
    page.click("#add")
    assert page.locator("#error").inner_text() == "role store_manager needs a store (--store-id)"
    page.fill("#add-user input[name=store_id]", "s1")
    page.fill("#add-user input[name=password]", PASSWORD)
    page.click("#add")
    page.wait_for_url(url + "users")
    assert page.locator("tr[data-login=mgr2]").inner_text().split("\t")[2] == "store manager"

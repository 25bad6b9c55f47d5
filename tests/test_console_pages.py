"""The console's pages without a browser (httpx against the back office's app served on
loopback): no page without a session (a redirect, 401 for htmx), the CSRF token on every form
(403 without it), sign-in and its lockout message with the time left, sign-out, the
language switch, the role table at work, the audit page (owner only) and its htmx
verification fragment, and the static files."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from kassa.demo_sync import LoopbackServer
from sync.backoffice.console import i18n
from sync.backoffice.console.guard import PREFIX, safe_next
from sync.backoffice.db import Database
from sync.backoffice.people import users
from sync.backoffice.service import Backoffice
from tests.conftest import FakeClock

PASSWORD = "correct horse 1"


@pytest.fixture
def bo(tmp_path) -> Iterator[Backoffice]:
    office = Backoffice(Database.open(str(tmp_path / "bo.db")), FakeClock())
    office.initialise()
    users.add_user(office.context, "owner", PASSWORD, "owner", name="Ольга")
    users.add_user(office.context, "sup", PASSWORD, "support", name="Семён")
    try:
        yield office
    finally:
        office.db.close()


@pytest.fixture
def server(bo: Backoffice) -> Iterator[LoopbackServer]:
    with LoopbackServer(bo, verifier=False) as s:
        yield s


@pytest.fixture
def client(server: LoopbackServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url) as c:
        yield c


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found[1]


def sign_in(client: httpx.Client, login: str = "owner", password: str = PASSWORD, **extra: str):
    token = csrf(client.get(f"{PREFIX}/signin").text)
    form = {"csrf": token, "login": login, "password": password, **extra}
    return client.post(f"{PREFIX}/signin", data=form, follow_redirects=False)


def test_every_text_is_in_both_languages():
    for key, (ru, en) in i18n.TEXT.items():
        assert ru and en and ru != en, key


def test_no_page_without_a_session(client: httpx.Client):
    for path in ("/", "/audit", "/section/members"):
        r = client.get(PREFIX + path, follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == f"{PREFIX}/signin?next={PREFIX}{path}"
        r = client.get(PREFIX + path, headers={"HX-Request": "true"}, follow_redirects=False)
        assert r.status_code == 401 and r.headers["hx-redirect"].startswith(f"{PREFIX}/signin")
    r = client.post(f"{PREFIX}/audit/verify", follow_redirects=False)
    assert r.status_code == 303


def test_sign_in_sets_a_safe_session_cookie_and_shows_the_home_page(client: httpx.Client):
    r = sign_in(client, next=f"{PREFIX}/audit")
    assert r.status_code == 303 and r.headers["location"] == f"{PREFIX}/audit"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert "Max-Age=43200" in cookie
    home = client.get(f"{PREFIX}/")
    assert home.status_code == 200
    assert "Ольга" in home.text and "владелец программы" in home.text
    assert home.headers["x-frame-options"] == "DENY"
    assert "в разработке" not in home.text  # every section has its pages
    for section in ("dashboard", "members", "coupons", "rules", "stores", "users", "audit"):
        assert f'data-section="{section}"' in home.text


def test_next_stays_inside_the_console():
    assert safe_next("https://evil.example/") == f"{PREFIX}/"
    assert safe_next("//evil.example/console") == f"{PREFIX}/"
    assert safe_next(f"{PREFIX}/audit") == f"{PREFIX}/audit"


def test_wrong_password_and_lockout_with_the_time_left(client: httpx.Client, bo: Backoffice):
    r = sign_in(client, password="wrong-one")
    assert r.status_code == 401 and "Неверный логин или пароль." in r.text
    for _ in range(3):
        r = sign_in(client, password="wrong-one")
    assert "Осталось попыток до блокировки: 1." in r.text
    r = sign_in(client, password="wrong-one")
    assert r.status_code == 429
    assert "Вход заблокирован после 5 неудачных попыток. Попробуйте через 15 мин 0 с." in r.text
    clock = bo.clock
    assert isinstance(clock, FakeClock)
    clock.advance(minutes=14)
    r = sign_in(client)  # the right password while locked
    assert r.status_code == 429 and "через 1 мин 1 с" in r.text
    clock.advance(minutes=1, seconds=1)
    assert sign_in(client).status_code == 303


def test_every_form_needs_its_csrf_token(client: httpx.Client):
    r = client.post(f"{PREFIX}/signin", data={"login": "owner", "password": PASSWORD})
    assert r.status_code == 403 and "Запрос отклонён" in r.text
    sign_in(client)
    for path in ("/signout", "/lang", "/audit/verify"):
        r = client.post(PREFIX + path, data={"csrf": "forged"}, follow_redirects=False)
        assert r.status_code == 403, path
    assert client.get(f"{PREFIX}/").status_code == 200  # still signed in
    # a token from another session does not pass either
    foreign = csrf(httpx.get(f"{client.base_url}{PREFIX}/signin").text)
    r = client.post(f"{PREFIX}/signout", data={"csrf": foreign}, follow_redirects=False)
    assert r.status_code == 403


def test_sign_out_ends_the_session(client: httpx.Client):
    sign_in(client)
    token = csrf(client.get(f"{PREFIX}/").text)
    stolen = client.cookies.get("kassa_console")
    r = client.post(f"{PREFIX}/signout", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"{PREFIX}/signin"
    assert client.get(f"{PREFIX}/", follow_redirects=False).status_code == 303
    old = httpx.get(f"{client.base_url}{PREFIX}/", headers={"Cookie": f"kassa_console={stolen}"})
    assert old.status_code == 303  # the old cookie is dead


def test_language_switch_is_kept_for_the_session(client: httpx.Client):
    page = client.get(f"{PREFIX}/signin")
    assert '<html lang="ru">' in page.text and "Вход в консоль" in page.text
    r = client.post(
        f"{PREFIX}/lang",
        data={"csrf": csrf(page.text), "lang": "en", "next": f"{PREFIX}/signin"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    page = client.get(f"{PREFIX}/signin")
    assert '<html lang="en">' in page.text and "Sign in to the console" in page.text
    r = sign_in(client, password="nope-nope")
    assert "Wrong login or password." in r.text
    sign_in(client)
    home = client.get(f"{PREFIX}/").text
    assert "programme owner" in home and "in development" not in home


def test_a_role_sees_its_sections_only(client: httpx.Client):
    sign_in(client, "sup")
    home = client.get(f"{PREFIX}/").text
    assert 'data-section="members"' in home and 'data-section="audit"' not in home
    for path in ("/audit", "/coupons", "/rules"):
        r = client.get(PREFIX + path)
        assert r.status_code == 403 and "Нет доступа" in r.text, path
    r = client.post(f"{PREFIX}/audit/verify", data={"csrf": csrf(home)})
    assert r.status_code == 403
    r = client.get(f"{PREFIX}/section/members", follow_redirects=False)  # a section with pages
    assert r.status_code == 303 and r.headers["location"] == f"{PREFIX}/members"


def test_the_audit_page_lists_the_log_and_verifies_the_chain(client: httpx.Client):
    sign_in(client, password="wrong-one")
    sign_in(client)
    page = client.get(f"{PREFIX}/audit")
    assert page.status_code == 200
    actions = re.findall(r'data-action="(\w+)"', page.text)
    assert actions[:3] == ["sign_in", "sign_in_failed", "user_added"]
    r = client.post(
        f"{PREFIX}/audit/verify", headers={"HX-Request": "true", "X-CSRF-Token": csrf(page.text)}
    )
    assert r.status_code == 200
    assert r.text.strip().startswith('<div id="verdict"')  # the fragment only
    assert "Цепочка цела, записей: 4." in r.text


def test_static_files_are_served(client: httpx.Client):
    r = client.get(f"{PREFIX}/static/htmx.min.js")
    assert r.status_code == 200 and "htmx" in r.text[:2000]
    assert client.get(f"{PREFIX}/static/console.css").status_code == 200


def test_the_owner_adds_and_blocks_users_on_the_users_page(client: httpx.Client):
    sign_in(client)
    page = client.get(f"{PREFIX}/users")
    assert page.status_code == 200 and 'data-login="sup"' in page.text
    token = csrf(page.text)
    bad = {"csrf": token, "login": "mgr", "role": "store_manager", "password": PASSWORD}
    r = client.post(f"{PREFIX}/users", data=bad)
    assert r.status_code == 400 and "для роли store_manager магазин нужен" in r.text
    assert 'value="mgr"' in r.text and PASSWORD not in r.text  # the form kept, not the password
    r = client.post(f"{PREFIX}/users", data={**bad, "store_id": "s1"}, follow_redirects=False)
    assert r.status_code == 303
    assert 'data-login="mgr"' in client.get(f"{PREFIX}/users").text
    r = client.post(
        f"{PREFIX}/users/sup/active", data={"csrf": token, "active": "0"}, follow_redirects=False
    )
    assert r.status_code == 303
    assert "заблокирован" in client.get(f"{PREFIX}/users").text
    r = client.post(f"{PREFIX}/users/owner/active", data={"csrf": token, "active": "0"})
    assert r.status_code == 400 and "Нельзя заблокировать самого себя." in r.text
    log = client.get(f"{PREFIX}/audit").text
    assert re.findall(r'data-action="(\w+)"', log)[:2] == ["user_changed", "user_added"]
    with httpx.Client(base_url=str(client.base_url)) as other:
        assert sign_in(other, "sup").status_code == 401  # blocked


def test_only_the_owner_manages_users(client: httpx.Client):
    sign_in(client, "sup")
    token = csrf(client.get(f"{PREFIX}/").text)
    assert client.get(f"{PREFIX}/users").status_code == 403
    form = {"csrf": token, "login": "x9", "role": "owner", "password": PASSWORD}
    assert client.post(f"{PREFIX}/users", data=form).status_code == 403


def test_sign_in_and_the_audit_page_on_sqlite_and_postgresql(db_url: str):
    office = Backoffice(Database.open(db_url), FakeClock())
    office.initialise()
    try:
        users.add_user(office.context, "owner", PASSWORD, "owner")
        with (
            LoopbackServer(office, verifier=False) as server,
            httpx.Client(base_url=server.url) as c,
        ):
            assert sign_in(c).status_code == 303
            page = c.get(f"{PREFIX}/audit")
            r = c.post(f"{PREFIX}/audit/verify", headers={"X-CSRF-Token": csrf(page.text)})
            assert "Цепочка цела, записей: 2." in r.text
    finally:
        office.db.close()

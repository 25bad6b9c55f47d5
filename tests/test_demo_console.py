"""``kassa demo`` opens the console too: the demo's back office (started as the demo starts
it, in-process on a loopback port) serves the console on the URL the sign-in hints print,
and the printed owner login and password sign in there over HTTP; a demo owner already
there gets a fresh password that works."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from kassa.demo_app import demo_console_login, demo_site
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice


def _printed(hints: list[str]) -> tuple[str, str, str]:
    line = next(h for h in hints if h.startswith("Консоль / console: "))
    found = re.fullmatch(
        r"Консоль / console: (http://127\.0\.0\.1:\d+/console/)  (\S+) / (\S+)", line
    )
    assert found, line
    return found[1], found[2], found[3]


def _signs_in(url: str, login: str, password: str) -> str:
    with httpx.Client() as browser:
        page = browser.get(url, follow_redirects=True)
        assert page.status_code == 200 and str(page.url).startswith(url + "signin")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        home = browser.post(
            url + "signin",
            data={"csrf": token[1], "login": login, "password": password, "next": "/console/"},
            follow_redirects=True,
        )
        assert home.status_code == 200 and 'id="who"' in home.text, home.text
        stores = browser.get(url + "stores")
        assert stores.status_code == 200 and 'data-till="' in stores.text
        return home.text


def test_the_demo_prints_a_console_that_answers(tmp_path: Path) -> None:
    with demo_site(tmp_path / "demo", members=20) as site:
        url, login, password = _printed(site.hints)
        assert url == site.console_url and (login, password) == site.console_login
        assert login == "owner" and len(password) >= 8
        assert "Владелец программы" in _signs_in(url, login, password)


def test_a_demo_owner_already_there_gets_a_fresh_password(tmp_path: Path) -> None:
    bo = Backoffice(Database.open(str(tmp_path / "bo.db")))
    try:
        bo.initialise()
        login, first = demo_console_login(bo)
        again, fresh = demo_console_login(bo)  # the password shown before is gone
        assert login == again == "owner" and fresh != first
        assert bo.sign_in(login, fresh).user is not None
        assert bo.sign_in(login, first).user is None
    finally:
        bo.db.close()

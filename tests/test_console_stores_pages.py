"""The stores-and-tills page over the real back-office app (httpx through ASGITransport,
no browser): the alarm counted at the top, each till's contact, queue, oldest unsent event,
quarantine and software; adding a store, making an enrollment code (shown once, with its
expiry), setting the silent threshold, each with its message on bad input and nothing
written; the closed-launch table; the owner alone changes anything; a store manager sees
only their store."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster import Cluster

from agent.seed import demo_phone
from sync.backoffice.console.guard import PREFIX
from sync.backoffice.people import audit, users
from sync.enroll import enroll_till

PASSWORD = "correct horse 1"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The pages on SQLite (the use cases are tested on both databases)."""
    return str(tmp_path / "backoffice.db")


@pytest.fixture
def shop(cluster: Cluster) -> Cluster:
    """Two stores; a till in s1 that sold twice and is now silent for 40 minutes, one in
    s2 calling in; an owner, an analyst and the manager of s2."""
    ctx = cluster.bo.context
    users.add_user(ctx, "owner", PASSWORD, "owner", name="Ольга")
    users.add_user(ctx, "ana", PASSWORD, "analyst", name="Аня")
    users.add_user(ctx, "boss2", PASSWORD, "store_manager", name="Борис", store_id="s2")
    cluster.bo.add_store("s2", "Арбат", actor="owner")
    one = cluster.till("till-1")
    card = one.agent.identify(demo_phone(1))
    one.sale("P-1", card.member_id, ("DR-1001", 1), cashier="anna", identified_by="phone")
    one.client.push_once()
    one.sale("P-2", card.member_id, ("DR-1001", 1), cashier="anna", identified_by="phone")
    code = cluster.bo.enroll_code("s2")
    enroll_till(cluster.tmp / "t2.db", cluster.http, code, name="Арбат 1", terminal_id="till-2")
    cluster.clock.advance(minutes=40)
    one.sale("P-3", card.member_id, ("DR-1001", 1), cashier="anna")  # unsent: it went quiet
    from agent.service import Agent
    from agent.store import Store
    from sync.client import SyncClient

    with Store(cluster.tmp / "t2.db") as s2:
        SyncClient(Agent(s2, cluster.clock), cluster.http).pull_once()
    return cluster


def _client(cluster: Cluster) -> httpx.Client:
    return httpx.Client(transport=cluster.transport, base_url="http://backoffice")


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found[1]


@pytest.fixture
def as_owner(shop: Cluster) -> Iterator[httpx.Client]:
    with _client(shop) as c:
        _sign_in(c, "owner")
        yield c


def _sign_in(c: httpx.Client, login: str) -> None:
    token = csrf(c.get(f"{PREFIX}/signin").text)
    r = c.post(f"{PREFIX}/signin", data={"csrf": token, "login": login, "password": PASSWORD})
    assert r.status_code == 303, r.text


def _row(html: str, attr: str, key: str) -> str:
    found = re.search(rf'<tr data-{attr}="{re.escape(key)}".*?</tr>', html, re.S)
    assert found, (key, html)
    return found[0]


def test_no_page_without_a_session(shop: Cluster) -> None:
    with _client(shop) as c:
        r = c.get(f"{PREFIX}/stores", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith(f"{PREFIX}/signin")
        r = c.post(f"{PREFIX}/stores", data={"store_id": "x", "name": "y"})
        assert r.status_code in (303, 403)
    assert [s.store_id for s in shop.bo.stores_overview().stores] == ["s1", "s2"]


def test_the_owner_sees_every_till_and_the_alarm(as_owner: httpx.Client, shop: Cluster) -> None:
    html = as_owner.get(f"{PREFIX}/stores").text
    assert 'id="alarm" role="alert" data-silent="1"' in html
    assert "Молчат касс: 1 — дольше 30 мин" in html
    one = _row(html, "till", "till-1")
    assert 'data-state="silent"' in one and "молчит 40 мин" in one
    assert re.search(r"<td data-waiting>1</td>", one)  # P-2 waited when it last called
    assert "kassa-agent/" in one
    two = _row(html, "till", "till-2")
    assert 'data-state="calling"' in two and re.search(r"<td data-waiting>0</td>", two)
    assert "Арбат" in _row(html, "store", "s2")
    cashier = _row(html, "cashier", "anna")
    cells = re.findall(r"<td>([^<]*)</td>", cashier)
    # registrations, cheques with a member, returned in full, refunds, typed phones
    assert cells[:7] == ["anna", "s1", "0", "1", "0", "0", "1"], cells
    en = _client(shop)
    _sign_in(en, "owner")
    en.cookies.set("kassa_console_lang", "en", path=PREFIX)
    page = en.get(f"{PREFIX}/stores").text
    assert "Silent tills: 1 — no contact with the back office for over 30 min." in page
    assert "Молчат" not in page
    en.close()


def test_adding_a_store(as_owner: httpx.Client, shop: Cluster) -> None:
    token = csrf(as_owner.get(f"{PREFIX}/stores").text)
    r = as_owner.post(
        f"{PREFIX}/stores", data={"csrf": token, "store_id": "s 3", "name": "Садовая"}
    )
    assert r.status_code == 400 and "код магазина: 1-32 латинские буквы" in r.text
    assert 'value="s 3"' in r.text and 'value="Садовая"' in r.text  # what was typed, kept
    r = as_owner.post(f"{PREFIX}/stores", data={"csrf": token, "store_id": "s2", "name": "X"})
    assert r.status_code == 400 and "магазин s2 уже есть" in r.text
    r = as_owner.post(f"{PREFIX}/stores", data={"csrf": token, "store_id": "s3", "name": " "})
    assert r.status_code == 400 and "название магазина" in r.text
    assert [s.store_id for s in shop.bo.stores_overview().stores] == ["s1", "s2"]
    r = as_owner.post(
        f"{PREFIX}/stores",
        data={"csrf": token, "store_id": "s3", "name": "Садовая"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    assert "Садовая" in _row(as_owner.get(f"{PREFIX}/stores").text, "store", "s3")
    r = as_owner.post(f"{PREFIX}/stores", data={"store_id": "s4", "name": "Без CSRF"})
    assert r.status_code == 403
    added = [e for e in audit.entries(shop.db) if e.action == "store_added"]
    assert [(e.actor, e.subject) for e in added] == [("owner", "s3"), ("owner", "s2")]


def test_an_enrollment_code_is_shown_once_with_its_expiry(
    as_owner: httpx.Client, shop: Cluster
) -> None:
    token = csrf(as_owner.get(f"{PREFIX}/stores").text)
    r = as_owner.post(f"{PREFIX}/stores/s2/code", data={"csrf": token})
    assert r.status_code == 200
    code = re.search(r'<code id="code-value">([0-9A-F-]+)</code>', r.text)
    assert code and re.fullmatch(r"[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}", code[1])
    until = (shop.clock.now().replace(microsecond=0)).strftime("%Y-%m-%d")
    assert "действует до" in r.text and until in r.text
    assert code[1] not in as_owner.get(f"{PREFIX}/stores").text  # once
    info = enroll_till(shop.tmp / "t3.db", shop.http, code[1], name="Арбат 2")
    assert info["store_id"] == "s2"
    r = as_owner.post(f"{PREFIX}/stores/nowhere/code", data={"csrf": token})
    assert r.status_code == 400 and "Магазина nowhere нет." in r.text
    made = [e for e in audit.entries(shop.db) if e.action == "enroll_code_made"]
    assert [(e.actor, e.subject) for e in made] == [("owner", "s2")]


def test_the_silent_threshold(as_owner: httpx.Client, shop: Cluster) -> None:
    token = csrf(as_owner.get(f"{PREFIX}/stores").text)
    r = as_owner.post(f"{PREFIX}/stores/threshold", data={"csrf": token, "minutes": "два"})
    assert r.status_code == 400 and "порог: целое число минут" in r.text
    assert 'value="два"' in r.text
    r = as_owner.post(
        f"{PREFIX}/stores/threshold",
        data={"csrf": token, "minutes": "60"},
        follow_redirects=False,
    )
    assert r.status_code == 303
    html = as_owner.get(f"{PREFIX}/stores").text
    assert 'data-silent="0"' in html and "порог молчания 60 мин" in html


def test_a_bad_period_is_said_on_the_form(as_owner: httpx.Client) -> None:
    r = as_owner.get(f"{PREFIX}/stores", params={"from": "2026-02-30"})
    assert r.status_code == 400 and 'id="period-error"' in r.text and "2026-02-30" in r.text
    r = as_owner.get(f"{PREFIX}/stores", params={"from": "2030-01-01"})
    assert r.status_code == 200 and "За период кассиры ничего не пробили." in r.text


@pytest.mark.parametrize("login", ["ana", "boss2"])
def test_only_the_owner_changes_anything(shop: Cluster, login: str) -> None:
    with _client(shop) as c:
        _sign_in(c, login)
        html = c.get(f"{PREFIX}/stores").text
        assert 'id="add-store"' not in html and 'id="threshold"' not in html
        assert "data-code-for" not in html
        token = csrf(html)
        for path, form in (
            ("/stores", {"store_id": "s9", "name": "Чужой"}),
            ("/stores/s2/code", {}),
            ("/stores/threshold", {"minutes": "90"}),
        ):
            r = c.post(PREFIX + path, data={"csrf": token, **form})
            assert r.status_code == 403, path
    assert [s.store_id for s in shop.bo.stores_overview().stores] == ["s1", "s2"]
    assert shop.bo.stores_overview().threshold_minutes == 30


def test_a_store_manager_sees_only_their_store(shop: Cluster) -> None:
    with _client(shop) as c:
        _sign_in(c, "boss2")
        html = c.get(f"{PREFIX}/stores").text
    assert 'data-till="till-2"' in html and 'data-till="till-1"' not in html
    assert 'data-store="s2"' in html and 'data-store="s1"' not in html
    assert 'data-cashier="anna"' not in html  # anna rings in s1
    assert 'data-silent="0"' in html  # s1's silent till is not theirs

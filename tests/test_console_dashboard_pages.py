"""The dashboard page over the real back-office app (httpx through ASGITransport, no
browser): its figures equal the KPI report's for today, the month and a chosen period;
htmx gets the board alone; a store and a cashier filter it; a store manager sees their
store whatever they ask; charts by day are inline SVG; the owner's monthly plan with its
actual and % done, each bad input refused on the form with nothing written; only the
owner may set a plan."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster import Cluster
from test_dashboard_rollups import StoreTill

from sync.backoffice import kpi
from sync.backoffice.console.guard import PREFIX
from sync.backoffice.people import users

PASSWORD = "correct horse 1"
DAY = "2026-06-15"  # the fake clock's day, Europe/Moscow


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """The pages on SQLite (the figures are tested on both databases)."""
    return str(tmp_path / "backoffice.db")


@pytest.fixture
def shop(cluster: Cluster) -> Cluster:
    """Two stores: s1 sells three cheques (one returned in full) and registers a member,
    s2 sells one; an owner, an analyst and the manager of s2."""
    ctx = cluster.bo.context
    users.add_user(ctx, "owner", PASSWORD, "owner", name="Ольга")
    users.add_user(ctx, "ana", PASSWORD, "analyst", name="Аня")
    users.add_user(ctx, "boss2", PASSWORD, "store_manager", name="Борис", store_id="s2")
    cluster.bo.ensure_store("s2", "Арбат")
    one = cluster.till("till-1")
    reg = one.agent.register(
        phone="+7 916 555-12-34",
        first_name="Ира",
        consent_programme=True,
        consent_marketing=False,
        cashier_id="anna",
    )
    one.sale("P-1", "m00000001", ("DR-1001", 1), cashier="anna")
    one.sale("P-2", reg.card.member_id, ("OW-4001", 1), cashier="boris")
    one.sale("P-3", "m00000001", ("BG-7001", 1), cashier="anna")
    one.agent.refund("F-1", "P-3", {1: 1}, cashier_id="anna")
    one.client.drain()
    two = StoreTill(cluster, cluster.tmp / "t2.db", "till-2", "s2")
    cluster.tills.append(two)
    two.sale("Q-1", "m00000002", ("SH-2001", 1), cashier="vera")
    two.client.drain()
    return cluster


def _client(cluster: Cluster) -> httpx.Client:
    return httpx.Client(transport=cluster.transport, base_url="http://backoffice")


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found[1]


def _sign_in(c: httpx.Client, login: str) -> None:
    token = csrf(c.get(f"{PREFIX}/signin").text)
    r = c.post(f"{PREFIX}/signin", data={"csrf": token, "login": login, "password": PASSWORD})
    assert r.status_code == 303, r.text


@pytest.fixture
def as_owner(shop: Cluster) -> Iterator[httpx.Client]:
    with _client(shop) as c:
        _sign_in(c, "owner")
        yield c


def figure(html: str, name: str) -> str:
    found = re.search(rf'<dd data-figure="{name}">([^<]*)</dd>', html)
    assert found, (name, html[:3000])
    return found[1].replace("\xa0", " ")


def test_no_page_without_a_session(shop: Cluster) -> None:
    with _client(shop) as c:
        r = c.get(f"{PREFIX}/dashboard", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith(f"{PREFIX}/signin")
        r = c.get(f"{PREFIX}/dashboard", headers={"HX-Request": "true"}, follow_redirects=False)
        assert r.status_code == 401
        r = c.post(f"{PREFIX}/dashboard/plan", data={"month": "2026-06"}, follow_redirects=False)
        assert r.status_code == 303
    with shop.db.reading() as tx:
        assert tx.one("SELECT count(*) FROM dashboard_plans")[0] == 0


def test_today_equals_the_kpi_report(as_owner: httpx.Client, shop: Cluster) -> None:
    html = as_owner.get(f"{PREFIX}/dashboard").text
    rep = kpi.report(shop.bo.context, kpi.period(DAY, DAY))["totals"]
    assert rep["cheques"] == 3 and rep["refunded_cheques"] == 1 and rep["new_members"] == 1
    assert figure(html, "cheques") == str(rep["cheques"])
    assert figure(html, "refunded_cheques") == "1"
    assert figure(html, "new_members") == "1"
    assert figure(html, "members_with_purchase") == str(rep["members_with_purchase"]) == "3"
    assert figure(html, "revenue_kop").replace(" ", "") == (
        f"{rep['revenue_kop'] // 100},{rep['revenue_kop'] % 100:02d}₽"
    )
    assert figure(html, "points_issued").startswith(f"{rep['points_issued']:,}".replace(",", " "))
    assert 'id="board"' in html and "<svg" in html and "Сводка программы" in html
    # June's cohort: one member registered, bought once (P-2), not twice
    row = re.search(r'<tr data-cohort="2026-06">.*?</tr>', html, re.S)
    assert row and re.findall(r"<td>([^<]*)</td>", row[0]) == [
        "2026-06",
        "1",
        "1 (100,0\xa0%)",
        "0 (0,0\xa0%)",
    ]


def test_htmx_swaps_the_board_alone(as_owner: httpx.Client) -> None:
    r = as_owner.get(
        f"{PREFIX}/dashboard", params={"period": "month"}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 200
    assert r.text.lstrip().startswith('<div id="board"') and "<html" not in r.text
    assert "2026-06-01" in r.text and DAY in r.text
    # one bar per day of the month so far, per series: 15 days, revenue chart
    chart = re.search(r'data-chart="revenue_kop">.*?</svg>', r.text, re.S)
    assert chart and chart[0].count("<rect") == 15
    points = re.search(r'data-chart="points_issued">.*?</svg>', r.text, re.S)
    assert points and points[0].count("<rect") == 30  # issued and spent side by side


def test_a_chosen_period_and_its_bad_input(as_owner: httpx.Client) -> None:
    r = as_owner.get(
        f"{PREFIX}/dashboard", params={"period": "custom", "from": "2026-06-10", "to": DAY}
    )
    assert r.status_code == 200 and figure(r.text, "cheques") == "3"
    for params, said in (
        ({"period": "custom", "from": "2026-06-31", "to": DAY}, "такой даты нет"),
        ({"period": "custom", "from": DAY, "to": "2026-06-01"}, "раньше начала"),
        ({"period": "custom", "from": DAY}, "нужны обе даты"),
        ({"period": "year"}, "период «year»"),
    ):
        r = as_owner.get(f"{PREFIX}/dashboard", params=params)
        assert r.status_code == 400 and said in r.text, (params, r.text[-2000:])
        assert 'id="dashboard-error"' in r.text
        assert f'value="{params.get("from", "")}"' in r.text  # what was typed is kept


def test_store_and_cashier_filters(as_owner: httpx.Client) -> None:
    r = as_owner.get(f"{PREFIX}/dashboard", params={"store": "s2"})
    assert figure(r.text, "cheques") == "1" and figure(r.text, "new_members") == "0"
    r = as_owner.get(f"{PREFIX}/dashboard", params={"cashier": "anna"})
    # anna rang P-1 and P-3 (returned in full by her) and registered the member
    assert figure(r.text, "cheques") == "1" and figure(r.text, "refunded_cheques") == "1"
    assert figure(r.text, "new_members") == "1"
    assert '<option value="boris"' in r.text and '<option value="vera"' in r.text


def test_a_store_manager_sees_their_store_only(shop: Cluster) -> None:
    with _client(shop) as c:
        _sign_in(c, "boss2")
        for params in ({}, {"store": "s1"}, {"store": "s1", "period": "month"}):
            html = c.get(f"{PREFIX}/dashboard", params=params).text
            assert figure(html, "cheques") == "1", params  # s2's one cheque, never s1's
            assert "Тверская" not in html and 'value="s1"' not in html
            assert "Показан только ваш магазин" in html
            assert 'id="plan-form"' not in html  # read only
        r = c.post(
            f"{PREFIX}/dashboard/plan",
            data={"csrf": csrf(html), "month": "2026-06", "figure": "cheques", "value": "5"},
        )
        assert r.status_code == 403
    with shop.db.reading() as tx:
        assert tx.one("SELECT count(*) FROM dashboard_plans")[0] == 0


def _plans(shop: Cluster) -> list[tuple[str, ...]]:
    with shop.db.reading() as tx:
        return [
            tuple(r) for r in tx.all("SELECT month, figure, store_id, target FROM dashboard_plans")
        ]


def _audits(shop: Cluster) -> int:
    with shop.db.reading() as tx:
        return int(
            tx.one("SELECT count(*) FROM console_audit WHERE action = 'dashboard_plan_set'")[0]
        )


def test_plan_bad_input_is_refused_on_the_form(as_owner: httpx.Client, shop: Cluster) -> None:
    token = csrf(as_owner.get(f"{PREFIX}/dashboard").text)
    good = {"csrf": token, "month": "2026-06", "figure": "cheques", "value": "10"}
    for change, said in (
        ({"month": "2026-13"}, "нужен вид ГГГГ-ММ"),
        ({"month": "июнь"}, "нужен вид ГГГГ-ММ"),
        ({"figure": "profit"}, "показатель «profit»"),
        ({"value": "-5"}, "нужно целое неотрицательное число"),
        ({"value": "1,5"}, "нужно целое неотрицательное число"),
        ({"value": ""}, "нужно целое неотрицательное число"),
        ({"figure": "revenue_kop", "value": "12,345"}, "нужна сумма в рублях"),
        ({"value": "9" * 20}, "слишком велико"),
        ({"plan_store": "s9"}, "магазина «s9» нет"),
    ):
        r = as_owner.post(f"{PREFIX}/dashboard/plan", data={**good, **change})
        assert r.status_code == 400 and said in r.text, (change, r.text[-3000:])
        assert 'id="plan-error"' in r.text
        typed = change.get("value", good["value"])
        assert f'id="plan-value" inputmode="decimal" value="{typed}"' in r.text
    assert _plans(shop) == [] and _audits(shop) == 0
    r = as_owner.post(
        f"{PREFIX}/dashboard/plan", data={k: v for k, v in good.items() if k != "csrf"}
    )
    assert r.status_code == 403 and _plans(shop) == []


def test_plan_vs_actual(as_owner: httpx.Client, shop: Cluster) -> None:
    token = csrf(as_owner.get(f"{PREFIX}/dashboard").text)
    for figure_, value, store in (
        ("cheques", "6", ""),
        ("revenue_kop", "1 000 000,50", ""),
        ("cheques", "2", "s2"),
    ):
        r = as_owner.post(
            f"{PREFIX}/dashboard/plan",
            data={
                "csrf": token,
                "month": "2026-06",
                "figure": figure_,
                "value": value,
                "plan_store": store,
                "back_period": "month",
            },
            follow_redirects=False,
        )
        assert r.status_code == 303 and "period=month" in r.headers["location"]
    assert sorted(_plans(shop)) == [
        ("2026-06", "cheques", "", 6),
        ("2026-06", "cheques", "s2", 2),
        ("2026-06", "revenue_kop", "", 100_000_050),
    ]
    assert _audits(shop) == 3
    html = as_owner.get(f"{PREFIX}/dashboard", params={"period": "month", "saved": "1"}).text
    assert "План сохранён" in html
    row = re.search(r'<tr data-plan="2026-06 cheques \*">.*?</tr>', html, re.S)
    assert row and "<td>6</td>" in row[0] and "<td>3</td>" in row[0] and "50,0" in row[0]
    row = re.search(r'<tr data-plan="2026-06 cheques s2">.*?</tr>', html, re.S)
    assert row and "<td>1</td>" in row[0] and "50,0" in row[0]
    # the same again replaces the plan (one row), audited with what it was before
    as_owner.post(
        f"{PREFIX}/dashboard/plan",
        data={"csrf": token, "month": "2026-06", "figure": "cheques", "value": "3"},
    )
    assert ("2026-06", "cheques", "", 3) in _plans(shop) and len(_plans(shop)) == 3
    with shop.db.reading() as tx:
        (detail,) = tx.one(
            "SELECT detail FROM console_audit WHERE action = 'dashboard_plan_set' "
            "ORDER BY n DESC LIMIT 1"
        )
    assert '"before":6' in detail and '"target":3' in detail


def test_the_analyst_reads_but_sets_no_plan(shop: Cluster) -> None:
    with _client(shop) as c:
        _sign_in(c, "ana")
        html = c.get(f"{PREFIX}/dashboard").text
        assert figure(html, "cheques") == "3" and 'id="plan-form"' not in html
        r = c.post(
            f"{PREFIX}/dashboard/plan",
            data={"csrf": csrf(html), "month": "2026-06", "figure": "cheques", "value": "5"},
        )
        assert r.status_code == 403
    assert _plans(shop) == []


def test_english(as_owner: httpx.Client) -> None:
    token = csrf(as_owner.get(f"{PREFIX}/dashboard").text)
    as_owner.post(
        f"{PREFIX}/lang", data={"csrf": token, "lang": "en", "next": f"{PREFIX}/dashboard"}
    )
    html = as_owner.get(f"{PREFIX}/dashboard", params={"period": "custom", "from": "x"}).text
    assert "Programme dashboard" in html and "a chosen period needs both dates" in html
    r = as_owner.get(
        f"{PREFIX}/dashboard", params={"period": "custom"}, headers={"HX-Request": "true"}
    )
    # htmx swaps no error status: the board with its message comes with 200
    assert r.status_code == 200 and 'id="dashboard-error"' in r.text

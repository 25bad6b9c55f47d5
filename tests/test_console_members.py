"""The members section's pages without a browser (httpx over the real app through
``ASGITransport``): search by phone, card code and name (whole page and the htmx block),
the profile explaining a cheque, each change (adjust, block, merge, erase with its act)
and its clear message on bad input with what was typed kept and nothing written, the
read-only roles, a store manager who sees only their store's members, and CSRF."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster import Cluster
from synchelp import portal

from agent.seed import demo_phone
from sync.backoffice.console.guard import PREFIX
from sync.backoffice.people import audit, users

PASSWORD = "correct horse 1"
M1, M2 = "m00000001", "m00000002"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with portal() as p:
        c = Cluster(tmp_path, str(tmp_path / "bo.db"), p, members=30)
        for login, role, store in [
            ("sup", "support", None),
            ("ana", "analyst", None),
            ("mgr", "store_manager", "s1"),
            ("far", "store_manager", "s9"),
        ]:
            users.add_user(c.bo.context, login, PASSWORD, role, name=login, store_id=store)
        yield c
        c.close()


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found[1]


def client_for(cluster: Cluster, login: str) -> httpx.Client:
    c = httpx.Client(transport=cluster.transport, base_url="http://backoffice")
    token = csrf(c.get(f"{PREFIX}/signin").text)
    r = c.post(f"{PREFIX}/signin", data={"csrf": token, "login": login, "password": PASSWORD})
    assert r.status_code in (200, 303), r.text
    return c


def code_of(cluster: Cluster, member_id: str) -> str:
    return str(cluster.ledger("SELECT code FROM members WHERE member_id = ?", (member_id,))[0][0])


def post(c: httpx.Client, path: str, **form: str) -> httpx.Response:
    page = c.get(f"{PREFIX}/members/{M1}")
    return c.post(PREFIX + path, data={"csrf": csrf(page.text), **form}, follow_redirects=False)


def test_search_by_phone_code_and_name_whole_page_and_htmx(cluster: Cluster) -> None:
    c = client_for(cluster, "sup")
    r = c.get(f"{PREFIX}/members", params={"q": demo_phone(1)})
    assert r.status_code == 200 and f'data-member="{M1}"' in r.text
    assert "Найдено по телефону" in r.text
    r = c.get(f"{PREFIX}/members", params={"q": code_of(cluster, M2)})
    assert f'data-member="{M2}"' in r.text and "Найдено по номеру карты" in r.text
    r = c.get(f"{PREFIX}/members", params={"q": "ан"}, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text and r.text.lstrip().startswith("<div")
    assert "Найдено по имени" in r.text
    r = c.get(f"{PREFIX}/members", params={"q": "12-34"})
    assert r.status_code == 400 and 'id="error"' in r.text and "слишком мало цифр" in r.text
    assert 'value="12-34"' in r.text  # what was typed is kept


def test_profile_explains_a_cheque(cluster: Cluster) -> None:
    till = cluster.till()
    till.sale("R1", M1, ("DR-1001", 2))
    till.client.drain()
    c = client_for(cluster, "sup")
    r = c.get(f"{PREFIX}/members/{M1}")
    assert r.status_code == 200
    assert 'data-kind="purchase"' in r.text and "Почему столько бонусов" in r.text
    assert "базовая ставка уровня" in r.text and 'id="lots"' in r.text
    assert "С правилами программы" in r.text
    assert c.get(f"{PREFIX}/members/nobody").status_code == 404


def test_adjust_with_its_messages(cluster: Cluster) -> None:
    c = client_for(cluster, "sup")
    rows = len(audit.entries(cluster.db))
    r = post(c, f"/members/{M1}/adjust", points="150", reason="  ")
    assert r.status_code == 400 and "причина: укажите" in r.text
    assert 'value="150"' in r.text  # the points typed are kept
    r = post(c, f"/members/{M1}/adjust", points="1,5", reason="сбой")
    assert r.status_code == 400 and "бонусы: целое число" in r.text and 'value="сбой"' in r.text
    r = post(c, f"/members/{M1}/adjust", points="0", reason="сбой")
    assert r.status_code == 400 and "ноль ничего не меняет" in r.text
    assert len(audit.entries(cluster.db)) == rows
    before = cluster.server_balance(M1)
    r = post(c, f"/members/{M1}/adjust", points="150", reason="сбой кассы")
    assert r.status_code == 303 and r.headers["location"].endswith("?done=adjusted")
    page = c.get(r.headers["location"]).text
    assert "Корректировка проведена." in page and "сбой кассы" in page
    assert cluster.server_balance(M1) == before + 150
    assert audit.entries(cluster.db, limit=1)[0].action == "member_adjusted"


def test_block_merge_and_erase(cluster: Cluster) -> None:
    c = client_for(cluster, "sup")
    assert post(c, f"/members/{M1}/block", blocked="1", reason="").status_code == 400
    r = post(c, f"/members/{M1}/block", blocked="1", reason="утеряна")
    assert r.status_code == 303
    assert 'id="blocked"' in c.get(r.headers["location"]).text
    r = post(c, f"/members/{M1}/block", blocked="0", reason="нашлась")
    assert r.status_code == 303
    r = post(c, f"/members/{M1}/merge", code=code_of(cluster, M1), reason="дубль")
    assert r.status_code == 400 and "нельзя объединить участника с самим собой" in r.text
    r = post(c, f"/members/{M1}/merge", code=code_of(cluster, M2), reason="дубль")
    assert r.status_code == 303 and 'id="merged"' in c.get(r.headers["location"]).text
    r = post(c, f"/members/{M1}/erase", reason="отзыв согласия")
    assert (
        r.status_code == 400 and "отметьте флажок" in r.text and 'value="отзыв согласия"' in r.text
    )
    assert cluster.ledger("SELECT count(*) FROM member_erasures")[0][0] == 0
    r = post(c, f"/members/{M1}/erase", reason="отзыв согласия", confirm="1")
    assert r.status_code == 303
    page = c.get(r.headers["location"]).text
    assert 'id="erased"' in page and 'id="act-link"' in page and 'id="adjust"' not in page
    act = c.get(f"{PREFIX}/members/{M1}/act")
    assert act.status_code == 200 and "Акт об уничтожении персональных данных № 1" in act.text
    assert 'data-kind="console"' in act.text and "152-ФЗ" in act.text
    assert M2 in act.text  # the merged record is erased with it
    r = post(c, f"/members/{M1}/erase", reason="ещё раз", confirm="1")
    assert r.status_code == 400 and "уже уничтожены" in r.text


def test_read_only_roles_and_a_store_managers_scope(cluster: Cluster) -> None:
    with cluster.db.transaction() as tx:
        tx.execute("UPDATE members SET store_id = 's2' WHERE member_id = ?", (M2,))
    ana = client_for(cluster, "ana")
    page = ana.get(f"{PREFIX}/members/{M1}")
    assert (
        page.status_code == 200 and 'id="read-only"' in page.text and 'id="adjust"' not in page.text
    )
    r = ana.post(
        f"{PREFIX}/members/{M1}/adjust",
        data={"csrf": csrf(page.text), "points": "5", "reason": "x"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    mgr = client_for(cluster, "mgr")
    r = mgr.get(f"{PREFIX}/members", params={"q": code_of(cluster, M2)})
    assert f'data-member="{M2}"' not in r.text and 'id="none"' in r.text
    assert "магазине s1" in r.text
    assert mgr.get(f"{PREFIX}/members/{M2}").status_code == 404
    assert mgr.get(f"{PREFIX}/members/{M1}").status_code == 200
    far = client_for(cluster, "far")
    assert far.get(f"{PREFIX}/members/{M1}").status_code == 404
    sup = client_for(cluster, "sup")
    r = sup.post(f"{PREFIX}/members/{M1}/adjust", data={"csrf": "forged", "points": "5"})
    assert r.status_code == 403
    assert cluster.ledger("SELECT count(*) FROM member_adjustments")[0][0] == 0
    anon = httpx.Client(transport=cluster.transport, base_url="http://backoffice")
    r = anon.get(f"{PREFIX}/members/{M1}", follow_redirects=False)
    assert r.status_code == 303 and "/signin" in r.headers["location"]

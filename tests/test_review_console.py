"""The console's review of purchases held by the re-score, over the real app through
``ASGITransport`` (SQLite and PostgreSQL): the held cheque listed with the till's claim
beside the server's figures, released by support with a reason (applied once, audited,
the till's balance through the change feed), refused by the owner, read-only for an
analyst, another store's manager sees nothing, and a decision without a reason refused
with nothing changed."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster import Cluster
from synchelp import portal

from agent.model import Quote
from agent.service import sales
from sync.backoffice.console.guard import PREFIX
from sync.backoffice.people import users
from tests.test_console_members import PASSWORD, client_for, csrf

M1 = "m00000001"
MINT = 10**9


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    with portal() as p:
        c = Cluster(tmp_path, db_url, p, members=10)
        for login, role, store in [
            ("own", "owner", None),
            ("sup", "support", None),
            ("ana", "analyst", None),
            ("far", "store_manager", "s9"),
        ]:
            users.add_user(c.bo.context, login, PASSWORD, role, name=login, store_id=store)
        yield c
        c.close()


def held_sales(cluster: Cluster, monkeypatch: pytest.MonkeyPatch, *receipts: str) -> Any:
    """Sales at a tampered till (its engine prints ``MINT`` more points), pushed by the
    till and held; returns the till."""
    till = cluster.till()
    real = sales.score

    def tampered(*args: Any, **kwargs: Any) -> Quote:
        q = real(*args, **kwargs)
        return replace(q, earn_points=q.earn_points + MINT)

    monkeypatch.setattr(sales, "score", tampered)
    for receipt in receipts:
        till.sale(receipt, M1, ("DR-1001", 1))
    monkeypatch.setattr(sales, "score", real)
    assert till.client.drain().quarantined == len(receipts)
    return till


def decide(c: httpx.Client, event_id: str, action: str, reason: str) -> httpx.Response:
    page = c.get(f"{PREFIX}/review")
    return c.post(
        f"{PREFIX}/review/{event_id}/{action}",
        data={"csrf": csrf(page.text), "reason": reason},
        follow_redirects=False,
    )


def test_support_releases_a_held_cheque_once_with_a_reason(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    till = held_sales(cluster, monkeypatch, "RV1")
    (held,) = cluster.bo.held_purchases()
    before = cluster.server_balance(M1)
    sup = client_for(cluster, "sup")
    assert 'href="/console/review"' in sup.get(f"{PREFIX}/members").text
    page = sup.get(f"{PREFIX}/review")
    assert page.status_code == 200
    row = page.text.split(f'data-event="{held.event_id}"', 1)[1].split("</tr>", 1)[0]
    assert "RV1" in row and str(held.claim_earned) in row and str(held.server_earned) in row
    assert "Провести" in row and "Отклонить" in row
    r = decide(sup, held.event_id, "release", "   ")
    assert r.status_code == 400 and "причина" in r.text
    assert cluster.server_balance(M1) == before  # nothing changed
    r = decide(sup, held.event_id, "release", "чек проверен")
    assert (r.status_code, r.headers["location"]) == (303, f"{PREFIX}/review?done=released")
    page = sup.get(r.headers["location"])
    assert 'id="done"' in page.text and 'id="none"' in page.text
    assert cluster.server_balance(M1) == before + held.claim_earned
    r = decide(sup, held.event_id, "release", "ещё раз")
    assert r.status_code == 400 and "не ждёт проверки" in r.text
    assert cluster.server_balance(M1) == before + held.claim_earned  # applied once
    rows = cluster.ledger(
        "SELECT actor, subject FROM console_audit WHERE action = 'purchase_released'"
    )
    assert rows == [("sup", held.event_id)]
    till.client.pull_all()
    assert till.balance(M1) == cluster.server_balance(M1)


def test_the_owner_refuses_and_others_read_or_see_nothing(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    held_sales(cluster, monkeypatch, "RV2")
    (held,) = cluster.bo.held_purchases()
    before = cluster.server_balance(M1)
    ana = client_for(cluster, "ana")
    page = ana.get(f"{PREFIX}/review")
    assert page.status_code == 200 and f'data-event="{held.event_id}"' in page.text
    assert "Провести" not in page.text  # read only
    r = ana.post(
        f"{PREFIX}/review/{held.event_id}/release",
        data={"csrf": csrf(ana.get(f"{PREFIX}/members").text), "reason": "x"},
    )
    assert r.status_code == 403
    far = client_for(cluster, "far")
    page = far.get(f"{PREFIX}/review")
    assert page.status_code == 200 and held.event_id not in page.text and 'id="none"' in page.text
    own = client_for(cluster, "own")
    r = decide(own, held.event_id, "refuse", "поддельный чек")
    assert (r.status_code, r.headers["location"]) == (303, f"{PREFIX}/review?done=refused")
    assert cluster.bo.held_purchases() == []
    assert cluster.server_balance(M1) == before
    rows = cluster.ledger("SELECT status, code FROM events WHERE event_id = ?", (held.event_id,))
    assert rows == [("rejected", "refused_on_review")]
    audit_page = own.get(f"{PREFIX}/audit")
    assert "чек с проверки отклонён" in audit_page.text and "поддельный чек" in audit_page.text

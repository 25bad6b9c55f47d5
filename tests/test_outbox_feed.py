"""The member events' pull feed (``GET /v1/events``, ``event_feed``) through the real
back-office app, the scheduled events (``triggers``) with a fake clock, and a property
test of the per-member sequence numbers, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster, TillNode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from synchelp import portal

from sync.backoffice import event_feed, outbox

M1, M2, M3 = "m00000001", "m00000002", "m00000003"


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    with portal() as p:
        c = Cluster(tmp_path, db_url, p, members=5)
        yield c
        c.close()


def get(cluster: Cluster, token: str, **params: str) -> Any:
    return cluster.http.get(
        "/v1/events", params=params, headers={"authorization": f"Bearer {token}"}
    )


def test_pull_feed_pages_with_a_cursor_and_refuses_bad_parameters(cluster: Cluster) -> None:
    bo = cluster.bo
    token = bo.new_admin_token()
    for n in range(3):
        bo.adjust_points(M1 if n != 1 else M2, "+10", "подарок", actor="sup")
    everything = outbox.read_after(cluster.db, 0, 100)
    assert len(everything) == 6
    seen: list[dict[str, Any]] = []
    cursor = "0"
    while True:
        r = get(cluster, token, after=cursor, limit="4")
        assert r.status_code == 200
        page = r.json()
        seen += page["events"]
        if not page["events"]:
            assert page["next"] == int(cursor)  # nothing new: ask again with the same
            break
        cursor = str(page["next"])
    assert [e["id"] for e in seen] == [f"{x.member_id}:{x.member_seq}" for x in everything]
    first = seen[0]
    assert first == {
        "specversion": "1.0",
        "id": f"{M1}:1",
        "source": event_feed.SOURCE,
        "type": "ru.kassa.points.adjusted",
        "time": everything[0].occurred_at,
        "subject": M1,
        "datacontenttype": "application/json",
        "data": {**everything[0].data, "member_seq": 1},
    }
    only = get(cluster, token, types="balance.changed").json()["events"]
    assert {e["type"] for e in only} == {"ru.kassa.balance.changed"} and len(only) == 3
    prefixed = get(cluster, token, types="ru.kassa.points.adjusted,tier.up").json()
    assert len(prefixed["events"]) == 3
    for params, field in (
        ({"after": "-1"}, "after"),
        ({"after": "x"}, "after"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1001"}, "limit"),
        ({"types": "purchase,no.such"}, "no.such"),
        ({"types": ""}, "types"),
    ):
        r = get(cluster, token, **params)
        assert r.status_code == 400, params
        assert r.json()["error"] == "bad_feed_query" and field in r.json()["message"]
    assert get(cluster, "not-the-admin-token").status_code == 401


def buyer_with_birthday_in(till: TillNode, cluster: Cluster, *, days: int) -> str:
    """Anna, registered at ``till`` with her birthday ``days`` from the cluster's clock and
    one purchase, synced; her member id."""
    soon = (cluster.clock.now() + timedelta(days=days)).date()
    reg = till.agent.register(
        phone="+7 916 555-12-34",
        first_name="Анна",
        consent_programme=True,
        consent_marketing=True,
        birthday=date(1990, soon.month, soon.day),
    )
    till.sale("P-1", reg.card.member_id, ("SH-2001", 1))
    till.client.drain()
    return reg.card.member_id


def test_triggers_emit_once_a_day_with_a_fake_clock(cluster: Cluster) -> None:
    bo, clock = cluster.bo, cluster.clock
    till = cluster.till()
    anna = buyer_with_birthday_in(till, cluster, days=5)

    def scheduled(member: str) -> list[outbox.Row]:
        kinds = {
            outbox.POINTS_EXPIRING,
            outbox.POINTS_EXPIRED,
            outbox.BIRTHDAY_SOON,
            outbox.MEMBER_LAPSED,
        }
        rows = outbox.read_after(cluster.db, 0, 10_000)
        return [r for r in rows if r.member_id == member and r.type in kinds]

    bo.run_triggers()
    assert [(r.type, r.data) for r in scheduled(anna)] == [("birthday.soon", {"days": 5})]
    assert bo.run_triggers() == 0  # the same day again: nothing new
    clock.advance(days=80)  # the welcome bonus (90 days) burns within 14 days
    bo.run_triggers()
    rows = scheduled(anna)[1:]
    assert [r.type for r in rows] == ["points.expiring"]
    assert rows[0].data["points"] == 500 and rows[0].data["days"] <= 14
    clock.advance(hours=6)
    assert bo.run_triggers() == 0
    clock.advance(days=11)  # burnt now; no purchase for 91 days
    bo.run_triggers()
    rows = scheduled(anna)[2:]
    assert [r.type for r in rows] == ["points.expired", "member.lapsed"]
    assert rows[0].data == {
        "points": 500,
        "cause": "expiry",
        "expired_on": rows[0].data["expired_on"],
    }
    assert rows[1].data["days"] == 91
    assert bo.run_triggers() == 0
    every = outbox.read_after(cluster.db, 0, 10_000)
    assert [r.member_seq for r in every if r.member_id == anna] == list(
        range(1, 1 + sum(r.member_id == anna for r in every))
    )


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([M1, M2, M3]),
            st.sampled_from(["sale", "adjust", "rollback"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_member_seqs_are_gap_free_on_random_histories(
    cluster: Cluster, history: list[tuple[str, str]]
) -> None:
    """Sales at a till (pushed a few at a time), console adjustments and changes rolled
    back half-way: each member's seqs stay 1..n, in id order."""
    if not cluster.tills:
        cluster.till()
    till = cluster.tills[0]
    n = len(outbox.read_after(cluster.db, 0, 100_000))
    for i, (member, action) in enumerate(history):
        if action == "sale":
            till.sale(f"H-{n}-{i}", member, ("SH-2001", 1))
            if i % 2:
                till.client.drain()
        elif action == "adjust":
            cluster.bo.adjust_points(member, "+5", "подарок", actor="sup")
        else:
            with pytest.raises(RuntimeError), cluster.db.transaction(feed=True) as tx:
                outbox.emit(tx, member, outbox.TIER_UP, {}, cluster.clock.now())
                raise RuntimeError("rolled back")
    till.client.drain()
    last: dict[str, int] = {}
    for row in outbox.read_after(cluster.db, 0, 100_000):
        assert row.member_seq == last.get(row.member_id, 0) + 1
        last[row.member_id] = row.member_seq

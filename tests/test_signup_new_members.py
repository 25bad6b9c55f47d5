"""A member who joins on the members' pages is a new member of the KPI report and of the
dashboard, by one definition (``rollups.web_join`` into ``rollup_days``, which both read):
on the programme's local day, at the poster's store, with no cashier and the welcome bonus
in points issued; counted once (the same phone signing in again, or a till registering it
offline later and merged into the web card, adds nothing); a rebuild of the roll-ups
from the ledger gives the same rows; the KPI-vs-dashboard comparison still holds. On
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cluster import Cluster

from agent import engine
from sync.backoffice import dashboard, kpi, member_signup, rollups
from tests.test_dashboard_rollups import _compare, _snapshot, snapshot_more

PHONE = "+79035550188"


def _figures(c: Cluster, day: date) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The day's KPI report totals, its row of store s1 and the dashboard's totals."""
    ctx = c.bo.context
    rep = kpi.report(ctx, kpi.Period(day, day))
    store = next((r for r in rep["by_store"] if r["store_id"] == "s1"), {"new_members": 0})
    board = dashboard.build(ctx, dashboard.query(ctx, "custom", day.isoformat(), day.isoformat()))
    return rep["totals"], store, board.totals


def _join(c: Cluster, phone: str = PHONE) -> str:
    key = bytes.fromhex(c.bo.setting("phone_hash_key"))
    token = member_signup.open_session(c.bo.context, key, phone, "s1", "door", c.clock.now())
    return c.bo.member_join(token, "Анна", "", True, False)


def test_a_web_join_is_one_new_member_of_both(cluster: Cluster) -> None:
    rules = cluster.bo.rules()
    assert rules is not None and rules.welcome_points > 0
    till = cluster.till()
    till.sale("B-1", "m00000001", ("DR-1001", 1), cashier="anna")
    till.client.drain()
    day = engine.local_date(rules, cluster.clock.now())
    before, store_before, board_before = _figures(cluster, day)
    member_id = _join(cluster)
    after, store_after, board_after = _figures(cluster, day)
    assert after["new_members"] == before["new_members"] + 1
    assert after["points_issued"] == before["points_issued"] + rules.welcome_points
    assert store_after["new_members"] == store_before["new_members"] + 1
    assert board_after["new_members"] == board_before["new_members"] + 1
    assert board_after["points_issued"] == after["points_issued"]
    assert cluster.ledger(
        "SELECT day, welcome_points FROM member_sources WHERE member_id = ?", (member_id,)
    ) == [(day.isoformat(), rules.welcome_points)]
    _compare(cluster, day - timedelta(days=1), day + timedelta(days=1))
    # the same phone again: signed in to its card, not a new member
    assert _join(cluster) == member_id
    assert _figures(cluster, day)[0]["new_members"] == after["new_members"]
    # a till that registers the phone offline later is merged into the web card
    till.agent.register(
        phone=PHONE, first_name="Анна", consent_programme=True, consent_marketing=False
    )
    till.client.drain()
    merged = cluster.ledger("SELECT count(*) FROM flags WHERE kind = 'merge'")[0][0]
    assert merged == 1
    assert _figures(cluster, day)[0]["new_members"] == after["new_members"]
    # the roll-ups rebuilt from the ledger count the web join as the join did
    kept = _snapshot(cluster), snapshot_more(cluster)
    with cluster.db.transaction(feed=True) as tx:
        rollups.rebuild(tx)
    assert (_snapshot(cluster), snapshot_more(cluster)) == kept
    _compare(cluster, day, day)


def _cohort(c: Cluster, month: str) -> list[int]:
    ctx = c.bo.context
    board = dashboard.build(ctx, dashboard.query(ctx, "today"))
    return next(([k.registered, k.first, k.second] for k in board.cohorts if k.month == month), [])


def test_a_web_join_is_in_its_months_registration_cohort(cluster: Cluster) -> None:
    month = cluster.clock.now().isoformat()[:7]
    before = _cohort(cluster, month) or [0, 0, 0]
    member_id = _join(cluster)
    assert _cohort(cluster, month) == [before[0] + 1, before[1], before[2]]
    till = cluster.till()
    till.client.pull_all()  # the till learns the web card from the change feed
    till.sale("W-1", member_id, ("DR-1001", 1), cashier="anna")
    till.sale("W-2", member_id, ("DR-1001", 1), cashier="anna")
    till.client.drain()
    assert _cohort(cluster, month) == [before[0] + 1, before[1] + 1, before[2] + 1]
    kept = _snapshot(cluster), snapshot_more(cluster)
    with cluster.db.transaction(feed=True) as tx:
        rollups.rebuild(tx)
    assert (_snapshot(cluster), snapshot_more(cluster)) == kept

"""Collection events (``collection.progress`` / ``collection.completed``) and the
per-change ``balance.changed`` from the projector, through a real till and the real back
office, on SQLite and PostgreSQL: the demo programme's "north-5" mechanic (5 units of the
"north" capsule earn 1500 points); purchases one pass at a time and several in one pass,
refunds moving the progress back (and taking a reward back)."""

from __future__ import annotations

import pytest
from cluster import Cluster
from test_outbox import cluster, events, register

from agent import codec
from agent.model import MemberState
from sync.backoffice import outbox, project

MECH = "north-5"
__all__ = ["cluster"]  # the fixture, shared with test_outbox


def progress_in_ledger(cluster: Cluster, member_id: str) -> int:
    row = cluster.ledger("SELECT state FROM members WHERE member_id = ?", (member_id,))[0]
    return codec.loads(MemberState, row[0]).collection_progress(MECH)


def assert_balance_chain(cluster: Cluster, rows: list[outbox.Row], member_id: str) -> None:
    """Every balance.changed follows the events of its cause, its before/after add up,
    and (no time passes in these tests) each starts where the previous one ended."""
    moves = [r for r in rows if r.type == "balance.changed"]
    assert moves
    balance = 0
    for m in moves:
        d = m.data
        assert d["before"] == balance and d["delta"] == d["balance"] - d["before"] != 0
        assert d["balance"] == d["available"] + d["pending"]
        cause_rows = [r for r in rows if r.member_seq < m.member_seq]
        assert any(r.data.get("cause") == d["cause"] for r in cause_rows), d
        balance = d["balance"]
    assert balance == cluster.server_balance(member_id)
    assert [r.member_seq for r in rows] == list(range(1, len(rows) + 1))


def after_purchase(rows: list[outbox.Row], receipt_id: str) -> list[outbox.Row]:
    """The events from the purchase of ``receipt_id`` up to its balance.changed."""
    start = next(n for n, r in enumerate(rows) if r.data.get("receipt_id") == receipt_id)
    end = next(n for n in range(start, len(rows)) if rows[n].type == "balance.changed")
    return rows[start : end + 1]


def test_progress_completion_and_refunds_one_pass_each(cluster: Cluster) -> None:
    till = cluster.till()
    anna = register(cluster, till)
    till.client.drain()
    till.sale("N-1", anna, ("OW-4002", 3))  # 3 of 5
    till.client.drain()
    till.sale("N-2", anna, ("DR-1001", 1))  # not of the collection: no collection event
    till.client.drain()
    till.sale("N-3", anna, ("AC-6001", 1))  # 4 of 5
    till.client.drain()
    done = till.sale("N-4", anna, ("OW-4002", 3))  # 7: completed, 2 left over
    till.client.drain()
    rows = events(cluster, anna)
    first = after_purchase(rows, "N-1")
    assert [r.type for r in first] == [
        "purchase",
        "points.earned",
        "collection.progress",
        "balance.changed",
    ]
    cause = first[0].data["event_id"]
    assert first[2].data == {"mechanic": MECH, "units": 3, "target": 5, "cause": cause}
    assert "collection.progress" not in {r.type for r in after_purchase(rows, "N-2")}
    third = [r for r in after_purchase(rows, "N-3") if r.type.startswith("collection.")]
    assert [(r.type, r.data["units"]) for r in third] == [("collection.progress", 4)]
    fourth = after_purchase(rows, "N-4")
    assert [r.type for r in fourth] == [
        "purchase",
        "points.earned",
        "collection.completed",
        "collection.progress",
        "balance.changed",
    ]
    cause = fourth[0].data["event_id"]
    reward = [b.points for b in done.quote.bonuses if b.kind == "collection"]
    assert reward == [1500]
    assert fourth[2].data == {
        "mechanic": MECH,
        "units": 5,
        "target": 5,
        "rewards": 1,
        "points": 1500,
        "cause": cause,
    }
    assert fourth[3].data == {"mechanic": MECH, "units": 2, "target": 5, "cause": cause}
    assert fourth[1].data["points"] == done.quote.earn_points + 1500
    assert fourth[4].data["delta"] == done.quote.earn_points + 1500
    assert progress_in_ledger(cluster, anna) == 2
    assert_balance_chain(cluster, rows, anna)

    # a refund that takes units back: the progress goes down (2 -> 0)
    till.agent.refund("F-1", "N-4", {1: 2}, cashier_id="anna")
    till.client.drain()
    back = events(cluster, anna)[len(rows) :]
    assert [r.type for r in back] == [
        "refund",
        "collection.progress",
        "balance.changed",
    ]
    assert back[1].data == {
        "mechanic": MECH,
        "units": 0,
        "target": 5,
        "cause": back[0].data["event_id"],
    }
    assert progress_in_ledger(cluster, anna) == 0
    # the last unit back takes the reward back: 4 of 5 counted again, 1500 points owed
    seen = len(rows) + len(back)
    till.agent.refund("F-2", "N-4", {1: 1}, cashier_id="anna")
    till.client.drain()
    again = events(cluster, anna)[seen:]
    assert [r.type for r in again] == ["refund", "collection.progress", "balance.changed"]
    assert again[1].data["units"] == 4 == progress_in_ledger(cluster, anna)
    assert again[0].data["bonus_reversed"] == 1500
    assert again[2].data["delta"] < -1500 + 1
    rows = events(cluster, anna)
    assert not [r for r in rows[seen:] if r.type == "collection.completed"]
    assert_balance_chain(cluster, rows, anna)


@pytest.mark.parametrize("careful", [False, True])
def test_several_purchases_in_one_pass_each_with_its_events(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, careful: bool
) -> None:
    """One projector pass, in both modes (careful: each event's writes run at once, the
    purchases' effects read back)."""
    monkeypatch.setattr(project, "backlog_over", lambda *a: True)  # no inline projection
    till = cluster.till()
    anna = register(cluster, till)
    till.sale("N-1", anna, ("OW-4002", 4))
    till.sale("N-2", anna, ("AC-6001", 1), ("OW-4002", 1))  # 6: completed, 1 left
    till.sale("N-3", anna, ("AC-6001", 4))  # 5: completed again, exactly, none left
    till.client.drain()  # one push
    assert project._pass(cluster.bo.context, 100, careful=careful) == 4  # one pass
    rows = events(cluster, anna)
    kinds = [r.type for r in rows]
    assert kinds == [
        "member.registered",
        "points.earned",
        "balance.changed",
        "member.activated",
        "purchase",
        "points.earned",
        "collection.progress",
        "balance.changed",
        "member.second_purchase",
        "purchase",
        "points.earned",
        "collection.completed",
        "collection.progress",
        "balance.changed",
        "purchase",
        "points.earned",
        "collection.completed",
        "balance.changed",
    ]
    units = [(r.type, r.data["units"]) for r in rows if r.type.startswith("collection.")]
    assert units == [
        ("collection.progress", 4),
        ("collection.completed", 5),
        ("collection.progress", 1),
        ("collection.completed", 5),
    ]
    assert progress_in_ledger(cluster, anna) == 0
    assert_balance_chain(cluster, rows, anna)


def test_a_programme_without_the_mechanic_counts_nothing(cluster: Cluster) -> None:
    """A till cheque of collection goods bought by a member of a programme version with
    no collections gives no collection events (only its purchase and points)."""
    from dataclasses import replace

    from agent.seed import demo_programme

    rules = demo_programme()
    cluster.bo.publish_rules(replace(rules, version=rules.version + 1, collections=()))
    till = cluster.till()
    anna = register(cluster, till)
    till.sale("N-1", anna, ("OW-4002", 5))
    till.client.drain()
    rows = events(cluster, anna)
    assert not [r for r in rows if r.type.startswith("collection.")]
    assert_balance_chain(cluster, rows, anna)

"""The member events outbox (``outbox``) on SQLite and PostgreSQL, through real tills and
the real back office: what a till's registration, purchase and refund emit, with each
member's sequence numbers 1, 2, 3... without gaps; console adjustments, consent and
erasure in the change's own transaction; nothing from a rolled-back change; a projector
pass re-run after a crash emits once."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster, TillNode
from synchelp import portal

from sync.backoffice import outbox, project
from sync.backoffice.batch import Batch
from sync.backoffice.people import audit

M1, M2 = "m00000001", "m00000002"


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    with portal() as p:
        c = Cluster(tmp_path, db_url, p, members=10)
        yield c
        c.close()


def events(cluster: Cluster, member_id: str | None = None) -> list[outbox.Row]:
    rows = outbox.read_after(cluster.db, 0, 10_000)
    return [r for r in rows if member_id is None or r.member_id == member_id]


def kinds(rows: list[outbox.Row]) -> list[str]:
    return [r.type for r in rows]


def assert_gap_free(rows: list[outbox.Row]) -> None:
    """Each member's seqs are 1..n in id order."""
    seen: dict[str, int] = {}
    for r in rows:
        seen[r.member_id] = seen.get(r.member_id, 0) + 1
        assert r.member_seq == seen[r.member_id], r


def register(cluster: Cluster, till: TillNode) -> str:
    reg = till.agent.register(
        phone="+7 916 555-12-34",
        first_name="Ира",
        consent_programme=True,
        consent_marketing=True,
        cashier_id="anna",
    )
    return reg.card.member_id


def test_till_registration_and_purchases_emit_in_member_order(cluster: Cluster) -> None:
    till = cluster.till()
    new = register(cluster, till)
    till.client.drain()
    first = till.sale("P-1", new, ("DR-1001", 2))
    till.client.drain()
    till.sale("P-2", new, ("SH-2001", 1))
    till.client.drain()
    till.sale("P-3", new, ("SH-2001", 1))
    till.client.drain()
    rows = events(cluster, new)
    assert kinds(rows) == [
        "member.registered",
        "points.earned",
        "balance.changed",
        "member.activated",
        "purchase",
        "points.earned",
        "balance.changed",
        "member.second_purchase",
        "purchase",
        "points.earned",
        "balance.changed",
        "purchase",
        "points.earned",
        "balance.changed",
    ]
    assert [r.member_seq for r in rows] == list(range(1, len(rows) + 1))
    registered = rows[0].data
    assert registered["store_id"] == "s1" and registered["terminal_id"] == "till-1"
    assert registered["consent_marketing"] is True
    assert rows[1].data == {"points": 500, "cause": rows[1].data["cause"]}
    bought = rows[4].data
    assert bought["receipt_id"] == "P-1" and bought["paid_kop"] == 2 * 649900
    assert bought["earned"] == first.quote.earn_points == rows[5].data["points"]
    assert rows[3].data["purchase_event_id"] == bought["event_id"] == rows[5].data["cause"]
    last = rows[-1].data
    assert last["balance"] == cluster.server_balance(new)
    assert last["balance"] == last["available"] + last["pending"]
    assert sum(r.data["delta"] for r in rows if r.type == "balance.changed") == last["balance"]
    assert_gap_free(events(cluster))


def test_one_push_of_several_events_keeps_member_order(cluster: Cluster) -> None:
    till = cluster.till()
    new = register(cluster, till)
    till.sale("P-1", new, ("DR-1001", 1))
    till.sale("P-2", M1, ("SH-2001", 1))
    till.sale("P-3", new, ("SH-2001", 1))
    till.client.drain()  # one push, one projector pass
    rows = events(cluster, new)
    assert kinds(rows) == [  # one balance.changed per change, right after its events
        "member.registered",
        "points.earned",
        "balance.changed",
        "member.activated",
        "purchase",
        "points.earned",
        "balance.changed",
        "member.second_purchase",
        "purchase",
        "points.earned",
        "balance.changed",
    ]
    moves = [r for r in rows if r.type == "balance.changed"]
    assert [m.data["cause"] for m in moves] == [rows[1].data["cause"]] + [
        r.data["event_id"] for r in rows if r.type == "purchase"
    ]
    assert moves[0].data["before"] == 0 and moves[0].data["delta"] == rows[1].data["points"]
    for earlier, later in itertools.pairwise(moves):  # one pass: a chain
        assert later.data["before"] == earlier.data["balance"]
    for m, earned in zip(
        moves[1:], [r for r in rows[4:] if r.type == "points.earned"], strict=True
    ):
        assert m.data["delta"] == earned.data["points"]
        assert m.data["balance"] - m.data["before"] == m.data["delta"]
    assert moves[-1].data["balance"] == cluster.server_balance(new)
    assert kinds(events(cluster, M1))[-1] == "balance.changed"
    assert_gap_free(events(cluster))


def test_spend_refund_and_tiers(cluster: Cluster) -> None:
    till = cluster.till()
    new = register(cluster, till)
    till.client.drain()
    till.sale("P-1", new, ("DR-1001", 5), redeem=300)  # 32,495 RUB: silver
    till.client.drain()
    rows = events(cluster, new)
    assert kinds(rows)[-4:] == ["points.spent", "points.earned", "balance.changed", "tier.up"]
    assert rows[-4].data["points"] == 300
    assert rows[-1].data == {"from": "base", "to": "silver"}
    till.agent.refund("F-1", "P-1", {1: 5}, cashier_id="anna")
    till.client.drain()
    back = events(cluster, new)[len(rows) :]
    assert kinds(back) == ["refund", "points.returned", "balance.changed", "tier.down"]
    assert back[0].data["purchase_event_id"] == rows[-5].data["event_id"]
    assert back[0].data["amount_kop"] > 0 and back[1].data["points"] == 300
    assert back[2].data["delta"] < 0 and back[3].data == {"from": "silver", "to": "base"}
    assert_gap_free(events(cluster))


def test_console_adjustment_and_erasure_emit_in_their_transaction(cluster: Cluster) -> None:
    bo = cluster.bo
    done = bo.adjust_points(M1, "+150", "компенсация", actor="sup")
    rows = events(cluster, M1)
    assert kinds(rows) == ["points.adjusted", "balance.changed"]
    assert rows[0].data == {"points": 150, "cause": f"adjustment:{done.adjustment_id}"}
    assert rows[1].data["delta"] == 150 and rows[1].data["balance"] == done.balance_after
    assert rows[1].data["before"] == done.balance_after - 150
    assert rows[1].data["cause"] == rows[0].data["cause"]
    bo.adjust_points(M1, "-50", "ошибка", actor="sup")
    assert kinds(events(cluster, M1))[2:] == ["points.adjusted", "balance.changed"]
    consented = bool(
        cluster.ledger("SELECT consent_marketing FROM members WHERE member_id = ?", (M1,))[0][0]
    )
    bo.erase_member(M1, "отзыв согласия", actor="sup")
    tail = events(cluster, M1)[4:]
    assert kinds(tail) == ["consent.changed"] * consented + ["member.erased"]
    assert [r.member_seq for r in events(cluster, M1)] == list(range(1, 6 + consented))
    assert_gap_free(events(cluster))


def test_a_rolled_back_change_emits_nothing(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the audit log is full")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError):
        cluster.bo.adjust_points(M1, "+150", "компенсация", actor="sup")
    assert events(cluster) == []
    assert cluster.ledger("SELECT count(*) FROM outbox_seq")[0][0] == 0
    monkeypatch.undo()
    cluster.bo.adjust_points(M1, "+150", "компенсация", actor="sup")
    assert [r.member_seq for r in events(cluster, M1)] == [1, 2]


@pytest.mark.parametrize("careful", [False, True])
def test_a_pass_rerun_after_a_crash_emits_once(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, careful: bool
) -> None:
    ctx = cluster.bo.context
    monkeypatch.setattr(project, "backlog_over", lambda *a: True)  # no inline projection
    till = cluster.till()
    new = register(cluster, till)
    till.sale("P-1", new, ("DR-1001", 1))
    till.sale("P-2", M2, ("SH-2001", 1))
    till.client.drain()
    assert events(cluster) == []

    def crash(self: Batch) -> None:
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(Batch, "flush", crash)  # after the events were emitted, before commit
        with pytest.raises(RuntimeError):
            project._pass(ctx, 100, careful=careful)
    assert events(cluster) == []
    assert project._pass(ctx, 100, careful=careful) == 3
    assert project.run_all(ctx) == 0
    rows = events(cluster)
    assert kinds([r for r in rows if r.member_id == new]) == [
        "member.registered",
        "points.earned",
        "balance.changed",
        "member.activated",
        "purchase",
        "points.earned",
        "balance.changed",
    ]
    assert kinds([r for r in rows if r.member_id == M2])[-3:] == [
        "purchase",
        "points.earned",
        "balance.changed",
    ]
    assert_gap_free(rows)

"""The 1C-Rarus scenario end to end, on SQLite and PostgreSQL: "Anna has not bought for
three months -> remind her of the points that expire soon".

A real till registers Anna and sells her a shirt under a programme whose points expire
after 104 days; a webhook subscription to a real local receiver (``webhook_receiver``)
takes the scheduled events. A fake clock walks 92 days, one day at a time, running the
back office's daily trigger worker (``triggers.Triggers``) and the delivery worker
(``webhooks.Deliverer``) each day. On day 90 Anna has gone 90 days without a purchase
and her points burn within 14 days: she gets ``points.expiring`` and ``member.lapsed``.
The receiver is down then (stopped: its port refuses connections), so the deliveries fail
and are retried; restarted on the same port, it receives each event once per
webhook-id, every signature verified with the subscription's secret, each member's
events in order."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from cluster import Cluster
from test_outbox import cluster
from webhook_receiver import Receiver

from agent import engine
from agent.seed import demo_programme
from sync.backoffice import outbox, triggers, webhooks

__all__ = ["cluster"]  # the fixture, shared with test_outbox

TYPES = [outbox.POINTS_EXPIRING, outbox.MEMBER_LAPSED]
EXPIRY_DAYS = 104  # 90 days without a purchase + the 14 days points.expiring looks ahead


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def test_a_lapsed_member_with_expiring_points_reaches_the_receiver_once(
    cluster: Cluster, receiver: Receiver
) -> None:
    bo, clock = cluster.bo, cluster.clock
    rules = demo_programme()
    bo.publish_rules(  # no welcome bonus: her only points are the shirt's
        replace(
            rules,
            version=rules.version + 1,
            expiry_days=EXPIRY_DAYS,
            welcome_points=0,
            welcome_spend_before_sync=False,
        )
    )
    made = bo.webhook_add(receiver.url, TYPES, actor="owner")
    receiver.verify_with = [made.secret]
    sid = made.subscription.id
    deliverer = bo.webhook_deliverer(rng=random.Random(19))
    daily = triggers.Triggers(bo.context)
    try:
        till = cluster.till()
        reg = till.agent.register(
            phone="+7 916 555-12-34",
            first_name="Анна",
            consent_programme=True,
            consent_marketing=True,
            cashier_id="anna",
        )
        anna = reg.card.member_id
        sold_at = clock.now()
        sale = till.sale("R-1", anna, ("SH-2001", 1))
        till.client.drain()
        earned = sale.quote.earn_points
        assert earned > 0

        def hers() -> list[outbox.Row]:
            return [
                r for r in outbox.read_after(cluster.db, 0, 100_000, TYPES) if r.member_id == anna
            ]

        def day() -> None:
            clock.advance(days=1)
            daily.round(False)
            while deliverer.round():
                pass

        for _ in range(88):
            day()
        assert hers() == []  # 88 days: not lapsed, her points burn in 16 days
        receiver.stop()  # the receiver goes down
        day()
        assert hers() == []
        day()  # day 90: 90 days without a purchase, 14 days before her points burn
        rows = hers()
        assert [r.type for r in rows] == [outbox.POINTS_EXPIRING, outbox.MEMBER_LAPSED]
        expiring, lapsed = rows[0].data, rows[1].data
        burns = sold_at + timedelta(days=EXPIRY_DAYS, microseconds=-1)  # that day's end
        expires_on = engine.local_date(rules, burns)
        assert expiring == {"points": earned, "expires_on": expires_on.isoformat(), "days": 14}
        assert lapsed["days"] == 90
        assert lapsed["last_purchase_at"] == sold_at.isoformat()
        mine = {webhooks.webhook_id(sid, r.id) for r in rows}
        for _ in range(12):  # half a day of retries against a closed port
            clock.advance(hours=1)
            while deliverer.round():
                pass
        failed = [a for a in bo.webhook_log(sid, limit=10_000) if a.webhook_id in mine]
        assert len(failed) > 2 and all(a.status is None and a.error for a in failed)
        assert not mine & set(receiver.ids())
        receiver.start()  # back on the same port
        for _ in range(3):
            clock.advance(hours=6)  # the retry schedule's waits have grown to hours
            while deliverer.round():
                pass
        day()
        day()  # later days: nothing new for her (once per member and day key)
        assert len(hers()) == 2
    finally:
        deliverer.stop()
    every = outbox.read_after(cluster.db, 0, 100_000, TYPES)
    want = {webhooks.webhook_id(sid, r.id) for r in every}
    ids = receiver.ids()
    assert sorted(ids) == sorted(want)  # each event once, none lost, none invented
    assert {r.webhook_id for r in receiver.got} == want  # the retries kept their ids
    assert receiver.bad_signatures == 0
    got = [r.event() for r in receiver.accepted() if r.event()["subject"] == anna]
    assert [e["type"] for e in got] == ["ru.kassa.points.expiring", "ru.kassa.member.lapsed"]
    assert [e["data"] for e in got] == [{**r.data, "member_seq": r.member_seq} for r in hers()]
    seqs: dict[str, list[int]] = {}
    for r in receiver.accepted():
        e = r.event()
        seqs.setdefault(e["subject"], []).append(e["data"]["member_seq"])
    assert all(s == sorted(s) for s in seqs.values())  # each member's order kept

"""Webhook delivery (``sync.backoffice.webhooks``) on SQLite and PostgreSQL, to a real
receiver on 127.0.0.1 (``webhook_receiver``), with a fake clock walking the retry schedule:
the Standard Webhooks signature (the specification's published test vector, two
signatures during a rotation), every event received once per webhook-id through an
outage, 429 Retry-After, 410 disabling, a member's order kept while another's events flow,
the dead letters after 72 hours and their replay, the log pruned after 35 days, and
subscriptions refused with a message and nothing written."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from conftest import NOW, FakeClock
from webhook_receiver import Receiver

from sync.backoffice import outbox, webhooks
from sync.backoffice.db import Database
from sync.backoffice.people import audit
from sync.backoffice.service import Backoffice

VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.fixture
def bo(db_url: str, clock: FakeClock) -> Iterator[Backoffice]:
    db = Database.open(db_url)
    b = Backoffice(db, clock)
    b.initialise()
    yield b
    db.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def deliverer(bo: Backoffice) -> Iterator[webhooks.Deliverer]:
    d = bo.webhook_deliverer(rng=random.Random(19))
    yield d
    d.stop()


def emit(bo: Backoffice, member: str, n: int = 1, kind: str = outbox.PURCHASE) -> None:
    with bo.db.transaction(feed=True) as tx:
        for i in range(n):
            outbox.emit(tx, member, kind, {"points": i + 1}, bo.clock.now())


def settle(d: webhooks.Deliverer) -> int:
    """Rounds until one does nothing; returns the attempts made."""
    total = 0
    while n := d.round():
        total += n
    return total


def states(bo: Backoffice) -> dict[str, int]:
    with bo.db.reading() as tx:
        return {
            str(s): int(n)
            for s, n in tx.all("SELECT state, count(*) FROM webhook_deliveries GROUP BY state")
        }


def test_signature_matches_the_published_test_vector_and_verifies() -> None:
    assert webhooks.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TS, VECTOR_BODY) == VECTOR_SIGNATURE
    got = webhooks.headers([VECTOR_SECRET], VECTOR_ID, VECTOR_TS, VECTOR_BODY)
    assert got["webhook-signature"] == VECTOR_SIGNATURE
    at = datetime.fromtimestamp(VECTOR_TS + 10, UTC)
    assert webhooks.verify(VECTOR_SECRET, got, VECTOR_BODY, at) == VECTOR_ID
    with pytest.raises(webhooks.SignatureError, match="no v1 signature"):
        webhooks.verify(VECTOR_SECRET, got, VECTOR_BODY + b" ", at)
    with pytest.raises(webhooks.SignatureError, match="more than 300 s"):
        webhooks.verify(VECTOR_SECRET, got, VECTOR_BODY, at + timedelta(minutes=10))
    with pytest.raises(webhooks.SignatureError, match="are required"):
        webhooks.verify(VECTOR_SECRET, {}, VECTOR_BODY, at)
    secret = webhooks.new_secret()
    assert secret.startswith("whsec_") and len(webhooks._key(secret)) == 32


def test_a_rotation_signs_with_both_secrets_for_a_day(
    bo: Backoffice, receiver: Receiver, deliverer: webhooks.Deliverer, clock: FakeClock
) -> None:
    made = bo.webhook_add(receiver.url, "", actor="owner")
    rotated = bo.webhook_rotate(made.subscription.id, actor="owner")
    assert rotated.secret != made.secret and rotated.subscription.rotating
    emit(bo, "m1")
    assert settle(deliverer) == 1
    first = receiver.accepted()[0]
    assert len(first.headers["webhook-signature"].split()) == 2
    for secret in (made.secret, rotated.secret):  # a receiver with either verifies it
        webhooks.verify(secret, first.headers, first.body, clock.now())
    clock.advance(hours=25)
    emit(bo, "m1")
    settle(deliverer)
    later = receiver.accepted()[1]
    assert len(later.headers["webhook-signature"].split()) == 1
    webhooks.verify(rotated.secret, later.headers, later.body, clock.now())
    with pytest.raises(webhooks.SignatureError):
        webhooks.verify(made.secret, later.headers, later.body, clock.now())
    assert not bo.webhook_subscription(made.subscription.id).rotating
    actions = [e.action for e in audit.entries(bo.db)]
    assert "webhook_added" in actions and "webhook_secret_rotated" in actions
    assert all(made.secret not in e.detail for e in audit.entries(bo.db))


def test_every_event_arrives_once_per_webhook_id_through_an_outage(
    bo: Backoffice, receiver: Receiver, deliverer: webhooks.Deliverer, clock: FakeClock
) -> None:
    made = bo.webhook_add(receiver.url, ["purchase", "points.earned"], actor="owner")
    receiver.verify_with = [made.secret]
    receiver.stop()  # the receiver is down
    emit(bo, "m1", 3)
    emit(bo, "m2", 2, outbox.POINTS_EARNED)
    emit(bo, "m3", 1, outbox.TIER_UP)  # not a type it asked for
    assert settle(deliverer) == 2  # the two members' first events, refused at connect
    for _ in range(30):  # 30 hours of outage through the schedule
        clock.advance(hours=1)
        settle(deliverer)
    failed = bo.webhook_log(made.subscription.id, limit=1000)
    assert len(failed) > 2 and all(a.status is None and a.error for a in failed)
    assert states(bo) == {"pending": 5}
    receiver.start()  # back, on the same port; the first two answers are errors
    receiver.script = [(500, {}), (503, {})]
    for _ in range(4):
        clock.advance(hours=6)
        settle(deliverer)
    assert states(bo) == {"done": 5}
    sid = made.subscription.id
    want = {webhooks.webhook_id(sid, i) for i in range(1, 6)}
    ids = receiver.ids()
    assert sorted(ids) == sorted(want)  # each once, none invented
    assert {r.webhook_id for r in receiver.got} == want  # retries kept their ids
    assert receiver.bad_signatures == 0
    for member in ("m1", "m2"):
        seqs = [
            r.event()["data"]["member_seq"]
            for r in receiver.accepted()
            if r.event()["subject"] == member
        ]
        assert seqs == sorted(seqs) and len(seqs) == (3 if member == "m1" else 2)
    event = receiver.accepted()[0].event()
    assert event["specversion"] == "1.0" and event["type"].startswith("ru.kassa.")
    assert receiver.accepted()[0].headers["content-type"].startswith("application/cloudevents+json")


def test_429_waits_its_retry_after(
    bo: Backoffice, receiver: Receiver, deliverer: webhooks.Deliverer, clock: FakeClock
) -> None:
    bo.webhook_add(receiver.url, "", actor="owner")
    receiver.script = [(429, {"Retry-After": "120"})]
    emit(bo, "m1")
    assert settle(deliverer) == 1
    clock.advance(seconds=119)
    assert settle(deliverer) == 0  # not before the receiver's time
    clock.advance(seconds=2)
    assert settle(deliverer) == 1
    assert [r.status for r in receiver.got] == [429, 204]
    assert webhooks.retry_after_s("Wed, 21 Oct 2015 07:28:00 GMT", NOW) == 0.0
    assert webhooks.retry_after_s("soon", NOW) is None
    assert webhooks.retry_after_s("99999999", NOW) == webhooks.MAX_RETRY_AFTER_S


def test_410_disables_the_subscription_and_enabling_resumes(
    bo: Backoffice, receiver: Receiver, deliverer: webhooks.Deliverer, clock: FakeClock
) -> None:
    made = bo.webhook_add(receiver.url, "", actor="owner")
    receiver.answer = (410, {})
    emit(bo, "m1", 2)
    emit(bo, "m2")
    settle(deliverer)
    sub = bo.webhook_subscription(made.subscription.id)
    assert sub.state == "disabled" and sub.disabled_reason == "gone"
    emit(bo, "m3")
    clock.advance(hours=12)
    assert settle(deliverer) == 0  # nothing goes to a disabled subscription
    receiver.answer = (204, {})
    bo.webhook_set_active(sub.id, True, actor="owner")
    settle(deliverer)
    assert sorted(receiver.ids()) == sorted(
        webhooks.webhook_id(sub.id, i) for i in range(1, 5)
    )  # the ones 410 refused and the one written while disabled


def test_a_members_order_is_kept_while_others_flow(
    bo: Backoffice, receiver: Receiver, deliverer: webhooks.Deliverer, clock: FakeClock
) -> None:
    bo.webhook_add(receiver.url, "", actor="owner")
    receiver.failing_subjects = {"m1"}
    emit(bo, "m1", 2)
    emit(bo, "m2", 3)
    settle(deliverer)
    subjects = [r.event()["subject"] for r in receiver.got]
    assert subjects.count("m1") == 1  # m1's second event waits for the first
    assert [r.event()["data"]["member_seq"] for r in receiver.accepted()] == [1, 2, 3]
    clock.advance(minutes=5)
    settle(deliverer)
    assert [
        r.event()["data"]["member_seq"] for r in receiver.got if r.event()["subject"] == "m1"
    ] == [1, 1]
    receiver.failing_subjects = set()
    clock.advance(hours=1)
    settle(deliverer)
    m1 = [
        r.event()["data"]["member_seq"] for r in receiver.accepted() if r.event()["subject"] == "m1"
    ]
    assert m1 == [1, 2]


def test_dead_letters_after_72_hours_and_replay(
    bo: Backoffice, receiver: Receiver, deliverer: webhooks.Deliverer, clock: FakeClock
) -> None:
    made = bo.webhook_add(receiver.url, "", actor="owner")
    sid = made.subscription.id
    receiver.answer = (500, {})
    emit(bo, "m1", 2)
    start = clock.now()
    while not bo.webhook_dead(sid) and clock.now() - start < timedelta(hours=90):
        settle(deliverer)
        clock.advance(minutes=30)
    dead = bo.webhook_dead(sid)
    assert [d.outbox_id for d in dead] == [1]
    assert clock.now() - start >= webhooks.RETRY_FOR
    assert 15 <= dead[0].attempts <= 80 and dead[0].last_status == 500
    assert bo.webhook_subscription(sid).dead == 1
    receiver.answer = (204, {})
    clock.advance(hours=6)
    settle(deliverer)  # the member's next event goes on (a gap the receiver sees)
    assert receiver.ids() == [webhooks.webhook_id(sid, 2)]
    assert bo.webhook_replay(sid, "1", actor="owner") == 1
    settle(deliverer)
    assert receiver.ids() == [webhooks.webhook_id(sid, 2), webhooks.webhook_id(sid, 1)]
    assert bo.webhook_replay(sid, 1, 2, actor="owner") == 2  # a range, in order again
    settle(deliverer)
    assert receiver.ids()[-2:] == [webhooks.webhook_id(sid, 1), webhooks.webhook_id(sid, 2)]
    with pytest.raises(webhooks.WebhookError) as e:
        bo.webhook_replay(sid, "x", actor="owner")
    assert e.value.code == "bad_number"
    with pytest.raises(webhooks.WebhookError) as e:
        bo.webhook_replay(sid, 5, 3, actor="owner")
    assert e.value.code == "bad_replay"


def test_the_log_is_kept_35_days_then_pruned(
    bo: Backoffice, receiver: Receiver, deliverer: webhooks.Deliverer, clock: FakeClock
) -> None:
    bo.webhook_add(receiver.url, "", actor="owner")
    emit(bo, "m1", 2)
    settle(deliverer)
    clock.advance(days=30)
    settle(deliverer)
    assert len(bo.webhook_log()) == 2 and states(bo) == {"done": 2}
    clock.advance(days=6)
    deliverer.round()
    assert bo.webhook_log() == [] and states(bo) == {}


def test_bad_subscriptions_are_refused_with_nothing_written(bo: Backoffice) -> None:
    for url, types, code in [
        ("ftp://example.org/x", "", "bad_url"),
        ("http:///nohost", "", "bad_url"),
        ("https://crm.example/hook", "purchase, no.such", "bad_types"),
    ]:
        with pytest.raises(webhooks.WebhookError) as e:
            bo.webhook_add(url, types, actor="owner")
        assert e.value.code == code
        assert e.value.message("ru") and e.value.message("en")
    assert bo.webhook_subscriptions() == []
    assert audit.entries(bo.db) == []
    with pytest.raises(webhooks.WebhookError) as e:
        bo.webhook_set_types(7, "", actor="owner")
    assert e.value.code == "unknown_subscription"
    made = bo.webhook_add(" https://crm.example/hook ", "tier.up purchase", actor="owner")
    assert made.subscription.url == "https://crm.example/hook"
    assert made.subscription.types == ("purchase", "tier.up")
    assert bo.webhook_set_types(made.subscription.id, "", actor="owner").types == ()


def test_a_members_due_events_go_in_one_round_in_order_and_a_failure_stops_the_run(
    bo: Backoffice, receiver: Receiver, deliverer: webhooks.Deliverer, clock: FakeClock
) -> None:
    sid = bo.webhook_add(receiver.url, "", actor="owner").subscription.id
    receiver.failing_subjects = {"m2"}
    emit(bo, "m1", 5)
    emit(bo, "m2", 2)
    assert deliverer.round() == 6  # m1's five one after another, m2's first refused
    assert seqs(receiver, "m1") == [1, 2, 3, 4, 5] and seqs(receiver, "m2", every=True) == [1]
    assert states(bo) == {"done": 5, "pending": 2}
    receiver.failing_subjects = set()
    clock.advance(minutes=1)
    assert deliverer.round() == 2 and seqs(receiver, "m2") == [1, 2]
    receiver.script = [(204, {}), (503, {})]  # m3's second fails: its third waits
    emit(bo, "m3", 3)
    assert deliverer.round() == 2
    with bo.db.reading() as tx:
        rows = tx.all(
            "SELECT outbox_id, state, head, attempts, claim FROM webhook_deliveries "
            "WHERE member_id = 'm3' ORDER BY outbox_id"
        )
    assert [tuple(r[1:]) for r in rows] == [
        ("done", 0, 1, None),
        ("pending", 1, 1, None),  # the member's head now, due after its backoff
        ("pending", 0, 0, None),  # claimed behind it, never sent, let go
    ]
    assert deliverer.round() == 0  # not before the backoff
    clock.advance(minutes=1)
    assert deliverer.round() == 2
    assert seqs(receiver, "m3", every=True) == [1, 2, 2, 3] and seqs(receiver, "m3") == [1, 2, 3]
    emit(bo, "m4", webhooks.RUN_MAX + 4)
    assert deliverer.round() == webhooks.RUN_MAX  # a run is bounded
    assert deliverer.round() == 4
    assert seqs(receiver, "m4") == list(range(1, webhooks.RUN_MAX + 5))
    assert sorted(receiver.ids()) == sorted(
        webhooks.webhook_id(sid, i) for i in range(1, 11 + webhooks.RUN_MAX + 4)
    )


def seqs(receiver: Receiver, member: str, *, every: bool = False) -> list[int]:
    """The ``member_seq`` of a member's requests in arrival order (only those answered
    2xx unless ``every``)."""
    got = receiver.got if every else receiver.accepted()
    return [r.event()["data"]["member_seq"] for r in got if r.event()["subject"] == member]


def test_members_runs_go_concurrently_each_in_order_and_bounded(
    bo: Backoffice, receiver: Receiver, clock: FakeClock
) -> None:
    """A receiver holding each answer 200 ms: eight members' runs of three go out in one
    round at once (the receiver serves several requests together), each member's events in
    order, a failing member's run stopping at its failure while the others are done."""
    sid = bo.webhook_add(receiver.url, "", actor="owner").subscription.id
    receiver.delay_s = 0.2
    receiver.failing_subjects = {"m3"}
    members = [f"m{i}" for i in range(8)]
    for m in members:
        emit(bo, m, 3)
    d = bo.webhook_deliverer(rng=random.Random(19))
    try:
        assert d.concurrency == webhooks.PARALLEL
        assert d.round() == 7 * 3 + 1  # m3's first refused, its two later ones let go
    finally:
        d.stop()
    assert 1 < receiver.most_in_flight <= webhooks.PARALLEL
    for m in members:
        assert seqs(receiver, m, every=True) == ([1] if m == "m3" else [1, 2, 3])
    assert states(bo) == {"done": 21, "pending": 3}
    assert len(receiver.ids()) == len(set(receiver.ids())) == 21
    with bo.db.reading() as tx:
        head, attempts = tx.one(
            "SELECT head, attempts FROM webhook_deliveries WHERE subscription_id = ? "
            "AND member_id = 'm3' ORDER BY outbox_id LIMIT 1",
            (sid,),
        )
    assert (head, attempts) == (1, 1)


def test_concurrency_bounds_the_requests_in_flight(
    bo: Backoffice, receiver: Receiver, clock: FakeClock
) -> None:
    bo.webhook_add(receiver.url, "", actor="owner")
    receiver.delay_s = 0.1
    for i in range(6):
        emit(bo, f"m{i}", 2)
    with pytest.raises(ValueError, match="at least 1"):
        bo.webhook_deliverer(concurrency=0)
    one = bo.webhook_deliverer(rng=random.Random(19), concurrency=1)
    try:
        assert one.round() == 12
    finally:
        one.stop()
    assert receiver.most_in_flight == 1  # one sender thread: one request at a time
    for i in range(6):
        assert seqs(receiver, f"m{i}") == [1, 2]
    receiver.most_in_flight = 0
    for i in range(6):
        emit(bo, f"m{i}", 2)
    two = bo.webhook_deliverer(rng=random.Random(19), concurrency=2)
    try:
        assert two.round() == 12
    finally:
        two.stop()
    assert receiver.most_in_flight == 2
    for i in range(6):
        assert seqs(receiver, f"m{i}") == [1, 2, 3, 4]

"""The webhooks section without a browser, on SQLite and PostgreSQL: httpx through the
real back-office app, deliveries made by the real ``Deliverer`` to a real receiver on
127.0.0.1 (``webhook_receiver``) with the cluster's fake clock. Marketing creates a
subscription (a plain-http URL to a non-loopback host refused naming the field, nothing
written), sees its secret once and the receiver verifies the deliveries with it; rotates
it (the new one shown once, the old one still signing); disables, enables, deletes; reads
the delivery log (event, type, member, status, attempt number, next attempt, error) and
replays one event, a time span and a dead letter; a 410 shows the subscription disabled
with its reason. Analysts read without forms; support and store managers are refused."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from cluster import Cluster
from test_console_coupons_rules_pages import PASSWORD, sign_in
from test_webhooks import receiver, settle
from webhook_receiver import Receiver

from sync.backoffice import outbox, webhooks
from sync.backoffice.console.guard import PREFIX
from sync.backoffice.people import audit, users

__all__ = ["receiver"]

SECRET = re.compile(r'<code id="secret-value">(whsec_[A-Za-z0-9+/=]+)</code>')


@pytest.fixture
def office(cluster: Cluster) -> Cluster:
    for login, role, store in [
        ("mk", "marketing", None),
        ("an", "analyst", None),
        ("sup", "support", None),
        ("mgr", "store_manager", "s1"),
    ]:
        users.add_user(cluster.bo.context, login, PASSWORD, role, name=login, store_id=store)
    return cluster


@pytest.fixture
def browser(office: Cluster) -> Iterator[httpx.Client]:
    with httpx.Client(transport=office.transport, base_url="http://backoffice") as c:
        yield c


@pytest.fixture
def deliverer(office: Cluster) -> Iterator[webhooks.Deliverer]:
    d = office.bo.webhook_deliverer(rng=random.Random(7))
    yield d
    d.stop()


def emit(office: Cluster, member: str, kind: str = outbox.PURCHASE) -> int:
    """One member event in the outbox, written at the cluster's clock; returns its id."""
    with office.db.transaction(feed=True) as tx:
        at = office.clock.now()
        outbox.emit(tx, member, kind, {"points": 1}, at, now=at)
        return int(tx.one("SELECT max(id) FROM outbox")[0])


def actions(office: Cluster) -> list[str]:
    return [e.action for e in audit.entries(office.db, limit=200)]


def create(browser: httpx.Client, token: str, url: str, *types: str) -> tuple[int, str]:
    """Create a subscription on the form; returns its id and the secret the page showed."""
    form = {"csrf": token, "url": url, **{f"type.{t}": "1" for t in types}}
    made = browser.post(f"{PREFIX}/webhooks", data=form)
    assert made.status_code == 200, made.text
    found = SECRET.search(made.text)
    assert found, made.text
    sid = int(re.findall(r'data-subscription="(\d+)"', made.text)[0])
    return sid, found[1]


def test_create_refuses_a_bad_url_and_shows_the_secret_once(
    office: Cluster, browser: httpx.Client, receiver: Receiver, deliverer: webhooks.Deliverer
) -> None:
    token = sign_in(browser, "mk")
    page = browser.get(f"{PREFIX}/webhooks")
    assert page.status_code == 200 and 'id="no-subscriptions"' in page.text
    assert 'data-nav="webhooks"' in page.text and 'id="webhook-form"' in page.text
    for url, words in [
        ("http://crm.example/hook", "http:// только для 127.0.0.1"),
        ("ftp://crm.example/hook", "http:// или https://"),
        ("", "http:// или https://"),
    ]:
        bad = browser.post(
            f"{PREFIX}/webhooks", data={"csrf": token, "url": url, "type.purchase": "1"}
        )
        assert bad.status_code == 400
        assert 'data-form="create" data-field="url"' in bad.text
        assert words in bad.text
        assert f'value="{url}" aria-invalid=true' in bad.text  # the typed URL kept, marked
        assert 'name="type.purchase" value="1" id="type-purchase" checked' in bad.text
    forged = browser.post(f"{PREFIX}/webhooks", data={"csrf": "x", "url": receiver.url})
    assert forged.status_code == 403
    assert office.bo.webhook_subscriptions() == [] and "webhook_added" not in actions(office)

    sid, secret = create(browser, token, receiver.url, outbox.PURCHASE, outbox.REFUND)
    sub = office.bo.webhook_subscription(sid)
    assert sub.url == receiver.url and sub.types == (outbox.PURCHASE, outbox.REFUND)
    assert secret.startswith("whsec_") and len(webhooks._key(secret)) == 32
    for later in (f"{PREFIX}/webhooks", f"{PREFIX}/webhooks/{sid}"):
        shown = browser.get(later)
        assert shown.status_code == 200 and secret not in shown.text
        assert 'id="secret"' not in shown.text
    assert all(secret not in e.detail for e in audit.entries(office.db, limit=200))
    receiver.verify_with = [secret]  # the receiver checks every delivery with that secret
    emit(office, "m00000001")
    emit(office, "m00000002", outbox.TIER_UP)  # not a type it asked for
    assert settle(deliverer) == 1
    assert receiver.bad_signatures == 0 and len(receiver.accepted()) == 1
    listed = browser.get(f"{PREFIX}/webhooks").text
    assert f'data-subscription="{sid}"' in listed and 'data-last-status="204"' in listed
    assert 'data-pending="0"' in listed and 'data-dead="0"' in listed


def test_rotate_disable_enable_delete(
    office: Cluster, browser: httpx.Client, receiver: Receiver, deliverer: webhooks.Deliverer
) -> None:
    token = sign_in(browser)
    sid, first = create(browser, token, receiver.url)
    rotated = browser.post(f"{PREFIX}/webhooks/{sid}/rotate", data={"csrf": token})
    assert rotated.status_code == 200
    found = SECRET.search(rotated.text)
    assert found and found[1] != first
    assert 'id="rotating"' in rotated.text  # the old secret still signs for a day
    assert found[1] not in browser.get(f"{PREFIX}/webhooks/{sid}").text
    receiver.verify_with = [first, found[1]]  # both signatures are on the request
    emit(office, "m00000001")
    assert settle(deliverer) == 1 and receiver.bad_signatures == 0
    off = browser.post(f"{PREFIX}/webhooks/{sid}/state", data={"csrf": token, "active": "0"})
    assert off.status_code == 303 and off.headers["location"].endswith("done=disabled")
    page = browser.get(off.headers["location"]).text
    assert 'data-state="disabled" data-reason="manual"' in page and 'id="enable"' in page
    emit(office, "m00000002")
    assert settle(deliverer) == 0  # a disabled subscription takes nothing
    on = browser.post(f"{PREFIX}/webhooks/{sid}/state", data={"csrf": token, "active": "1"})
    assert on.status_code == 303
    assert 'data-state="active"' in browser.get(on.headers["location"]).text
    assert settle(deliverer) == 1  # its cursor went on from where it stopped
    gone = browser.post(f"{PREFIX}/webhooks/{sid}/delete", data={"csrf": token})
    assert gone.status_code == 303
    assert f"{sid}" in browser.get(gone.headers["location"]).text
    assert office.bo.webhook_subscriptions() == []
    assert office.bo.webhook_log(sid) == []
    assert browser.get(f"{PREFIX}/webhooks/{sid}").status_code == 404
    assert browser.post(f"{PREFIX}/webhooks/{sid}/rotate", data={"csrf": token}).status_code == 404
    done = actions(office)
    for action in (
        "webhook_added",
        "webhook_secret_rotated",
        "webhook_disabled",
        "webhook_enabled",
        "webhook_deleted",
    ):
        assert action in done


def test_types_are_changed_on_the_form(
    office: Cluster, browser: httpx.Client, receiver: Receiver
) -> None:
    token = sign_in(browser, "mk")
    sid, _ = create(browser, token, receiver.url, outbox.PURCHASE)
    saved = browser.post(
        f"{PREFIX}/webhooks/{sid}/types",
        data={"csrf": token, f"type.{outbox.TIER_UP}": "1", "type.no.such": "1"},
    )
    assert saved.status_code == 303
    assert office.bo.webhook_subscription(sid).types == (outbox.TIER_UP,)
    assert "webhook_types_set" in actions(office)


def test_the_log_replays_and_dead_letters(
    office: Cluster, browser: httpx.Client, receiver: Receiver, deliverer: webhooks.Deliverer
) -> None:
    token = sign_in(browser, "mk")
    sid, _ = create(browser, token, receiver.url)
    one = emit(office, "m00000001")
    settle(deliverer)
    receiver.answer = (503, {})  # the receiver fails for a while
    office.clock.advance(minutes=1)
    two = emit(office, "m00000002", outbox.POINTS_EARNED)
    assert settle(deliverer) == 1
    page = browser.get(f"{PREFIX}/webhooks/{sid}").text
    ok = re.search(
        rf'<tr data-attempt="\d+" data-event="{one}" data-status="204" '
        rf'data-number="1">(.*?)</tr>',
        page,
        re.S,
    )
    assert ok and outbox.PURCHASE in ok[1] and "m00000001" in ok[1]
    failed = re.search(
        rf'<tr data-attempt="\d+" data-event="{two}" data-status="503" '
        rf'data-number="1">(.*?)</tr>',
        page,
        re.S,
    )
    assert failed, page
    assert outbox.POINTS_EARNED in failed[1] and "m00000002" in failed[1]
    pending = office.ledger("SELECT next_at FROM webhook_deliveries WHERE outbox_id = ?", (two,))[
        0
    ][0]
    assert pending[:19].replace("T", " ") in failed[1]  # the next attempt's time
    assert 'data-failing="1"' in page and 'data-pending="1"' in page

    receiver.answer = (204, {})
    for bad, field in [({"first": "x"}, "first"), ({"first": "5", "last": "2"}, "last")]:
        refused = browser.post(f"{PREFIX}/webhooks/{sid}/replay", data={"csrf": token, **bad})
        assert refused.status_code == 400
        assert f'data-form="ids" data-field="{field}"' in refused.text
    again = browser.post(f"{PREFIX}/webhooks/{sid}/replay", data={"csrf": token, "first": str(one)})
    assert again.status_code == 303 and again.headers["location"].endswith("replayed=1")
    assert "1" in browser.get(again.headers["location"]).text
    settle(deliverer)
    assert receiver.ids().count(webhooks.webhook_id(sid, one)) == 2  # the same webhook-id
    numbered = browser.get(f"{PREFIX}/webhooks/{sid}").text
    assert re.search(rf'data-event="{one}" data-status="204" data-number="2"', numbered)

    start = office.clock.now() - timedelta(minutes=5)
    for bad, field in [
        ({"since": "вчера", "until": "2026-06-15T10:00"}, "since"),
        ({"since": "2026-06-15T10:00", "until": "2026-06-15T09:00"}, "until"),
        ({"since": "2001-01-01T00:00", "until": "2001-01-02T00:00"}, "since"),
    ]:
        refused = browser.post(f"{PREFIX}/webhooks/{sid}/replay-span", data={"csrf": token, **bad})
        assert refused.status_code == 400, refused.text
        assert f'data-form="span" data-field="{field}"' in refused.text
        assert f'id="f-{field}"' in refused.text
    span = browser.post(
        f"{PREFIX}/webhooks/{sid}/replay-span",
        data={
            "csrf": token,
            "since": start.strftime("%Y-%m-%dT%H:%M:%S"),
            "until": (office.clock.now() + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    assert span.status_code == 303, re.findall(r"id=\"error\".*", span.text)
    assert span.headers["location"].endswith("replayed=2")
    replays = [e for e in audit.entries(office.db, limit=200) if e.action == "webhook_replayed"]
    assert len(replays) == 2
    settle(deliverer)
    got = receiver.ids()  # the span sent the first event a third time, the failing one now
    assert got.count(webhooks.webhook_id(sid, one)) == 3
    assert got.count(webhooks.webhook_id(sid, two)) == 1

    receiver.answer = (503, {})  # 72 hours of failures: the event becomes a dead letter
    three = emit(office, "m00000003")
    settle(deliverer)
    for _ in range(80):
        office.clock.advance(hours=1)
        settle(deliverer)
    token = sign_in(browser, "mk")  # the session ended in those hours
    page = browser.get(f"{PREFIX}/webhooks/{sid}").text
    assert f'data-dead-event="{three}"' in page and 'data-dead="1"' in page
    receiver.answer = (204, {})
    back = browser.post(
        f"{PREFIX}/webhooks/{sid}/replay", data={"csrf": token, "first": str(three)}
    )
    assert back.status_code == 303
    settle(deliverer)
    assert webhooks.webhook_id(sid, three) in receiver.ids()
    assert 'id="no-dead"' in browser.get(f"{PREFIX}/webhooks/{sid}").text


def test_a_410_shows_the_subscription_disabled_with_its_reason(
    office: Cluster, browser: httpx.Client, receiver: Receiver, deliverer: webhooks.Deliverer
) -> None:
    token = sign_in(browser, "mk")
    sid, _ = create(browser, token, receiver.url)
    receiver.answer = (410, {})
    emit(office, "m00000001")
    settle(deliverer)
    listed = browser.get(f"{PREFIX}/webhooks").text
    assert 'data-state="disabled" data-reason="gone"' in listed
    assert "410 Gone" in listed and 'data-last-status="410"' in listed
    browser.post(f"{PREFIX}/lang", data={"csrf": token, "lang": "en", "next": f"{PREFIX}/"})
    english = browser.get(f"{PREFIX}/webhooks/{sid}").text
    assert "the receiver answered 410 Gone" in english and "Delivery log" in english


def test_roles(office: Cluster, browser: httpx.Client, receiver: Receiver) -> None:
    made = office.bo.webhook_add(receiver.url, "", actor="mk")
    sid = made.subscription.id
    token = sign_in(browser, "an")
    listed = browser.get(f"{PREFIX}/webhooks")
    assert listed.status_code == 200 and f'data-subscription="{sid}"' in listed.text
    assert 'id="webhook-form"' not in listed.text
    page = browser.get(f"{PREFIX}/webhooks/{sid}")
    assert page.status_code == 200 and 'id="rotate"' not in page.text
    assert made.secret not in page.text
    for path, form in [
        ("", {"url": receiver.url}),
        (f"/{sid}/rotate", {}),
        (f"/{sid}/state", {"active": "0"}),
        (f"/{sid}/delete", {}),
        (f"/{sid}/replay", {"first": "1"}),
    ]:
        refused = browser.post(f"{PREFIX}/webhooks{path}", data={"csrf": token, **form})
        assert refused.status_code == 403, path
    assert office.bo.webhook_subscription(sid).state == "active"
    assert len(office.bo.webhook_subscriptions()) == 1
    for login in ("sup", "mgr"):
        browser.cookies.clear()
        sign_in(browser, login)
        home = browser.get(f"{PREFIX}/").text
        assert 'data-nav="webhooks"' not in home
        assert browser.get(f"{PREFIX}/webhooks").status_code == 403
        assert browser.get(f"{PREFIX}/webhooks/{sid}").status_code == 403


def test_the_span_finds_event_ids_by_time(office: Cluster) -> None:
    ids = []
    for _ in range(5):
        ids.append(emit(office, "m00000001"))
        office.clock.advance(minutes=10)
    t0 = office.clock.now() - timedelta(minutes=50)
    with office.db.reading() as tx:
        assert webhooks.span(tx, t0, t0 + timedelta(minutes=50)) == (ids[0], ids[4])
        assert webhooks.span(tx, t0 + timedelta(minutes=5), t0 + timedelta(minutes=30)) == (
            ids[1],
            ids[2],
        )
        assert webhooks.span(tx, t0 + timedelta(minutes=1), t0 + timedelta(minutes=2)) is None
        assert webhooks.span(tx, t0 - timedelta(days=1), t0) is None

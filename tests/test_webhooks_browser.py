"""The webhooks page in a real browser (Playwright, Debian's chromium; the ``browser``
fixture and helpers of ``test_console_browser``), in Russian and in English: marketing
types a plain-http URL to a remote host and is told so on the form naming the URL,
creates a subscription to a real receiver on 127.0.0.1 (``webhook_receiver``) with the
secret shown once, a member event is delivered by the real ``Deliverer`` and signed with
that secret, and the subscription's page shows the delivery in its log. A screenshot per
language is kept under ``tests/artifacts/``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_webhooks import receiver
from webhook_receiver import Receiver

from kassa.demo_sync import LoopbackServer
from sync.backoffice import outbox
from sync.backoffice.db import Database
from sync.backoffice.people import users
from sync.backoffice.service import Backoffice
from tests.conftest import FakeClock
from tests.test_console_browser import PASSWORD, browser, new_page, open_section

__all__ = ["browser", "receiver"]

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backoffice, str]]:
    """A back office served on loopback (no delivery thread: the test runs the rounds)
    with a marketing user."""
    bo = Backoffice(Database.open(str(tmp_path_factory.mktemp("hooks") / "bo.db")), FakeClock())
    bo.initialise()
    users.add_user(bo.context, "mk", PASSWORD, "marketing", name="Марина")
    try:
        with LoopbackServer(bo, verifier=False) as server:
            yield bo, server.url + "/console/"
    finally:
        bo.db.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    with new_page(browser, request, (1280, 1500)) as p:
        yield p


WORDS = {
    "ru": ("http:// только для 127.0.0.1", "Журнал доставки", "Секрет подписи"),
    "en": ("http:// only to 127.0.0.1", "Delivery log", "Signing secret"),
}


@pytest.mark.parametrize("lang", ["ru", "en"])
def test_create_a_subscription_and_see_its_delivery(
    page: Any, office: tuple[Backoffice, str], receiver: Receiver, lang: str
) -> None:
    bo, url = office
    refused, log_title, secret_title = WORDS[lang]
    open_section(page, url, "webhooks", lang, "mk")
    page.fill("#f-url", "http://crm.example/hook")
    page.check("#type-purchase")
    page.click("#webhook-create")
    error = page.locator("#error")
    error.wait_for()
    assert error.get_attribute("data-field") == "url" and refused in error.inner_text()
    assert page.locator("#f-url").get_attribute("aria-invalid") == "true"
    assert page.locator("#type-purchase").is_checked()  # the ticked type kept
    page.fill("#f-url", receiver.url)
    page.click("#webhook-create")
    page.locator("#secret").wait_for()
    assert secret_title in page.locator("#secret h2").inner_text()
    secret = page.locator("#secret-value").inner_text()
    assert secret.startswith("whsec_")
    receiver.verify_with = [secret]
    sid = max(s.id for s in bo.webhook_subscriptions())
    assert bo.webhook_subscription(sid).types == (outbox.PURCHASE,)

    with bo.db.transaction(feed=True) as tx:
        outbox.emit(tx, "m1", outbox.PURCHASE, {"points": 5}, bo.clock.now())
    deliverer = bo.webhook_deliverer()
    try:
        while deliverer.round():
            pass
    finally:
        deliverer.stop()
    assert receiver.bad_signatures == 0 and receiver.accepted()

    page.click(f'[data-open="{sid}"]')
    row = page.locator("#delivery-log tbody tr").first
    row.wait_for()
    assert row.get_attribute("data-status") == "204" and row.get_attribute("data-number") == "1"
    assert outbox.PURCHASE in row.inner_text() and "m1" in row.inner_text()
    assert log_title in page.locator("main").inner_text()
    assert secret not in page.content()  # shown once, on the creation's answer only

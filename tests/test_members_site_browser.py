"""The members' pages end to end in a real browser (Playwright driving Debian's chromium at
a phone's viewport; the ``browser`` fixture and ``new_page`` of ``test_console_browser``),
against the back office served on loopback, with a real enrolled till:

the store's poster (the console's PDF, its QR decoded by zxing-cpp from the PDF's own
rectangles) -> its address in the phone's browser -> the phone -> the code read from the
file SMS provider -> name and consents -> the card -> a screenshot of the card's QR
decoded by zxing-cpp -> that token identified by the till with no network -> a sale ->
after the till's sync the card shows the new balance; the service worker keeps the card
and its QR with the phone offline; a token past its lifetime is refused at the till with
the member told to refresh. A screenshot is kept under ``tests/artifacts/``."""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cluster import Cluster
from synchelp import portal

from agent.errors import AgentError
from kassa.demo_sync import LoopbackServer
from sync.backoffice.couponsheet import PAGE_H, PAGE_W
from sync.backoffice.sms import FileGateway
from tests.test_console_browser import browser, new_page

__all__ = ["browser"]

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PHONE = "+79035550177"
PHONE_VIEW = (390, 844)  # a phone's CSS pixels


def decode(image: Any) -> str:
    """The text of the one QR code zxing-cpp finds in ``image`` (PIL image or array)."""
    import zxingcpp

    found = zxingcpp.read_barcodes(image)
    assert len(found) == 1, found
    return str(found[0].text)


def poster_qr(pdf: bytes) -> str:
    """The poster's QR, drawn from the PDF's filled rectangles at 2 pixels a point."""
    import numpy as np

    start = pdf.index(b"stream\n") + len(b"stream\n")
    ops = zlib.decompress(pdf[start : pdf.index(b"\nendstream", start)]).decode("ascii")
    scale = 2
    img = np.full((PAGE_H * scale, PAGE_W * scale), 255, dtype=np.uint8)
    for x, y, w, h in re.findall(r"^([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) re$", ops, re.M):
        x0, y0 = float(x) * scale, (PAGE_H - float(y) - float(h)) * scale
        x1, y1 = x0 + float(w) * scale, y0 + float(h) * scale
        img[round(y0) : round(y1), round(x0) : round(x1)] = 0
    return decode(img)


@pytest.fixture
def office(tmp_path: Path) -> Iterator[tuple[Cluster, FileGateway, str]]:
    sms = FileGateway(tmp_path / "sms.log")
    with portal() as p:
        c = Cluster(tmp_path, str(tmp_path / "bo.db"), p, members=5)
        try:
            with LoopbackServer(c.bo, verifier=False, sms=sms) as server:
                yield c, sms, server.url
        finally:
            c.close()


def test_poster_to_card_to_till_and_back(
    browser: Any, request: pytest.FixtureRequest, office: tuple[Cluster, FileGateway, str]
) -> None:
    cluster, sms, url = office
    till = cluster.till()
    online = till.client.http
    join = poster_qr(cluster.bo.member_poster("s1", "door", url))
    assert join == f"{url}/my/join?store=s1&poster=door"
    with new_page(browser, request, PHONE_VIEW) as page:
        page.goto(join)
        page.fill("#phone", "8 903 555-01-77")
        page.click("#send-code")
        page.wait_for_selector("#code")
        text = sms.read_last(PHONE)
        assert text is not None
        m = re.search(r"\b(\d{6})\b", text)
        assert m is not None
        page.fill("#code", m.group(1))
        page.click("#check-code")
        page.fill("#first_name", "Вера")
        page.check("#consent_programme")
        page.click("#get-card")
        page.wait_for_selector("#qr svg")
        assert page.url.endswith("/my/card")

        from PIL import Image

        shot = page.locator("#qr").screenshot()
        token = decode(Image.open(io.BytesIO(shot)))
        assert token == page.get_attribute("#qr", "data-token")
        assert page.inner_text("#left-s") != "0:00"
        (member_id,) = [
            r[0]
            for r in cluster.ledger(
                "SELECT member_id FROM members WHERE store_id = 's1' AND first_name = 'Вера'"
            )
        ]
        welcome = cluster.bo.member_card(member_id).balance
        assert page.inner_text("#balance") == str(welcome)

        # the till learns the card, then loses its network: the QR still identifies
        till.client.pull_all()

        def unreachable(request: httpx.Request) -> httpx.Response:
            raise httpx.ConnectError("offline", request=request)

        till.client.http = httpx.Client(transport=httpx.MockTransport(unreachable))
        assert till.agent.identify(token).member_id == member_id
        till.sale("R-card", member_id, ("DR-1001", 2))
        till.client.http = online
        till.client.drain()
        page.reload()
        balance = cluster.bo.member_card(member_id).balance
        assert balance > welcome and page.inner_text("#balance") == str(balance)

        # the PWA: once its worker controls the page, the card and its QR show offline
        page.evaluate("navigator.serviceWorker.ready.then(() => true)")
        page.reload()
        page.wait_for_function("navigator.serviceWorker.controller !== null")
        page.reload()  # fetched through the worker: the page and its tokens are kept
        page.wait_for_selector("#qr svg")
        page.context.set_offline(True)
        try:
            page.reload()
            page.wait_for_selector("#qr svg")
            offline_token = decode(Image.open(io.BytesIO(page.locator("#qr").screenshot())))
            assert till.agent.identify(offline_token).member_id == member_id
        finally:
            page.context.set_offline(False)

    # past its lifetime (and the 60 s leeway) the till refuses it and says what to do
    cluster.clock.advance(seconds=3 * 300 + 61)
    with pytest.raises(AgentError) as e:
        till.agent.identify(token)
    assert "Попросите обновить код" in e.value.message_ru

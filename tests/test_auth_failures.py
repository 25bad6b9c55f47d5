"""Guessing is limited: past a few failed authentications (wrong tokens, enrollment codes,
lookups that find no one) a client is answered 429 with ``Retry-After`` before its next
credential is even looked at, on the POS API and the back office alike; the limit lifts
when the oldest failure leaves its window."""

from __future__ import annotations

from test_posapi import AUTH, TOKEN, TestClient

from kassa.posapi import AUTH_FAILURES_MAX, AUTH_FAILURES_WINDOW_S, create_app
from sync.httpserve import FailureLimiter


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_failure_limiter_counts_per_key_over_a_sliding_window():
    t = Ticks()
    lim = FailureLimiter(3, 60.0, t)
    for _ in range(3):
        assert lim.retry_after("a") is None
        lim.failed("a")
        t.now += 10
    assert lim.retry_after("a") == 30  # the first failure (at 1000) leaves at 1060
    assert lim.retry_after("b") is None  # another client is not affected
    t.now += 30
    assert lim.retry_after("a") is None
    lim.failed("a")
    assert lim.retry_after("a") == 10


def test_wrong_api_tokens_are_limited_per_client_then_lifted(till):
    clock = Ticks()
    app = create_app(till.agent, token=TOKEN, clock=clock)
    with TestClient(app, headers={}) as api:
        for _ in range(AUTH_FAILURES_MAX):
            r = api.get("/v1/status", headers={"authorization": "Bearer wrong-token-123456"})
            assert r.status_code == 401
        # The next request is refused before the token is looked at: the right one too.
        for headers in ({"authorization": "Bearer wrong-token-123456"}, AUTH):
            r = api.get("/v1/status", headers=headers)
            assert r.status_code == 429, r.text
            body = r.json()
            assert body["error"] == "too_many_failures" and "message_ru" in body
            assert 1 <= int(r.headers["retry-after"]) <= AUTH_FAILURES_WINDOW_S
        clock.now += AUTH_FAILURES_WINDOW_S + 1
        assert api.get("/v1/status", headers=AUTH).status_code == 200
        # Good requests never count: a busy POS is not limited by this.
        for _ in range(3 * AUTH_FAILURES_MAX):
            assert api.get("/v1/status", headers=AUTH).status_code == 200


def test_the_back_office_limits_wrong_enroll_codes_per_address_and_misses_per_token(db_url):
    import contextlib

    import httpx
    from synchelp import SyncASGITransport, portal

    from sync.backoffice.app import ADDRESS_FAILURES_MAX, CREDENTIAL_FAILURES_MAX
    from sync.backoffice.app import create_app as backoffice_app
    from sync.backoffice.db import Database
    from sync.backoffice.service import Backoffice

    bo = Backoffice(Database.open(db_url))
    bo.initialise()
    good = bo.enroll_code("s1", store_name="Магазин")
    tokens = [bo.enroll(bo.enroll_code("s1"), f"Касса {i}")["token"] for i in (1, 2)]
    with contextlib.ExitStack() as stack:
        p = stack.enter_context(portal())
        http = stack.enter_context(
            httpx.Client(
                transport=SyncASGITransport(backoffice_app(bo, verifier=False), p),
                base_url="http://bo",
            )
        )
        for i in range(ADDRESS_FAILURES_MAX):
            r = http.post("/v1/enroll", json={"code": f"AAAA-BBBB-{i:04X}", "name": "Касса X"})
            assert r.status_code == 403, r.text
        r = http.post("/v1/enroll", json={"code": good, "name": "Касса 3"})
        assert r.status_code == 429 and r.json()["error"] == "too_many_failures"
        assert 1 <= int(r.headers["retry-after"]) <= 60
    # A till token looking up phones that are not members: limited per token.
    bo2 = Backoffice(Database.open(db_url))
    with contextlib.ExitStack() as stack:
        p = stack.enter_context(portal())
        http = stack.enter_context(
            httpx.Client(
                transport=SyncASGITransport(backoffice_app(bo2, verifier=False), p),
                base_url="http://bo",
            )
        )
        first, second = ({"authorization": f"Bearer {t}"} for t in tokens)
        unknown = {"phone_hash": "0" * 64}  # a well-formed hash no member has
        for _ in range(CREDENTIAL_FAILURES_MAX):
            r = http.get("/v1/members/lookup", params=unknown, headers=first)
            assert r.status_code == 404, r.text
        r = http.get("/v1/members/lookup", params=unknown, headers=first)
        assert r.status_code == 429, r.text
        assert http.get("/v1/rules", headers=second).status_code == 200  # another till
    bo.db.close()
    bo2.db.close()

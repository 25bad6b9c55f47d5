"""The POS API driven as a host POS would: an httpx client over the real app and store.

Real SQLite, the real Agent; the only fakes are the clock (holds expire by it) and the
rate limiter's monotonic clock.
"""

from __future__ import annotations

import contextlib

import anyio
import httpx
import pytest
from synchelp import SyncASGITransport, hang_up_mid_body, portal

from agent.identify import make_member_code
from agent.limits import MAX_LINES
from agent.service import Agent
from agent.store import Store
from kassa.posapi import create_app, openapi
from sync.protocol import PLAIN_CHARS
from tests.conftest import Till, store_busy

TOKEN = "test-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
RICH = make_member_code(100_000_001)  # seed template 1: spendable points
OTHER = make_member_code(100_000_003)
TABLES = ("purchases", "outbox", "print_jobs", "refunds", "holds", "members")


def lines():
    return [{"sku": "DR-1001"}, {"sku": "SH-2001", "qty": 2}]


def counts(till: Till) -> dict[str, object]:
    return {t: till.count(t) for t in TABLES} | {
        "states": till.store.one("SELECT group_concat(state) FROM members")[0]
    }


@contextlib.contextmanager
def TestClient(app, headers):  # noqa: N802 - reads like the client it stands for
    """A synchronous httpx client into the real ASGI app (as the host POS would call)."""
    with (
        portal() as p,
        httpx.Client(
            transport=SyncASGITransport(app, p), base_url="http://pos", headers=headers
        ) as client,
    ):
        yield client


@pytest.fixture
def api(till):
    with TestClient(create_app(till.agent, token=TOKEN), headers=AUTH) as client:
        yield client


def post(api, path, body, status=200):
    resp = api.post(path, json=body)
    assert resp.status_code == status, resp.text
    return resp.json()


def test_one_cheque_identify_quote_hold_commit_slip(api, till):
    card = post(api, "/v1/identify", {"input": RICH})
    assert card["code"] == RICH and card["spendable"] > 0
    cheque = {"member_id": card["member_id"], "receipt_id": "POS-1", "lines": lines()}
    q = post(api, "/v1/quote", cheque | {"redeem_points": "max"})
    assert q["redeem_points"] == q["max_redeem_points"] > 0
    assert sum(line["points_discount_kop"] for line in q["lines"]) == q["points_discount_kop"]
    assert till.count("purchases") == 0  # a quote writes nothing

    hold = post(api, "/v1/holds", cheque | {"redeem_points": "max"})
    assert hold["status"] == "active" and hold["points"] == q["redeem_points"]
    result = post(api, "/v1/commit", cheque | {"hold_id": hold["hold_id"]})
    assert result["quote"]["redeem_points"] == hold["points"]
    assert not result["duplicate"]
    assert api.get(f"/v1/holds/{hold['hold_id']}").json()["status"] == "committed"

    after = api.get(f"/v1/members/{card['member_id']}").json()
    assert after["balance"] == card["balance"] - hold["points"] + result["quote"]["total_earned"]
    slip = api.get(f"/v1/slips/{result['print_job_id']}", params={"width": "32"}).json()
    assert slip["receipt_id"] == "POS-1" and "Списано" in slip["text"]
    assert slip["width"] == 32 and "Тест" in slip["text"]  # the till's store name
    copy = post(api, f"/v1/slips/{result['print_job_id']}/print", None)
    assert copy["queued"] and copy["job_id"] != result["print_job_id"]

    status = api.get("/v1/status").json()
    assert status["ok"] and status["events_waiting"] == 1 and status["holds_active"] == 0
    assert status["print_queue"] == 2


def test_retried_commit_returns_the_same_result_and_writes_once(api, till):
    card = post(api, "/v1/identify", {"input": RICH})
    cheque = {"identify": RICH, "receipt_id": "POS-7", "lines": lines(), "redeem_points": 100}
    first = post(api, "/v1/commit", cheque)
    again = post(api, "/v1/commit", cheque)
    assert again["duplicate"] and again["event_id"] == first["event_id"]
    assert again["quote"] == first["quote"]
    assert (till.count("purchases"), till.count("outbox")) == (1, 1)
    before = counts(till)
    err = post(api, "/v1/commit", cheque | {"redeem_points": 50}, status=409)
    assert err["error"] == "conflict" and err["details"]["receipt_id"] == "POS-7"
    assert counts(till) == before
    assert first["quote"]["member_id"] == card["member_id"]


def test_hold_reserves_points_from_other_cheques_until_cancelled(api, till):
    card = post(api, "/v1/identify", {"input": RICH})
    spendable = card["spendable"]
    big = [{"sku": "X-1", "category": "shirts", "price_kop": 5_000_000}]
    a = {"identify": RICH, "receipt_id": "A", "lines": big, "redeem_points": "max"}
    hold = post(api, "/v1/holds", a)
    assert hold["points"] == spendable  # the whole balance, the cheque is large
    b = {"identify": RICH, "receipt_id": "B", "lines": big}
    qb = post(api, "/v1/quote", b)
    assert qb["max_redeem_points"] == 0 and qb["redeem_limited_by"] == "on_hold"
    err = post(api, "/v1/commit", b | {"redeem_points": 1}, status=400)
    assert err["details"]["limited_by"] == "on_hold" and "зарезервирована" in err["message_ru"]
    assert till.count("purchases") == 0

    same = post(api, "/v1/holds", a)  # a retried hold call: the same hold
    assert same["hold_id"] == hold["hold_id"] and same["duplicate"]
    cancelled = post(api, f"/v1/holds/{hold['hold_id']}/cancel", None)
    assert cancelled["status"] == "cancelled"
    assert post(api, f"/v1/holds/{hold['hold_id']}/cancel", None)["status"] == "cancelled"
    assert post(api, "/v1/quote", b)["max_redeem_points"] == spendable
    err = post(api, "/v1/commit", a | {"hold_id": hold["hold_id"]}, status=409)
    assert err["error"] == "hold_unusable" and err["details"]["status"] == "cancelled"
    assert till.count("purchases") == 0


def test_changed_cheque_replaces_its_hold(api, till):
    a = {"identify": RICH, "receipt_id": "A", "lines": lines(), "redeem_points": 100}
    first = post(api, "/v1/holds", a)
    second = post(api, "/v1/holds", a | {"redeem_points": 50})
    assert second["hold_id"] != first["hold_id"] and second["points"] == 50
    assert api.get(f"/v1/holds/{first['hold_id']}").json()["status"] == "cancelled"
    assert till.store.one("SELECT count(*) FROM holds WHERE status = 'active'")[0] == 1


def test_commit_with_a_hold_must_be_the_held_cheque(api, till):
    """A hold on HH-1 for [OW-4001] must not pay for a commit of HH-1 with [DR-1001]: the
    POS may have printed the hold's per-line discounts. Refused 409, nothing written; the
    hold stays active and the held cheque still commits with it."""
    held = {"identify": RICH, "receipt_id": "HH-1", "lines": [{"sku": "OW-4001"}]}
    hold = post(api, "/v1/holds", held | {"redeem_points": "max"})
    assert hold["points"] > 0
    before = counts(till)
    for changed in (
        held | {"lines": [{"sku": "DR-1001"}]},  # another cart
        held | {"lines": [{"sku": "OW-4001", "qty": 2}]},  # another quantity
        held | {"redeem_points": hold["points"] - 1},  # other points than held
        held | {"coupon": "SOMECOUPON"},  # a coupon the hold was not quoted with
    ):
        err = post(api, "/v1/commit", changed | {"hold_id": hold["hold_id"]}, status=409)
        assert err["error"] == "hold_cheque_changed", err
        assert err["details"] == {"hold_id": hold["hold_id"], "receipt_id": "HH-1"}
        assert hold["hold_id"] in err["message_en"] and "differs" in err["message_en"]
        assert "изменились товары, бонусы или купон" in err["message_ru"]
        assert counts(till) == before
    assert api.get(f"/v1/holds/{hold['hold_id']}").json()["status"] == "active"
    # The held cheque itself commits: without redeem_points, with "max", with the points.
    for i, redeem in enumerate(({}, {"redeem_points": "max"})):
        h = post(api, "/v1/holds", held | {"receipt_id": f"HH-{i + 2}", "redeem_points": "max"})
        body = held | {"receipt_id": f"HH-{i + 2}", "hold_id": h["hold_id"]} | redeem
        assert post(api, "/v1/commit", body)["quote"]["redeem_points"] == h["points"]
    done = post(
        api, "/v1/commit", held | {"hold_id": hold["hold_id"], "redeem_points": hold["points"]}
    )
    assert done["quote"]["redeem_points"] == hold["points"]


def test_hold_expires_by_the_clock(api, till, clock):
    big = [{"sku": "X-1", "category": "shirts", "price_kop": 5_000_000}]
    a = {"identify": RICH, "receipt_id": "A", "lines": big, "redeem_points": "max"}
    hold = post(api, "/v1/holds", a | {"ttl_s": 60})
    b = {"identify": RICH, "receipt_id": "B", "lines": big}
    assert post(api, "/v1/quote", b)["max_redeem_points"] == 0
    clock.advance(seconds=61)
    assert api.get(f"/v1/holds/{hold['hold_id']}").json()["status"] == "expired"
    assert post(api, "/v1/quote", b)["max_redeem_points"] == hold["points"]
    before = counts(till)
    err = post(api, "/v1/commit", a | {"hold_id": hold["hold_id"]}, status=409)
    assert err["error"] == "hold_unusable" and err["details"]["status"] == "expired"
    assert counts(till) == before
    # Committing without the hold still works: the points are free again.
    assert post(api, "/v1/commit", a)["quote"]["redeem_points"] == hold["points"]


def test_hold_survives_a_restart_of_the_agent(tmp_path, clock):
    till = Till(tmp_path / "till.db", clock)
    big = [{"sku": "X-1", "category": "shirts", "price_kop": 5_000_000}]
    a = {"identify": RICH, "receipt_id": "A", "lines": big, "redeem_points": "max"}
    with TestClient(create_app(till.agent, token=TOKEN), headers=AUTH) as api:
        hold = post(api, "/v1/holds", a)
    till.store.close()

    store = Store(tmp_path / "till.db")
    try:
        agent = Agent(store, clock)
        with TestClient(create_app(agent, token=TOKEN), headers=AUTH) as api:
            assert api.get(f"/v1/holds/{hold['hold_id']}").json()["status"] == "active"
            b = {"identify": RICH, "receipt_id": "B", "lines": big}
            assert post(api, "/v1/quote", b)["max_redeem_points"] == 0
            done = post(api, "/v1/commit", a | {"hold_id": hold["hold_id"]})
            assert done["quote"]["redeem_points"] == hold["points"]
    finally:
        store.close()


def test_refund_and_retried_refund(api, till):
    post(api, "/v1/commit", {"identify": RICH, "receipt_id": "R", "lines": lines()})
    refund = {"refund_id": "RF-1", "receipt_id": "R", "lines": {"2": 1}}
    first = post(api, "/v1/refund", refund)
    assert first["result"]["amount_kop"] > 0 and not first["duplicate"]
    again = post(api, "/v1/refund", refund)
    assert again["duplicate"] and again["event_id"] == first["event_id"]
    assert till.count("refunds") == 1
    before = counts(till)
    err = post(api, "/v1/refund", refund | {"lines": {"2": 5}}, status=409)
    assert err["error"] == "conflict"
    err = post(api, "/v1/refund", {"refund_id": "RF-2", "receipt_id": "R", "lines": {"2": 5}}, 400)
    assert err["details"]
    err = post(api, "/v1/refund", {"refund_id": "RF-3", "receipt_id": "nope", "lines": {}}, 404)
    assert counts(till) == before


def test_register_keeps_no_raw_phone(api, till):
    reg = post(
        api,
        "/v1/members",
        {
            "phone": "+7 999 555-01-23",
            "first_name": "Вера",
            "consent_programme": True,
            "consent_marketing": False,
        },
    )
    assert reg["card"]["phone_masked"].endswith("01-23")
    assert post(api, "/v1/identify", {"input": "8 (999) 555-01-23"})["first_name"] == "Вера"
    till.store.close()
    for path in till.path.parent.glob("till.db*"):
        raw = path.read_bytes()
        assert b"9995550123" not in raw and b"999 555-01-23" not in raw


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token-0000000000"},
        {"authorization": TOKEN},
        {"authorization": "Basic x"},
    ],
)
def test_every_route_refuses_without_the_right_token(till, headers):
    spec = openapi()
    app = create_app(till.agent, token=TOKEN, auth_failures_max=10**6)  # every route, once
    with TestClient(app, headers=headers) as api:
        for path, ops in spec["paths"].items():
            url = (
                path.replace("{member_id}", "m1").replace("{hold_id}", "h").replace("{job_id}", "1")
            )
            for method, op in ops.items():
                resp = api.request(method, url, json={})
                if op.get("security") == []:  # declared public: liveness, nothing else
                    assert resp.json() == {"ok": True}, (method, path)
                    continue
                assert resp.status_code == 401, (method, path)
                assert resp.json()["error"] == "unauthenticated"
        assert api.get("/openapi.json").status_code == 200  # the contract is public
    public = [
        p for p, ops in spec["paths"].items() if any(o.get("security") == [] for o in ops.values())
    ]
    assert public == ["/v1/live"]


def test_oversized_bodies_get_413_and_write_nothing(till):
    before = counts(till)
    with TestClient(create_app(till.agent, token=TOKEN, max_body_bytes=2048), headers=AUTH) as api:
        big = {"identify": RICH, "receipt_id": "B", "lines": lines(), "pad": "x" * 5000}
        assert api.post("/v1/commit", json=big).status_code == 413

    async def stream() -> int:
        async def chunks():  # no content-length: the limit holds while streaming
            for _ in range(10):
                yield b" " * 1000

        app = create_app(till.agent, token=TOKEN, max_body_bytes=2048)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pos", headers=AUTH
        ) as client:
            resp = await client.post("/v1/commit", content=chunks())
            assert resp.json()["error"] == "body_too_large"
            return resp.status_code

    assert anyio.run(stream) == 413
    assert counts(till) == before


def test_rate_limit_answers_429(till):
    now = [0.0]
    app = create_app(till.agent, token=TOKEN, rate_per_s=1.0, rate_burst=2, clock=lambda: now[0])
    with TestClient(app, headers=AUTH) as api:
        assert [api.get("/v1/status").status_code for _ in range(3)] == [200, 200, 429]
        now[0] += 1.0
        assert api.get("/v1/status").status_code == 200
        limited = api.get("/v1/status")
        assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
        assert limited.headers["retry-after"] == "1"


def test_router_answers_are_json_wrong_method_405_bad_job_id_400(api):
    resp = api.get("/v1/commit")
    assert resp.status_code == 405 and resp.headers["allow"] == "POST"
    err = resp.json()
    assert err["error"] == "method_not_allowed" and err["details"]["allowed"] == ["POST"]
    assert resp.headers["content-type"] == "application/problem+json"
    assert {"error", "title", "message_ru", "message_en", "details"} <= set(err)
    assert (err["type"], err["status"], err["instance"]) == (
        "tag:kassa,2026:problem:method_not_allowed",
        405,
        "/v1/commit",
    )
    assert "GET" in err["message_en"] and "/v1/commit" in err["message_en"]
    resp = api.get("/v1/nothing-here")
    assert resp.status_code == 404 and resp.json()["error"] == "not_found"
    resp = api.get("/v1/slips/abc")
    assert resp.status_code == 400
    assert resp.json()["details"]["field"] == "job_id" and "job_id" in resp.json()["message_en"]
    assert api.post("/v1/slips/abc/print").json()["details"]["field"] == "job_id"


def test_overload_answers_json_503_with_retry_after(till):
    """Requests beyond ``max_concurrency`` in progress get the documented JSON error at
    once (not uvicorn's plain text). The first request is kept in progress by another
    thread holding the store's lock, so its core call waits in a worker thread."""
    import threading

    from kassa.posapi import ConcurrencyLimit

    app = create_app(till.agent, token=TOKEN, max_concurrency=1)
    held, release = threading.Event(), threading.Event()

    def hold_store() -> None:
        with till.store.read():
            held.set()
            release.wait(30)

    async def run() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://pos", headers=AUTH
        ) as client:
            first: list[httpx.Response] = []

            async def slow() -> None:
                first.append(await client.get("/v1/status"))

            async with anyio.create_task_group() as tg:
                tg.start_soon(slow)
                for _ in range(2000):  # wait until the first request is in progress
                    limit = app.middleware_stack
                    while limit is not None and not isinstance(limit, ConcurrencyLimit):
                        limit = getattr(limit, "app", None)
                    if limit is not None and limit.active == 1:
                        break
                    await anyio.sleep(0.005)
                busy = await client.get("/v1/status")
                release.set()  # let the first one finish
            after = await client.get("/v1/status")
            return busy, first[0], after

    holder = threading.Thread(target=hold_store)
    holder.start()
    assert held.wait(10)
    try:
        busy, first, after = anyio.run(run)
    finally:
        release.set()
        holder.join()
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json()["error"] == "overloaded" and busy.json()["details"] == {"limit": 1}
    assert first.status_code == 200 and after.status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"receipt_id": "R", "lines": lines()}, "member_id"),
        ({"identify": RICH, "lines": lines()}, "receipt_id"),
        (
            {
                "identify": RICH,
                "receipt_id": "R",
                "lines": [{"sku": "X", "price_kop": 1.5, "category": "shirts"}],
            },
            None,
        ),
        ({"identify": RICH, "receipt_id": "R", "lines": [{"sku": "NOPE"}]}, "sku"),
        ({"identify": RICH, "receipt_id": "R", "lines": lines(), "cashier_id": 7}, "cashier_id"),
        ({"identify": RICH, "receipt_id": "R", "lines": lines(), "redeem_points": -1}, None),
        ({"identify": RICH, "receipt_id": "R", "lines": lines(), "ttl_s": 1}, "ttl_s"),
    ],
)
def test_bad_input_names_what_is_wrong_and_writes_nothing(api, till, body, field):
    before = counts(till)
    for path in ("/v1/quote", "/v1/holds", "/v1/commit"):
        if field == "ttl_s" and path != "/v1/holds":
            continue
        resp = api.post(path, json=body)
        assert resp.status_code == 400, (path, resp.text)
        err = resp.json()
        assert err["message_ru"] and err["message_en"]
        if field:
            assert field in err["message_en"] or err["details"].get("field") == field
    assert counts(till) == before


def test_bad_json_and_unknown_things(api, till):
    resp = api.post(
        "/v1/commit", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400 and resp.json()["error"] == "bad_json"
    resp = api.post("/v1/commit", content=b'{"a": NaN}')
    assert resp.status_code == 400
    assert api.get("/v1/members/nobody").status_code == 404
    assert api.get("/v1/holds/nothing").status_code == 404
    assert api.get("/v1/slips/99999999999999999999").status_code == 404
    assert api.get("/v1/slips/1", params={"width": "7"}).status_code in (400, 404)


def test_openapi_document_lists_every_operation(api):
    spec = api.get("/openapi.json").json()
    assert spec["info"]["title"] == "Kassa local POS API"
    assert {
        "/v1/identify",
        "/v1/quote",
        "/v1/holds",
        "/v1/commit",
        "/v1/refund",
        "/v1/members",
        "/v1/status",
        "/v1/slips/{job_id}",
    } <= set(spec["paths"])


def test_concurrent_holds_never_reserve_more_than_the_balance(api, till):
    """Several POS terminals reserve "max" for one member at once: the quote and the
    reservation share one write transaction, so the holds add up to the balance at most."""
    from concurrent.futures import ThreadPoolExecutor

    spendable = post(api, "/v1/identify", {"input": RICH})["spendable"]
    small = [{"sku": "X-1", "category": "shirts", "price_kop": 1_000_000}]

    def place(n):
        body = {"identify": RICH, "receipt_id": f"T-{n}", "lines": small, "redeem_points": "max"}
        return api.post("/v1/holds", json=body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(place, range(8)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    held = sum(r.json()["points"] for r in answers)
    assert 0 < held <= spendable
    assert held == till.store.one("SELECT sum(points) FROM holds WHERE status = 'active'")[0]


def _validator(name: str):
    import jsonschema_rs

    spec = openapi()
    schema = {**spec["components"]["schemas"][name], "components": spec["components"]}
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


@pytest.mark.parametrize(
    ("path", "schema", "body", "field"),
    [
        ("/v1/quote", "Checkout", {"lines": [{"sku": ""}]}, "sku"),
        ("/v1/identify", "IdentifyRequest", {"input": "9" * 255}, None),
        ("/v1/members", "RegisterRequest", {"consent_programme": False}, None),  # consent_required
        ("/v1/refund", "RefundRequest", {"lines": {"x": 1}}, "lines"),
        ("/v1/quote", "Checkout", {"redeem_point": 5}, "redeem_point"),
        ("/v1/commit", "CommitRequest", {"surprise": 1}, "surprise"),
        ("/v1/holds", "HoldRequest", {"lines": [{"sku": "DR-1001", "colour": "red"}]}, None),
        ("/v1/refund", "RefundRequest", {"note": "x"}, "note"),
        ("/v1/members", "RegisterRequest", {"email": "a@b"}, "email"),
        ("/v1/identify", "IdentifyRequest", {"input": RICH, "extra": 1}, "extra"),
        # every string is plain text: the document's pattern says what bad_text refuses
        ("/v1/quote", "Checkout", {"receipt_id": "S-\u0000"}, "receipt_id"),
        ("/v1/commit", "CommitRequest", {"cashier_id": "c\u0007"}, "cashier_id"),
        ("/v1/holds", "HoldRequest", {"lines": [{"sku": "DR-1001\u001b"}]}, "sku"),
        ("/v1/members", "RegisterRequest", {"first_name": "Ия\u202e"}, "first_name"),
        ("/v1/members", "RegisterRequest", {"first_name": "И\u200bя"}, "first_name"),
        ("/v1/refund", "RefundRequest", {"refund_id": "SR\u2028"}, "refund_id"),
        ("/v1/quote", "Checkout", {"lines": [{"sku": "DR-1001"}] * (MAX_LINES + 1)}, "lines"),
    ],
)
def test_what_the_server_refuses_the_schema_does_not_allow(api, till, path, schema, body, field):
    """The schemathesis findings: each was schema-valid yet refused with 400. Now the
    schema rejects it too, and the server's 400 names the field (unknown fields included,
    as the JSON CLI does)."""
    base = {
        "/v1/quote": {"identify": RICH, "receipt_id": "S-1", "lines": lines()},
        "/v1/commit": {"identify": RICH, "receipt_id": "S-2", "lines": lines()},
        "/v1/holds": {"identify": RICH, "receipt_id": "S-3", "lines": lines()},
        "/v1/refund": {"refund_id": "SR-1", "receipt_id": "S-2", "lines": {"1": 1}},
        "/v1/members": {"phone": "+7 999 555-01-99", "first_name": "Ия", "consent_programme": True},
        "/v1/identify": {"input": RICH},
    }[path]
    validator = _validator(schema)
    assert validator.is_valid(base)  # the well-formed request is schema-valid ...
    assert not validator.is_valid(base | body)  # ... the refused one is not
    before = counts(till)
    err = post(api, path, base | body, status=400)
    assert counts(till) == before
    if field:
        assert err["details"]["field"].endswith(field) and field in err["message_en"]


def test_schema_valid_requests_are_accepted(api, till):
    """Documented shapes, as the schema describes them, get 200 (the flow of one cheque)."""
    examples = [
        ("/v1/identify", "IdentifyRequest", {"input": "8 916 124-24-86"}),
        ("/v1/identify", "IdentifyRequest", {"input": RICH}),
        (
            "/v1/quote",
            "Checkout",
            {"identify": RICH, "receipt_id": "V-1", "lines": lines(), "redeem_points": "max"},
        ),
        (
            "/v1/holds",
            "HoldRequest",
            {"identify": RICH, "receipt_id": "V-1", "lines": lines(), "ttl_s": 60},
        ),
        ("/v1/commit", "CommitRequest", {"identify": RICH, "receipt_id": "V-1", "lines": lines()}),
        (
            "/v1/refund",
            "RefundRequest",
            {"refund_id": "VR-1", "receipt_id": "V-1", "lines": {"2": 1}},
        ),
        (
            "/v1/members",
            "RegisterRequest",
            {"phone": "+7 999 555-01-98", "first_name": "Ия 🌸", "consent_programme": True},
        ),
        # as many lines as the engine takes, the schema's maxItems
        (
            "/v1/quote",
            "Checkout",
            {"identify": RICH, "receipt_id": "V-2", "lines": [{"sku": "BG-7001"}] * MAX_LINES},
        ),
    ]
    for path, schema, body in examples:
        assert _validator(schema).is_valid(body), (path, body)
        resp = api.post(path, json=body)
        assert resp.status_code == 200, (path, resp.text)


def test_run_if_free_runs_in_place_only_when_no_other_thread_holds_the_store(till):
    """What the API's event loop relies on: a free store runs the call at once; a store
    another thread is using answers (False, None) at once and the call is not made."""
    calls: list[str] = []
    assert till.store.run_if_free(lambda: calls.append("free") or 7) == (True, 7)
    with store_busy(till.store):
        assert till.store.run_if_free(lambda: calls.append("busy")) == (False, None)
    assert calls == ["free"]
    # The calling thread's own nesting is fine: the lock is re-entrant.
    with till.store.read():
        assert till.store.run_if_free(lambda: "nested") == (True, "nested")


def test_a_client_that_hangs_up_mid_request_is_a_quiet_log_line(till, caplog):
    """A POS that closes the connection before its body arrived (curl --max-time with a
    Content-Length it never sends): one INFO line, no ERROR, no traceback, nothing written."""
    import logging

    app = create_app(till.agent, token=TOKEN)
    before = counts(till)
    with caplog.at_level(logging.DEBUG, logger="kassa"):
        hang_up_mid_body(app, "/v1/identify", [(b"authorization", AUTH["authorization"].encode())])
    records = [r for r in caplog.records if r.name.startswith("kassa")]
    assert [r.levelno for r in records] == [logging.INFO], records
    assert records[0].exc_info is None and "/v1/identify" in records[0].getMessage()
    assert "disconnected" in records[0].getMessage()
    assert counts(till) == before


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'"qty": 1e400', "lines[0].qty"),
        (b'"qty": 2.0', "lines[0].qty"),
        (b'"redeem_points": 1e2', "redeem_points"),
    ],
)
def test_a_number_with_a_point_or_exponent_is_refused_as_not_whole(api, till, raw, field):
    """1e2 is a whole value, but JSON numbers with an exponent or a point are floats: the
    error says a whole number written with digits only is needed (not "fractional")."""
    if raw.startswith(b'"qty"'):
        body = b'{"identify": "%s", "receipt_id": "F", "lines": [{"sku": "DR-1001", %s}]}'
        body = body % (RICH.encode(), raw)
    else:
        body = b'{"identify": "%s", "receipt_id": "F", "lines": [{"sku": "DR-1001"}], %s}'
        body = body % (RICH.encode(), raw)
    resp = api.post("/v1/quote", content=body)
    assert resp.status_code == 400
    err = resp.json()
    assert err["error"] == "bad_number" and err["details"]["field"] == field
    assert "whole number" in err["message_en"] and "exponent" in err["message_en"]
    assert "fractional" not in err["message_en"] and "дробные" not in err["message_ru"]
    assert "целое число" in err["message_ru"] and "экспоненты" in err["message_ru"]


def test_slip_job_id_must_be_a_positive_number(api):
    for job_id in ("-1", "0", "abc", "1.5"):
        resp = api.get(f"/v1/slips/{job_id}")
        assert resp.status_code == 400, job_id
        err = resp.json()
        assert err["details"]["field"] == "job_id" and "positive" in err["message_en"]
        assert "больше нуля" in err["message_ru"]
    assert api.get("/v1/slips/12345").status_code == 404


def test_consent_must_be_true_or_false(api, till):
    before = counts(till)
    body = {"phone": "+7 999 555-01-24", "first_name": "Вера", "consent_programme": "yes"}
    resp = api.post("/v1/members", json=body)
    assert resp.status_code == 400
    err = resp.json()
    assert err["error"] == "bad_input" and err["details"]["field"] == "consent_programme"
    assert "true or false" in err["message_en"]
    resp = api.post(
        "/v1/members", json=body | {"birthday": "1990-02-31", "consent_programme": True}
    )
    assert resp.status_code == 400 and "no such date" in resp.json()["message_en"]
    assert counts(till) == before


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/quote", {"identify": RICH, "receipt_id": "E", "lines": lines(), "cashier_id": 7}),
        ("/v1/commit", {"identify": RICH, "receipt_id": "E", "lines": lines(), "hold_id": 5}),
        (
            "/v1/holds",
            {"identify": RICH, "receipt_id": "E", "lines": [{"sku": "DR-1001", "qty": 0}]},
        ),
        ("/v1/members", {"phone": 79161242486, "first_name": "A", "consent_programme": True}),
        ("/v1/members", {"phone": "+79161242486", "birthday": ["1990-02-28"]}),
        ("/v1/refund", {"refund_id": "F", "receipt_id": "R", "lines": {"1": "2"}}),
        ("/v1/identify", [RICH]),
    ],
)
def test_the_api_and_the_cli_refuse_a_request_in_the_same_words(api, till, path, body):
    """One parser for both front doors (agent.requests, which the JSON CLI calls too): the
    POS API's refusal carries the parser's error document, word for word (inside the
    problem document: every field of the CLI's, the same)."""
    from agent import requests
    from agent.errors import AgentError

    parse = {
        "/v1/quote": lambda: requests.checkout_request(till.agent, body),
        "/v1/commit": lambda: requests.commit_request(till.agent, body),
        "/v1/holds": lambda: requests.hold_request(till.agent, body, 900),
        "/v1/members": lambda: requests.register_args(body),
        "/v1/refund": lambda: requests.refund_args(body),
        "/v1/identify": lambda: requests.identify_input(body),
    }[path]
    with pytest.raises(AgentError) as e:
        parse()
    shown, cli = post(api, path, body, status=400), e.value.to_dict()
    assert {name: shown[name] for name in cli} == cli
    assert (shown["code"], shown["detail"]) == (cli["error"], cli["message_en"])


def test_the_document_says_what_the_server_takes_for_cashier_id(api, till):
    """The bound a field's schema states is the one the server enforces (one declaration):
    cashier_id of 64 characters is taken, of 65 refused naming the field, in every body."""
    bodies = {
        "/v1/quote": ("Checkout", {"identify": RICH, "receipt_id": "C-1", "lines": lines()}),
        "/v1/refund": ("RefundRequest", {"refund_id": "CR-1", "receipt_id": "nope", "lines": {}}),
        "/v1/members": (
            "RegisterRequest",
            {"phone": "+7 999 555-01-55", "first_name": "Ия", "consent_programme": True},
        ),
    }
    schemas = openapi()["components"]["schemas"]
    for path, (name, body) in bodies.items():
        prop = schemas[name]["properties"]["cashier_id"]
        plain = {"type": "string", "maxLength": 64, "pattern": PLAIN_CHARS}
        assert plain in prop["anyOf"], (name, prop)
        err = post(api, path, body | {"cashier_id": "c" * 65}, status=400)
        assert err["details"]["field"] == "cashier_id" and "64" in err["message_en"], err
        resp = api.post(path, json=body | {"cashier_id": "c" * 64})
        assert resp.status_code in (200, 404), (path, resp.text)  # the refund's cheque: none


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ('{"input": ' + "[" * 9 + "]" * 9 + "}", "too_deep", "input" + "[0]" * 8),
        ('{"input": "' + "1" * 4097 + '"}', "bad_text", "input"),
        ('{"input": "12\\u0007"}', "bad_text", "input"),
        ('{"input": 1' + "0" * 30 + "}", "bad_number", "input"),
        ('{"in\\u0000put": "1"}', "bad_text", "request"),
    ],
)
def test_the_cli_and_the_pos_api_refuse_a_bad_document_alike(api, tmp_path, body, code, field):
    """Both doors read a request with the one reader (agent.requests.read_request_json):
    the same document gets the same error, code, message and details, at either (the
    CLI refuses it before it opens any store)."""
    import json

    from test_cli import run_cli

    resp = api.post("/v1/identify", content=body.encode())
    proc = run_cli(["identify", "--store", str(tmp_path / "none.db")], stdin=body.encode())
    assert resp.status_code == 400 and proc.returncode == 2, (resp.text, proc.stderr)
    pos, cli = resp.json(), json.loads(proc.stdout)
    assert pos["error"] == cli["error"] == code, (pos, cli)
    assert pos["details"] == cli["details"] and pos["details"]["field"] == field
    assert pos["message_en"] == cli["message_en"] and pos["message_ru"] == cli["message_ru"]


def test_the_cli_and_the_pos_api_read_job_ids_and_widths_alike(api, tmp_path):
    """A print job's number and a slip's width are read by one parser each
    (agent.requests.job_id_of, slip_width_of): the CLI's argument error says what the POS
    API's 400 says, the argument named in place of the field."""
    import json

    from test_cli import run_cli

    cases = [
        ("/v1/slips/abc", ["slip", "abc"], "job_id", "job_id"),
        ("/v1/slips/0", ["reprint", "0"], "job_id", "job_id"),
        ("/v1/slips/1?width=33", ["slip", "1", "--width", "33"], "width", "--width"),
    ]
    for path, argv, field, argument in cases:
        resp = api.get(path) if argv[0] == "slip" else api.post(path + "/print")
        proc = run_cli([*argv, "--store", str(tmp_path / "none.db")])
        assert resp.status_code == 400 and proc.returncode == 2, (resp.text, proc.stdout)
        pos, cli = resp.json(), json.loads(proc.stdout)
        assert pos["details"]["field"] == field and cli["details"]["argument"] == argument
        assert cli["message_en"] == argument + pos["message_en"].removeprefix(field)
        assert cli["message_ru"] == argument + pos["message_ru"].removeprefix(field)

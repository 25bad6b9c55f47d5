"""Fuzzing the POS API from its own OpenAPI document (schemathesis strategies, hypothesis
driving them) plus a hypothesis strategy of plausible cheques, against the real app and a
real store: never a 500, only documented statuses, and never a partial write (every sale,
refund and registration is there with its journal row and slip, or not at all).

Budget: about a minute in CI on a busy 2-core machine (example counts below).
"""

from __future__ import annotations

import json

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from synchelp import SyncASGITransport, portal

from agent.identify import make_member_code
from kassa.posapi import create_app, openapi
from tests.conftest import Till

TOKEN = "fuzz-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
DOCUMENTED = {200, 400, 401, 404, 409, 413, 429, 503}
MEMBERS = 30


def consistent(till: Till) -> None:
    """The all-or-nothing invariants over the store."""

    def one(sql: str) -> int:
        row = till.store.one(sql)
        assert row is not None
        return int(row[0])

    purchases = one("SELECT count(*) FROM purchases")
    assert purchases == one("SELECT count(*) FROM outbox WHERE type = 'purchase'")
    assert purchases == one("SELECT count(*) FROM print_jobs WHERE kind = 'sale' AND copy = 0")
    assert purchases == one(
        "SELECT count(*) FROM purchases p JOIN outbox o ON o.event_id = p.op_id"
    )
    refunds = one("SELECT count(*) FROM refunds")
    assert refunds == one("SELECT count(*) FROM outbox WHERE type = 'refund'")
    assert refunds == one("SELECT count(*) FROM print_jobs WHERE kind = 'refund' AND copy = 0")
    assert one("SELECT count(*) FROM members WHERE provisional = 1") == one(
        "SELECT count(*) FROM outbox WHERE type = 'member_registered'"
    )
    last = one("SELECT COALESCE(max(seq), 0) FROM outbox")
    assert last == one("SELECT count(*) FROM outbox") == int(till.store.meta("last_seq") or 0)
    assert one("SELECT count(*) FROM holds WHERE points < 0") == 0
    assert (
        one(
            "SELECT count(*) FROM holds WHERE receipt_id IN (SELECT receipt_id FROM "
            "purchases) AND status = 'active'"
        )
        == 0
    )


def check(resp: httpx.Response) -> None:
    assert resp.status_code in DOCUMENTED, (resp.status_code, resp.text)
    body = resp.json()
    if resp.status_code != 200:
        assert body["error"] and body["message_ru"] and body["message_en"]


@pytest.fixture
def fuzz_api(tmp_path, clock):
    till = Till(tmp_path / "till.db", clock, members=MEMBERS)
    app = create_app(till.agent, token=TOKEN, rate_per_s=1e6, rate_burst=10**6)
    with (
        portal() as p,
        httpx.Client(transport=SyncASGITransport(app, p), base_url="http://pos") as client,
    ):
        yield till, client
    till.store.close()


def send(client: httpx.Client, case: schemathesis.Case, headers: dict[str, str]) -> httpx.Response:
    kwargs: dict[str, object] = {"headers": {**(case.headers or {}), **headers}}
    if isinstance(case.query, dict) and case.query:
        kwargs["params"] = case.query
    body = case.body
    if not isinstance(body, schemathesis.core.NotSet):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        kwargs["content"] = raw
        kwargs["headers"] = {**kwargs["headers"], "content-type": "application/json"}  # type: ignore[dict-item]
    return client.request(case.method, case.formatted_path, **kwargs)  # type: ignore[arg-type]


SCHEMA = schemathesis.openapi.from_dict(openapi())


def _cases(mode: GenerationMode) -> st.SearchStrategy[schemathesis.Case]:
    return st.one_of(
        [op.ok().as_strategy(generation_mode=mode) for op in SCHEMA.get_all_operations()]
    )


SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
    derandomize=True,
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schema_fuzz_never_500_never_partial(fuzz_api, mode):
    till, client = fuzz_api

    @SETTINGS
    @given(case=_cases(mode), authorised=st.booleans())
    def run(case, authorised):
        resp = send(client, case, AUTH if authorised else {"authorization": "Bearer nope"})
        check(resp)
        if not authorised and case.operation.definition.raw.get("security") != []:
            assert resp.status_code == 401
        consistent(till)

    run()
    assert till.store.quick_check() == "ok"


SKUS = ["DR-1001", "SH-2001", "OW-4001"]
good_line = st.fixed_dictionaries(
    {"sku": st.sampled_from(SKUS)}, optional={"qty": st.integers(1, 3)}
)
odd_line = st.fixed_dictionaries(
    {"sku": st.sampled_from([*SKUS, "NOPE"])},
    optional={
        "qty": st.integers(-1, 12),
        "price_kop": st.integers(-5, 2_000_000),
        "category": st.sampled_from(["shirts", "dresses", "gift_cards", "??"]),
        "sale": st.booleans(),
    },
)
line = st.one_of(good_line, good_line, good_line, odd_line)
cheque = st.fixed_dictionaries(
    {
        "identify": st.sampled_from([make_member_code(100_000_000 + i) for i in range(1, 6)]),
        "receipt_id": st.sampled_from([f"R-{i}" for i in range(4)]),
        "lines": st.lists(line, min_size=1, max_size=3),
    },
    optional={
        "redeem_points": st.one_of(st.integers(0, 300), st.just("max"), st.integers(-10, 5000)),
        "ttl_s": st.one_of(st.integers(60, 1800), st.integers(0, 100_000)),
    },
)
action = st.one_of(
    st.tuples(st.sampled_from(["/v1/quote", "/v1/holds", "/v1/commit"]), cheque),
    st.tuples(
        st.just("/v1/refund"),
        st.fixed_dictionaries(
            {
                "refund_id": st.sampled_from(["F-1", "F-2", "F-3"]),
                "receipt_id": st.sampled_from([f"R-{i}" for i in range(4)]),
                "lines": st.dictionaries(
                    st.sampled_from(["1", "1", "2", "3", "x"]),
                    st.integers(-1, 2),
                    min_size=1,
                    max_size=2,
                ),
            }
        ),
    ),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
)


def test_cheque_flow_fuzz_keeps_the_store_whole(fuzz_api, clock):
    till, client = fuzz_api
    seen_holds: list[str] = []

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    @given(steps=st.lists(action, min_size=1, max_size=6), minutes=st.integers(0, 20))
    def run(steps, minutes):
        for where, what in steps:
            path, body = where, what
            if where == "cancel":
                if not seen_holds:
                    continue
                path, body = f"/v1/holds/{seen_holds[what % len(seen_holds)]}/cancel", None
            resp = client.post(path, json=body, headers=AUTH)
            check(resp)
            if path == "/v1/holds" and resp.status_code == 200:
                seen_holds.append(resp.json()["hold_id"])
        clock.advance(minutes=minutes)
        consistent(till)
        # Spendable points never go below zero because of holds.
        for i in range(1, 6):
            card = client.post(
                "/v1/identify", json={"input": make_member_code(100_000_000 + i)}, headers=AUTH
            ).json()
            assert card["spendable"] >= 0

    run()
    assert till.store.quick_check() == "ok"
    # The strategy reaches the writing paths, not only the refusals.
    assert till.count("purchases") > 0 and till.count("refunds") > 0 and seen_holds

# ruff: noqa: PLC3002, SIM117 - table-driven cases keep their lambdas inline
"""Fuzzed requests against the real back office (the last row of the fault table in
notes/sync.md): bad JSON, oversized batches, bad ids, negative/NaN points, unknown members.

Every request is answered with a specific 4xx or a per-event ``rejected`` result, never a
500, and whatever is refused leaves the ledger as it was.

- Explicit cases run on SQLite and PostgreSQL (the ``db_url`` fixture).
- Hypothesis mutates a real till's pending batch (SQLite only, for speed) and checks the
  answer and the ledger: a refused request changes nothing; for a 200, replaying only the
  events answered ``applied`` on a pristine copy of the server gives the same ledger, so
  nothing ``rejected`` (or ``duplicate``/``conflict``) left an effect.

The bugs this file found in the code under test (all fixed since) stay in ``KNOWN_BUGS``
as regression cases, one subtest each in ``test_known_bugs``. An entry's ``where`` names
the backends a still-open bug shows on; there it runs as a strict expected failure
(SUBXFAIL, and a failure once fixed). ``KNOWN_500`` lists the 500s the fuzzers tolerate
while such a bug is open (none now).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal
from cluster import Cluster, TillNode
from conformance import scaled
from conftest import NOW, FakeClock
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from synchelp import SyncASGITransport, portal

from agent import journal
from agent.identify import make_member_code
from agent.seed import demo_phone
from sync.backoffice.app import create_app
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice
from sync.client import TransientError
from sync.protocol import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_PAYLOAD_BYTES

M1, M2 = "m00000001", "m00000002"
RESULT_STATUSES = {"applied", "duplicate", "conflict", "rejected"}


def canon(obj: Any) -> str:
    """The till's canonical JSON (what ``payload`` is and ``payload_hash`` covers)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def envelope(terminal_id: str, events: list[Any], **extra: Any) -> bytes:
    body = {"protocol": 1, "terminal_id": terminal_id, "events": events, **extra}
    return json.dumps(body, ensure_ascii=True).encode()


# ---------------------------------------------------------------- ledger views
def ledger_view(db: Database) -> dict[str, Any]:
    """Everything an event can change: member states, purchases, refunds, member changes,
    the applied events. (``events`` rows with status 'rejected' are allowed to appear.)"""
    with db.reading() as tx:
        return {
            "members": tx.all(
                "SELECT member_id, code, phone_hash, state, balance, available, pending, debt, "
                "merged_into FROM members ORDER BY member_id"
            ),
            "purchases": [tuple(r) for r in tx.all("SELECT * FROM purchases ORDER BY event_id")],
            "refunds": [tuple(r) for r in tx.all("SELECT * FROM refunds ORDER BY event_id")],
            "changes": sorted(
                tuple(r) for r in tx.all("SELECT kind, member_id, body FROM changes")
            ),
            "applied": tx.all(
                "SELECT event_id, payload_hash FROM events WHERE status = 'applied' "
                "ORDER BY event_id"
            ),
        }


def full_view(db: Database) -> dict[str, Any]:
    """The ledger plus every event row and conflict: what a refused *request* keeps."""
    view = ledger_view(db)
    with db.reading() as tx:
        view["events"] = tx.all("SELECT event_id, status, code FROM events ORDER BY event_id")
        view["conflicts"] = tx.one("SELECT count(*) FROM conflicts")[0]
    return view


def applied_hashes_match(db: Database) -> None:
    with db.reading() as tx:
        rows = tx.all("SELECT event_id, payload, payload_hash FROM events WHERE status = 'applied'")
    for event_id, payload, payload_hash in rows:
        assert sha(payload) == payload_hash, f"applied event {event_id} hash differs"


# ---------------------------------------------------------------- the app's own errors
class _Errors(logging.Handler):
    """Collects the exceptions the app logs for its 500s (to tell known bugs from new)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.seen.append(record.exc_info[1])


@contextlib.contextmanager
def app_errors() -> Iterator[_Errors]:
    handler = _Errors()
    logger = logging.getLogger("kassa.backoffice")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


# The 500s of still-open bugs (each pinned by a ``KNOWN_BUGS`` case): the fuzzers tolerate
# these, and only these, so that they keep looking for new ones.
KNOWN_500: tuple[tuple[str, type[BaseException], str], ...] = ()  # none left


def known_500(errors: _Errors) -> str:
    """Name the known bug behind the 500 just answered, or fail the test."""
    assert errors.seen, "a 500 without a logged exception"
    exc = errors.seen[-1]
    for name, kind, pattern in KNOWN_500:
        if isinstance(exc, kind) and re.search(pattern, str(exc)):
            return name
    raise AssertionError(f"new kind of 500: {exc!r}") from exc


# ---------------------------------------------------------------- explicit cases
@dataclass
class Rig:
    """A till with R0 on the server and, pending, [purchase R1, refund of R0, registration]."""

    cluster: Cluster
    till: TillNode
    batch: list[dict[str, Any]]
    headers: dict[str, str]
    backend: str
    _n: list[int] = field(default_factory=lambda: [0])

    @property
    def tid(self) -> str:
        return self.till.agent.terminal_id

    def pending(self, kind: str) -> dict[str, Any]:
        return next(e for e in self.batch if e["type"] == kind)

    def post(self, body: bytes, **headers: str) -> httpx.Response:
        return self.cluster.http.post(
            "/v1/events", content=body, headers={**self.headers, **headers}
        )

    def push(self, *events: dict[str, Any]) -> httpx.Response:
        return self.post(envelope(self.tid, list(events)))

    def forged(
        self, kind: str, edit: Callable[[dict[str, Any]], Any] | None = None, **wire: Any
    ) -> dict[str, Any]:
        """A copy of the pending event of ``kind`` under a fresh event id, its payload
        made unique (receipt, member) so it could apply, then ``edit``-ed and re-hashed;
        ``wire`` fields are set last (so they can break the hash)."""
        self._n[0] += 1
        n = self._n[0]
        ev = copy.deepcopy(self.pending(kind))
        ev["event_id"] = uuid.uuid4().hex
        p = json.loads(ev["payload"])
        if kind == "purchase":
            rid = f"FZ{n}"
            p["receipt_id"] = p["cart"]["receipt_id"] = p["quote"]["receipt_id"] = rid
        elif kind == "member_registered":
            p["member_id"] = uuid.uuid4().hex
            p["member_code"] = make_member_code(880_000 + n)
            p["phone_hash"] = uuid.uuid4().hex
        if edit is not None:
            edit(p)
        ev["payload"] = canon(p)
        ev["payload_hash"] = sha(ev["payload"])
        ev.update(wire)
        return ev

    def view(self) -> dict[str, Any]:
        return ledger_view(self.cluster.db)

    def full(self) -> dict[str, Any]:
        return full_view(self.cluster.db)

    def drain_clean(self) -> None:
        """The till's real queue still drains after the fuzz: nothing was poisoned."""
        report = self.till.client.drain()
        assert report.quarantined == 0
        assert {r[3] for r in self.till.outbox()} == {"acked"}
        for mid in (M1, M2):
            assert self.till.balance(mid) == self.cluster.server_balance(mid)
        applied = self.cluster.events()
        for _seq, event_id, payload_hash, _status in self.till.outbox():
            assert applied[event_id] == payload_hash


@pytest.fixture
def rig(cluster: Cluster, db_url: str) -> Rig:
    till = cluster.till()
    till.sale("R0", M1, ("DR-1001", 1), ("BG-7001", 2))
    till.client.drain()
    till.sale("R1", M2, ("SH-2001", 1), redeem=100)
    till.agent.refund("F0", "R0", {2: 1})
    till.agent.register(
        phone=demo_phone(900), first_name="Ира", consent_programme=True, consent_marketing=False
    )
    batch = [e.wire() for e in journal.next_batch(till.store, max_events=50, max_bytes=10**7)]
    assert [e["type"] for e in batch] == ["purchase", "refund", "member_registered"]
    backend = "postgresql" if db_url.startswith("postgres") else "sqlite"
    return Rig(cluster, till, batch, {"authorization": f"Bearer {till.client.token}"}, backend)


def _with(ev: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**ev, **fields}


def _without(ev: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k != key}


def _big_body(r: Rig) -> bytes:
    pad = "x" * (MAX_BATCH_BYTES + 1)
    return envelope(r.tid, r.batch, padding=pad)


def _chunks(body: bytes) -> Iterator[bytes]:
    for i in range(0, len(body), 65_536):
        yield body[i : i + 65_536]


def _many(r: Rig, n: int) -> bytes:
    ev = r.pending("member_registered")
    return envelope(r.tid, [_with(ev, event_id=uuid.uuid4().hex, seq=i + 10) for i in range(n)])


def _text_env(r: Rig, old: str, new: str) -> bytes:
    text = envelope(r.tid, r.batch).decode()
    assert old in text
    return text.replace(old, new, 1).encode()


# name: (body builder, status, error code, index of the bad event or None)
REQUEST_CASES: dict[str, tuple[Callable[[Rig], bytes], int, str, int | None]] = {
    "not_json": (lambda r: b'{"protocol": 1, "events": [', 400, "bad_json", None),
    "not_utf8": (lambda r: b'{"protocol": 1, "terminal_id": "\xff\xfe"}', 400, "bad_json", None),
    "empty_body": (lambda r: b"", 400, "bad_json", None),
    "json_array": (
        lambda r: json.dumps([json.loads(envelope(r.tid, r.batch))]).encode(),
        400,
        "bad_request",
        None,
    ),
    "json_string": (lambda r: b'"events"', 400, "bad_request", None),
    "nan_protocol": (
        lambda r: _text_env(r, '"protocol": 1', '"protocol": NaN'),
        400,
        "bad_json",
        None,
    ),
    "infinity_seq": (lambda r: _text_env(r, '"seq": 2', '"seq": Infinity'), 400, "bad_json", None),
    "minus_infinity_seq": (
        lambda r: _text_env(r, '"seq": 2', '"seq": -Infinity'),
        400,
        "bad_json",
        None,
    ),
    "protocol_2": (
        lambda r: envelope(r.tid, r.batch, protocol=2),
        400,
        "unsupported_protocol",
        None,
    ),
    "protocol_string": (lambda r: envelope(r.tid, r.batch, protocol="1"), 400, "bad_field", None),
    "protocol_true": (lambda r: envelope(r.tid, r.batch, protocol=True), 400, "bad_field", None),
    "protocol_missing": (
        lambda r: json.dumps({"terminal_id": r.tid, "events": r.batch}).encode(),
        400,
        "missing_field",
        None,
    ),
    "terminal_id_int": (lambda r: envelope(7, r.batch), 400, "bad_field", None),  # type: ignore[arg-type]
    "events_missing": (
        lambda r: json.dumps({"protocol": 1, "terminal_id": r.tid}).encode(),
        400,
        "missing_field",
        None,
    ),
    "events_object": (lambda r: envelope(r.tid, {"0": r.batch[0]}), 400, "missing_field", None),  # type: ignore[arg-type]
    "event_not_object": (lambda r: envelope(r.tid, [r.batch[0], "event"]), 400, "bad_event", 1),
    "event_id_31_hex": (
        lambda r: envelope(r.tid, [r.batch[0], _with(r.batch[1], event_id="a" * 31)]),
        400,
        "bad_event_id",
        1,
    ),
    "event_id_upper": (
        lambda r: envelope(
            r.tid,
            [r.batch[0], r.batch[1], _with(r.batch[2], event_id=r.batch[2]["event_id"].upper())],
        ),
        400,
        "bad_event_id",
        2,
    ),
    "event_id_not_hex": (
        lambda r: envelope(r.tid, [_with(r.batch[0], event_id="g" * 32)]),
        400,
        "bad_event_id",
        0,
    ),
    "event_id_uuid_dashes": (
        lambda r: envelope(r.tid, [_with(r.batch[0], event_id=str(uuid.uuid4()))]),
        400,
        "bad_event_id",
        0,
    ),
    "event_id_int": (
        lambda r: envelope(r.tid, [_with(r.batch[0], event_id=12345)]),
        400,
        "bad_field",
        0,
    ),
    "event_id_missing": (
        lambda r: envelope(r.tid, [r.batch[0], _without(r.batch[1], "event_id")]),
        400,
        "missing_field",
        1,
    ),
    "seq_string": (
        lambda r: envelope(r.tid, [r.batch[0], _with(r.batch[1], seq="2")]),
        400,
        "bad_field",
        1,
    ),
    "seq_float": (lambda r: envelope(r.tid, [_with(r.batch[0], seq=1.0)]), 400, "bad_field", 0),
    "seq_true": (lambda r: envelope(r.tid, [_with(r.batch[0], seq=True)]), 400, "bad_field", 0),
    "seq_null": (lambda r: envelope(r.tid, [_with(r.batch[0], seq=None)]), 400, "bad_field", 0),
    "payload_object": (
        lambda r: envelope(
            r.tid, [r.batch[0], _with(r.batch[1], payload=json.loads(r.batch[1]["payload"]))]
        ),
        400,
        "bad_field",
        1,
    ),
    "payload_missing": (
        lambda r: envelope(r.tid, [_without(r.batch[0], "payload")]),
        400,
        "missing_field",
        0,
    ),
    "hash_missing": (
        lambda r: envelope(r.tid, [_without(r.batch[0], "payload_hash")]),
        400,
        "missing_field",
        0,
    ),
    "schema_version_string": (
        lambda r: envelope(r.tid, [_with(r.batch[0], schema_version="1")]),
        400,
        "bad_field",
        0,
    ),
    "created_at_int": (
        lambda r: envelope(r.tid, [_with(r.batch[0], created_at=0)]),
        400,
        "bad_field",
        0,
    ),
    "too_many_events": (lambda r: _many(r, MAX_BATCH_EVENTS + 1), 413, "batch_too_large", None),
}


def _check_4xx(rig: Rig, resp: httpx.Response, status: int, code: str, index: int | None) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()
    assert err["error"] == code and err["message"]
    if index is not None:  # the bad event is named: by index, or in the field's path
        assert err.get("index") == index or err["field"].startswith(f"events[{index}].")


def test_unreadable_requests_are_a_specific_4xx_and_apply_nothing(
    rig: Rig, subtests: pytest.Subtests
) -> None:
    """Each case carries the till's three valid pending events beside the bad part: none
    of them is applied (a 4xx applies nothing), and the till's own push then goes through."""
    before = rig.full()
    for case in sorted(REQUEST_CASES):
        build, status, code, index = REQUEST_CASES[case]
        with subtests.test(case=case):
            _check_4xx(rig, rig.post(build(rig)), status, code, index)
            assert rig.full() == before
    big = _big_body(rig)
    assert len(big) > MAX_BATCH_BYTES
    for name, content in (("content_length", big), ("chunked", _chunks(big))):
        with subtests.test(case=f"over_2MB_{name}"):
            resp = rig.cluster.http.post("/v1/events", content=content, headers=rig.headers)
            _check_4xx(rig, resp, 413, "body_too_large", None)
            assert rig.full() == before
    body = envelope(rig.tid, rig.batch)
    auth = (
        ({}, 401, "unauthenticated"),
        ({"authorization": "Basic abc"}, 401, "unauthenticated"),
        ({"authorization": "Bearer "}, 401, "unauthenticated"),
        ({"authorization": "Bearer " + "x" * 43}, 401, "bad_token"),
    )
    for i, (headers, status, code) in enumerate(auth):
        with subtests.test(case=f"auth_{i}"):
            resp = rig.cluster.http.post("/v1/events", content=body, headers=headers)
            _check_4xx(rig, resp, status, code, None)
    with subtests.test(case="foreign_terminal"):
        _check_4xx(rig, rig.post(envelope("till-other", rig.batch)), 403, "wrong_terminal", None)
        foreign = [rig.batch[0], _with(rig.batch[1], terminal_id="till-other")]
        _check_4xx(rig, rig.post(envelope(rig.tid, foreign)), 403, "wrong_terminal", 1)
    for sent in ("yesterday", "2026-06-15T09:00:00"):
        with subtests.test(case=f"sent_at_{sent}"):
            _check_4xx(rig, rig.post(body, **{"x-kassa-sent-at": sent}), 400, "bad_header", None)
    assert rig.full() == before
    rig.drain_clean()


def _neg_redeem(p: dict[str, Any]) -> None:
    p["redeem_points"] = p["quote"]["redeem_points"] = -100
    p["quote"]["lines"][0]["redeemed_points"] = -100


def _float_at(path: tuple[Any, ...], value: float) -> Callable[[dict[str, Any]], None]:
    def edit(p: dict[str, Any]) -> None:
        node: Any = p
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


# name: (event builder, rejection code)
REJECTED_CASES: dict[str, tuple[Callable[[Rig], dict[str, Any]], str]] = {
    "hash_mismatch": (lambda r: r.forged("purchase", payload_hash=sha("other")), "hash_mismatch"),
    "hash_not_hex": (lambda r: r.forged("purchase", payload_hash="Z" * 64), "hash_mismatch"),
    "hash_upper_case": (
        lambda r: (lambda e: _with(e, payload_hash=e["payload_hash"].upper()))(
            r.forged("purchase")
        ),
        "hash_mismatch",
    ),
    "payload_reformatted": (
        lambda r: (lambda e: _with(e, payload=json.dumps(json.loads(e["payload"]), indent=1)))(
            r.forged("purchase")
        ),
        "hash_mismatch",
    ),
    "unknown_type": (lambda r: r.forged("purchase", type="voucher"), "unknown_type"),
    "schema_99": (lambda r: r.forged("purchase", schema_version=99), "unsupported_schema"),
    "seq_zero": (lambda r: r.forged("purchase", seq=0), "bad_seq"),
    "seq_negative": (lambda r: r.forged("purchase", seq=-5), "bad_seq"),
    "epoch_empty": (lambda r: r.forged("purchase", terminal_epoch=""), "bad_epoch"),
    "epoch_too_long": (lambda r: r.forged("purchase", terminal_epoch="e" * 65), "bad_epoch"),
    "created_at_garbage": (lambda r: r.forged("purchase", created_at="yesterday"), "bad_payload"),
    "created_at_naive": (
        lambda r: r.forged("purchase", created_at="2026-06-15T09:00:00"),
        "bad_payload",
    ),
    "payload_not_json": (
        lambda r: r.forged("purchase", payload="{", payload_hash=sha("{")),
        "bad_payload",
    ),
    "payload_array": (
        lambda r: r.forged("purchase", payload="[]", payload_hash=sha("[]")),
        "bad_payload",
    ),
    "payload_nan": (
        lambda r: r.forged("purchase", payload='{"x":NaN}', payload_hash=sha('{"x":NaN}')),
        "bad_payload",
    ),
    "payload_too_large": (
        lambda r: (lambda t: r.forged("purchase", payload=t, payload_hash=sha(t)))(
            "x" * (MAX_PAYLOAD_BYTES + 1)
        ),
        "payload_too_large",
    ),
    "float_amount": (
        lambda r: r.forged("purchase", _float_at(("cart", "lines", 0, "amount_kop"), 349900.0)),
        "bad_payload",
    ),
    "float_points": (
        lambda r: r.forged("purchase", _float_at(("quote", "earn_points"), 17.5)),
        "bad_payload",
    ),
    "float_in_unknown_key": (
        lambda r: r.forged("purchase", _float_at(("extra",), 1e-9)),
        "bad_payload",
    ),
    "float_in_refund": (
        lambda r: r.forged("refund", _float_at(("result", "amount_kop"), 0.5)),
        "bad_payload",
    ),
    "negative_redeem_points": (lambda r: r.forged("purchase", _neg_redeem), "bad_payload"),
    "negative_earn_points": (
        lambda r: r.forged("purchase", lambda p: p["quote"].update(earn_points=-1)),
        "bad_payload",
    ),
    "redeem_not_the_sum_of_lines": (
        lambda r: r.forged("purchase", lambda p: p["quote"].update(redeem_points=50)),
        "bad_payload",
    ),
    "receipt_ids_differ": (
        lambda r: r.forged("purchase", lambda p: p["cart"].update(receipt_id="OTHER")),
        "bad_payload",
    ),
    "cart_missing": (lambda r: r.forged("purchase", lambda p: p.pop("cart")), "bad_payload"),
    "quantity_zero": (
        lambda r: r.forged("purchase", lambda p: p["cart"]["lines"][0].update(qty=0)),
        "bad_cart",
    ),
    "unknown_member": (
        lambda r: r.forged("purchase", lambda p: p.update(member_id="m99999999")),
        "unknown_member",
    ),
    "member_id_empty": (
        lambda r: r.forged("purchase", lambda p: p.update(member_id="")),
        "bad_payload",
    ),
    "member_id_not_string": (
        lambda r: r.forged("purchase", lambda p: p.update(member_id=1)),
        "bad_payload",
    ),
    "occurred_at_missing": (
        lambda r: r.forged("purchase", lambda p: p.pop("occurred_at")),
        "bad_payload",
    ),
    "receipt_already_in_ledger": (
        lambda r: r.forged(
            "purchase",
            lambda p: (
                p.update(receipt_id="R0")
                or p["cart"].update(receipt_id="R0")
                or p["quote"].update(receipt_id="R0")
            ),
        ),
        "duplicate_receipt",
    ),
    "refund_of_unknown_purchase": (
        lambda r: r.forged("refund", lambda p: p.update(purchase_event_id=uuid.uuid4().hex)),
        "unknown_purchase",
    ),
    "refund_more_than_bought": (
        lambda r: r.forged("refund", lambda p: p.update(lines={"2": 3})),
        "bad_refund",
    ),
    "refund_of_missing_line": (
        lambda r: r.forged("refund", lambda p: p.update(lines={"7": 1})),
        "bad_refund",
    ),
    "refund_no_lines": (lambda r: r.forged("refund", lambda p: p.update(lines={})), "bad_payload"),
    "refund_negative_units": (
        lambda r: r.forged("refund", lambda p: p.update(lines={"2": -1})),
        "bad_payload",
    ),
    "refund_line_not_a_number": (
        lambda r: r.forged("refund", lambda p: p.update(lines={"two": 1})),
        "bad_payload",
    ),
    "registration_without_consent": (
        lambda r: r.forged("member_registered", lambda p: p.update(consent_programme=False)),
        "no_consent",
    ),
    "registration_bad_member_code": (
        lambda r: r.forged("member_registered", lambda p: p.update(member_code="1234")),
        "bad_payload",
    ),
    "registration_bad_phone_hash": (
        lambda r: r.forged("member_registered", lambda p: p.update(phone_hash="XYZ")),
        "bad_payload",
    ),
    "registration_negative_welcome": (
        lambda r: r.forged("member_registered", lambda p: p.update(welcome_points=-500)),
        "bad_payload",
    ),
    "registration_of_existing_member": (
        lambda r: r.forged("member_registered", lambda p: p.update(member_id=M1)),
        "member_exists",
    ),
}


def test_bad_events_are_rejected_with_a_code_and_no_ledger_effect(
    rig: Rig, subtests: pytest.Subtests
) -> None:
    """Each forged event alone: answered ``rejected`` with its code (twice, the second
    time from the stored row), recorded as rejected, and no member, purchase, refund or
    change differs. Then the till's real queue drains as if nothing happened."""
    before = rig.view()
    for case in sorted(REJECTED_CASES):
        build, code = REJECTED_CASES[case]
        with subtests.test(case=case):
            ev = build(rig)
            resp = rig.push(ev)
            assert resp.status_code == 200, resp.text
            (result,) = resp.json()["results"]
            assert (result["event_id"], result["status"], result["code"]) == (
                ev["event_id"],
                "rejected",
                code,
            ), result
            assert result["message"]
            assert resp.json()["members"] == {}
            again = rig.push(ev).json()["results"][0]
            assert (again["status"], again["code"]) == ("rejected", code)
            rows = rig.cluster.ledger(
                "SELECT status, code FROM events WHERE event_id = ?", (ev["event_id"],)
            )
            assert rows == [("rejected", code)]
            assert rig.view() == before
    with subtests.test(case="exactly_500_events"):  # readable; 501 is a 413
        ev = rig.pending("member_registered")
        events = [
            _with(ev, event_id=uuid.uuid4().hex, seq=i + 10, payload_hash="0" * 64)
            for i in range(MAX_BATCH_EVENTS)
        ]
        resp = rig.push(*events)
        assert resp.status_code == 200
        results = resp.json()["results"]
        assert [r["event_id"] for r in results] == [e["event_id"] for e in events]
        assert {(r["status"], r["code"]) for r in results} == {("rejected", "hash_mismatch")}
        assert rig.view() == before
    rig.drain_clean()


def test_bad_event_mid_batch_is_rejected_alone(rig: Rig) -> None:
    """A batch mixing the till's real events and forgeries: the real ones apply once, the
    forgeries are rejected, and the ledger equals the one the real events alone make."""
    bad = [
        REJECTED_CASES["negative_redeem_points"][0](rig),
        REJECTED_CASES["unknown_member"][0](rig),
        REJECTED_CASES["refund_of_unknown_purchase"][0](rig),
    ]
    events = [rig.batch[0], bad[0], rig.batch[1], bad[1], bad[2], rig.batch[2]]
    resp = rig.push(*events)
    assert resp.status_code == 200
    statuses = [r["status"] for r in resp.json()["results"]]
    assert statuses == ["applied", "rejected", "applied", "rejected", "rejected", "applied"]
    mixed = rig.view()
    rig.drain_clean()  # the till resends its three: duplicates, acked
    assert rig.view() == mixed
    assert rig.cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 2
    assert rig.cluster.ledger("SELECT count(*) FROM refunds")[0][0] == 1


@pytest.mark.parametrize(
    ("column", "value"),
    [
        pytest.param("event_id", "NOT-AN-ID", id="bad_event_id"),
        pytest.param("schema_version", "x", id="bad_field"),
    ],
)
def test_unreadable_event_mid_queue_is_quarantined_and_the_rest_flow(
    cluster: Cluster, column: str, value: str
) -> None:
    """A till row corrupted on disk so that its event is unreadable (a 400 for the whole
    batch): the client isolates it, it is quarantined, the events around it are acked."""
    till = cluster.till()
    for i in range(5):
        till.sale(f"R{i}", M1, ("BG-7001", 1))
    with till.store.write() as conn:
        conn.execute(f"UPDATE outbox SET {column} = ? WHERE seq = 3", (value,))
    for _ in range(6):  # a few rounds, as SyncRunner would do (splitting costs one each)
        with contextlib.suppress(TransientError):
            till.client.drain()
    status = journal.status(till.store)
    assert (status.events_waiting, status.quarantined) == (0, 1)
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 4


# ---------------------------------------------------------------- found bugs (regressions)
def _refused(rig: Rig, resp: httpx.Response, before: dict[str, Any]) -> None:
    """A 4xx, or a 200 whose events were all rejected; the ledger unchanged."""
    assert resp.status_code < 500, f"{resp.status_code}: {resp.text}"
    if resp.status_code == 200 and "results" in resp.json():
        assert {r["status"] for r in resp.json()["results"]} <= {"rejected"}
    assert rig.view() == before


def _status(resp: httpx.Response, status: int) -> None:
    assert resp.status_code == status, f"{resp.status_code}: {resp.text}"


def _no_500(resp: httpx.Response) -> None:
    assert resp.status_code < 500, f"{resp.status_code}: {resp.text}"


def _surrogate_payload(r: Rig) -> dict[str, Any]:
    ev = r.forged("purchase", lambda p: p.update(cashier_id="c\ud800"))
    return ev


def _nested(n: int) -> bytes:
    return b"[" * n + b"]" * n


def _enroll(r: Rig, **body: Any) -> httpx.Response:
    return r.cluster.http.post("/v1/enroll", content=json.dumps(body).encode())


@dataclass(frozen=True)
class Known:
    where: frozenset[str]  # backends where the bug shows
    run: Callable[[Rig], httpx.Response]
    why: str
    check: Callable[[Rig, httpx.Response, dict[str, Any]], None] = _refused


# Every bug the fuzzers found is fixed: each entry below now runs as a regression check
# that must pass on both backends (``where`` would name the backends a new bug shows on).
BOTH: frozenset[str] = frozenset()
SQLITE: frozenset[str] = frozenset()
PG: frozenset[str] = frozenset()

KNOWN_BUGS: dict[str, Known] = {
    "seq_beyond_bigint": Known(
        BOTH,
        lambda r: r.push(r.forged("purchase", seq=2**63)),
        "events[i].seq >= 2**63 passes parse_push (any int) and check(); the events insert "
        "overflows (SQLite OverflowError, PG bigint out of range) -> 500",
    ),
    "schema_version_beyond_bigint": Known(
        BOTH,
        lambda r: r.push(r.forged("purchase", schema_version=2**63)),
        "schema_version is rejected (unsupported_schema) but the rejected row is still "
        "inserted with it -> overflow -> 500",
    ),
    "schema_version_beyond_int4_pg": Known(
        PG,
        lambda r: r.push(r.forged("purchase", schema_version=2**31)),
        "events.schema_version is INTEGER: on PostgreSQL 2**31 is out of range -> 500",
    ),
    "payload_points_beyond_bigint": Known(
        BOTH,
        lambda r: r.push(r.forged("purchase", lambda p: p["quote"].update(earn_points=10**30))),
        "_nonneg() bounds points below only; 10**30 earn_points reaches the purchases "
        "insert / member state -> overflow -> 500",
    ),
    "rules_version_beyond_int64_sqlite": Known(
        SQLITE,
        lambda r: r.push(r.forged("purchase", lambda p: p["quote"].update(rules_version=10**30))),
        "quote.rules_version is bound in 'SELECT ... FROM rules WHERE version = ?' -> "
        "SQLite OverflowError -> 500 (PostgreSQL flags the unknown version and applies)",
        check=lambda r, resp, before: _no_500(resp),
    ),
    "deeply_nested_body": Known(
        BOTH,
        lambda r: r.post(_nested(5000)),
        "parse_push catches ValueError/UnicodeDecodeError only; json.loads raises "
        "RecursionError on 5,000 nested arrays (a 10 kB body) -> 500",
    ),
    "deeply_nested_enroll_body": Known(
        BOTH,
        lambda r: r.cluster.http.post("/v1/enroll", content=_nested(5000)),
        "the enroll handler has the same unguarded strict_json -> RecursionError -> 500",
    ),
    "lone_surrogate_in_payload": Known(
        BOTH,
        lambda r: r.push(_surrogate_payload(r)),
        "a JSON escape \\ud800 in payload: _sha() does text.encode('utf-8') -> "
        "UnicodeEncodeError (not Rejected) -> 500",
    ),
    "lone_surrogate_in_enroll_code": Known(
        BOTH,
        lambda r: _enroll(r, code="\ud800"),
        "token_hash(code) encodes the code -> UnicodeEncodeError -> 500",
    ),
    "dict_in_pass_through_field": Known(
        BOTH,
        lambda r: r.push(r.forged("purchase", lambda p: p.update(cashier_id={"id": 1}))),
        "cashier_id / identified_by / phone_masked / first_name / phone_sealed / "
        "consent_text_version are bound to SQL unchecked -> binding error -> 500",
    ),
    "list_where_points_expected": Known(
        BOTH,
        lambda r: r.push(
            r.forged("purchase", lambda p: p["quote"]["lines"][0].update(redeemed_points=[]))
        ),
        "codec.from_plain does not type-check ints; sum() of quote lines -> TypeError -> 500",
    ),
    "dict_where_amount_expected": Known(
        BOTH,
        lambda r: r.push(
            r.forged("purchase", lambda p: p["cart"]["lines"][0].update(amount_kop={}))
        ),
        "same lax codec: cart.total_kop / validate_cart on a dict -> TypeError -> 500",
    ),
    "occurred_at_year_9999": Known(
        BOTH,
        lambda r: r.push(
            r.forged("purchase", lambda p: p.update(occurred_at="9999-12-31T23:59:59+00:00"))
        ),
        "earn_available_from = occurred_at + hold days overflows datetime -> OverflowError -> 500",
    ),
    "occurred_at_year_1": Known(
        BOTH,
        lambda r: r.push(
            r.forged("purchase", lambda p: p.update(occurred_at="0001-01-01T00:00:00+00:00"))
        ),
        "datetime arithmetic before year 1 -> OverflowError -> 500",
    ),
    "registration_birthday_garbage": Known(
        BOTH,
        lambda r: r.push(r.forged("member_registered", lambda p: p.update(birthday="soon"))),
        "registration() calls datetime.fromisoformat(birthday) unguarded -> ValueError "
        "(not Rejected) -> 500",
    ),
    "nul_character_pg": Known(
        PG,
        lambda r: r.push(r.forged("purchase", type="purchase\x00")),
        "PostgreSQL text cannot hold NUL; the rejected row's type is inserted -> DataError "
        "-> 500 (SQLite stores it and answers rejected unknown_type)",
    ),
    "nul_character_lookup_pg": Known(
        PG,
        lambda r: r.cluster.http.get(
            "/v1/members/lookup", params={"code": "1\x00"}, headers=r.headers
        ),
        "the lookup binds the NUL to PostgreSQL -> DataError -> 500 (SQLite: 404)",
    ),
    "nul_character_enroll_terminal_id_pg": Known(
        PG,
        lambda r: _enroll(r, code=r.cluster.bo.enroll_code("s1"), terminal_id="t\x00"),
        "enroll binds terminal_id to PostgreSQL unchecked -> DataError -> 500",
    ),
    "changes_cursor_beyond_int64_sqlite": Known(
        SQLITE,
        lambda r: r.cluster.http.get(
            "/v1/changes", params={"cursor": str(2**63)}, headers=r.headers
        ),
        "Backoffice.changes() bounds the cursor below only; 2**63 -> SQLite OverflowError -> 500",
    ),
    "changes_limit_superscript_digit": Known(
        BOTH,
        lambda r: r.cluster.http.get(
            "/v1/changes", params={"cursor": "0", "limit": "²"}, headers=r.headers
        ),
        "app.changes checks limit with str.isdigit(), true for '²', then int('²') -> "
        "ValueError -> 500 (use isdecimal / try int)",
    ),
    "rejected_refund_still_changes_the_ledger": Known(
        BOTH,
        lambda r: r.push(r.forged("refund", lambda p: p.pop("refund_id"))),
        "_Batch.refund updates the member state and purchases.refunded, then raises "
        "Rejected for refund_id in the refunds insert: the event is answered 'rejected' "
        "but the points are reversed and the units count as refunded",
    ),
    "enroll_accepts_any_terminal_id": Known(
        BOTH,
        lambda r: _enroll(r, code=r.cluster.bo.enroll_code("s1"), terminal_id="../../ no id"),
        "TERMINAL_ID_RE (protocol.py) is never used: enroll accepts any terminal_id",
        check=lambda r, resp, before: _status(resp, 400),
    ),
}


def test_known_bugs(rig: Rig, subtests: pytest.Subtests) -> None:
    """Strict expected failures, one subtest each: XFAIL where the bug shows, a failure if
    it no longer does (then drop it from KNOWN_BUGS and KNOWN_500), a pass elsewhere."""
    for name in sorted(KNOWN_BUGS):
        bug = KNOWN_BUGS[name]
        with subtests.test(bug=name):
            before = rig.view()
            try:
                with app_errors():
                    bug.check(rig, bug.run(rig), before)
            except AssertionError:
                if rig.backend in bug.where:
                    pytest.xfail(bug.why)
                raise
            assert rig.backend not in bug.where, f"XPASS(strict): {name} seems fixed"


# ---------------------------------------------------------------- hypothesis: mutated batches
class Server:
    """A back office on a private copy of a pristine SQLite file (one per example)."""

    def __init__(self, pristine: Path, path: Path, portal: BlockingPortal) -> None:
        self.path = path
        with contextlib.closing(sqlite3.connect(pristine)) as src:
            with contextlib.closing(sqlite3.connect(path)) as dst:
                src.backup(dst)
        self.db = Database.open(str(path))
        self.bo = Backoffice(self.db, FakeClock(NOW))
        self.http = httpx.Client(
            transport=SyncASGITransport(create_app(self.bo), portal), base_url="http://bo"
        )

    def close(self) -> None:
        self.http.close()
        self.db.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)


@dataclass(repr=False)
class Base:
    doc: dict[str, Any]  # the till's pending batch as a request body
    headers: dict[str, str]
    pristine: Path
    portal: BlockingPortal
    view: dict[str, Any]
    full: dict[str, Any]
    errors: _Errors
    shared: Server
    tmp: Path
    codes: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    count: list[int] = field(default_factory=lambda: [0])

    def __repr__(self) -> str:  # hypothesis prints the arguments; keep it short
        return f"Base(terminal_id={self.doc['terminal_id']!r}, events={len(self.doc['events'])})"

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        # (a 58 kB pretty-printed fixture is a HypothesisWarning, an error under
        # filterwarnings=error, which broke the replay of a failing example)
        p.text(repr(self))

    @contextlib.contextmanager
    def server(self) -> Iterator[Server]:
        self.count[0] += 1
        srv = Server(self.pristine, self.tmp / f"bo-{self.count[0]}.db", self.portal)
        try:
            yield srv
        finally:
            srv.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    """A server with R0 and R1 applied and a pending batch of five events on the till:
    [purchase R2 (redeems), refund of R0, registration, purchase by the new member,
    refund of R2] (SQLite)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    with portal() as p, app_errors() as errors:
        c = Cluster(tmp, str(tmp / "origin.db"), p)
        till = c.till()
        till.sale("R0", M1, ("DR-1001", 1), ("BG-7001", 2))
        till.sale("R1", M2, ("OW-4001", 1))
        till.client.drain()
        till.sale("R2", M2, ("SH-2001", 1), ("AC-6001", 1), redeem=150)
        till.agent.refund("F0", "R0", {2: 1})
        reg = till.agent.register(
            phone=demo_phone(901), first_name="Ира", consent_programme=True, consent_marketing=True
        )
        till.sale("R3", reg.card.member_id, ("BG-7001", 1), redeem="max")
        till.agent.refund("F2", "R2", {1: 1})
        batch = [e.wire() for e in journal.next_batch(till.store, max_events=50, max_bytes=10**7)]
        headers = {"authorization": f"Bearer {till.client.token}"}
        c.bo.prune_changes(2)  # cursors 0 and 1 are expired (410)
        pristine = tmp / "pristine.db"
        with contextlib.closing(sqlite3.connect(tmp / "origin.db")) as src:
            with contextlib.closing(sqlite3.connect(pristine)) as dst:
                src.backup(dst)
        c.close()
        doc = {"protocol": 1, "terminal_id": till.agent.terminal_id, "events": batch}
        shared = Server(pristine, tmp / "shared.db", p)
        b = Base(doc, headers, pristine, p, {}, {}, errors, shared, tmp)
        with shared.db.reading() as tx:
            rows = tx.all("SELECT code, phone_hash FROM members ORDER BY member_id LIMIT 5")
        b.codes, b.phones = [r[0] for r in rows], [r[1] for r in rows]
        with b.server() as srv:
            b.view, b.full = ledger_view(srv.db), full_view(srv.db)
            # the unmutated batch applies in full: the fuzz starts from a valid request
            ok = srv.http.post("/v1/events", content=envelope(**_env_args(doc)), headers=headers)
            assert [r["status"] for r in ok.json()["results"]] == ["applied"] * len(batch)
        try:
            yield b
        finally:
            shared.close()


def _env_args(doc: dict[str, Any]) -> dict[str, Any]:
    return {"terminal_id": doc["terminal_id"], "events": doc["events"]}


# ---- mutation strategies
BIG_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30, -(10**30)]
ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "\ud800",
    "é",
    "0" * 32,
    "F" * 32,
    "a" * 64,
    "2026-06-15T09:00:00+00:00",
    "2026-06-15T09:00:00",
    "9999-12-31T23:59:59+00:00",
    "NaN",
    M1,
    "purchase",
    "refund",
    "member_registered",
]
DEEP = "__deep_{}__"

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.sampled_from(BIG_INTS),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(ODD_STRINGS),
)
containers = st.one_of(
    st.lists(scalars, max_size=3),
    st.dictionaries(st.sampled_from(["", "a", "b", "seq", "payload", "x"]), scalars, max_size=3),
)
# (nested by hand: st.recursive's max_leaves retries made generation flaky under shrinking)
junk = st.one_of(scalars, containers, st.lists(containers, max_size=2))

values = st.one_of(junk, st.sampled_from([40, 150, 5000]).map(DEEP.format))  # (deep: 1 in 12)
numbers = st.one_of(st.integers(-(10**6), -1), st.sampled_from(BIG_INTS), st.integers())


def expand_deep(text: str) -> str:
    """Turn each quoted marker into that many nested arrays (json.dumps could not)."""
    return re.sub(r'"__deep_(\d+)__"', lambda m: "[" * int(m[1]) + "]" * int(m[1]), text)


MAX_TREE_DEPTH = 200


def nesting(text: str) -> int:
    """An upper bound of the JSON nesting depth of ``text`` (brackets in strings count)."""
    depth = top = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}":
            depth -= 1
    return top


def slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON tree, depth first."""
    out: list[tuple[Any, Any]] = []
    stack = [node]
    while stack:
        n = stack.pop()
        items = n.items() if isinstance(n, dict) else enumerate(n) if isinstance(n, list) else ()
        for k, v in items:
            out.append((n, k))
            stack.append(v)
    return out


def pick(data: st.DataObject, seq: list[Any], label: str) -> Any:
    return seq[data.draw(st.integers(0, len(seq) - 1), label=label)]


def _events(doc: dict[str, Any]) -> list[dict[str, Any]]:
    evs = doc.get("events")
    return [e for e in evs if isinstance(e, dict)] if isinstance(evs, list) else []


def mutate_payload(data: st.DataObject, ev: dict[str, Any]) -> str:
    text = ev.get("payload")
    if not isinstance(text, str):
        ev["payload"] = data.draw(values, label="payload")
        return "payload replaced"
    how = data.draw(st.sampled_from(["tree", "tree", "tree", "number", "text"]), label="how")
    try:
        # (a depth test first: whether a deep parse hits the recursion limit depends on
        # the caller's stack, and the draws must not)
        p = json.loads(text) if nesting(text) <= MAX_TREE_DEPTH else None
    except ValueError:
        p = None
    if p is None:
        how = "text"
    if how == "text":
        i = data.draw(st.integers(0, len(text)), label="at")
        j = data.draw(st.integers(i, min(len(text), i + 8)), label="to")
        text = text[:i] + data.draw(st.text(max_size=3), label="chars") + text[j:]
        what = f"payload text [{i}:{j}]"
    else:
        where = slots(p)
        if not where:
            p = data.draw(values, label="payload value")
            what = "payload root"
        else:
            parent, key = pick(data, where, "payload slot")
            if how == "tree" and data.draw(st.booleans(), label="delete"):
                del parent[key]
                what = f"payload del {key!r}"
            else:
                parent[key] = data.draw(numbers if how == "number" else values, label="value")
                what = f"payload {key!r}={parent[key]!r:.60}"
        text = expand_deep(canon(p))
    ev["payload"] = text
    if data.draw(st.sampled_from([True, True, True, False]), label="rehash"):
        ev["payload_hash"] = sha(text)
        what += " (rehashed)"
    return what


def mutate(data: st.DataObject, doc: dict[str, Any]) -> list[str]:
    ops = ["payload"] * 4 + ["delete", "replace", "replace", "hash", "events", "add", "copy_id"]
    done: list[str] = []
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        op = data.draw(st.sampled_from(ops), label="op")
        evs = _events(doc)
        if op == "payload" and evs:
            done.append(mutate_payload(data, pick(data, evs, "event")))
        elif op == "hash" and evs:
            ev = pick(data, evs, "event")
            h = ev.get("payload_hash")
            if isinstance(h, str) and h:
                i = data.draw(st.integers(0, len(h) - 1), label="char")
                ev["payload_hash"] = h[:i] + ("0" if h[i] != "0" else "1") + h[i + 1 :]
                done.append(f"hash char {i}")
        elif op == "events" and isinstance(doc.get("events"), list) and doc["events"]:
            items = doc["events"]
            how = data.draw(st.sampled_from(["drop", "dup", "swap", "reverse"]), label="how")
            i = data.draw(st.integers(0, len(items) - 1), label="i")
            j = data.draw(st.integers(0, len(items) - 1), label="j")
            if how == "drop":
                items.pop(i)
            elif how == "dup":
                items.insert(j, copy.deepcopy(items[i]))
            elif how == "swap":
                items[i], items[j] = items[j], items[i]
            else:
                items.reverse()
            done.append(f"events {how} {i} {j}")
        elif op == "copy_id" and len(evs) > 1:
            a, b = pick(data, evs, "from"), pick(data, evs, "to")
            b["event_id"] = a.get("event_id")
            done.append("copy event_id")
        elif op == "add":
            dicts = [doc, *evs]
            target = pick(data, dicts, "dict")
            key = data.draw(st.text(max_size=8), label="key")
            target[key] = data.draw(values, label="value")
            done.append(f"add {key!r}")
        elif op in ("delete", "replace"):
            where = slots(doc)
            # the payload text and the envelope's own keys are reached here too
            parent, key = pick(data, where, "slot")
            if op == "delete":
                del parent[key]
                done.append(f"del {key!r}")
            else:
                parent[key] = data.draw(values, label="value")
                done.append(f"{key!r}={parent[key]!r:.60}")
    return done


def check_push_answer(doc: dict[str, Any], resp: httpx.Response) -> list[dict[str, Any]]:
    """The 200 answer's shape: one result per event, in order, with a known status."""
    data = resp.json()
    results = data["results"]
    events = doc["events"]
    assert len(results) == len(events)
    for ev, res in zip(events, results, strict=True):
        assert res["event_id"] == ev["event_id"] and res["seq"] == ev["seq"]
        assert res["status"] in RESULT_STATUSES
        if res["status"] in ("rejected", "conflict"):
            assert res["code"] and res["message"]
    assert isinstance(data["gaps"], list) and isinstance(data["members"], dict)
    return results


WIRE_FIELDS = (
    "event_id",
    "terminal_id",
    "terminal_epoch",
    "seq",
    "type",
    "schema_version",
    "created_at",
    "payload",
    "payload_hash",
)


@settings(
    max_examples=scaled(150),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_mutated_batch_never_500_and_rejected_events_leave_no_trace(
    base: Base, data: st.DataObject
) -> None:
    doc = copy.deepcopy(base.doc)
    for line in mutate(data, doc):
        note(line)
    body = expand_deep(json.dumps(doc, ensure_ascii=True)).encode()
    with base.server() as srv:
        base.errors.seen.clear()
        resp = srv.http.post("/v1/events", content=body, headers=base.headers)
        note(f"{resp.status_code} {resp.text[:400]}")
        if resp.status_code >= 500:
            event(f"known bug: {known_500(base.errors)}")
            assert full_view(srv.db) == base.full, "a 500 must apply nothing"
            return
        assert resp.status_code in (200, 400, 403, 413)
        if resp.status_code != 200:
            err = resp.json()
            assert isinstance(err["error"], str) and err["message"]
            event(f"{resp.status_code} {err['error']}")
            assert full_view(srv.db) == base.full
            return
        results = check_push_answer(doc, resp)
        event("200 " + ",".join(sorted({r["status"] for r in results})))
        applied_hashes_match(srv.db)
        after = ledger_view(srv.db)
    applied = [
        {k: ev[k] for k in WIRE_FIELDS}
        for ev, res in zip(doc["events"], results, strict=True)
        if res["status"] == "applied"
    ]
    # Oracle: the applied events alone, on a pristine copy, make exactly this ledger.
    with base.server() as oracle:
        if applied:
            replay = oracle.http.post(
                "/v1/events",
                content=envelope(doc["terminal_id"], applied),
                headers=base.headers,
            )
            assert replay.status_code == 200
            assert {r["status"] for r in replay.json()["results"]} == {"applied"}
        assert ledger_view(oracle.db) == after, "a non-applied event changed the ledger"


# ---------------------------------------------------------------- hypothesis: other endpoints
cursors = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**20), 10**20).map(str),
    st.integers(0, 40).map(str),
    st.sampled_from(["", "0", "-0", " 3 ", "1_0", "٣", "0x1", "1e3", "3.0", str(2**63 - 1)]),
)
limits = st.one_of(
    st.none(),
    st.text(max_size=5),
    st.integers(-5, 10**20).map(str),
    st.sampled_from(["0", "1", "١٢", "1001"]),
)


@settings(max_examples=scaled(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cursor=cursors, limit=limits)
def test_changes_cursor_fuzz(base: Base, cursor: str, limit: str | None) -> None:
    params = {"cursor": cursor} if limit is None else {"cursor": cursor, "limit": limit}
    base.errors.seen.clear()
    resp = base.shared.http.get("/v1/changes", params=params, headers=base.headers)
    if resp.status_code >= 500:
        event(f"known bug: {known_500(base.errors)}")
        return
    assert resp.status_code in (200, 400, 410), resp.text
    event(str(resp.status_code))
    data = resp.json()
    if resp.status_code == 200:
        after = int(cursor or "0")
        seqs = [c["seq"] for c in data["changes"]]
        assert seqs == sorted(seqs) and all(s > after for s in seqs)
        assert int(data["next_cursor"]) >= after
        assert isinstance(data["more"], bool)
    elif resp.status_code == 410:
        assert data["error"] == "cursor_expired"
    else:
        assert data["error"] in ("bad_cursor", "bad_limit")


lookup_values = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "0001 0000 0001-8", "\x00", "' OR 1=1 --", "%", "*"]),
)


@settings(max_examples=scaled(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_member_lookup_fuzz(base: Base, data: st.DataObject) -> None:
    real = {"code": st.sampled_from(base.codes), "phone_hash": st.sampled_from(base.phones)}
    params = {
        key: data.draw(st.one_of(real[key], lookup_values) if key in real else lookup_values)
        for key in data.draw(
            st.lists(st.sampled_from(["phone_hash", "code", "other"]), unique=True, max_size=3)
        )
    }
    base.errors.seen.clear()
    resp = base.shared.http.get("/v1/members/lookup", params=params, headers=base.headers)
    if resp.status_code >= 500:
        event(f"known bug: {known_500(base.errors)}")
        return
    assert resp.status_code in (200, 400, 404), resp.text
    event(str(resp.status_code))
    if resp.status_code == 200:
        member = resp.json()
        assert member["merged_into"] is None
        asked = params.get("code") or params.get("phone_hash")
        assert asked in (member["code"], member["phone_hash"])
    elif resp.status_code == 400:
        assert resp.json()["error"] == "bad_query"
        assert bool(params.get("code")) == bool(params.get("phone_hash"))
    else:
        assert resp.json()["error"] == "member_not_found"


def either(*options: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Each option equally likely (``st.one_of`` flattens nested one_ofs into leaves)."""
    return st.integers(0, len(options) - 1).flatmap(lambda i: options[i])


enroll_objects = st.fixed_dictionaries(
    {"code": either(st.just("VALID"), st.just("VALID"), st.text(max_size=16), values)},
    optional={
        "name": either(st.text(max_size=100), values),
        "terminal_id": either(st.text(max_size=70), st.just("till-1"), values),
        "extra": values,
    },
).map(lambda d: expand_deep(json.dumps(d)).encode())
enroll_bodies = either(
    st.binary(max_size=40),
    junk.map(lambda v: json.dumps(v).encode()),
    enroll_objects,
    enroll_objects,
)


@settings(max_examples=scaled(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=enroll_bodies)
def test_enroll_body_fuzz(base: Base, body: bytes) -> None:
    bo = base.shared.bo
    if b'"VALID"' in body:
        body = body.replace(b'"VALID"', json.dumps(bo.enroll_code("s1")).encode(), 1)
    with base.shared.db.reading() as tx:
        before = tx.one("SELECT count(*) FROM terminals")[0]
    base.errors.seen.clear()
    resp = base.shared.http.post("/v1/enroll", content=body)
    note(f"{resp.status_code} {resp.text[:200]}")
    with base.shared.db.reading() as tx:
        after = tx.one("SELECT count(*) FROM terminals")[0]
    if resp.status_code >= 500:
        event(f"known bug: {known_500(base.errors)}")
        assert after == before
        return
    assert resp.status_code in (200, 400, 403, 409, 413), resp.text
    event(f"{resp.status_code} {resp.json().get('error', '')}")
    if resp.status_code == 200:
        out = resp.json()
        assert after == before + 1
        term = bo.authenticate(out["token"])
        assert term is not None and term.terminal_id == out["terminal_id"]
        asked = json.loads(body).get("terminal_id")
        assert out["terminal_id"] == (asked or out["terminal_id"])
    else:
        assert after == before


def test_fuzz_helpers_roundtrip() -> None:
    """The deep-nesting marker expands only where it is a whole JSON string."""
    text = json.dumps({"a": DEEP.format(3), "b": "x" + DEEP.format(3)})
    assert json.loads(expand_deep(text)) == {"a": [[[]]], "b": "x" + DEEP.format(3)}

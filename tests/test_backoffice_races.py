"""Read-then-write races in the back office, on the real PostgreSQL (and SQLite): threads
with their own connections call the real service at once (a barrier lines them up), and
exactly one of them may win what only one may have."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import FakeClock
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.tokens import dump_key, open_sealed
from sync.backoffice import member_ops
from sync.backoffice.db import Database
from sync.backoffice.people import users
from sync.backoffice.service import Backoffice
from sync.protocol import ProtocolError

THREADS = 12


@pytest.fixture
def bo(db_url: str) -> Iterator[Backoffice]:
    """A back office whose pool gives each of the ``THREADS`` its own connection."""
    db = Database.open(db_url, pool_size=THREADS)
    office = Backoffice(db, FakeClock())
    office.initialise()
    office.ensure_store("s1", "Тверская")
    yield office
    db.close()


def at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads released together; each one's result or exception."""
    barrier = threading.Barrier(len(calls))
    out: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = calls[i]()
        except Exception as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def codes_of(results: list[Any]) -> list[str]:
    return sorted(r.code if isinstance(r, ProtocolError) else "ok" for r in results)


def test_a_one_time_code_enrolls_one_till_when_requests_race(bo: Backoffice) -> None:
    for _ in range(3):
        code = bo.enroll_code("s1")
        results = at_once([lambda i=i, c=code: bo.enroll(c, f"Касса {i}") for i in range(THREADS)])
        assert codes_of(results) == ["enroll_code_used"] * (THREADS - 1) + ["ok"], results
    assert len(bo.terminals()) == 3


def till_key() -> tuple[X25519PrivateKey, str]:
    key = X25519PrivateKey.generate()
    return key, dump_key(key.public_key())


def test_the_same_request_racing_gets_one_terminal_and_one_token(bo: Backoffice) -> None:
    code = bo.enroll_code("s1")
    key, public = till_key()
    rid = secrets.token_hex(16)
    other_key, other_public = till_key()
    calls: list[Callable[[], Any]] = [
        lambda: bo.enroll(code, "Касса", request_id=rid, public_key=public)
        for _ in range(THREADS - 2)
    ]
    calls.append(
        lambda: bo.enroll(code, "Чужая", request_id=secrets.token_hex(16), public_key=other_public)
    )
    calls.append(lambda: bo.enroll(code, "Старая"))
    results = at_once(calls)
    wins = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ProtocolError)]
    if len(wins) == THREADS - 2:  # the till's request won: every repeat got its answer
        assert [e.code for e in refused] == ["enroll_code_used"] * 2
        assert {(w["terminal_id"], w["sealed_token"]) for w in wins} == {
            (wins[0]["terminal_id"], wins[0]["sealed_token"])
        }
        token = open_sealed(wins[0]["sealed_token"], key).decode()
        assert "token" not in wins[0]
        assert bo.authenticate(token).terminal_id == wins[0]["terminal_id"]
    else:  # another request won the code: every request of the till is refused
        assert len(wins) == 1 and codes_of(refused) == ["enroll_code_used"] * (THREADS - 1)
    assert len(bo.terminals()) == 1
    del other_key


def test_a_repeat_is_answered_until_the_till_confirms_then_the_code_is_spent(
    bo: Backoffice,
) -> None:
    code = bo.enroll_code("s1")
    key, public = till_key()
    rid = secrets.token_hex(16)
    first = bo.enroll(code, "Касса", "till-1", request_id=rid, public_key=public)
    again = bo.enroll(code, "Касса", "till-1", request_id=rid, public_key=public)
    assert again == first
    for other in (
        {"request_id": secrets.token_hex(16), "public_key": public},  # another request
        {"request_id": rid, "public_key": till_key()[1]},  # another till's key
        {},  # an older till
    ):
        with pytest.raises(ProtocolError) as used:
            bo.enroll(code, "Касса", "till-1", **other)
        assert used.value.code == "enroll_code_used"
    term = bo.authenticate(open_sealed(first["sealed_token"], key).decode())
    with pytest.raises(ProtocolError) as wrong:
        bo.confirm_enrollment(term, secrets.token_hex(16))
    assert wrong.value.code == "bad_field"
    results = at_once([lambda: bo.confirm_enrollment(term, rid) for _ in range(4)])
    assert sorted(results) == [False, False, False, True]  # retired exactly once
    with pytest.raises(ProtocolError) as spent:
        bo.enroll(code, "Касса", "till-1", request_id=rid, public_key=public)
    assert spent.value.code == "enroll_code_used"
    with bo.db.reading() as tx:
        assert tx.one("SELECT sealed_token FROM enroll_codes")[0] is None


def test_a_request_id_needs_its_key_and_both_are_checked(bo: Backoffice) -> None:
    code = bo.enroll_code("s1")
    for bad, field in (
        ({"request_id": secrets.token_hex(16)}, "public_key"),
        ({"public_key": till_key()[1]}, "request_id"),
        ({"request_id": "short", "public_key": till_key()[1]}, "request_id"),
        ({"request_id": secrets.token_hex(16), "public_key": "AAAA"}, "public_key"),
    ):
        with pytest.raises(ProtocolError) as e:
            bo.enroll(code, "Касса", **bad)
        assert (e.value.code, e.value.details.get("field")) == ("bad_field", field)
    assert bo.terminals() == []  # nothing claimed by a refused request


def test_wrong_passwords_at_once_each_count_towards_the_lockout(bo: Backoffice) -> None:
    ctx = bo.context
    users.add_user(ctx, "anna", "correct horse battery", "owner")
    n = users.LOCK_AFTER - 1
    results = at_once([lambda: users.sign_in(ctx, "anna", "wrong") for _ in range(n)])
    left = sorted(r.attempts_left for r in results)
    assert left == list(range(1, users.LOCK_AFTER)), left  # each one counted, none lost
    assert users.sign_in(ctx, "anna", "wrong").locked_for  # the next one locks
    assert users.sign_in(ctx, "anna", "correct horse battery").user is None


def _members(bo: Backoffice, n: int) -> list[tuple[str, str]]:
    from datetime import UTC, datetime

    from agent.seed import demo_programme, member_rows

    key = bytes.fromhex(bo.setting("phone_hash_key"))
    bo.load_members(member_rows(n, demo_programme(), key, datetime.now(UTC)), store_id="s1")
    with bo.db.reading() as tx:
        return [(str(r[0]), str(r[1])) for r in tx.all("SELECT member_id, code FROM members")]


def test_merges_racing_for_one_member_merge_it_once(bo: Backoffice) -> None:
    """Every change of a member (console merges and adjustments, the projector's batches)
    runs in a feed transaction, which on PostgreSQL takes the feed's advisory lock first:
    they take turns, and each reads the member after the one before committed."""
    (a, _), (b, _), (_, c_code) = _members(bo, 3)[:3]
    results = at_once(
        [
            lambda s=s: member_ops.merge(bo.context, s, c_code, "дубль", actor="anna")
            for s in (a, b) * 3
        ]
    )
    merged = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if not isinstance(r, str)]
    assert len(merged) == 1, results
    assert {getattr(e, "code", type(e).__name__) for e in refused} == {"merged"}
    with bo.db.reading() as tx:
        into = tx.one("SELECT merged_into FROM members WHERE code = ?", (c_code,))[0]
    assert into in (a, b)


def test_adjustments_at_once_each_change_the_balance(bo: Backoffice) -> None:
    ((member, _),) = _members(bo, 1)
    before = bo.context
    results = at_once(
        [
            lambda: member_ops.adjust(before, member, "10", "жалоба", actor="anna")
            for _ in range(THREADS)
        ]
    )
    balances = sorted(r.balance_after for r in results)
    start = balances[0] - 10
    assert balances == [start + 10 * (i + 1) for i in range(THREADS)]  # none lost

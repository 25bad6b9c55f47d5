"""The console's people and audit log on SQLite and PostgreSQL: users with roles, Argon2
hashes, the lockout (5 wrong passwords in 15 minutes lock a login for 15 minutes, with the
time left), sessions with an expiry, and the hash chain that detects a changed, deleted or
reordered audit row."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sync.backoffice.db import Database
from sync.backoffice.people import audit, roles, users
from sync.backoffice.service import Backoffice
from tests.conftest import FakeClock

PASSWORD = "correct horse 1"


@pytest.fixture
def bo(db_url: str) -> Iterator[Backoffice]:
    office = Backoffice(Database.open(db_url), FakeClock())
    office.initialise()
    try:
        yield office
    finally:
        office.db.close()


def clock(bo: Backoffice) -> FakeClock:
    c = bo.clock
    assert isinstance(c, FakeClock)
    return c


def test_permission_table():
    assert roles.sections("owner") == list(roles.SECTIONS)
    assert "audit" not in roles.sections("analyst")
    assert roles.sections("marketing") == ["coupons", "segments", "rules", "webhooks"]
    assert roles.allows("marketing", "coupons", "write")
    assert not roles.allows("analyst", "coupons", "write")
    assert roles.sections("support") == ["members"]
    assert not roles.allows("store_manager", "audit")
    assert not roles.allows("nobody", "members")


def test_add_user_hashes_with_argon2_and_refuses_bad_input(bo: Backoffice):
    ctx = bo.context
    user = users.add_user(ctx, "Anna", PASSWORD, "owner", name="Анна")
    assert user == users.User("anna", "Анна", "owner", None)
    with bo.db.reading() as tx:
        (stored,) = tx.one("SELECT password_hash FROM console_users WHERE login = 'anna'")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    for login, pw, role, store, code in [
        ("anna", PASSWORD, "owner", None, "user_exists"),
        ("bob", "short", "owner", None, "weak_password"),
        ("bob", PASSWORD, "boss", None, "bad_role"),
        ("Bob Smith", PASSWORD, "owner", None, "bad_login"),
        ("bob", PASSWORD, "store_manager", None, "store_scope"),
        ("bob", PASSWORD, "owner", "s1", "store_scope"),
    ]:
        with pytest.raises(users.UserError) as e:
            users.add_user(ctx, login, pw, role, store_id=store)
        assert e.value.code == code
        assert e.value.message_ru != e.value.message_en
    assert users.get_user(ctx, "bob") is None


def test_sign_in_lockout_and_its_time_left(bo: Backoffice):
    ctx = bo.context
    users.add_user(ctx, "anna", PASSWORD, "support")
    assert users.sign_in(ctx, "anna", PASSWORD).user is not None
    for left in (4, 3, 2, 1):
        assert users.sign_in(ctx, "anna", "wrong").attempts_left == left
    locked = users.sign_in(ctx, "anna", "wrong")
    assert locked.user is None and locked.locked_for == 15 * 60
    clock(bo).advance(minutes=5)
    still = users.sign_in(ctx, "anna", PASSWORD)  # the right password does not unlock
    assert still.user is None and still.locked_for == 10 * 60 + 1
    clock(bo).advance(minutes=10, seconds=1)
    assert users.sign_in(ctx, "anna", PASSWORD).user is not None
    # failures spread over more than the window do not lock
    for _ in range(4):
        users.sign_in(ctx, "anna", "wrong")
    clock(bo).advance(minutes=16)
    assert users.sign_in(ctx, "anna", "wrong").attempts_left == 4
    assert users.sign_in(ctx, "nobody", "wrong") == users.SignIn()
    actions = [e.action for e in reversed(audit.entries(bo.db))]
    assert actions.count("locked_out") == 1 and actions.count("sign_in") == 2
    assert actions.count("sign_in_failed") == 11
    assert audit.verify(bo.db).ok


def test_sessions_expire_and_end(bo: Backoffice):
    ctx = bo.context
    user = users.add_user(ctx, "anna", PASSWORD, "store_manager", store_id="s1")
    assert user.store_scope == "s1"
    assert users.User("o", "O", "owner", None).store_scope is None
    token = users.open_session(ctx, user)
    assert users.session_user(ctx, token) == user
    assert users.session_user(ctx, token + "x") is None
    clock(bo).advance(hours=12)
    assert users.session_user(ctx, token) is None
    token = users.open_session(ctx, user)
    users.change_user(ctx, "anna", actor="owner", active=False)  # ends its sessions
    assert users.session_user(ctx, token) is None
    users.change_user(ctx, "anna", actor="owner", active=True, password="new password 2")
    assert users.sign_in(ctx, "anna", PASSWORD).user is None
    assert users.sign_in(ctx, "anna", "new password 2").user is not None
    changes = [e for e in audit.entries(bo.db) if e.action == "user_changed"]
    assert [c.particulars() for c in reversed(changes)] == [
        {"active": False},
        {"active": True, "password_set": True},
    ]


def _chain(bo: Backoffice, rows: int = 5) -> None:
    with bo.db.transaction() as tx:
        for i in range(rows):
            audit.record(tx, clock(bo).now(), "anna", "test", f"s{i}", {"i": i, "ё": "да"})


def test_the_chain_verifies(bo: Backoffice):
    assert audit.verify(bo.db) == audit.Verdict(True, 0)
    _chain(bo)
    assert audit.verify(bo.db) == audit.Verdict(True, 5)
    first = audit.entries(bo.db)[-1]
    assert first.prev_hash == audit.GENESIS and first.n == 1


@pytest.mark.parametrize(
    ("sql", "broken_at", "reason"),
    [
        ("UPDATE console_audit SET detail = '{\"i\":9}' WHERE n = 3", 3, "hash"),
        ("UPDATE console_audit SET actor = 'mallory' WHERE n = 1", 1, "hash"),
        ("DELETE FROM console_audit WHERE n = 2", 3, "sequence"),
        ("DELETE FROM console_audit WHERE n = 5", 5, "head"),
        ("swap", 2, "link"),  # rows 2 and 4 trade places (their numbers with them)
    ],
)
def test_a_tampered_deleted_or_reordered_row_is_detected(
    bo: Backoffice, sql: str, broken_at: int, reason: str
):
    _chain(bo)
    with bo.db.transaction() as tx:
        if sql == "swap":  # through a free number: the key is unique
            tx.execute("UPDATE console_audit SET n = 100 WHERE n = 2")
            tx.execute("UPDATE console_audit SET n = 2 WHERE n = 4")
            tx.execute("UPDATE console_audit SET n = 4 WHERE n = 100")
        else:
            tx.execute(sql)
    verdict = audit.verify(bo.db)
    assert not verdict.ok
    assert (verdict.broken_at, verdict.reason) == (broken_at, reason)

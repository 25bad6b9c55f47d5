"""The back office's use cases the HTTP handlers and the ``kassa backoffice`` commands
call, one method each (``Backoffice``): a real SQLite back office, a fake clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FakeClock

from sync.backoffice import kpi
from sync.backoffice.db import Database
from sync.backoffice.people.users import UserError, get_user, sign_in
from sync.backoffice.service import Backoffice
from sync.backoffice_api import parse_sent_at
from sync.protocol import ProtocolError


@pytest.fixture
def bo(tmp_path: Path) -> Iterator[Backoffice]:
    db = Database.open(str(tmp_path / "backoffice.db"))
    office = Backoffice(db, FakeClock())
    office.initialise()
    office.ensure_store("s1", "Тверская")
    yield office
    db.close()


def test_authenticate_refuses_a_bad_token_and_notes_the_software(bo: Backoffice) -> None:
    out = bo.enroll(bo.enroll_code("s1"), "Касса 1", "till-1")
    with pytest.raises(ProtocolError) as bad:
        bo.authenticate("not-a-token", "kassa/1.0")
    assert (bad.value.status, bad.value.code) == (401, "bad_token")
    term = bo.authenticate(out["token"], "kassa/1.0\x00")
    assert (term.terminal_id, term.store_id) == ("till-1", "s1")
    assert bo.terminals()[0]["software"] == "kassa/1.0"
    assert bo.authenticate(out["token"]).terminal_id == "till-1"  # no User-Agent: kept
    assert bo.terminals()[0]["software"] == "kassa/1.0"


def test_health_rules_verdicts_and_kpi(bo: Backoffice) -> None:
    out = bo.enroll(bo.enroll_code("s1"), "Касса 1", "till-1")
    active = bo.active_rules()
    assert active.version == bo.active_rules_version()
    assert out["rules"] == {"version": active.version, "document": active.document}
    assert bo.health()._asdict() == {
        "rules_version": active.version,
        "project_backlog": 0,
        "verify_backlog": 0,
    }
    page = bo.verdicts(bo.authenticate(out["token"]), 0, 10)
    assert page["verdicts"] == []
    report = bo.kpi(kpi.period("2026-01-01", "2026-01-31"))
    assert report == kpi.report(bo.context, kpi.period("2026-01-01", "2026-01-31"))


def test_console_users_through_the_backoffice(bo: Backoffice) -> None:
    password = bo.ensure_demo_owner()
    assert password is not None
    assert sign_in(bo.context, "owner", password).user is not None
    assert bo.ensure_demo_owner() is None  # made once; the password is not shown again
    user = bo.add_user("Anna", "долгий пароль 1", "store_manager", store_id="s1")
    assert (user.login, user.role, user.store_id) == ("anna", "store_manager", "s1")
    assert get_user(bo.context, "anna") == user
    with pytest.raises(UserError):
        bo.add_user("anna", "долгий пароль 1", "store_manager", store_id="s1")


def test_sent_at_header() -> None:
    assert parse_sent_at({}) is None and parse_sent_at({"x-kassa-sent-at": ""}) is None
    sent = parse_sent_at({"x-kassa-sent-at": "2026-03-01T10:00:00+03:00"})
    assert sent is not None and sent.utcoffset() is not None
    for text, why in (("yesterday", "not ISO 8601"), ("2026-03-01T10:00:00", "UTC offset")):
        with pytest.raises(ProtocolError) as bad:
            parse_sent_at({"x-kassa-sent-at": text})
        assert bad.value.code == "bad_header" and why in str(bad.value)

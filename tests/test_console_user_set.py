"""``kassa backoffice user set`` (role, password, active through Backoffice.change_user,
audited as ``cli``) and the people page's lockout column: a locked login shows until when,
a new password set from the command line ends the lock."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal
from conftest import FakeClock
from synchelp import SyncASGITransport, portal

from kassa.cli import main
from sync.backoffice.app import create_app
from sync.backoffice.console.guard import PREFIX
from sync.backoffice.db import Database
from sync.backoffice.people import audit, users
from sync.backoffice.people.users import LOCK_AFTER, LOCK_FOR
from sync.backoffice.service import Backoffice

PASSWORD = "correct horse 1"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, json.loads(captured.out)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "bo.db"
    bo = Backoffice(Database.open(str(path)))
    bo.initialise()
    bo.add_user("owner", PASSWORD, "owner")
    bo.add_user("sam", PASSWORD, "support", name="Семён")
    bo.db.close()
    return path


def _office(db: Path) -> Backoffice:
    return Backoffice(Database.open(str(db)))


def test_user_set_role_active_and_password(db: Path, capsys, monkeypatch) -> None:
    base = ["backoffice", "user", "set", "--db", str(db)]
    code, out = run(capsys, *base, "--login", "Sam", "--role", "analyst")
    assert code == 0 and out["role"] == "analyst" and out["password_set"] is False
    code, out = run(capsys, *base, "--login", "sam", "--active", "no")
    assert code == 0 and out["active"] is False
    bo = _office(db)
    try:
        assert bo.sign_in("sam", PASSWORD).user is None  # blocked
    finally:
        bo.db.close()
    monkeypatch.setattr("sys.stdin", io.StringIO("brand new pass\n"))
    code, out = run(capsys, *base, "--login", "sam", "--active", "yes", "--password-stdin")
    assert code == 0 and out["active"] is True and out["password_set"] is True
    assert "brand new pass" not in json.dumps(out)
    answers = iter(["one pass 111", "two pass 222"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, out = run(capsys, *base, "--login", "sam", "--password")
    assert code == 2 and out["error"] == "passwords_differ"
    bo = _office(db)
    try:
        assert bo.sign_in("sam", "brand new pass").user is not None
        changed = [e for e in audit.entries(bo.db) if e.action == "user_changed"]
        assert [(e.actor, e.particulars()) for e in reversed(changed)] == [
            ("cli", {"role": "analyst"}),
            ("cli", {"active": False}),
            ("cli", {"active": True, "password_set": True}),
        ]
    finally:
        bo.db.close()


def test_user_set_refusals(db: Path, capsys, monkeypatch) -> None:
    base = ["backoffice", "user", "set", "--db", str(db)]
    code, out = run(capsys, *base, "--login", "sam")
    assert code == 2 and out["error"] == "nothing_to_change" and out["message_ru"]
    code, out = run(capsys, *base, "--login", "nobody", "--role", "analyst")
    assert code != 0 and out["error"] == "user_not_found"
    code, out = run(capsys, *base, "--login", "sam", "--role", "boss")
    assert code != 0 and out["error"] == "bad_role"
    code, out = run(capsys, *base, "--login", "sam", "--role", "store_manager")
    assert code != 0 and out["error"] == "store_scope"
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, out = run(capsys, *base, "--login", "sam", "--password-stdin", "--role", "analyst")
    assert code != 0 and out["error"] == "weak_password"
    code, out = run(capsys, *base, "--login", "sam", "--active", "maybe")
    assert code == 2 and "maybe" in json.dumps(out, ensure_ascii=False)
    bo = _office(db)
    try:
        sam = next(u for u in bo.list_users() if u.login == "sam")
        assert (sam.role, sam.active) == ("support", True)  # nothing half-written
        assert not [e for e in audit.entries(bo.db) if e.action == "user_changed"]
    finally:
        bo.db.close()


@pytest.fixture
def pages() -> Any:
    with portal() as p:
        yield p


def test_the_people_page_shows_a_lockout_until_a_new_password(
    db: Path, capsys, monkeypatch, pages: BlockingPortal
) -> None:
    clock = FakeClock()
    bo = Backoffice(Database.open(str(db)), clock)
    try:
        for _ in range(LOCK_AFTER):
            bo.sign_in("sam", "wrong password")
        until = (clock.now() + LOCK_FOR).isoformat()
        sam = next(u for u in bo.list_users() if u.login == "sam")
        assert sam.locked_until == until
        transport = SyncASGITransport(create_app(bo, verifier=False), pages)
        with httpx.Client(transport=transport, base_url="http://bo") as c:
            token = re.search(r'name="csrf" value="([^"]+)"', c.get(f"{PREFIX}/signin").text)
            assert token
            form = {"csrf": token[1], "login": "owner", "password": PASSWORD}
            assert c.post(f"{PREFIX}/signin", data=form).status_code == 303
            html = c.get(f"{PREFIX}/users").text
            row = re.search(r'<tr data-login="sam">.*?</tr>', html, re.S)
            assert row and f'data-locked="{until}"' in row[0]
            assert "вход заблокирован до " + until[:16].replace("T", " ") + " UTC" in row[0]
            owner = re.search(r'<tr data-login="owner">.*?</tr>', html, re.S)
            assert owner and "data-locked" not in owner[0]
            clock.advance(seconds=LOCK_FOR.total_seconds() + 1)
            assert "data-locked" not in c.get(f"{PREFIX}/users").text  # it ran out
            clock.advance(seconds=-(LOCK_FOR.total_seconds() + 1))
            assert 'data-locked="' in c.get(f"{PREFIX}/users").text
            monkeypatch.setattr("sys.stdin", io.StringIO("fresh pass 123\n"))
            code, _ = run(
                capsys,
                *("backoffice", "user", "set", "--db", str(db), "--login", "sam"),
                "--password-stdin",
            )
            assert code == 0
            assert "data-locked" not in c.get(f"{PREFIX}/users").text
        assert users.sign_in(bo.context, "sam", "fresh pass 123").user is not None
    finally:
        bo.db.close()

"""``kassa backoffice user add`` and the console's demo login from ``kassa backoffice seed``:
JSON out, the CLI's error contract for a refused user, the password never printed."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from kassa.cli import main
from sync.backoffice.db import Database
from sync.backoffice.people import audit, users
from sync.backoffice.service import Backoffice


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, json.loads(captured.out)


def signs_in(db: Path, login: str, password: str) -> bool:
    bo = Backoffice(Database.open(str(db)))
    try:
        return users.sign_in(bo.context, login, password).user is not None
    finally:
        bo.db.close()


def test_seed_prints_the_demo_owner_login_once(tmp_path: Path, capsys):
    db = tmp_path / "bo.db"
    code, out = run(capsys, "backoffice", "seed", "--db", str(db), "--members", "2")
    assert code == 0
    login = out["console"]
    assert login["login"] == "owner" and login["path"] == "/console/"
    assert signs_in(db, "owner", login["password"])
    code, out = run(capsys, "backoffice", "seed", "--db", str(db), "--members", "2")
    assert code == 0 and out["console"] == {"path": "/console/", "login": "owner", "password": None}
    assert signs_in(db, "owner", login["password"])  # kept, not replaced


def test_user_add_from_stdin(tmp_path: Path, capsys, monkeypatch):
    db = tmp_path / "bo.db"
    run(capsys, "backoffice", "seed", "--db", str(db), "--members", "0")
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret-pass\n"))
    argv = ["backoffice", "user", "add", "--db", str(db), "--password-stdin"]
    code, out = run(capsys, *argv, "--login", "Mgr1", "--role", "store_manager", "--store-id", "s1")
    assert code == 0
    assert out == {"login": "mgr1", "name": "mgr1", "role": "store_manager", "store_id": "s1"}
    assert "s3cret-pass" not in json.dumps(out)
    assert signs_in(db, "mgr1", "s3cret-pass")
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    code, out = run(capsys, *argv, "--login", "x2", "--role", "support")
    assert code == 2 and out["error"] == "weak_password" and out["message_ru"]
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough 1\n"))
    code, out = run(capsys, *argv, "--login", "x2", "--role", "boss")
    assert code == 2 and out["error"] == "bad_role"
    bo = Backoffice(Database.open(str(db)))
    try:
        added = [e for e in audit.entries(bo.db) if e.action == "user_added"]
        assert [(e.actor, e.subject) for e in added] == [("cli", "mgr1"), ("seed", "owner")]
    finally:
        bo.db.close()


def test_user_add_asks_twice(tmp_path: Path, capsys, monkeypatch):
    db = tmp_path / "bo.db"
    run(capsys, "backoffice", "seed", "--db", str(db), "--members", "0")
    answers = iter(["first pass 1", "other pass 2"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    code, out = run(
        capsys, "backoffice", "user", "add", "--db", str(db), "--login", "ann", "--role", "analyst"
    )
    assert code == 2 and out["error"] == "passwords_differ"
    answers = iter(["same pass 1", "same pass 1"])
    code, out = run(
        capsys, "backoffice", "user", "add", "--db", str(db), "--login", "ann", "--role", "analyst"
    )
    assert code == 0 and out["role"] == "analyst"

"""The back-office and sync commands keep the CLI's error contract: one JSON object
``{"error", "title", "message_ru", "message_en", "details"}``, a line on stderr, exit 2
(bad input, not found, refused) or 3 (database), and 4 only when the back office cannot
be reached. No traceback, and no database made by a command that only reads one."""

from __future__ import annotations

import json
import os
import secrets
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from kassa.cli import main
from kassa.demo_sync import LoopbackServer
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice

PG_ADMIN_URL = os.environ.get("KASSA_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
ERROR_KEYS = {"error", "title", "message_ru", "message_en", "details"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, json.loads(captured.out), captured.err


def assert_error(out: dict[str, Any], code: str) -> None:
    assert set(out) == ERROR_KEYS, out
    assert out["error"] == code, out
    assert out["message_ru"] and out["message_en"] and out["message_ru"] != out["message_en"]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


@pytest.fixture
def backoffice(tmp_path: Path) -> Iterator[tuple[str, Backoffice]]:
    path = str(tmp_path / "bo.db")
    bo = Backoffice(Database.open(path))
    bo.initialise()
    bo.ensure_store("s1", "Тверская")
    yield path, bo
    bo.db.close()


@pytest.mark.parametrize(
    ("dates", "field"),
    [(("2026-12-31", "2026-12-01"), None), (("2026-13-01", "2026-12-01"), "from")],
)
def test_report_bad_period(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    backoffice: tuple[str, Backoffice],
    dates: tuple[str, str],
    field: str | None,
) -> None:
    db, _ = backoffice
    code, out, err = run(
        capsys, "backoffice", "report", "--db", db, "--from", dates[0], "--to", dates[1]
    )
    assert code == 2
    assert_error(out, "bad_period")
    assert out["details"].get("field") == field
    assert err.startswith("kassa: Неверный период: ")
    # checked before anything is opened: a missing database is not even created
    missing = tmp_path / "other.db"
    code, out, _ = run(
        capsys, "backoffice", "report", "--db", str(missing), "--from", dates[0], "--to", dates[1]
    )
    assert code == 2 and out["error"] == "bad_period" and not missing.exists()


def test_kpi_endpoint_still_answers_400_bad_period(
    capsys: pytest.CaptureFixture[str], backoffice: tuple[str, Backoffice]
) -> None:
    _, bo = backoffice
    token = bo.new_admin_token()
    with LoopbackServer(bo) as server, httpx.Client(base_url=server.url) as http:
        r = http.get(
            "/v1/kpi",
            params={"from": "2026-12-31", "to": "2026-12-01"},
            headers={"authorization": f"Bearer {token}"},
        )
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert {k: r.json()[k] for k in ("error", "message")} == {
        "error": "bad_period",
        "message": "to is before from",
    }


@pytest.mark.parametrize(
    "argv",
    [
        ["report"],
        ["report", "--json"],
        ["enroll-code", "--store-id", "s9"],
        ["admin-token"],
        ["publish-rules", "agent/data/demo_programme.toml"],
    ],
)
def test_commands_that_read_a_back_office_do_not_create_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    missing = tmp_path / "nonexist.db"
    rules = Path(__file__).parent.parent / "agent" / "data" / "demo_programme.toml"
    argv = [str(rules) if a.endswith(".toml") else a for a in argv]
    code, out, err = run(capsys, "backoffice", *argv[:1], "--db", str(missing), *argv[1:])
    assert code == 2
    assert_error(out, "backoffice_not_found")
    assert out["details"] == {"path": str(missing)}
    assert "kassa backoffice serve" in out["message_en"]
    assert err.startswith("kassa: Бэк-офис не найден: ")
    assert list(tmp_path.iterdir()) == []  # no nonexist.db, -wal or -shm


def test_a_file_that_is_not_a_back_office_is_refused_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    till = tmp_path / "till.db"
    with sqlite3.connect(till) as conn:
        conn.execute("CREATE TABLE members (member_id TEXT)")
    conn.close()
    before = till.read_bytes()
    code, out, _ = run(capsys, "backoffice", "report", "--db", str(till))
    assert code == 2
    assert_error(out, "backoffice_not_found")
    assert "not a back office" in out["message_en"]
    assert till.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["till.db"]


def test_serve_and_seed_still_create_a_new_back_office(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "new" / "bo.db"
    code, out, _ = run(
        capsys, "backoffice", "seed", "--db", str(db), "--members", "3", "--stores", "1"
    )
    assert code == 0 and out["members_loaded"] == 3 and db.exists()
    code, out, _ = run(capsys, "backoffice", "report", "--db", str(db), "--json")
    assert code == 0 and out["totals"]["cheques"] == 0
    code, out, _ = run(capsys, "backoffice", "enroll-code", "--db", str(db), "--store-id", "s2")
    assert code == 0 and out["store_id"] == "s2"


def test_one_demo_seed_serves_the_command_and_the_demos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bo = Backoffice(Database.open(str(tmp_path / "bo.db")))
    try:
        counted: list[int] = []

        def count(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
            for row in rows:
                counted.append(1)
                yield row

        assert bo.seed_demo({"a": "A", "b": "B"}, 4, progress=count) == (0, 4)
        assert len(counted) == 4 and bo.member_count() == 4
        assert bo.seed_demo({"a": "A"}, 4) == (4, 0)  # a second seed loads nobody twice
        assert bo.member_count() == 4
        with bo.db.reading() as tx:
            assert tx.all("SELECT DISTINCT store_id FROM members") == [("a",)]
        assert bo.enroll_code("c", store_name="C")  # a new store, made for its code
        with bo.db.reading() as tx:
            assert tx.one("SELECT name FROM stores WHERE store_id = 'c'") == ("C",)
    finally:
        bo.db.close()
    code, out, _ = run(capsys, "backoffice", "seed", "--db", str(tmp_path / "bo.db"))
    assert code == 0 and (out["members_before"], out["members_loaded"]) == (4, 0)
    assert sorted(out["enroll_codes"]) == ["s1", "s2"]


def test_missing_postgresql_database_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/kassa_absent_{secrets.token_hex(4)}"
    code, out, err = run(capsys, "backoffice", "report", "--db", url)
    assert code == 3
    assert_error(out, "backoffice_db_error")
    assert "does not exist" in out["details"]["reason"]
    assert err.startswith("kassa: Ошибка базы бэк-офиса: ")
    # a password in the URL is not repeated in the error (trust auth here ignores it)
    parts = urlsplit(url)
    user = parts.username or "postgres"
    netloc = f"{user}:hunter2@{parts.hostname}:{parts.port or 5432}"
    with_password = parts._replace(netloc=netloc).geturl()
    code, out, err = run(capsys, "backoffice", "report", "--db", with_password)
    assert code == 3 and "hunter2" not in json.dumps(out) + err
    assert f"{user}:***@" in out["details"]["db"]


def test_enroll_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backoffice: tuple[str, Backoffice]
) -> None:
    _, bo = backoffice
    used = bo.enroll_code("s1")
    bo.enroll(used, "first till")
    store = tmp_path / "till.db"
    with LoopbackServer(bo) as server:
        code, out, err = run(
            capsys, "enroll", "--url", server.url, "--code", used, "--store", str(store)
        )
        assert code == 2
        assert_error(out, "enroll_code_used")
        assert "уже использован" in out["message_ru"]
        assert "enrollment code was already used" in out["message_en"]
        assert out["message_en"].count("enrollment refused") == 1, out["message_en"]
        assert err.startswith("kassa: Бэк-офис отказал: ")
        code, out, _ = run(
            capsys, "enroll", "--url", server.url, "--code", "NOPE-NOPE", "--store", str(store)
        )
        assert code == 2
        assert_error(out, "bad_enroll_code")
    assert not store.exists()
    code, out, err = run(
        capsys,
        "enroll",
        "--url",
        closed_port_url(),
        "--code",
        bo.enroll_code("s1"),
        "--store",
        str(store),
    )
    assert code == 4
    assert_error(out, "backoffice_unreachable")
    assert err.startswith("kassa: Нет связи с бэк-офисом: ")
    assert not store.exists()


def test_enrolled_but_snapshot_failed_says_so_and_sync_now_loads_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    backoffice: tuple[str, Backoffice],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import UTC, datetime

    from agent.seed import demo_programme, member_rows
    from sync.client import SyncClient, TransientError

    _, bo = backoffice
    key = bytes.fromhex(bo.setting("phone_hash_key"))
    bo.load_members(member_rows(5, demo_programme(), key, datetime.now(UTC)), store_id="s1")
    store = str(tmp_path / "till.db")
    real_bootstrap = SyncClient.bootstrap

    def cut(self: SyncClient, progress: Any = None) -> int:
        raise TransientError("snapshot interrupted: connection reset")

    monkeypatch.setattr(SyncClient, "bootstrap", cut)
    with LoopbackServer(bo) as server:
        code, out, _ = run(
            capsys, "enroll", "--url", server.url, "--code", bo.enroll_code("s1"), "--store", store
        )
        assert code == 4
        assert_error(out, "backoffice_unreachable")
        assert "kassa sync now" in out["message_ru"] and out["details"]["store"] == store
        monkeypatch.setattr(SyncClient, "bootstrap", real_bootstrap)
        code, out, _ = run(capsys, "sync", "now", "--store", store)
        assert code == 0 and out["pulled"] == 5


def test_sync_now_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], backoffice: tuple[str, Backoffice]
) -> None:
    db, bo = backoffice
    store = str(tmp_path / "till.db")
    with LoopbackServer(bo) as server:
        code, _, _ = run(
            capsys, "enroll", "--url", server.url, "--code", bo.enroll_code("s1"), "--store", store
        )
        assert code == 0
        # unreachable: exit 4, the documented error shape, the queue kept and reported
        code, out, err = run(capsys, "sync", "now", "--store", store, "--url", closed_port_url())
        assert code == 4
        assert_error(out, "backoffice_unreachable")
        assert out["details"]["events_waiting"] == 0 and "reason" in out["details"]
        assert err.startswith("kassa: Нет связи с бэк-офисом: ")
        code, status, _ = run(capsys, "sync", "status", "--store", store)
        assert code == 0 and status["last_error"]
    # refused: the till's token was revoked (a back office started afresh: no cached token)
    with bo.db.transaction() as tx:
        tx.execute("UPDATE terminals SET revoked = 1")
    fresh = Backoffice(Database.open(db))
    with LoopbackServer(fresh) as server:
        code, out, _ = run(capsys, "sync", "now", "--store", store, "--url", server.url)
    fresh.db.close()
    assert code == 2
    assert_error(out, "bad_token")
    assert "kassa enroll" in out["message_ru"]
    # sync status of a store that is not there: the store error, exit 3
    code, out, _ = run(capsys, "sync", "status", "--store", str(tmp_path / "none.db"))
    assert code == 3
    assert_error(out, "store_error")


@pytest.mark.parametrize(
    "argv",
    [
        ("backoffice", "seed", "--members", "-5"),
        ("backoffice", "seed", "--stores", "0"),
        ("backoffice", "report", "--nope"),
        ("enroll", "--url", "http://127.0.0.1:1"),  # --code missing
        ("sync", "now", "--bogus"),
        ("sync", "status", "extra"),
    ],
)
def test_argument_errors_are_the_error_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, ...]
) -> None:
    """These commands print JSON, so a wrong argument is the error JSON (exit 2), not
    argparse's usage text, and nothing is created."""
    db = str(tmp_path / "bo.db")
    extra = ("--db", db) if argv[0] == "backoffice" else ()
    code, out, err = run(capsys, *argv, *extra)
    assert code == 2
    assert_error(out, "bad_arguments")
    assert "kassa:" in err
    assert not list(tmp_path.iterdir())


def test_enroll_against_a_back_office_that_cannot_answer_now_is_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A back office that answers 503 (its database down) or 429 has not refused the till:
    exit 4 (try again, the code is still good), not 2, and no store is made."""
    import http.server
    import threading

    for status in (503, 429):

        class Busy(http.server.BaseHTTPRequestHandler):
            answer = status

            def do_POST(self) -> None:
                body = b'{"error": "db_unavailable", "message": "database unavailable"}'
                self.send_response(self.answer)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            store = tmp_path / f"till-{status}.db"
            code, out, _ = run(
                capsys, "enroll", "--url", url, "--code", "AB", "--store", str(store)
            )
        finally:
            server.shutdown()
            server.server_close()
        assert code == 4, out
        assert_error(out, "backoffice_unreachable")
        assert f"HTTP {status}" in out["message_en"]
        assert not store.exists()

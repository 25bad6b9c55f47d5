"""The back office as deployed: the database URL from a file (never the command line),
backup and restore through the CLI for SQLite (online, while the back office has it open)
and PostgreSQL (pg_dump / pg_restore against the real server), and readiness under a
service manager. Real processes, real databases."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from test_posapi_serve import free_port
from test_sdnotify import FakeSystemd

from kassa.backoffice_backup import _pg_args
from sync.backoffice.db import Database
from sync.backoffice.service import Backoffice

KASSA = [sys.executable, "-m", "kassa.cli"]


def kassa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KASSA, *args], capture_output=True, text=True, timeout=120, check=False)


def url_file(tmp_path: Path, url: str) -> Path:
    f = tmp_path / "db-url"
    f.write_text(url + "\n", encoding="utf-8")
    f.chmod(0o600)
    return f


def stores(url: str) -> list[str]:
    bo = Backoffice(Database.open(url))
    try:
        with bo.db.reading() as tx:
            return [r[0] for r in tx.all("SELECT store_id FROM stores ORDER BY store_id")]
    finally:
        bo.db.close()


def open_backoffice(url: str) -> Backoffice:
    bo = Backoffice(Database.open(url))
    bo.initialise()
    return bo


def test_sqlite_backup_of_a_live_back_office_and_its_restore(tmp_path: Path) -> None:
    db = tmp_path / "backoffice.db"
    live = open_backoffice(str(db))
    try:
        live.ensure_store("s1", "Магазин 1")
        live.ensure_store("s2", "Магазин 2")
        assert db.with_name("backoffice.db-wal").exists()  # recent writes still in the WAL
        out = kassa("backoffice", "backup", str(tmp_path / "bo.bak"), "--db-file",
                    str(url_file(tmp_path, str(db))))  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr
        made = json.loads(out.stdout)
        assert made["quick_check"] == "ok"
        backup = Path(made["backup"])
        assert backup.stat().st_mode & 0o777 == 0o600
        assert not backup.with_name("bo.bak.partial").exists()
        live.ensure_store("s3", "после копии")
    finally:
        live.db.close()
    again = kassa("backoffice", "backup", str(backup), "--db", str(db))
    assert again.returncode == 2 and json.loads(again.stdout)["error"] == "bad_input"

    done = kassa("backoffice", "restore", str(backup), "--db", str(db))
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert stores(str(db)) == ["s1", "s2"]
    previous = Path(result["previous_saved_as"])
    assert stores(str(previous)) == ["s1", "s2", "s3"]
    assert db.stat().st_mode & 0o777 == 0o600 and previous.stat().st_mode & 0o777 == 0o600


def test_restore_refuses_a_file_that_is_not_a_backup(tmp_path: Path) -> None:
    db = tmp_path / "backoffice.db"
    open_backoffice(str(db)).db.close()
    junk = tmp_path / "junk.bak"
    junk.write_bytes(b"not a database at all" * 100)
    out = kassa("backoffice", "restore", str(junk), "--db", str(db))
    assert out.returncode == 3 and json.loads(out.stdout)["error"] == "backup_failed"
    assert stores(str(db)) == []  # untouched, nothing saved beside it
    assert not list(tmp_path.glob("backoffice.db.before-restore-*"))


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="PostgreSQL client not installed")
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_backup_and_restore_with_pg_dump(tmp_path: Path, db_url: str) -> None:
    bo = open_backoffice(db_url)
    try:
        bo.ensure_store("s1", "Магазин 1")
    finally:
        bo.db.close()
    secret = url_file(tmp_path, db_url)
    dump = tmp_path / "bo.dump"
    out = kassa("backoffice", "backup", str(dump), "--db-file", str(secret))
    assert out.returncode == 0, out.stdout + out.stderr
    assert dump.stat().st_mode & 0o777 == 0o600 and dump.read_bytes()[:5] == b"PGDMP"

    bo = open_backoffice(db_url)
    try:
        bo.ensure_store("s2", "после копии")
    finally:
        bo.db.close()
    done = kassa("backoffice", "restore", str(dump), "--db-file", str(secret))
    assert done.returncode == 0, done.stdout + done.stderr
    assert stores(db_url) == ["s1"]


def test_a_password_goes_to_pg_tools_in_the_environment_not_their_arguments() -> None:
    plain, env = _pg_args("postgresql://kassa:s3cret@db.local:5432/kassa")
    assert plain == "postgresql://kassa@db.local:5432/kassa" and env["PGPASSWORD"] == "s3cret"
    plain, env = _pg_args("postgresql://kassa@db.local/kassa")
    assert plain == "postgresql://kassa@db.local/kassa"


@pytest.mark.parametrize("content", [None, ""])
def test_a_missing_or_empty_db_file_is_an_error_naming_it(tmp_path: Path, content: str | None):
    f = tmp_path / "db-url"
    if content is not None:
        f.write_text(content, encoding="utf-8")
    out = kassa("backoffice", "terminals", "--db-file", str(f))
    assert out.returncode == 3
    err = json.loads(out.stdout)
    assert err["error"] == "backoffice_db_error" and str(f) in err["message_en"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_seed_does_not_print_the_database_password(tmp_path: Path, db_url: str) -> None:
    # The test server trusts loopback, so a password in the URL is accepted and ignored.
    url = db_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2-secret@")
    assert "hunter2-secret" in url
    out = kassa("backoffice", "seed", "--members", "0", "--db-file", str(url_file(tmp_path, url)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["db"] == url.replace("hunter2-secret", "***")
    assert "hunter2-secret" not in out.stdout + out.stderr


def test_backoffice_serve_says_ready_once_listening_and_stops_on_sigterm(tmp_path: Path) -> None:
    systemd = FakeSystemd(tmp_path / "notify.sock")
    port = free_port()
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(systemd.path),
        "KASSA_BACKOFFICE_DB": str(tmp_path / "backoffice.db"),
    }
    proc = subprocess.Popen(
        [*KASSA, "backoffice", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        ready = systemd.next()
        assert ready.startswith("READY=1\n") and f"127.0.0.1:{port}" in ready
        assert httpx.get(f"http://127.0.0.1:{port}/v1/live", timeout=10).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert systemd.next() == "STOPPING=1"
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        systemd.close()
    assert (tmp_path / "backoffice.db").exists()  # from $KASSA_BACKOFFICE_DB

"""Every SQLite file Kassa creates (till store, its WAL and lock, back-office database,
scratch files) is owner-only (0600) whatever the umask: they hold member data and keys."""

import json
import os
import stat

import pytest
from test_cli import run_cli

from agent.private import create_private, prepare_sqlite_file
from agent.store import Store
from sync.backoffice.db import SqliteDatabase

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_kassa_init_makes_an_owner_only_store_and_doctor_is_quiet_about_it(tmp_path, loose_umask):
    store = tmp_path / "till.db"
    env = {"KASSA_CONFIG": str(tmp_path / "none.toml")}
    run = run_cli(["init", "--store", str(store)], env=env)
    assert run.returncode == 0, run.stderr
    made = sorted(p.name for p in tmp_path.iterdir())
    assert "till.db" in made
    for name in made:
        assert mode(tmp_path / name) == 0o600, (name, oct(mode(tmp_path / name)))
    doctor = run_cli(["doctor", "--store", str(store), "--json"], env=env)
    findings = json.loads(doctor.stdout)["findings"]
    assert not [f for f in findings if "readable by other" in json.dumps(f, ensure_ascii=False)]


def test_store_wal_shm_and_lock_are_owner_only(tmp_path, loose_umask):
    path = tmp_path / "till.db"
    store = Store(path)
    try:
        with store.write() as conn:
            conn.execute("CREATE TABLE t(x)")
            conn.execute("INSERT INTO t VALUES (1)")
        for suffix in ("", "-wal", "-shm", ".lock"):
            p = tmp_path / f"till.db{suffix}"
            assert p.exists() and mode(p) == 0o600, (suffix, oct(mode(p)))
    finally:
        store.close()


def test_an_existing_loose_store_is_tightened_on_open(tmp_path, loose_umask):
    path = tmp_path / "till.db"
    Store(path).close()
    path.chmod(0o644)
    Store(path).close()
    assert mode(path) == 0o600


def test_backoffice_database_is_owner_only(tmp_path, loose_umask):
    path = tmp_path / "bo" / "backoffice.db"
    db = SqliteDatabase(path)
    try:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE t(x)")
        for p in path.parent.iterdir():
            assert mode(p) == 0o600, (p.name, oct(mode(p)))
    finally:
        db.close()


def test_create_private_ignores_a_wide_open_umask(tmp_path):
    old = os.umask(0)
    try:
        assert create_private(tmp_path / "k") is True
        assert create_private(tmp_path / "k") is False
        prepare_sqlite_file(tmp_path / "x" / "s.db")
    finally:
        os.umask(old)
    assert mode(tmp_path / "k") == 0o600
    assert mode(tmp_path / "x" / "s.db") == 0o600

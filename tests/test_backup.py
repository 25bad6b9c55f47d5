"""`kassa store backup|restore`: an online backup through SQLite's backup API while the
agent writes, and a restore that gives the till a new terminal epoch so the back office
never takes its new events for duplicates of the original's."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from cluster import Cluster
from synchelp import portal

from agent.errors import StoreLockedError
from agent.store import Store
from kassa.till_backup import backup_store, restore_store
from tests.conftest import Till

M1 = "m00000001"


def rows(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_backup_while_the_store_is_open_and_writing(till: Till, tmp_path):
    from tests.test_service import checkout

    checkout(till, "R-1")
    dest = tmp_path / "b" / "till-backup.db"
    info = backup_store(till.path, dest)  # the till still owns and writes its store
    checkout(till, "R-2")
    assert info["quick_check"] == "ok" and info["last_seq"] == 1
    assert dest.stat().st_mode & 0o777 == 0o600  # it holds the phone-hash key
    assert rows(dest, "SELECT receipt_id FROM purchases") == [("R-1",)]
    assert rows(dest, "PRAGMA journal_mode") == [("delete",)]  # one self-contained file
    assert not dest.with_name(dest.name + ".partial").exists()
    with pytest.raises(Exception, match="already exists"):
        backup_store(till.path, dest)


def test_restore_refused_while_an_agent_owns_the_store(till: Till, tmp_path):
    dest = tmp_path / "backup.db"
    backup_store(till.path, dest)
    before = till.store.meta("terminal_epoch")
    with pytest.raises(StoreLockedError):
        restore_store(dest, till.path)
    assert till.store.meta("terminal_epoch") == before


def test_restore_over_cli_keeps_the_old_store_and_changes_epoch(tmp_path, clock):
    from tests.test_service import checkout

    till = Till(tmp_path / "till.db", clock, members=20)
    checkout(till, "R-1")
    old_epoch = till.store.meta("terminal_epoch")
    till.store.close()
    kassa = [sys.executable, "-m", "kassa.cli", "store"]
    made = subprocess.run(
        [*kassa, "backup", "--store", str(till.path), str(tmp_path / "b.db")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(made.stdout)["last_seq"] == 1
    done = subprocess.run(
        [*kassa, "restore", "--store", str(till.path), str(tmp_path / "b.db")],
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout)
    assert out["terminal_epoch"] != old_epoch and out["events_waiting"] == 1
    assert Path(out["previous_saved_as"]).exists()
    with Store(till.path) as store:
        assert store.meta("terminal_epoch") == out["terminal_epoch"]
        # The pending event keeps the epoch it was made in.
        assert store.one("SELECT terminal_epoch FROM outbox")[0] == old_epoch
        assert "0003_holds" in store.applied_migrations()


def test_restored_till_syncs_without_false_duplicates(tmp_path):
    with portal() as p:
        cluster = Cluster(tmp_path, str(tmp_path / "backoffice.db"), p)
        try:
            till = cluster.till()
            till.sale("R1", M1, ("BG-7001", 1))
            backup_store(till.path, tmp_path / "backup.db")
            till.sale("R2", M1, ("BG-7001", 1))  # the original goes on past the backup
            till.client.drain()
            till.close()
            restore_store(tmp_path / "backup.db", till.path)
            till.open()
            till.sale("R3", M1, ("BG-7001", 1))  # seq 2 again, under the new epoch
            report = till.client.drain()
            assert report.acked == 2 and report.quarantined == 0  # R1 duplicate, R3 applied
            assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 3
            assert cluster.ledger("SELECT count(*) FROM epochs")[0][0] == 2
        finally:
            cluster.close()

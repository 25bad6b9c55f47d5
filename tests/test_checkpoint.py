"""WAL checkpoints run by the store's background thread, off the sale path (agent.checkpoint).

No timing here (that is bench/checkout.py): these tests check that the thread is started by
commits, copies the log into the database file, leaves sales durable and complete, stops
with the store, and that the sale connection keeps SQLite's own checkpoint as a safety net.
"""

from __future__ import annotations

import sqlite3

from agent import checkpoint
from agent.results import CheckoutRequest
from agent.store import Store
from tests.conftest import make_cart


def wait_for_runs(store: Store, runs: int) -> checkpoint.CheckpointStats:
    """Block until the checkpointer has finished ``runs`` checkpoints (a generous failsafe
    bound only stops a broken thread from hanging the suite; nothing is timed)."""
    cp = store.checkpointer
    with cp.done:
        assert cp.done.wait_for(lambda: cp.stats.runs + cp.stats.errors >= runs, timeout=60)
        return checkpoint.CheckpointStats(**vars(cp.stats))


def write_rows(store: Store, n: int) -> None:
    for i in range(n):
        with store.write() as conn:
            Store.set_meta(conn, f"k{i}", "x" * 3000)


def test_commits_start_background_checkpoints_that_copy_the_log(tmp_path):
    store = Store(tmp_path / "till.db", checkpoint_every=4)
    try:
        assert store.one("PRAGMA wal_autocheckpoint")[0] == checkpoint.SAFETY_NET_PAGES
        write_rows(store, 12)  # + the migrations' own write
        stats = wait_for_runs(store, 1)
        assert stats.errors == 0, stats.last_error
        assert stats.runs >= 1 and stats.frames_copied > 0
        # Everything written is there, read through the sale connection.
        assert store.one("SELECT count(*) FROM meta WHERE key LIKE 'k%'")[0] == 12
    finally:
        store.close()
    assert store.checkpointer._thread is None  # stopped and joined by close()
    # A fresh connection sees every row: the log was checkpointed or replayed, never lost.
    conn = sqlite3.connect(tmp_path / "till.db")
    try:
        assert conn.execute("SELECT count(*) FROM meta WHERE key LIKE 'k%'").fetchone()[0] == 12
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    finally:
        conn.close()


def test_no_thread_until_enough_commits_and_none_when_disabled(tmp_path):
    lazy = Store(tmp_path / "a.db", checkpoint_every=1000)
    off = Store(tmp_path / "b.db", checkpoint_every=0)
    try:
        write_rows(lazy, 3)
        write_rows(off, 3)
        assert lazy.checkpointer._thread is None  # a till that sold nothing runs no thread
        assert off.checkpointer._thread is None
        # Disabled: SQLite's default automatic checkpoint (inside commits) stays.
        assert off.one("PRAGMA wal_autocheckpoint")[0] == 1000
        assert off.one("PRAGMA synchronous")[0] == 2  # FULL either way
    finally:
        lazy.close()
        off.close()


def test_a_stopped_checkpointer_starts_again_on_the_next_commits(tmp_path):
    """A bulk load stops the thread for its duration; later commits start a new one."""
    store = Store(tmp_path / "till.db", checkpoint_every=2)
    try:
        write_rows(store, 4)
        wait_for_runs(store, 1)
        store.checkpointer.stop()
        assert store.checkpointer._thread is None
        runs = store.checkpointer.stats.runs
        write_rows(store, 4)
        assert wait_for_runs(store, runs + 1).runs > runs
    finally:
        store.close()


def test_sales_through_the_agent_with_checkpoints_between_them(till):
    """Real sales with the thread checkpointing between them: all of each sale (member,
    purchase, journal row, print job) is there, the journal stays gapless."""
    till.store._checkpoint_every = 2
    for n in range(10):
        cart = make_cart(f"R-{n}", ("DR-1001", 1))
        till.agent.commit(CheckoutRequest(f"m{n:08d}", cart))
    stats = wait_for_runs(till.store, 1)
    assert stats.errors == 0, stats.last_error
    assert till.count("purchases") == 10
    assert till.count("print_jobs") == 10
    seqs = [r[0] for r in till.store.conn.execute("SELECT seq FROM outbox ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))
    assert till.store.quick_check() == "ok"

"""Building the members cache: the fast demo rows are the rows the public functions make,
and ``Store.bulk_load_members`` is all-or-nothing and leaves the store in WAL mode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent import codec
from agent.identify import make_member_code
from agent.model import MemberState
from agent.phonehash import hard_phone_hash, store_mask
from agent.seed import demo_phone, demo_programme, member_rows
from agent.store import MEMBER_LOAD_COLUMNS, Store

KEY = bytes(range(32))
NOW = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)


def test_demo_rows_match_the_public_functions_across_code_blocks():
    """The generator carries the Damm digit over blocks of 1,000 numbers: check every row
    of several blocks (and their edges) against ``make_member_code`` and friends."""
    rules = demo_programme()
    rows = list(member_rows(2_600, rules, KEY, NOW))
    assert len(rows) == 2_600
    col = {name: i for i, name in enumerate(MEMBER_LOAD_COLUMNS)}
    for i, row in enumerate(rows):
        assert len(row) == len(MEMBER_LOAD_COLUMNS)
        assert row[col["member_id"]] == f"m{i:08d}"
        assert row[col["code"]] == make_member_code(100_000_000 + i)
        assert row[col["phone_hash"]] == hard_phone_hash(demo_phone(i), KEY, rules.phone_hash)
        assert row[col["phone_masked"]] == store_mask(demo_phone(i))
        state = codec.loads(MemberState, row[col["state"]])
        assert state.member_id == f"m{i:08d}"
    assert len({r[col["code"]] for r in rows}) == len(rows)


def test_bulk_load_is_durable_in_one_transaction_and_restores_wal(tmp_path):
    store = Store(tmp_path / "till.db")
    try:
        cache = store.one("PRAGMA cache_size")[0]
        n = store.bulk_load_members(member_rows(3_000, demo_programme(), KEY, NOW), batch=1_000)
        assert n == 3_000
        assert store.one("SELECT count(*) FROM members")[0] == 3_000
        assert store.one("PRAGMA journal_mode")[0] == "wal"
        assert store.one("PRAGMA synchronous")[0] == 2
        assert store.one("PRAGMA cache_size")[0] == cache
        # Indexes are back and used for the lookups a cashier makes.
        plan = store.one("EXPLAIN QUERY PLAN SELECT member_id FROM members WHERE code = ?", ("x",))
        assert "members_code" in plan[-1]
        assert store.one(
            "SELECT member_id FROM members WHERE code = ?", (make_member_code(100_002_999),)
        ) == ("m00002999",)
        assert store.quick_check() == "ok"
    finally:
        store.close()


def test_a_failed_bulk_load_writes_nothing_and_restores_wal(tmp_path):
    store = Store(tmp_path / "till.db")

    def rows():
        yield from member_rows(1_500, demo_programme(), KEY, NOW)
        raise RuntimeError("snapshot stream broke")

    try:
        with pytest.raises(RuntimeError, match="snapshot stream broke"):
            store.bulk_load_members(rows(), batch=1_000)
        assert store.one("SELECT count(*) FROM members")[0] == 0
        assert store.one("PRAGMA journal_mode")[0] == "wal"
        # The indexes dropped inside the failed transaction are back (rolled back with it).
        names = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master")}
        assert {"members_code", "members_phone"} <= names
    finally:
        store.close()


def _members(store: Store) -> list[tuple[object, ...]]:
    cols = ", ".join(MEMBER_LOAD_COLUMNS)
    return store.conn.execute(f"SELECT {cols} FROM members ORDER BY member_id").fetchall()


def _demo_base(path, n, *, parallel_from, monkeypatch):
    from kassa import setup

    monkeypatch.setattr(setup, "PARALLEL_FROM", parallel_from)
    store = Store(path)
    try:
        loaded = setup._load_demo_members(store, n, demo_programme(), KEY, NOW)
        return loaded, _members(store), store.quick_check()
    finally:
        store.close()


def test_a_demo_base_made_on_two_processes_is_row_for_row_the_one_made_on_one(
    tmp_path, monkeypatch
):
    """The second process (a real spawned interpreter) writes the last rows into a scratch
    file copied in by the load: same rows, indexes in place, no scratch file left."""
    one = _demo_base(tmp_path / "one.db", 2_500, parallel_from=10**9, monkeypatch=monkeypatch)
    two = _demo_base(tmp_path / "two.db", 2_500, parallel_from=1, monkeypatch=monkeypatch)
    assert one[0] == two[0] == 2_500
    assert len(one[1]) == 2_500 and one[1] == two[1]
    assert two[2] == "ok"
    assert [p.name for p in tmp_path.iterdir() if ".seed-" in p.name] == []


def test_when_the_second_process_fails_its_rows_are_made_here(tmp_path, monkeypatch):
    from kassa import setup

    class DeadWorker:  # the edge: the worker process dies before giving its rows
        def get(self):
            raise RuntimeError("worker killed")

    class BrokenPool:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def apply_async(self, fn, args):
            return DeadWorker()

    class Context:
        def Pool(self, processes):  # noqa: N802 - multiprocessing's name
            return BrokenPool()

    reference = _demo_base(tmp_path / "a.db", 1_200, parallel_from=10**9, monkeypatch=monkeypatch)
    monkeypatch.setattr(setup.multiprocessing, "get_context", lambda method: Context())
    fallback = _demo_base(tmp_path / "b.db", 1_200, parallel_from=1, monkeypatch=monkeypatch)
    assert fallback[0] == 1_200 and fallback[1] == reference[1]
    assert [p.name for p in tmp_path.iterdir() if ".seed-" in p.name] == []

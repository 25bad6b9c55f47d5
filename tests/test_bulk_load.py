"""Building the members cache: the fast demo rows are the rows the public functions make,
and ``Store.bulk_load_members`` is all-or-nothing and leaves the store in WAL mode."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent import codec
from agent.identify import make_member_code, mask_phone, phone_hash
from agent.model import MemberState
from agent.seed import demo_phone, demo_programme, member_rows
from agent.store import MEMBER_LOAD_COLUMNS, Store

KEY = bytes(range(32))
NOW = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)


def test_demo_rows_match_the_public_functions_across_code_blocks():
    """The generator carries the Damm digit over blocks of 1,000 numbers: check every row
    of several blocks (and their edges) against ``make_member_code`` and friends."""
    rows = list(member_rows(2_600, demo_programme(), KEY, NOW))
    assert len(rows) == 2_600
    col = {name: i for i, name in enumerate(MEMBER_LOAD_COLUMNS)}
    for i, row in enumerate(rows):
        assert len(row) == len(MEMBER_LOAD_COLUMNS)
        assert row[col["member_id"]] == f"m{i:08d}"
        assert row[col["code"]] == make_member_code(100_000_000 + i)
        assert row[col["phone_hash"]] == phone_hash(demo_phone(i), KEY)
        assert row[col["phone_masked"]] == mask_phone(demo_phone(i))
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

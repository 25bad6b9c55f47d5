"""Building the members cache fast: the demo rows' phone fingerprints (the v1 HMAC computed
from pre-keyed SHA-256 states, then scrypt at the programme's cost) equal
``phonehash.hard_phone_hash`` for any key length, and a load
of several batches, the last one partial, loads every row once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.phonehash import hard_phone_hash
from agent.seed import demo_phone, demo_programme, member_rows
from agent.store import MEMBER_LOAD_COLUMNS, Store

NOW = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)
HASH = MEMBER_LOAD_COLUMNS.index("phone_hash")


@pytest.mark.parametrize("key_len", [16, 32, 63, 64, 65, 100])
def test_demo_phone_hashes_for_any_key_length(key_len):
    key = bytes(range(7, 7 + key_len))
    rules = demo_programme()
    rows = list(member_rows(300, rules, key, NOW))
    want = [hard_phone_hash(demo_phone(i), key, rules.phone_hash) for i in range(300)]
    assert [r[HASH] for r in rows] == want


def test_a_load_in_batches_loads_every_row_once(tmp_path):
    with Store(tmp_path / "till.db") as store:
        n = store.bulk_load_members(member_rows(2_345, demo_programme(), b"k" * 32, NOW), batch=500)
        assert n == 2_345
        assert store.one("SELECT count(*), count(DISTINCT member_id) FROM members") == (2345, 2345)
        assert store.one("SELECT max(member_id) FROM members") == ("m00002344",)

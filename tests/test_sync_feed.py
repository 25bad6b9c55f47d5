"""The snapshot stream, now rendered by the database (``feed.snapshot_lines``): each line
is exactly the member record the lookup endpoint gives, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import Cluster
from synchelp import portal

from agent.journal import member_record_from_wire, snapshot_row
from sync.client import _ndjson_batches


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    """The shared fixture's back office, with a smaller member base."""
    with portal() as p:
        c = Cluster(tmp_path, db_url, p, members=120)
        yield c
        c.close()


def test_snapshot_lines_are_the_wire_records(cluster: Cluster) -> None:
    with cluster.db.transaction() as tx:  # a name out of ASCII, a marketing refusal, a merge
        tx.execute(
            "UPDATE members SET first_name = ?, consent_marketing = 0 WHERE member_id = ?",
            ('Ёлка "\\ 🎄', "m00000003"),
        )
        tx.execute("UPDATE members SET merged_into = 'm00000001' WHERE member_id = 'm00000004'")
    lines = b"".join(cluster.bo.snapshot_lines(page=50)).decode().splitlines()
    head, body, end = (
        json.loads(lines[0]),
        [json.loads(x) for x in lines[1:-1]],
        json.loads(lines[-1]),
    )
    assert head["kind"] == "snapshot" and head["cursor"] == str(cluster.bo.feed_head())
    assert end == {"kind": "end", "members": 120}
    assert [r["member_id"] for r in body] == sorted(r["member_id"] for r in body)
    codes = cluster.ledger("SELECT member_id, code FROM members")
    by_id = {r["member_id"]: r for r in body}
    assert set(by_id) == {m for m, _ in codes}
    for member_id, code in codes:
        rec = by_id[member_id]
        if rec["merged_into"] is None:
            assert rec == cluster.bo.lookup(code=code)
        assert type(rec["consent_programme"]) is bool and type(rec["balance"]) is int
        # the till reads it; into an empty cache without a MemberRecord, to the same row
        assert snapshot_row(rec, "T") == member_record_from_wire(rec).row("T")
    assert by_id["m00000003"]["first_name"] == 'Ёлка "\\ 🎄'
    assert by_id["m00000003"]["consent_marketing"] is False
    assert by_id["m00000004"]["merged_into"] == "m00000001"


def test_ndjson_lines_survive_any_chunking() -> None:
    text = b'{"a":1}\n{"b":"x\\ny"}\n\n{"c":[1,2]}\n{"tail":true}'
    want = [b'{"a":1}', b'{"b":"x\\ny"}', b'{"c":[1,2]}', b'{"tail":true}']
    for size in (1, 2, 3, 7, len(text)):
        chunks = [text[i : i + size] for i in range(0, len(text), size)]
        got = [line for batch in _ndjson_batches(iter(chunks)) for line in batch]
        assert got == want, size

"""Accept now, apply behind: a backlog push is answered ``accepted``; the projector applies
it exactly once; the till learns each verdict from ``/v1/verdicts`` and only then lets the
server's member state replace its own. Real tills, the real app, SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
from cluster import Cluster, TillNode

from agent import journal
from agent.codec import digest
from sync.backoffice import ingest, project, schema
from sync.backoffice.batch import Batch
from sync.backoffice.db import Database

MEMBERS = [f"m{i:08d}" for i in range(1, 8)]
BACKLOG = ingest.INLINE_MAX_EVENTS + 20  # over the inline limit: accepted, not applied


def _sales(till: TillNode, n: int, tag: str = "R") -> None:
    for i in range(n):
        till.sale(f"{tag}{i}", MEMBERS[i % len(MEMBERS)], ("BG-7001", 1))


def _statuses(till: TillNode) -> dict[str, int]:
    out: dict[str, int] = {}
    for *_, status in till.outbox():
        out[status] = out.get(status, 0) + 1
    return out


def test_backlog_is_accepted_then_projected_then_confirmed(cluster: Cluster) -> None:
    till = cluster.till()
    before = {m: cluster.server_balance(m) for m in MEMBERS}
    _sales(till, BACKLOG)
    local = {m: till.balance(m) for m in MEMBERS}
    assert local != before  # the till counts its own sales at once

    report = till.client.drain()
    assert (report.sent, report.acked, report.quarantined) == (BACKLOG, BACKLOG, 0)
    assert _statuses(till) == {"accepted": BACKLOG}
    status = journal.status(till.store)
    assert status.events_waiting == 0 and status.awaiting_verdict == BACKLOG
    # Accepted is durable on the server but not yet in its ledger ...
    assert cluster.ledger("SELECT count(*) FROM events WHERE status = 'accepted'")[0][0] == BACKLOG
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 0
    assert {m: cluster.server_balance(m) for m in MEMBERS} == before
    # ... so the till keeps its own state, with the sales in it.
    assert {m: till.balance(m) for m in MEMBERS} == local
    assert till.client.confirm_once() == (0, False)  # nothing decided yet

    assert project.backlog(cluster.bo.context) == BACKLOG
    assert project.run_all(cluster.bo.context) == BACKLOG
    assert project.run_all(cluster.bo.context) == 0  # each event is projected once
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == BACKLOG
    assert till.client.confirm_all() == BACKLOG
    assert _statuses(till) == {"acked": BACKLOG}
    assert journal.status(till.store).awaiting_verdict == 0
    server = {m: cluster.server_balance(m) for m in MEMBERS}
    assert server == local == {m: till.balance(m) for m in MEMBERS}
    assert till.store.one("SELECT sum(unsynced) FROM members")[0] == 0


def test_verdicts_are_a_prefix_and_the_cursor_never_skips(cluster: Cluster) -> None:
    till = cluster.till()
    _sales(till, BACKLOG)
    till.client.drain()
    assert project.run_once(cluster.bo.context, 30) == 30
    # the projector's mark: every event still accepted lies after it
    mark = cluster.ledger("SELECT value FROM settings WHERE key = 'projected_pos'")[0][0]
    assert int(mark) == cluster.ledger("SELECT max(pos) FROM events WHERE status = 'applied'")[0][0]
    assert (
        cluster.ledger("SELECT min(pos) FROM events WHERE status = 'accepted'")[0][0]
        == int(mark) + 1
    )
    assert project.backlog(cluster.bo.context) == BACKLOG - 30
    assert till.client.confirm_all() == 30
    assert _statuses(till) == {"acked": 30, "accepted": BACKLOG - 30}
    acked_seqs = [seq for seq, *_, status in till.outbox() if status == "acked"]
    assert acked_seqs == list(range(1, 31))  # the oldest first, none skipped
    cursor = int(till.store.sync_value("verdict_cursor") or 0)
    page = project.verdicts(cluster.bo.context, till.agent.terminal_id, cursor, 500)
    assert page["verdicts"] == [] and page["waiting"] is True and page["next"] == cursor

    project.run_all(cluster.bo.context)
    assert till.client.confirm_all() == BACKLOG - 30
    # A verdict page received twice (a lost answer) changes nothing the second time.
    page = project.verdicts(cluster.bo.context, till.agent.terminal_id, 0, 500)
    assert len(page["verdicts"]) == BACKLOG and page["waiting"] is False
    batch = journal.outbox_events(till.store, [v["event_id"] for v in page["verdicts"]])
    results = [journal.Settlement(v["event_id"], v["status"]) for v in page["verdicts"]]
    unsynced = till.store.one("SELECT sum(unsynced) FROM members")[0]
    again = journal.settle(till.store, batch, results, {}, cluster.clock.now().isoformat())
    assert (again.acked, again.quarantined, again.accepted) == (0, 0, 0)
    assert till.store.one("SELECT sum(unsynced) FROM members")[0] == unsynced == 0
    assert _statuses(till) == {"acked": BACKLOG}


def test_a_verdict_refusal_is_quarantined_and_releases_the_member(cluster: Cluster) -> None:
    till = cluster.till()
    _sales(till, BACKLOG)
    # One event names a member the back office does not know: its envelope and payload
    # are fine (accepted), the ledger refuses it when projecting.
    with till.store.write() as conn:
        seq, payload = conn.execute("SELECT seq, payload FROM outbox WHERE seq = 5").fetchone()
        doc = json.loads(payload)
        ghost = "m99999999"
        doc["member_id"] = doc["quote"]["member_id"] = ghost
        text = json.dumps(doc, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        conn.execute(
            "UPDATE outbox SET payload = ?, payload_hash = ? WHERE seq = ?",
            (text, digest(text), seq),
        )
    till.client.drain()
    assert _statuses(till) == {"accepted": BACKLOG}
    project.run_all(cluster.bo.context)
    till.client.confirm_all()
    assert _statuses(till) == {"acked": BACKLOG - 1, "quarantined": 1}
    row = till.store.one("SELECT seq, status, code FROM quarantine")
    assert tuple(row) == (5, "rejected", "unknown_member")
    refused = cluster.ledger("SELECT status, code, message FROM events WHERE seq = 5")[0]
    assert refused[0] == "rejected" and refused[1] == "unknown_member" and ghost in refused[2]
    assert till.store.one("SELECT sum(unsynced) FROM members")[0] == 0
    for m in MEMBERS:
        assert till.balance(m) == cluster.server_balance(m)


def test_a_crash_mid_projection_leaves_everything_accepted(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    till = cluster.till()
    _sales(till, BACKLOG)
    till.client.drain()
    real_flush = Batch.flush

    def crash(self: Batch) -> None:
        real_flush(self)
        raise sqlite3.OperationalError("disk I/O error")  # an outage: not the event's fault

    monkeypatch.setattr(Batch, "flush", crash)
    with pytest.raises(sqlite3.OperationalError):
        project.run_once(cluster.bo.context)
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 0
    assert project.backlog(cluster.bo.context) == BACKLOG
    monkeypatch.setattr(Batch, "flush", real_flush)
    assert project.run_all(cluster.bo.context) == BACKLOG
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == BACKLOG
    assert cluster.ledger("SELECT count(*) FROM verify_queue")[0][0] == BACKLOG


def test_resending_an_accepted_event_is_still_accepted_and_applied_once(cluster: Cluster) -> None:
    till = cluster.till()
    _sales(till, BACKLOG)
    batch = journal.next_batch(till.store, max_events=500, max_bytes=10**7)
    till.client.drain()
    body = json.dumps(
        {"protocol": 1, "terminal_id": till.agent.terminal_id, "events": [e.wire() for e in batch]}
    )
    headers = {"authorization": f"Bearer {till.client.token}"}
    again = cluster.http.post("/v1/events", content=body, headers=headers).json()
    assert {r["status"] for r in again["results"]} == {"accepted"}
    project.run_all(cluster.bo.context)
    third = cluster.http.post("/v1/events", content=body, headers=headers).json()
    assert {r["status"] for r in third["results"]} == {"duplicate"}
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == BACKLOG
    assert till.client.confirm_all() == BACKLOG


def test_verdicts_belong_to_their_terminal_and_check_parameters(cluster: Cluster) -> None:
    a, b = cluster.till("till-a"), cluster.till("till-b")
    _sales(a, BACKLOG)
    a.client.drain()
    project.run_all(cluster.bo.context)
    headers_b = {"authorization": f"Bearer {b.client.token}"}
    page = cluster.http.get("/v1/verdicts", params={"after": 0}, headers=headers_b).json()
    assert page["verdicts"] == [] and page["waiting"] is False
    for bad in (
        {"after": "-1"},
        {"after": "x"},
        {"limit": "0"},
        {"limit": "²"},
        {"after": "9" * 30},
    ):
        r = cluster.http.get("/v1/verdicts", params=bad, headers=headers_b)
        assert r.status_code == 400, bad
    assert cluster.http.get("/v1/verdicts").status_code == 401
    assert a.client.confirm_all() == BACKLOG


def test_the_projector_thread_catches_up(cluster: Cluster) -> None:
    till = cluster.till()
    _sales(till, BACKLOG)
    till.client.drain()
    worker = project.Projector(cluster.bo.context)
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while project.backlog(cluster.bo.context) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert project.backlog(cluster.bo.context) == 0 and worker.done == BACKLOG
    assert till.client.confirm_all() == BACKLOG
    health = cluster.http.get("/v1/health").json()
    assert health["project_backlog"] == 0


def test_migration_gives_existing_events_positions_in_order(tmp_path: Path) -> None:
    db = Database.open(str(tmp_path / "bo.db"))
    saved = schema.MIGRATIONS
    try:
        schema.MIGRATIONS = saved[:2]
        schema.migrate(db)
    finally:
        schema.MIGRATIONS = saved
    with db.transaction() as tx:
        for i, received in enumerate(["2026-01-02", "2026-01-01", "2026-01-03"]):
            tx.execute(
                "INSERT INTO events(event_id, terminal_id, epoch, seq, type, schema_version, "
                "payload_hash, payload, created_at, received_at, status) "
                "VALUES (?, 't', 'e', ?, 'purchase', 1, 'h', '{}', ?, ?, 'applied')",
                (f"e{i}", i + 1, received, received),
            )
    assert schema.migrate(db) == [name for name, _ in saved[2:]]  # the rest, in order
    with db.reading() as tx:
        assert tx.all("SELECT event_id FROM events ORDER BY pos") == [("e1",), ("e0",), ("e2",)]
        assert tx.one("SELECT value FROM settings WHERE key = 'events_pos'")[0] == "3"
    db.close()


def test_postgresql_compresses_payloads_with_lz4(cluster: Cluster) -> None:
    if cluster.db.dialect != "postgresql":
        assert cluster.ledger("SELECT count(*) FROM schema_migrations")[0][0] == len(
            schema.MIGRATIONS
        )  # recorded on SQLite too, as a no-op: one migration list for both
        return
    lz4 = cluster.ledger(
        "SELECT count(*) FROM pg_settings WHERE name = 'default_toast_compression' "
        "AND 'lz4' = ANY(enumvals)"
    )[0][0]
    for table, column in (("events", "payload"),):
        method = cluster.ledger(
            "SELECT attcompression FROM pg_attribute "
            f"WHERE attrelid = '{table}'::regclass AND attname = '{column}'"
        )[0][0]
        assert method == ("l" if lz4 else ""), (table, column)


def test_pushes_while_the_projector_works_are_applied_once(cluster: Cluster) -> None:
    """Acceptance and projection take different locks (PostgreSQL): two tills drain their
    backlogs while the projector thread applies what they pushed; nothing is applied twice
    or lost, and positions stay a prefix for each till's verdicts. Balances end equal at
    both tills and the back office."""
    from concurrent.futures import ThreadPoolExecutor

    a, b = cluster.till("till-a"), cluster.till("till-b")
    _sales(a, BACKLOG, "A")
    _sales(b, BACKLOG, "B")
    worker = project.Projector(cluster.bo.context)
    worker.start()
    try:
        with ThreadPoolExecutor(2) as pool:
            for f in [pool.submit(t.client.drain) for t in (a, b)]:
                assert f.result().acked == BACKLOG
    finally:
        worker.stop()
    project.run_all(cluster.bo.context)
    # Both tills, each offline from the other's sales, may grant a member's once-a-year
    # birthday bonus: the second claim is beyond the re-score and held for review, with
    # the earned points agreeing; every event is decided once.
    held = [
        json.loads(d)
        for (d,) in cluster.ledger("SELECT detail FROM flags WHERE kind = ?", ("held_for_review",))
    ]
    for d in held:
        assert d["claim"]["earned"] == d["server"]["earned"], d
        assert d["claim"]["bonus"] > d["server"]["bonus"] + d["tolerance"], d
    quarantined = 0
    for t in (a, b):
        t.client.confirm_all()
        statuses = _statuses(t)
        assert set(statuses) <= {"acked", "quarantined"} and sum(statuses.values()) == BACKLOG
        quarantined += statuses.get("quarantined", 0)
        t.client.pull_all()
    assert quarantined == len(held)
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 2 * BACKLOG - len(held)
    assert cluster.ledger("SELECT count(DISTINCT pos), count(*) FROM events")[0] == (
        2 * BACKLOG,
        2 * BACKLOG,
    )
    for m in MEMBERS:
        assert a.balance(m) == cluster.server_balance(m) == b.balance(m)


def test_the_projector_lets_a_burst_in_first_but_never_starves(cluster: Cluster) -> None:
    till = cluster.till()
    _sales(till, BACKLOG)
    till.client.drain()
    worker = project.Projector(cluster.bo.context)
    cluster.bo.last_push = time.monotonic()  # tills are pushing right now
    assert worker.round(busy=True) == 0  # the burst first
    assert project.backlog(cluster.bo.context) == BACKLOG
    cluster.clock.advance(seconds=project.BUSY_LAG_S + 1)
    assert worker.round(busy=True) == project.BUSY_CHUNK  # waited long enough: a share
    assert worker.round(busy=False) == BACKLOG - project.BUSY_CHUNK  # idle: the rest


def test_sync_now_counts_every_event_awaiting_its_verdict(cluster: Cluster) -> None:
    """More events than one verdict page wait: the count is all of them (it was capped at
    a page), and they stay counted at the till until the projector has applied them."""
    till = cluster.till()
    _sales(till, 520)
    out = till.client.sync_now()
    assert (out["pushed"], out["acked"], out["confirmed"]) == (520, 520, 0)
    assert out["awaiting_verdict"] == journal.status(till.store).awaiting_verdict == 520
    project.run_all(cluster.bo.context)
    out = till.client.sync_now()
    assert (out["confirmed"], out["awaiting_verdict"]) == (520, 0)


def test_a_pushed_payload_is_stored_as_the_tills_exact_text(cluster: Cluster) -> None:
    """The back office hashes and stores each payload's UTF-8 bytes as made by the push
    parser (``WireEvent.payload_utf8``): the ledger holds the till's text, as text, on
    both databases (the cart names are Cyrillic: not ASCII)."""
    till = cluster.till()
    _sales(till, 3)
    with till.store.read() as conn:
        sent = dict(conn.execute("SELECT event_id, payload FROM outbox").fetchall())
    assert any(not p.isascii() for p in sent.values())
    till.client.drain()
    stored = dict(cluster.ledger("SELECT event_id, payload FROM events"))
    assert stored == sent
    if cluster.db.dialect == "sqlite":
        assert cluster.ledger("SELECT DISTINCT typeof(payload) FROM events") == [("text",)]


def test_a_nul_in_a_payload_refuses_the_batch_and_names_the_event() -> None:
    """The push parser's NUL check runs on the payload's UTF-8 bytes: a NUL (``\\u0000`` in
    the JSON text) is a 400 naming the event; an escaped backslash before ``u0000`` is
    not a NUL and passes."""
    from sync.protocol import ProtocolError, encode_push, parse_push

    def event(seq: int, payload: str) -> dict[str, object]:
        return {
            "event_id": f"{seq:032x}",
            "terminal_id": "t1",
            "terminal_epoch": "e1",
            "seq": seq,
            "type": "purchase",
            "schema_version": 1,
            "created_at": "2026-06-15T09:00:00+00:00",
            "payload": payload,
            "payload_hash": digest(payload),
        }

    fine = '{"note":"Сумка \\\\u0000"}'  # JSON text: a backslash, then u0000
    req = parse_push(encode_push("t1", [event(1, fine), event(2, "{}")]))
    assert [e.payload for e in req.events] == [fine, "{}"]
    assert req.events[0].payload_utf8 == fine.encode("utf-8")
    with pytest.raises(ProtocolError) as refused:
        parse_push(encode_push("t1", [event(1, "{}"), event(2, '{"note":"a\x00b"}')]))
    assert (refused.value.status, refused.value.code) == (400, "bad_field")
    assert refused.value.details["index"] == 1


def test_insert_many_stores_utf8_bytes_as_text(db_url: str) -> None:
    """``Tx.insert_many`` (the events insert of a push): ``Utf8Text`` values land as text
    on SQLite (CAST) and on PostgreSQL (binary COPY; with a client encoding other than
    UTF-8, a text COPY that converts them)."""
    from sync.backoffice.utf8 import UTF8_TEXT, Utf8Text

    urls = [db_url]
    if db_url.startswith("postgresql"):
        urls.append(db_url + "?client_encoding=LATIN1")
    columns = (("id", "int8"), ("body", UTF8_TEXT), ("note", "text"))
    for url in urls:
        db = Database.open(url)
        try:
            with db.transaction() as tx:
                tx.execute("CREATE TABLE IF NOT EXISTS t_utf8 (id BIGINT, body TEXT, note TEXT)")
                tx.execute("DELETE FROM t_utf8")
                tx.insert_many(
                    "t_utf8",
                    columns,
                    iter(
                        [(1, Utf8Text('café \\ \t\n"x"'.encode()), "é"), (2, Utf8Text(b""), None)]
                    ),
                )
            with db.reading() as tx:
                assert tx.all("SELECT id, body, note FROM t_utf8 ORDER BY id") == [
                    (1, 'café \\ \t\n"x"', "é"),
                    (2, "", None),
                ]
                if db.dialect == "sqlite":
                    assert tx.all("SELECT DISTINCT typeof(body) FROM t_utf8") == [("text",)]
        finally:
            db.close()

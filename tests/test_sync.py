"""Sync end to end: real tills, the real back office app, on SQLite and PostgreSQL.

Each test is a row of the fault table in notes/sync.md; the network is the faked edge.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from cluster import Cluster

from agent import journal
from agent.codec import digest
from agent.errors import StoreWriteError
from agent.identify import make_member_code
from agent.phonehash import hard_phone_hash
from agent.seed import demo_phone
from agent.tokens import TokenVerifier, load_ed25519_public_key, verify_member_token
from sync.client import SyncClient, SyncRunner, TransientError, backoff_delay
from sync.protocol import encode_push

M1, M2 = "m00000001", "m00000002"


def test_enroll_bootstrap_sale_push_pull_balances_match(cluster: Cluster) -> None:
    till = cluster.till()
    assert till.store.one("SELECT count(*) FROM members")[0] == 50
    card = till.agent.identify(demo_phone(1))
    assert card.member_id == M1
    res = till.sale("R1", M1, ("DR-1001", 1), redeem=100)
    assert journal.status(till.store).events_waiting == 1
    report = till.client.drain()
    assert (report.sent, report.acked) == (1, 1)
    assert cluster.events() == {res.event_id: till.outbox()[0][2]}
    assert till.outbox()[0][3] == "acked"
    assert journal.status(till.store).events_waiting == 0
    assert cluster.server_balance(M1) == till.balance(M1) == res.quote.balance_after
    # the server's copy replaced the cache, and a pull brings nothing new for it
    assert till.store.one(
        "SELECT unsynced, synced_at IS NOT NULL FROM members WHERE member_id = ?", (M1,)
    ) == (0, 1)
    till.client.pull_all()
    assert till.balance(M1) == cluster.server_balance(M1)


def test_lost_response_is_resent_same_bytes_and_answered_duplicate(cluster: Cluster) -> None:
    till = cluster.till()
    res = till.sale("R1", M1, ("SH-2001", 1))
    cluster.transport.plan = lambda r: "drop_response" if r.url.path == "/v1/events" else None
    with pytest.raises(TransientError):
        till.client.push_once()
    assert till.outbox()[0][3] == "pending"  # not acked: the answer was lost
    assert res.event_id in cluster.events()  # ...but the server committed it
    cluster.transport.plan = lambda r: None
    till.client.push_once()
    bodies = cluster.transport.bodies
    assert bodies[-1] == bodies[-2]  # the resend is the same bytes
    assert till.outbox()[0][3] == "acked"
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 1
    assert cluster.server_balance(M1) == till.balance(M1)


def test_same_batch_twice_concurrently_applies_once(cluster: Cluster) -> None:
    till = cluster.till()
    for i in range(20):
        till.sale(f"R{i}", f"m0000000{i % 7}", ("BG-7001", 1))
    batch = journal.next_batch(till.store, max_events=500, max_bytes=10**7)
    body = encode_push(till.agent.terminal_id, [e.wire() for e in batch])
    headers = {"authorization": f"Bearer {till.client.token}"}
    barrier = threading.Barrier(2)

    def send() -> list[str]:
        barrier.wait()
        r = cluster.http.post("/v1/events", content=body, headers=headers)
        assert r.status_code == 200
        return [x["status"] for x in r.json()["results"]]

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda _: send(), range(2))
    for x, y in zip(a, b, strict=True):
        # One request accepts the event; the other finds it accepted (answered with its
        # verdict once the inline projection decided it) or already applied (duplicate).
        assert "applied" in (x, y) and {x, y} <= {"applied", "duplicate"}
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 20
    assert cluster.ledger("SELECT count(*) FROM events")[0][0] == 20


def test_reordered_batches_apply_once_and_gap_clears(cluster: Cluster) -> None:
    till = cluster.till()
    for i in range(6):
        till.sale(f"R{i}", M1, ("BG-7001", 1))
    events = journal.next_batch(till.store, max_events=500, max_bytes=10**7)
    headers = {"authorization": f"Bearer {till.client.token}"}
    tid = till.agent.terminal_id
    late = cluster.http.post(
        "/v1/events", content=encode_push(tid, [e.wire() for e in events[3:]]), headers=headers
    ).json()
    assert [r["status"] for r in late["results"]] == ["applied"] * 3
    assert [(g["from"], g["to"]) for g in late["gaps"]] == [(1, 3)]
    early = cluster.http.post(
        "/v1/events", content=encode_push(tid, [e.wire() for e in events[:3]]), headers=headers
    ).json()
    assert [r["status"] for r in early["results"]] == ["applied"] * 3
    assert early["gaps"] == []
    till.client.drain()  # the till's own resend of all six: duplicates, all acked
    assert {r[3] for r in till.outbox()} == {"acked"}
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 6
    assert cluster.server_balance(M1) == till.balance(M1)


def test_same_id_other_payload_is_conflict_quarantined_ledger_unchanged(cluster: Cluster) -> None:
    till = cluster.till()
    till.sale("R1", M1, ("BG-7001", 1))
    till.client.drain()
    before = cluster.server_balance(M1)
    # The till's journal row is altered (a restored copy, a bug): same id, other payload.
    with till.store.write() as conn:
        payload = json.loads(conn.execute("SELECT payload FROM outbox").fetchone()[0])
        payload["earn_points"] += 1000
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        conn.execute(
            "UPDATE outbox SET payload = ?, payload_hash = ?, status = 'pending'",
            (text, digest(text)),
        )
    report = till.client.push_once()
    assert report.quarantined == 1
    q = journal.quarantine_rows(till.store)
    assert q[0]["status"] == "conflict" and q[0]["code"] == "payload_mismatch"
    assert cluster.server_balance(M1) == before
    assert cluster.ledger("SELECT count(*) FROM conflicts")[0][0] == 1
    assert journal.status(till.store).quarantined == 1


def test_poison_event_mid_queue_is_quarantined_and_later_events_flow(cluster: Cluster) -> None:
    till = cluster.till()
    for i in range(5):
        till.sale(f"R{i}", M1, ("BG-7001", 1))
    with till.store.write() as conn:  # event 3 corrupted on disk: its hash no longer matches
        conn.execute("UPDATE outbox SET payload = payload || ' ' WHERE seq = 3")
    report = till.client.drain()
    assert (report.acked, report.quarantined) == (4, 1)
    status = journal.status(till.store)
    assert status.events_waiting == 0 and status.quarantined == 1
    assert status.last_quarantine.startswith("hash_mismatch")
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 4


def test_unauthenticated_and_cross_terminal_pushes(cluster: Cluster) -> None:
    a, b = cluster.till("till-a"), cluster.till("till-b")
    a.sale("R1", M1, ("BG-7001", 1))
    batch = [e.wire() for e in journal.next_batch(a.store, max_events=10, max_bytes=10**6)]
    body = encode_push("till-a", batch)
    assert cluster.http.post("/v1/events", content=body).status_code == 401
    bad = cluster.http.post("/v1/events", content=body, headers={"authorization": "Bearer nope"})
    assert bad.status_code == 401
    as_b = {"authorization": f"Bearer {b.client.token}"}
    r = cluster.http.post("/v1/events", content=body, headers=as_b)
    assert r.status_code == 403 and r.json()["error"] == "wrong_terminal"
    r = cluster.http.post("/v1/events", content=encode_push("till-b", batch), headers=as_b)
    assert r.status_code == 403 and r.json()["index"] == 0
    assert cluster.events() == {}


def test_long_outage_backoff_with_jitter_then_in_order_drain(cluster: Cluster) -> None:
    import random

    till = cluster.till()
    down = {"on": True}
    cluster.transport.plan = lambda r: "drop_request" if down["on"] else None
    delays: list[float] = []
    runner = SyncRunner(till.client, rng=random.Random(1), sleep=delays.append)
    for i in range(30):
        till.sale(f"R{i}", f"m0000000{i % 9}", ("BG-7001", 1))
        cluster.clock.advance(hours=2)
        delays.append(runner.step())
    assert runner.attempt == 30
    assert all(0 <= d <= 300 for d in delays)
    assert len(set(delays)) == len(delays)  # jittered, not in lockstep
    assert journal.status(till.store).last_error.startswith("ConnectError")
    assert journal.status(till.store).events_waiting == 30
    down["on"] = False
    assert runner.step() == 0.0 or journal.status(till.store).events_waiting == 0
    runner.step()
    assert journal.status(till.store).events_waiting == 0
    firsts = [json.loads(b)["events"][0]["seq"] for b in cluster.transport.bodies]
    assert firsts == sorted(firsts)  # one batch in flight, in seq order, resends included
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 30
    for i in range(9):
        mid = f"m0000000{i}"
        assert till.balance(mid) == cluster.server_balance(mid)


def test_backoff_full_jitter_bounds() -> None:
    import random

    rng = random.Random(3)
    for attempt in range(40):
        d = backoff_delay(attempt, rng)
        assert 0 <= d <= min(300, 0.5 * 2**attempt)


def test_dead_uploader_is_restarted_by_the_watchdog(cluster: Cluster) -> None:
    till = cluster.till()
    for i in range(3):
        till.sale(f"R{i}", M1, ("BG-7001", 1))
    real_drain = till.client.drain
    calls = {"n": 0}

    def dying(**kw: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("retry timer died")
        return real_drain(**kw)

    till.client.drain = dying  # type: ignore[method-assign]
    runner = SyncRunner(till.client, interval_s=0.01, watch_s=0.02)
    runner.start()
    try:
        for _ in range(500):
            if journal.status(till.store).events_waiting == 0:
                break
            threading.Event().wait(0.01)
    finally:
        runner.close()
    assert runner.restarts >= 1
    assert journal.status(till.store).events_waiting == 0


def test_refund_after_points_spent_and_retried_refund(cluster: Cluster) -> None:
    till = cluster.till()
    sale = till.sale("R1", M2, ("OW-4001", 1))
    cluster.clock.advance(days=15)  # pending accrual becomes spendable
    till.client.sync_now()
    spend = till.agent.card(M2).available
    till.sale("R2", M2, ("DR-1001", 1), redeem=min(spend, 1500))
    out = till.agent.refund("F1", "R1", {1: 1})
    again = till.agent.refund("F1", "R1", {1: 1})
    assert again.duplicate and again.event_id == out.event_id
    till.client.drain()
    assert cluster.ledger("SELECT count(*) FROM refunds")[0][0] == 1
    assert cluster.server_balance(M2) == till.balance(M2)
    assert sale.event_id in cluster.events()


def test_two_offline_tills_spend_for_one_member_overdraft_flagged_and_repaid(
    cluster: Cluster,
) -> None:
    a, b = cluster.till("till-a"), cluster.till("till-b")
    cluster.clock.advance(minutes=30)  # both offline now (no contact within the grace)
    assert not a.agent.offline_status().online
    start = cluster.server_balance(M2)
    avail = a.agent.card(M2).available
    ra = a.sale("A1", M2, ("OW-4001", 1), redeem="max")
    rb = b.sale("B1", M2, ("OW-4001", 1), redeem="max")
    assert ra.quote.redeem_points > 0 and rb.quote.redeem_points > 0
    # each till stayed within its offline caps
    rules = a.agent.programme()
    assert ra.quote.redeem_points <= rules.offline.per_transaction_points
    a.client.drain()
    b.client.drain()
    flags = cluster.ledger("SELECT kind, detail FROM flags WHERE member_id = ?", (M2,))
    spent = ra.quote.redeem_points + rb.quote.redeem_points
    assert spent > avail  # the two tills together spent more than the member had
    overdrafts = [json.loads(d)["overdraft"] for k, d in flags if k == "overdraft"]
    assert overdrafts == [spent - avail]  # flagged, with the amount
    earned = ra.quote.total_earned + rb.quote.total_earned
    assert cluster.server_balance(M2) == start - spent + earned  # nothing lost or doubled
    # the debt was repaid from the accrual that followed (the second cheque's own)
    from agent import codec
    from agent.model import MemberState

    state = cluster.ledger("SELECT state FROM members WHERE member_id = ?", (M2,))[0][0]
    assert codec.loads(MemberState, state).debt == 0
    a.client.pull_all()
    assert a.balance(M2) == cluster.server_balance(M2)


def test_clock_skew_flagged_and_order_by_seq(cluster: Cluster) -> None:
    till = cluster.till()
    till.sale("R1", M1, ("BG-7001", 1))
    till.agent.clock = type(cluster.clock)(cluster.clock.now())
    till.agent.clock.advance(days=3)  # the till's clock runs three days ahead
    till.client.agent = till.agent
    till.sale("R2", M1, ("BG-7001", 1))
    till.agent.clock.advance(days=-5)  # ...then jumps back
    till.sale("R3", M1, ("BG-7001", 1))
    till.client.drain()
    kinds = {k for (k,) in cluster.ledger("SELECT kind FROM flags")}
    assert {"clock_skew", "clock_backwards"} <= kinds
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 3
    assert journal.status(till.store).events_waiting == 0


def test_crash_mid_pull_page_keeps_rows_and_cursor_consistent(cluster: Cluster) -> None:
    a, b = cluster.till("till-a"), cluster.till("till-b")
    a.sale("R1", M1, ("BG-7001", 1))
    a.sale("R2", M2, ("BG-7001", 1))
    a.client.drain()
    cursor = b.store.sync_value("cursor")
    before = b.store.one("SELECT state FROM members WHERE member_id = ?", (M1,))

    real = journal.upsert_members

    def crash(conn, records, now_iso):  # type: ignore[no-untyped-def]
        real(conn, records, now_iso)
        raise OSError("power cut")

    journal.upsert_members = crash  # type: ignore[assignment]
    try:
        with pytest.raises(StoreWriteError):
            b.client.pull_once()
    except OSError:
        pass
    finally:
        journal.upsert_members = real  # type: ignore[assignment]
    assert b.store.sync_value("cursor") == cursor
    assert b.store.one("SELECT state FROM members WHERE member_id = ?", (M1,)) == before
    b.client.pull_all()
    b.client.pull_all()  # re-pull is harmless
    assert b.balance(M1) == cluster.server_balance(M1)
    assert b.balance(M2) == cluster.server_balance(M2)


def test_expired_cursor_reloads_snapshot_without_touching_outbox(cluster: Cluster) -> None:
    a, b = cluster.till("till-a"), cluster.till("till-b")
    b.sale("B1", M2, ("BG-7001", 1))  # unacked on b
    a.sale("R1", M1, ("BG-7001", 1))
    a.client.drain()
    cluster.bo.prune_changes(cluster.bo.feed_head())
    outbox = b.outbox()
    b.client.pull_once()  # 410 -> snapshot
    assert b.outbox() == outbox
    assert b.balance(M1) == cluster.server_balance(M1)
    assert int(b.store.sync_value("cursor")) == cluster.bo.feed_head()
    b.client.drain()
    assert b.balance(M2) == cluster.server_balance(M2)


def test_restored_till_gets_new_epoch_and_no_false_duplicates(cluster: Cluster) -> None:
    till = cluster.till()
    till.sale("R1", M1, ("BG-7001", 1))
    backup = cluster.tmp / "backup.db"
    with till.store.read() as conn:
        import sqlite3

        dst = sqlite3.connect(backup)
        conn.backup(dst)
        dst.close()
    till.sale("R2", M1, ("BG-7001", 1))
    till.client.drain()
    till.close()
    backup.replace(till.path)
    till.open()
    journal.start_new_epoch(till.store, cluster.clock.now().isoformat())
    till.agent = type(till.agent)(till.store, cluster.clock)
    till.client = SyncClient(till.agent, cluster.http)
    till.sale("R3", M1, ("BG-7001", 1))  # same seq (2) as R2, new epoch
    report = till.client.drain()
    assert report.acked == 2  # R1 again (duplicate) + R3 (applied)
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 3
    epochs = cluster.ledger("SELECT count(*) FROM epochs")[0][0]
    assert epochs == 2


def test_store_unwritable_during_ack_then_resend_is_duplicate(cluster: Cluster) -> None:
    till = cluster.till()
    till.sale("R1", M1, ("BG-7001", 1))
    real = journal.settle

    def full(*a, **k):  # type: ignore[no-untyped-def]
        raise StoreWriteError("disk full", "диск заполнен")

    journal.settle = full  # type: ignore[assignment]
    try:
        with pytest.raises(StoreWriteError):
            till.client.push_once()
    finally:
        journal.settle = real  # type: ignore[assignment]
    assert till.outbox()[0][3] == "pending"
    till.client.drain()
    assert till.outbox()[0][3] == "acked"
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 1


def test_registered_twice_offline_is_merged_and_announced(cluster: Cluster) -> None:
    a, b = cluster.till("till-a"), cluster.till("till-b")
    phone = "+7 999 123-45-67"
    ra = a.agent.register(
        phone=phone, first_name="Ира", consent_programme=True, consent_marketing=False
    )
    rb = b.agent.register(
        phone=phone, first_name="Ирина", consent_programme=True, consent_marketing=True
    )
    b.sale("B1", rb.card.member_id, ("BG-7001", 1))
    a.client.drain()
    b.client.drain()
    survivor = ra.card.member_id
    rows = dict(
        cluster.ledger(
            "SELECT member_id, merged_into FROM members WHERE member_id IN (?, ?)",
            (survivor, rb.card.member_id),
        )
    )
    assert rows == {survivor: None, rb.card.member_id: survivor}
    welcome = a.agent.programme().welcome_points
    purchase = cluster.ledger("SELECT member_id, earned FROM purchases")[0]
    assert purchase[0] == survivor
    assert cluster.server_balance(survivor) == welcome + purchase[1]  # welcome given once
    a.client.pull_all()
    b.client.pull_all()
    assert b.agent.identify(phone).member_id == survivor
    assert a.agent.identify(phone).member_id == survivor
    assert b.balance(survivor) == cluster.server_balance(survivor)


def test_rules_are_distributed_from_the_centre(cluster: Cluster) -> None:
    from dataclasses import replace

    till = cluster.till()
    rules = till.agent.programme()
    cluster.bo.publish_rules(replace(rules, version=rules.version + 1, welcome_points=777))
    till.client.pull_all()
    assert till.agent.programme().version == rules.version + 1
    assert till.agent.programme().welcome_points == 777


def test_member_lookup_and_app_token_verify_at_till(cluster: Cluster) -> None:
    till = cluster.till()
    headers = {"authorization": f"Bearer {till.client.token}"}
    code = till.agent.card(M1).code
    r = cluster.http.get("/v1/members/lookup", params={"code": code}, headers=headers)
    assert r.status_code == 200 and r.json()["member_id"] == M1
    key = bytes.fromhex(cluster.bo.setting("phone_hash_key"))
    h = hard_phone_hash(demo_phone(1), key, till.agent.programme().phone_hash)
    r = cluster.http.get("/v1/members/lookup", params={"phone_hash": h}, headers=headers)
    assert r.status_code == 200 and r.json()["member_id"] == M1
    assert (
        cluster.http.get("/v1/members/lookup", params={"code": "1"}, headers=headers).status_code
        == 404
    )
    assert cluster.http.get("/v1/members/lookup", headers=headers).status_code == 400
    # a malformed code and a well-formed unknown one get the same answer: a till cannot
    # tell valid member codes apart by the status
    unknown = make_member_code(999_999_999)
    for probe in ("ABC", unknown):
        r = cluster.http.get("/v1/members/lookup", params={"code": probe}, headers=headers)
        assert (r.status_code, r.json()["error"]) == (404, "member_not_found")
    # a member QR token is not a till's to mint (any member's card): the admin token's
    r = cluster.http.post(f"/v1/members/{code}/token", headers=headers)
    assert (r.status_code, r.json()["error"]) == (401, "bad_token")
    admin = {"authorization": f"Bearer {cluster.bo.new_admin_token()}"}
    r = cluster.http.post(f"/v1/members/{unknown}/token", headers=admin)
    assert r.status_code == 404
    r = cluster.http.post("/v1/members/ABC/token", headers=admin)
    assert (r.status_code, r.json()["error"]) == (400, "bad_member_code")
    tok = cluster.http.post(f"/v1/members/{code}/token", headers=admin).json()["token"]
    verifier = TokenVerifier({1: load_ed25519_public_key(till.store.meta("token_public_key"))})
    assert verify_member_token(verifier, tok, cluster.clock.now()).member_code == code
    assert till.agent.identify(tok).member_id == M1


def test_openapi_is_published(cluster: Cluster) -> None:
    spec = cluster.http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    assert {"/v1/events", "/v1/changes", "/v1/snapshot", "/v1/enroll"} <= set(spec["paths"])


def test_enroll_code_is_one_time(cluster: Cluster) -> None:
    code = cluster.bo.enroll_code("s1")
    assert cluster.http.post("/v1/enroll", json={"code": code}).status_code == 200
    r = cluster.http.post("/v1/enroll", json={"code": code})
    assert r.status_code == 403 and r.json()["error"] == "enroll_code_used"
    assert cluster.http.post("/v1/enroll", json={"code": "XXXX"}).status_code == 403
    tokens = [t for (t,) in cluster.ledger("SELECT token_hash FROM terminals")]
    assert all(len(t) == 64 for t in tokens)  # stored hashed


def test_transient_5xx_is_retried(cluster: Cluster) -> None:
    till = cluster.till()
    till.sale("R1", M1, ("BG-7001", 1))
    cluster.transport.plan = lambda r: "503"
    with pytest.raises(TransientError):
        till.client.push_once()
    cluster.transport.plan = lambda r: None
    assert till.client.push_once().acked == 1


def test_network_error_during_enroll_is_clear(tmp_path: Path) -> None:
    from sync.client import PermanentError
    from sync.enroll import enroll_till

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    http = httpx.Client(transport=httpx.MockTransport(refuse), base_url="http://nowhere")
    with pytest.raises(PermanentError, match="not reachable"):
        enroll_till(tmp_path / "t.db", http, "AAAA-BBBB-CCCC")
    assert not (tmp_path / "t.db").exists()


def test_schema_upgrade_with_events_pending_uploads_them_all(cluster: Cluster) -> None:
    """A till upgraded from the first schema with sales still queued: the migration runs
    forward (filling the new outbox.member_id from each payload) and every event uploads."""
    till = cluster.till()
    results = [till.sale(f"R{i}", f"m0000000{i}", ("BG-7001", 1)) for i in range(4)]
    with till.store.write() as conn:  # take the store back to schema 0001
        conn.execute("DROP TABLE quarantine")
        conn.execute("ALTER TABLE outbox DROP COLUMN member_id")
        conn.execute("ALTER TABLE members DROP COLUMN merged_into")
        conn.execute("DELETE FROM _sqlite_migrations WHERE name = '0002_sync'")
    till.close()
    till.open()  # the new version opens it: migrations run forward
    assert till.store.applied_migrations()[-1] == "0002_sync"
    assert journal.status(till.store).events_waiting == 4
    assert till.client.drain().acked == 4
    assert set(cluster.events()) == {r.event_id for r in results}
    for i in range(4):
        assert till.balance(f"m0000000{i}") == cluster.server_balance(f"m0000000{i}")


def test_sync_now_holds_the_lock_and_records_a_failed_exchange(cluster: Cluster) -> None:
    """``SyncClient.sync_now`` (``kassa sync now`` and the cashier app's sync screen):
    every request under the client's lock; a failed exchange is on the journal and
    raised, and the lock is free again."""
    from kassa.wiring import sync_url

    till = cluster.till()
    held: list[bool] = []

    def watch(request: httpx.Request) -> None:
        held.append(till.client.lock.locked())

    cluster.transport.plan = watch
    till.client.sync_now()
    assert held and all(held)
    cluster.transport.plan = lambda r: "503"
    with pytest.raises(TransientError):
        till.client.sync_now()
    assert till.agent.sync_status().last_error == "HTTP 503"
    assert not till.client.lock.locked()
    assert sync_url(till.agent, "http://bo.example:8000") == "http://bo.example:8000"
    assert sync_url(till.agent) == till.store.meta("backoffice_url")  # saved at enrolment


def test_an_envelope_refusal_does_not_poison_the_event_id(cluster: Cluster) -> None:
    """An event garbled on the way (its payload no longer matches its hash) is refused
    ``hash_mismatch`` and keeps nothing of the till's event: the genuine event sent later
    under the same id is accepted and applied once, not a ``conflict`` for ever."""
    till = cluster.till()
    till.sale("R1", M1, ("BG-7001", 1))
    before = cluster.server_balance(M1)
    (event,) = journal.next_batch(till.store, max_events=10, max_bytes=10**6)
    headers = {"authorization": f"Bearer {till.client.token}"}
    tid = till.agent.terminal_id
    garbled = {**event.wire(), "payload": event.payload.replace("BG-7001", "BG-7002")}
    refused = cluster.http.post(
        "/v1/events", content=encode_push(tid, [garbled]), headers=headers
    ).json()
    assert [(r["status"], r.get("code")) for r in refused["results"]] == [
        ("rejected", "hash_mismatch")
    ], refused
    again = cluster.http.post(
        "/v1/events", content=encode_push(tid, [garbled]), headers=headers
    ).json()
    assert again["results"][0]["status"] == "rejected"  # still refused, still nothing kept
    report = till.client.drain()  # the genuine event, same id
    assert (report.acked, report.quarantined) == (1, 0)
    assert cluster.ledger("SELECT count(*) FROM purchases")[0][0] == 1
    assert cluster.ledger("SELECT count(*) FROM conflicts")[0][0] == 0
    assert cluster.server_balance(M1) == till.balance(M1) != before
    resent = cluster.http.post(
        "/v1/events", content=encode_push(tid, [event.wire()]), headers=headers
    ).json()
    assert resent["results"][0]["status"] == "duplicate"

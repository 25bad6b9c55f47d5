"""The background verifier (``sync.backoffice.verify``): re-scoring applied purchases
in its own thread, apart from the push.

Real till, real back office app (SQLite and PostgreSQL); the verifier runs in the test
thread (``run_once`` / ``run_all``) except where the test is about its thread.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from cluster import Cluster
from synchelp import portal

from agent import codec, journal
from agent.ledger import apply_purchase
from agent.model import Cart, MemberState, Quote
from sync.backoffice import kpi, verify
from sync.backoffice.app import create_app
from sync.protocol import encode_push

M1, M2 = "m00000001", "m00000002"


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _push_raw(cluster: Cluster, token: str, terminal_id: str, events: list[dict[str, Any]]) -> Any:
    resp = cluster.http.post(
        "/v1/events",
        content=encode_push(terminal_id, events),
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _flags(cluster: Cluster) -> list[tuple[str, str, dict[str, Any]]]:
    rows = cluster.ledger("SELECT kind, event_id, detail FROM flags ORDER BY id")
    return [(k, e, json.loads(d)) for k, e, d in rows]


def test_mismatch_is_flagged_by_the_verifier_once_and_the_backlog_is_visible(
    cluster: Cluster,
) -> None:
    till = cluster.till()
    till.sale("R1", M1, ("DR-1001", 1))
    good = till.sale("R2", M2, ("OW-4001", 1))
    batch = [e.wire() for e in journal.next_batch(till.store, max_events=10, max_bytes=10**7)]
    # The till printed 7 more points than the engine gives (a bug or a tampered till).
    bad = batch[0]
    p = json.loads(bad["payload"])
    printed = p["quote"]["earn_points"] + 7
    p["quote"]["earn_points"] = printed
    bad["payload"] = _canon(p)
    bad["payload_hash"] = hashlib.sha256(bad["payload"].encode()).hexdigest()
    out = _push_raw(cluster, till.client.token, till.agent.terminal_id, batch)
    assert [r["status"] for r in out["results"]] == ["applied", "applied"]
    # applied and honoured at once; the audit is queued, not done inside the push
    assert _flags(cluster) == []
    health = cluster.http.get("/v1/health").json()
    assert health["verify_backlog"] == 2
    report = kpi.report(cluster.bo.context, kpi.period(None, None))
    assert report["verify_backlog"] == 2
    assert "Ждут повторной проверки чека: 2" in kpi.table(report)

    assert verify.run_once(cluster.bo.context, limit=1) == 1
    assert verify.backlog(cluster.bo.context) == 1
    assert verify.run_all(cluster.bo.context) == 1
    assert verify.run_all(cluster.bo.context) == 0  # each purchase is verified exactly once
    flags = _flags(cluster)
    assert [(k, e) for k, e, _ in flags] == [("rescore_mismatch", bad["event_id"])]
    detail = flags[0][2]
    assert detail["till"][0] == printed and detail["server"][0] == printed - 7
    assert good.event_id not in {e for _, e, _ in flags}
    assert cluster.http.get("/v1/health").json()["verify_backlog"] == 0
    # the ledger honoured what the till printed
    earned = cluster.ledger("SELECT earned FROM purchases WHERE event_id = ?", (bad["event_id"],))
    assert earned == [(printed,)]


def test_verifier_scores_against_the_state_before_each_purchase(cluster: Cluster) -> None:
    """Two purchases of one member in one batch: the second is queued with the state the
    ledger applied it to (the state after the first), not the state before the batch."""
    till = cluster.till()
    till.sale("R1", M1, ("DR-1001", 1), redeem=100)
    till.sale("R2", M1, ("OW-4001", 1), ("BG-7001", 2))
    before = cluster.ledger("SELECT state FROM members WHERE member_id = ?", (M1,))[0][0]
    report = till.client.drain()
    assert report.acked == 2
    rows = cluster.ledger(
        "SELECT v.state, e.payload, e.event_id FROM verify_queue v "
        "JOIN events e ON e.event_id = v.event_id ORDER BY v.id"
    )
    assert len(rows) == 2
    assert codec.loads(MemberState, rows[0][0]) == codec.loads(MemberState, before)
    s1 = codec.loads(MemberState, rows[1][0])
    assert s1 != codec.loads(MemberState, before)
    p = json.loads(rows[1][1])
    rules = cluster.bo.rules(p["quote"]["rules_version"])
    assert rules is not None
    after, _ = apply_purchase(
        s1,
        codec.from_plain(Cart, p["cart"]),
        codec.from_plain(Quote, p["quote"]),
        rules,
        datetime.fromisoformat(p["occurred_at"]),
        rows[1][2],
        allow_overdraft=True,
    )
    final = cluster.ledger("SELECT state FROM members WHERE member_id = ?", (M1,))[0][0]
    assert after == codec.loads(MemberState, final)
    # scored by the till against exactly these states: the verifier agrees
    assert verify.run_all(cluster.bo.context) == 2
    assert [k for k, _, _ in _flags(cluster)] == []


def test_rejected_and_duplicate_events_are_not_queued(cluster: Cluster) -> None:
    till = cluster.till()
    till.sale("R1", M1, ("DR-1001", 1))
    batch = [e.wire() for e in journal.next_batch(till.store, max_events=10, max_bytes=10**7)]
    forged = dict(batch[0], event_id="f" * 32, seq=2)
    p = json.loads(forged["payload"])
    p["member_id"] = "nobody"
    forged["payload"] = _canon(p)
    forged["payload_hash"] = hashlib.sha256(forged["payload"].encode()).hexdigest()
    out = _push_raw(cluster, till.client.token, till.agent.terminal_id, [batch[0], forged])
    assert [r["status"] for r in out["results"]] == ["applied", "rejected"]
    out = _push_raw(cluster, till.client.token, till.agent.terminal_id, [batch[0]])
    assert [r["status"] for r in out["results"]] == ["duplicate"]
    assert cluster.ledger("SELECT event_id FROM verify_queue") == [(batch[0]["event_id"],)]


def test_the_served_app_runs_the_verifier_thread(cluster: Cluster) -> None:
    """Under a server (the ASGI lifespan, as ``kassa backoffice serve`` runs it) the
    verifier thread runs and stops with the app; without a lifespan nothing runs."""
    app = create_app(cluster.bo)
    assert app.state.verifier is None
    with portal() as p:
        with p.wrap_async_context_manager(app.router.lifespan_context(app)):
            worker = app.state.verifier
            assert isinstance(worker, verify.Verifier) and worker.is_alive()
        assert not worker.is_alive()
        off = create_app(cluster.bo, verifier=False)
        with p.wrap_async_context_manager(off.router.lifespan_context(off)):
            assert off.state.verifier is None


def test_the_verifier_yields_to_the_projector(cluster: Cluster, monkeypatch: Any) -> None:
    """While accepted events wait for the projector, the verifier takes small chunks after
    a pause (balances first); once they are applied it takes full chunks."""
    from sync.backoffice import ingest, project

    monkeypatch.setattr(ingest, "INLINE_MAX_EVENTS", 0)
    monkeypatch.setattr(verify, "BUSY_PAUSE_S", 0.0)
    monkeypatch.setattr(verify, "BUSY_CHUNK", 2)
    till = cluster.till()
    for i in range(6):
        till.sale(f"R{i}", "m00000001", ("BG-7001", 1))
    till.client.drain()
    assert project.run_once(cluster.bo.context, 4) == 4  # two still wait for the projector
    worker = verify.Verifier(cluster.bo.context)
    assert worker.round(busy=False) == 2  # a small chunk: the projector has work
    project.run_all(cluster.bo.context)
    assert worker.round(busy=False) == 4  # the rest at once

"""Issue 22's race, step by step: a server record of a member older than the one the
till holds must never replace it (the real sync client and the real back office, SQLite
and PostgreSQL, the network faked by ``FaultyTransport``).

Push answers and verdicts carry the member's current record; the change feed replays the
record of every past change and, after an outage, lags far behind them. Before the fix a
feed page behind the answers put a member's balance back to what it was before the till's
own last sales (no local event of theirs in flight, so nothing stopped it): the next
cheque's ``balance_before`` was not the balance after the previous one, and the back
office flagged the cheque (``overdraft``, ``rescore_mismatch``). Each test here fails on
that code at its chain assertion.
"""

from __future__ import annotations

import httpx
import pytest
from chain import chain_breaks
from cluster import Cluster

from sync.backoffice import ingest, project, verify
from sync.client import TransientError

M = "m00000003"


def _flags(cluster: Cluster) -> list[tuple[str, str]]:
    verify.run_all(cluster.bo.context)
    return [(k, d) for k, d in cluster.ledger("SELECT kind, detail FROM flags ORDER BY id")]


def _finish(cluster: Cluster) -> None:
    """Everything synced: the chain holds, the balances agree, the back office flagged
    nothing."""
    till = cluster.tills[0]
    till.client.drain()
    project.run_all(cluster.bo.context)
    till.client.confirm_all()
    till.client.pull_all()
    assert chain_breaks(till.store) == []
    assert till.balance(M) == cluster.server_balance(M)
    assert _flags(cluster) == []


def test_a_feed_page_behind_the_push_answers_does_not_roll_the_member_back(
    cluster: Cluster,
) -> None:
    till = cluster.till()
    till.sale("R1", M, ("OW-4001", 1))
    till.client.push_once()  # applied at once: the answer brings the record after R1
    second = till.sale("R2", M, ("OW-4001", 1), redeem="max")
    till.client.push_once()  # ... and after R2
    after_two = till.balance(M)
    assert after_two == second.quote.balance_after
    # One page of the feed, one entry: the change R1 made (older than what the till holds).
    n, more = till.client.pull_once(limit=1)
    assert (n, more) == (1, True)
    assert till.balance(M) == after_two  # before the fix: R1's balance again
    third = till.sale("R3", M, ("BG-7001", 1), redeem="max")
    assert third.quote.balance_before == second.quote.balance_after
    _finish(cluster)


def test_answers_lost_then_resent_bring_the_record_too(cluster: Cluster) -> None:
    """A push whose answer was lost is sent again and answered ``duplicate``: that answer
    carries the member's record as well, so the till does not keep its own state with the
    feed position of an older record (an older feed entry would replace it)."""
    till = cluster.till()
    faults = iter(["drop_response", None, "drop_response", None])
    cluster.transport.plan = lambda r: next(faults) if r.url.path == "/v1/events" else None
    results = []
    for n in (1, 2):
        results.append(till.sale(f"R{n}", M, ("OW-4001", 1)))
        try:
            till.client.push_once()  # the back office applies it; the answer is lost
        except TransientError:
            pass
        else:  # pragma: no cover - the plan drops this answer
            raise AssertionError("the answer was not dropped")
        out = till.client.push_once()  # the same bytes again: duplicate
        assert out.acked == 1
    cluster.transport.plan = lambda r: None
    held = till.balance(M)
    assert held == results[-1].quote.balance_after
    while True:  # the feed one entry at a time: R1's change, then R2's
        n, more = till.client.pull_once(limit=1)
        assert till.balance(M) == held
        if not more:
            break
    third = till.sale("R3", M, ("BG-7001", 1), redeem="max")
    assert third.quote.balance_before == held
    _finish(cluster)


def test_verdicts_and_the_feed_out_of_step(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A back office with a backlog only accepts pushes; the verdicts bring the records,
    and the feed pulled a page at a time after them must not undo them."""
    monkeypatch.setattr(ingest, "INLINE_MAX_EVENTS", 0)
    till = cluster.till()
    last = None
    for n in range(1, 5):
        last = till.sale(f"R{n}", M, ("SH-2001", 1), redeem="max" if n % 2 else 0)
        till.client.push_once()
        project.run_all(cluster.bo.context)
        till.client.confirm_all()
    assert last is not None
    held = till.balance(M)
    assert held == last.quote.balance_after
    more = True
    while more:
        _, more = till.client.pull_once(limit=1)
        assert till.balance(M) == held
    till.sale("R9", M, ("BG-7001", 1), redeem="max")
    _finish(cluster)


def test_a_back_office_without_feed_positions_is_taken_as_before(cluster: Cluster) -> None:
    """Records without ``feed_seq`` (a back office older than the till) replace the cache
    as they always did: nothing is refused, the till keeps syncing."""
    till = cluster.till()
    inner = cluster.transport.inner

    class Strip(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            resp = inner.handle_request(request)
            if request.url.path != "/v1/events":
                return resp
            data = resp.json()
            for rec in data.get("members", {}).values():
                rec.pop("feed_seq", None)
            return httpx.Response(resp.status_code, json=data, request=request)

    cluster.transport.inner = Strip()
    till.sale("R1", M, ("OW-4001", 1))
    till.client.push_once()
    assert till.balance(M) == cluster.server_balance(M)
    with till.store.read() as conn:
        assert (
            conn.execute("SELECT feed_seq FROM members WHERE member_id = ?", (M,)).fetchone()[0]
            == 0
        )

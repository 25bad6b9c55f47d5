"""A till cannot mint points with a forged purchase: the back office re-scores every
purchase before applying it.

A pushed purchase claiming more earned or bonus points than the engine gives (or a
spend beyond the cheque's limit) by more than the programme's tolerance is not applied:
answered ``rejected`` / ``held_for_review`` (the till quarantines it and gets the
member's record back), kept with its claim and the server's figures for the console's
review, where a person releases it (applied once, as printed) or refuses it. Within the
tolerance the slip is honoured as printed. Real app and database (SQLite and
PostgreSQL), and real tills.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

import pytest
from cluster import Cluster
from conftest import make_cart
from test_sync_fuzz import M1, M2, Rig, canon, envelope, rig, sha  # noqa: F401  (the fixture)

from agent import journal
from agent.errors import AgentError
from agent.model import Quote
from agent.results import CheckoutRequest
from agent.service import sales
from sync.backoffice import project, review
from sync.backoffice.member_admin import MemberAdminError

MINT = 10**9


def _earn(points: int) -> Any:
    def edit(p: dict[str, Any]) -> None:
        p["quote"]["earn_points"] = points

    return edit


def _held_flag(r: Rig, event_id: str) -> dict[str, Any]:
    rows = r.cluster.ledger(
        "SELECT detail FROM flags WHERE kind = 'held_for_review' AND event_id = ?", (event_id,)
    )
    assert len(rows) == 1, rows
    out: dict[str, Any] = json.loads(rows[0][0])
    return out


def test_forged_earn_is_held_with_its_figures_and_not_applied(rig: Rig) -> None:  # noqa: F811
    before = rig.view()
    honest = json.loads(rig.pending("purchase")["payload"])["quote"]
    ev = rig.forged("purchase", _earn(MINT))
    resp = rig.push(ev)
    assert resp.status_code == 200, resp.text
    (result,) = resp.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "held_for_review"), result
    assert str(MINT) in result["message"]
    assert rig.view() == before  # no purchase, no balance, no change-feed entry
    detail = _held_flag(rig, ev["event_id"])
    assert detail["claim"]["earned"] == MINT
    assert detail["server"]["earned"] == honest["earn_points"]
    assert detail["tolerance"] == 100  # the demo programme's [rescore]
    (held,) = rig.cluster.bo.held_purchases()
    assert (held.event_id, held.member_id, held.claim_earned) == (ev["event_id"], M2, MINT)
    assert held.server_earned == honest["earn_points"]


def test_within_the_tolerance_the_slip_is_honoured_as_printed(rig: Rig) -> None:  # noqa: F811
    honest = json.loads(rig.pending("purchase")["payload"])["quote"]["earn_points"]
    before = rig.cluster.server_balance(M2)
    ev = rig.forged("purchase", _earn(honest + 100))  # exactly the tolerance
    (result,) = rig.push(ev).json()["results"]
    assert result["status"] == "applied", result
    spent = json.loads(ev["payload"])["quote"]["redeem_points"]
    assert rig.cluster.server_balance(M2) == before - spent + honest + 100
    over = rig.forged("purchase", _earn(honest + 101))
    (result,) = rig.push(over).json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "held_for_review"), result


def test_a_spend_beyond_the_cheques_limit_is_held(rig: Rig) -> None:  # noqa: F811
    def overspend(p: dict[str, Any]) -> None:
        q = p["quote"]
        q["redeem_points"] += MINT
        q["lines"][0]["redeemed_points"] += MINT

    before = rig.view()
    ev = rig.forged("purchase", overspend)
    (result,) = rig.push(ev).json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "held_for_review"), result
    assert "spends" in result["message"]
    assert rig.view() == before
    detail = _held_flag(rig, ev["event_id"])
    assert detail["claim"]["spent"] > MINT > detail["server"]["spend_limit"]


def test_an_honest_run_holds_nothing(rig: Rig) -> None:  # noqa: F811
    report = rig.till.client.drain()
    assert report.quarantined == 0
    held = rig.cluster.ledger("SELECT count(*) FROM events WHERE code = 'held_for_review'")
    assert held == [(0,)]
    assert rig.cluster.bo.held_purchases() == []


# ---------------------------------------------------------------------- a tampered till
def _held_sale(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, str]:
    """A sale at a tampered till of store s1, pushed by the till itself; another store's
    till (s2) that knows the member. Returns (till, other, event id)."""
    cluster.bo.ensure_store("s2", "Арбат")
    till = cluster.till()
    other = cluster.till("till-other", "s2")
    other.client.pull_all()
    before = cluster.server_balance(M1)
    real = sales.score

    def tampered(*args: Any, **kwargs: Any) -> Quote:  # a tampered till's engine
        return replace(real(*args, **kwargs), earn_points=real(*args, **kwargs).earn_points + MINT)

    monkeypatch.setattr(sales, "score", tampered)
    sale = till.sale("RX1", M1, ("DR-1001", 1))
    monkeypatch.setattr(sales, "score", real)
    assert sale.quote.earn_points > MINT  # the slip the tampered till printed
    assert till.balance(M1) > MINT  # and its own cache, before the push
    report = till.client.drain()
    assert (report.acked, report.quarantined) == (0, 1)
    assert till.outbox()[-1][3] == "quarantined"
    # the verdict brought the member's record back: the till's cache is the server's
    assert cluster.server_balance(M1) == before
    assert till.balance(M1) == before
    other.client.pull_all()
    assert other.balance(M1) == before
    with pytest.raises(AgentError):  # the minted points are not spendable elsewhere
        other.sale("RY1", M1, ("OW-4001", 1), redeem=MINT // 2)
    return till, other, sale.event_id


def test_a_tampered_tills_mint_is_held_and_released_once(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    till, other, event_id = _held_sale(cluster, monkeypatch)
    before = cluster.server_balance(M1)
    (held,) = cluster.bo.held_purchases()
    assert held.event_id == event_id and held.claim_earned > MINT
    with pytest.raises(MemberAdminError):  # a reason is required
        cluster.bo.release_purchase(event_id, "  ", actor="owner")
    member = cluster.bo.release_purchase(event_id, "checked the cheque", actor="owner")
    assert member == M1
    assert cluster.server_balance(M1) == before + held.claim_earned
    row = cluster.ledger("SELECT status, code FROM events WHERE event_id = ?", (event_id,))
    assert row == [("applied", "released")]
    assert cluster.ledger("SELECT count(*) FROM purchases WHERE event_id = ?", (event_id,)) == [
        (1,)
    ]
    with pytest.raises(MemberAdminError):  # once: nothing is held any more
        cluster.bo.release_purchase(event_id, "again", actor="owner")
    assert project.run_all(cluster.bo.context) == 0  # the projector does not apply it again
    assert cluster.server_balance(M1) == before + held.claim_earned
    assert cluster.bo.held_purchases() == []
    (entry,) = [e for e in cluster.bo.audit_entries() if e.action == "purchase_released"]
    assert (entry.actor, entry.subject) == ("owner", event_id)
    assert entry.particulars()["reason"] == "checked the cheque"
    # both tills learn the balance through the change feed
    for node in (till, other):
        node.client.pull_all()
        assert node.balance(M1) == cluster.server_balance(M1)


def test_a_refused_mint_stays_refused(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    till, other, event_id = _held_sale(cluster, monkeypatch)
    before = cluster.server_balance(M1)
    cluster.bo.refuse_purchase(event_id, "forged", actor="owner")
    row = cluster.ledger("SELECT status, code FROM events WHERE event_id = ?", (event_id,))
    assert row == [("rejected", review.REFUSED)]
    assert cluster.bo.held_purchases() == []
    with pytest.raises(MemberAdminError):
        cluster.bo.release_purchase(event_id, "changed my mind", actor="owner")
    assert cluster.server_balance(M1) == before
    (entry,) = [e for e in cluster.bo.audit_entries() if e.action == "purchase_refused"]
    assert entry.particulars()["reason"] == "forged"
    till.client.pull_all()
    other.client.pull_all()
    assert till.balance(M1) == other.balance(M1) == before


# ---------------------------------------------------------------------- coupons
def test_a_signed_points_coupon_applies_and_a_forged_one_is_held(cluster: Cluster) -> None:
    issued = cluster.bo.coupon_issue(
        "batch", "points", "5000", "2026-06-15", "2026-06-30", "", actor="olga", count="2"
    )
    found = cluster.bo.coupon_batch(issued.batch_id)
    assert found is not None
    tokens = [c.token for c in found[1]]
    cluster.clock.advance(hours=1)
    till = cluster.till()
    before = cluster.server_balance(M1)
    sold = till.agent.commit(
        CheckoutRequest(M1, make_cart("RC1", ("DR-1001", 1)), 0, coupon=tokens[0], cashier_id="c1")
    )
    assert [(b.kind, b.points) for b in sold.quote.bonuses] == [("coupon", 5000)]
    (honest,) = [e.wire() for e in journal.next_batch(till.store, max_events=10, max_bytes=10**7)]
    # the same cheque under another receipt, its coupon token replaced by an unsigned one
    forged = dict(honest, event_id=uuid.uuid4().hex, seq=honest["seq"] + 1)
    p = json.loads(honest["payload"])
    p["receipt_id"] = p["cart"]["receipt_id"] = p["quote"]["receipt_id"] = "RC2"
    p["coupon"] = tokens[1][:-8] + "AAAAAAAA"
    forged["payload"] = canon(p)
    forged["payload_hash"] = sha(forged["payload"])
    assert till.client.drain().quarantined == 0
    assert cluster.server_balance(M1) == before + sold.quote.total_earned  # signed: applied
    resp = cluster.http.post(
        "/v1/events",
        content=envelope(till.agent.terminal_id, [forged]),
        headers={"authorization": f"Bearer {till.client.token}"},
    )
    (result,) = resp.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "held_for_review"), result
    assert cluster.server_balance(M1) == before + sold.quote.total_earned

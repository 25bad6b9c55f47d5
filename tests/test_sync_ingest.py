"""The batched ingest (``sync.backoffice.ingest``): its careful fallback and its batch-local
state, on SQLite and PostgreSQL with the real app.

The fast path collects a batch's writes and runs them with one statement per table; if
the database refuses one of them, the batch is applied again with a savepoint per event.
A database trigger plays the database refusing one row (a real refusal, no mocks).
"""

from __future__ import annotations

import json

from cluster import Cluster

from agent import codec, journal
from agent.model import MemberState

M1, M2, M3 = "m00000001", "m00000002", "m00000003"


def _refuse_receipt(cluster: Cluster, receipt: str) -> None:
    """A trigger that makes the database refuse the purchases row of ``receipt``."""
    with cluster.db.transaction() as tx:
        if tx.dialect == "sqlite":
            tx.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON purchases "
                f"WHEN NEW.receipt_id = '{receipt}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
            )
        else:
            tx.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF NEW.receipt_id = '{receipt}' THEN "
                "RAISE EXCEPTION 'refused' USING ERRCODE = 'check_violation'; END IF; "
                "RETURN NEW; END $$"
            )
            tx.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON purchases "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


def _state(cluster: Cluster, member_id: str) -> MemberState:
    row = cluster.ledger("SELECT state FROM members WHERE member_id = ?", (member_id,))
    return codec.loads(MemberState, row[0][0])


def test_a_row_the_database_refuses_rejects_that_event_alone(cluster: Cluster) -> None:
    till = cluster.till()
    m2_before = _state(cluster, M2)
    a = till.sale("R1", M1, ("DR-1001", 1))
    boom = till.sale("R-BOOM", M2, ("OW-4001", 1))
    c = till.sale("R3", M1, ("BG-7001", 2))
    ref = till.agent.refund("F1", "R1", {1: 1})
    _refuse_receipt(cluster, "R-BOOM")
    report = till.client.drain()
    assert (report.sent, report.acked, report.quarantined) == (4, 3, 1)
    status = dict(cluster.ledger("SELECT event_id, status FROM events"))
    assert status == {
        a.event_id: "applied",
        boom.event_id: "rejected",
        c.event_id: "applied",
        ref.event_id: "applied",
    }
    q = journal.quarantine_rows(till.store)
    assert [(r["event_id"], r["code"]) for r in q] == [(boom.event_id, "bad_payload")]
    # the refused event left no trace; the others applied in full, in order
    assert sorted(r[0] for r in cluster.ledger("SELECT receipt_id FROM purchases")) == [
        "R1",
        "R3",
    ]
    assert _state(cluster, M2) == m2_before
    assert cluster.ledger("SELECT event_id FROM verify_queue ORDER BY id") == [
        (a.event_id,),
        (c.event_id,),
    ]
    refunded = cluster.ledger("SELECT refunded FROM purchases WHERE receipt_id = 'R1'")
    assert json.loads(refunded[0][0]) == {"1": 1}
    assert cluster.server_balance(M1) == till.balance(M1)


def test_purchase_refund_registration_and_its_sale_in_one_batch(cluster: Cluster) -> None:
    """What the batch itself created is visible to its later events: a refund of a sale
    of the same batch, a sale to a member registered in it, a receipt id used twice."""
    till = cluster.till()
    sale = till.sale("R1", M3, ("SH-2001", 1), ("AC-6001", 1))
    refund = till.agent.refund("F1", "R1", {1: 1})
    reg = till.agent.register(
        phone="+7 999 555-01-23", first_name="Вера", consent_programme=True, consent_marketing=False
    )
    new_sale = till.sale("R2", reg.card.member_id, ("BG-7001", 1))
    batch = [e.wire() for e in journal.next_batch(till.store, max_events=50, max_bytes=10**7)]
    again = dict(batch[0], event_id="e" * 32, seq=len(batch) + 1)  # same receipt, new id
    resp = cluster.http.post(
        "/v1/events",
        content=json.dumps(
            {"protocol": 1, "terminal_id": till.agent.terminal_id, "events": [*batch, again]}
        ).encode(),
        headers={"authorization": f"Bearer {till.client.token}"},
    )
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["applied"] * 4 + ["rejected"]
    assert results[-1]["code"] == "duplicate_receipt"
    assert [sale.event_id, refund.event_id, new_sale.event_id] == [
        batch[0]["event_id"],
        batch[1]["event_id"],
        batch[3]["event_id"],
    ]
    members = resp.json()["members"]
    assert {M3, reg.card.member_id} <= set(members)
    refunded = cluster.ledger("SELECT refunded FROM purchases WHERE receipt_id = 'R1'")
    assert json.loads(refunded[0][0]) == {"1": 1}
    assert cluster.ledger("SELECT member_id FROM purchases WHERE receipt_id = 'R2'") == [
        (reg.card.member_id,)
    ]
    till.client.drain()
    for mid in (M3, reg.card.member_id):
        assert cluster.server_balance(mid) == till.balance(mid)

"""The stores-and-tills page's use cases (``sync.backoffice.tills``) on SQLite and
PostgreSQL: a till tells its send queue with every call (``X-Kassa-Queue``) and the back
office keeps it, written only when it matters; stores added (validated, audited);
enrollment codes made from the console (audited, with their expiry, usable once); the
silent-till alarm and its owner-set threshold; the closed-launch rows are the KPI report's
own, per store for a store manager."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cluster import Cluster

from agent.seed import demo_phone
from sync.backoffice import kpi, tills
from sync.backoffice.people import audit
from sync.backoffice.tills import Contacts, StoreError
from sync.client import SyncClient
from sync.enroll import enroll_till
from sync.protocol import QueueReport, encode_queue, parse_queue


def test_queue_header_round_trip_and_unreadable_ones_ignored() -> None:
    report = QueueReport(3, "2026-06-15T10:00:00+03:00", 1)
    text = encode_queue(report)
    assert text.isascii() and parse_queue(text) == report
    assert parse_queue(encode_queue(QueueReport(0))) == QueueReport(0, None, 0)
    for bad in (
        None,
        "",
        "not json",
        '{"waiting": -1}',
        '{"waiting": "3"}',
        '{"oldest": "2026-06-15T10:00:00+03:00"}',
        '{"waiting": 1, "oldest": "yesterday"}',
        '{"waiting": 1, "oldest": "2026-06-15T10:00:00"}',
        "[" * 1000,
        '{"waiting": 1, "pad": "' + "x" * 400 + '"}',
    ):
        assert parse_queue(bad) is None, bad


def _row(cluster: Cluster, name: str) -> tills.TillRow:
    return next(t for t in cluster.bo.stores_overview().tills if t.terminal_id == name)


def test_a_till_tells_its_queue_and_the_back_office_keeps_it(cluster: Cluster) -> None:
    till = cluster.till()
    first = _row(cluster, "till-1")
    # enrolment loaded the snapshot: the till has called, with an empty queue
    assert (first.waiting, first.quarantined, first.oldest) == (0, 0, None)
    assert first.last_seen == cluster.clock.now().isoformat()
    cluster.clock.advance(seconds=5)
    for n in range(3):
        till.sale(f"Q-{n}", "m00000001", ("DR-1001", 1), cashier="anna")
    told = till.client.queue_report()
    assert told.waiting == 3 and told.oldest is not None and told.quarantined == 0
    # the push carries the queue as it was when sent; the next call tells it is empty
    till.client.push_once()
    row = _row(cluster, "till-1")
    assert (row.waiting, row.quarantined) == (3, 0) and row.oldest == told.oldest
    assert row.last_seen == cluster.clock.now().isoformat()
    till.client.pull_once()
    row = _row(cluster, "till-1")
    assert (row.waiting, row.oldest) == (0, None)
    assert row.software and row.software.startswith("kassa-agent/")
    assert not row.silent


def test_contacts_write_only_when_it_matters(cluster: Cluster) -> None:
    till = cluster.till()
    contacts = Contacts()
    now = cluster.clock.now()
    empty, busy = QueueReport(0), QueueReport(5, "2026-06-15T10:00:00+03:00", 0)
    assert contacts.due("till-1", empty, now)  # nothing written yet
    contacts.note(cluster.bo.context, "till-1", empty)
    assert not contacts.due("till-1", empty, now + timedelta(seconds=30))
    assert contacts.due("till-1", empty, now + tills.CONTACT_EVERY)  # a fresh contact
    assert contacts.due("till-1", busy, now)  # something waits now
    assert contacts.due("till-1", QueueReport(0, None, 1), now)  # a quarantine
    contacts.note(cluster.bo.context, "till-1", busy)
    assert not contacts.due("till-1", QueueReport(4, busy.oldest, 0), now)  # a count moves
    later = now + tills.QUEUE_EVERY
    assert contacts.due("till-1", QueueReport(4, busy.oldest, 0), later)
    assert not contacts.due("till-1", None, now)  # an old till: its contact only
    assert till.client.queue_report() == QueueReport(0, None, 0)


def test_a_silent_till_raises_the_alarm_at_the_owners_threshold(cluster: Cluster) -> None:
    till = cluster.till()
    till.client.pull_once()
    assert cluster.bo.stores_overview().silent == 0
    assert cluster.bo.stores_overview().threshold_minutes == tills.SILENT_DEFAULT_MIN
    cluster.clock.advance(minutes=31)
    view = cluster.bo.stores_overview()
    assert view.silent == 1 and _row(cluster, "till-1").silent_minutes == 31
    assert cluster.bo.set_silent_threshold("45", actor="owner") == 45
    assert cluster.bo.stores_overview().silent == 0
    for bad in ("", "4", "10081", "1e3", "٣٠", "-5", "30 min"):
        with pytest.raises(StoreError) as e:
            cluster.bo.set_silent_threshold(bad, actor="owner")
        assert e.value.code == "bad_threshold" and e.value.message_ru
    assert cluster.bo.stores_overview().threshold_minutes == 45  # nothing half-written
    till.client.pull_once()  # it calls again: calling in
    assert cluster.bo.stores_overview().silent == 0
    cluster.clock.advance(minutes=46)
    assert cluster.bo.stores_overview().silent == 1
    cluster.bo.revoke_till("till-1")  # a revoked till is no alarm
    assert cluster.bo.stores_overview().silent == 0
    set_rows = [e for e in audit.entries(cluster.db) if e.action == "silent_threshold_set"]
    assert [e.particulars() for e in set_rows] == [{"minutes": 45, "before": 30}]


def test_stores_added_validated_and_audited(cluster: Cluster) -> None:
    row = cluster.bo.add_store(" s2 ", "  Арбат   20 ", actor="owner")
    assert (row.store_id, row.name) == ("s2", "Арбат 20")
    for store_id, name, code in (
        ("s2", "Снова", "store_exists"),
        ("", "Пусто", "bad_store_id"),
        ("с3", "Кириллица", "bad_store_id"),
        ("-x", "Дефис", "bad_store_id"),
        ("x" * 33, "Длинный", "bad_store_id"),
        ("s4", "", "bad_store_name"),
        ("s4", "   ", "bad_store_name"),
        ("s4", "Я" * 81, "bad_store_name"),
        ("s4", "Магазин\x00", "bad_store_name"),
        ("s4", "Маг\u202eазин", "bad_store_name"),
    ):
        with pytest.raises(StoreError) as e:
            cluster.bo.add_store(store_id, name, actor="owner")
        assert e.value.code == code, (store_id, name)
    ids = [s.store_id for s in cluster.bo.stores_overview().stores]
    assert ids == ["s1", "s2"]
    added = [e for e in audit.entries(cluster.db) if e.action == "store_added"]
    assert [(e.actor, e.subject, e.particulars()) for e in added] == [
        ("owner", "s2", {"name": "Арбат 20"})
    ]
    assert cluster.bo.stores_overview("s2").stores[0].name == "Арбат 20"


def test_an_enrollment_code_from_the_console_enrolls_one_till(cluster: Cluster) -> None:
    cluster.bo.add_store("s2", "Арбат", actor="owner")
    made = cluster.bo.console_enroll_code("s2", actor="owner")
    expected = cluster.clock.now() + timedelta(hours=24)
    assert made.store_id == "s2" and made.expires_at == expected.isoformat()
    assert cluster.bo.stores_overview("s2").stores[0].open_codes == 1
    info = enroll_till(
        cluster.tmp / "t2.db", cluster.http, made.code, name="Касса 2", clock=cluster.clock
    )
    assert info["store_id"] == "s2"
    store = cluster.bo.stores_overview("s2").stores[0]
    assert (store.tills, store.open_codes) == (1, 0)
    rows = [e for e in audit.entries(cluster.db) if e.action == "enroll_code_made"]
    assert [(e.subject, e.particulars()) for e in rows] == [("s2", {"hours": 24})]
    assert made.code not in "".join(e.detail for e in audit.entries(cluster.db))
    from sync.protocol import ProtocolError

    with pytest.raises(ProtocolError) as e:
        cluster.bo.console_enroll_code("nowhere", actor="owner")
    assert e.value.code == "unknown_store"
    assert len([e for e in audit.entries(cluster.db) if e.action == "enroll_code_made"]) == 1


def test_closed_launch_is_the_kpi_reports_rows_per_store(cluster: Cluster) -> None:
    cluster.bo.add_store("s2", "Арбат", actor="owner")
    one = cluster.till()
    code = cluster.bo.enroll_code("s2")
    enroll_till(cluster.tmp / "t2.db", cluster.http, code, name="t2", terminal_id="t2")
    from agent.service import Agent
    from agent.store import Store

    with Store(cluster.tmp / "t2.db") as s2:
        two = Agent(s2, cluster.clock)
        card = one.agent.identify(demo_phone(1))
        one.sale("L-1", card.member_id, ("DR-1001", 1), cashier="anna", identified_by="phone")
        one.sale("L-2", card.member_id, ("DR-1001", 1), cashier="anna", identified_by="scan")
        one.agent.refund("LR-1", "L-1", {1: 1}, cashier_id="anna")
        reg = two.register(
            phone="+7 999 700-00-09",
            first_name="Лиза",
            consent_programme=True,
            consent_marketing=False,
            cashier_id="oleg",
        )
        one.client.drain()
        SyncClient(two, cluster.http).drain()
    assert reg.card.member_id
    days = kpi.period(None, None)
    everyone = cluster.bo.closed_launch(days)
    assert everyone == kpi.report(cluster.bo.context, days)["by_cashier"]
    rows = {r["cashier_id"]: r for r in everyone}
    anna, oleg = rows["anna"], rows["oleg"]
    assert (anna["cheques"], anna["refunded_cheques"], anna["refunds"]) == (1, 1, 1)
    assert (anna["phone_entries"], anna["phone_share"], anna["new_members"]) == (1, 0.5, 0)
    assert (oleg["new_members"], oleg["cheques"], oleg["store_id"]) == (1, 0, "s2")
    total = kpi.report(cluster.bo.context, days)["totals"]
    assert sum(r["new_members"] for r in everyone) == total["new_members"]
    assert [r["cashier_id"] for r in cluster.bo.closed_launch(days, "s2")] == ["oleg"]
    assert "oleg" not in {r["cashier_id"] for r in cluster.bo.closed_launch(days, "s1")}


def test_a_store_manager_sees_one_store(cluster: Cluster) -> None:
    cluster.bo.add_store("s2", "Арбат", actor="owner")
    cluster.till()
    view = cluster.bo.stores_overview("s2")
    assert [s.store_id for s in view.stores] == ["s2"] and view.tills == []
    assert [t.store_id for t in cluster.bo.stores_overview("s1").tills] == ["s1"]


def test_kassa_backoffice_terminals_lists_the_queue(cluster: Cluster) -> None:
    till = cluster.till()
    till.sale("T-1", "m00000001", ("DR-1001", 1))
    cluster.clock.advance(seconds=5)
    till.client.push_once()  # told while the cheque was still waiting
    (row,) = cluster.bo.terminals()
    told = row["queue"]
    assert told["waiting"] == 1 and told["quarantined"] == 0 and told["oldest"]
    assert told["at"] == row["last_seen"] == cluster.clock.now().isoformat()

"""KPI figures with refunds: revenue is what members paid net of refunds, a cheque
returned in full does not count as a cheque, and the breakdowns add up to the totals.
Real till sales and refunds pushed to the real back office (SQLite and PostgreSQL), the
report read through the module and through `kassa backoffice report`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cluster import Cluster

from agent.money import NBSP
from kassa.cli import main
from sync.backoffice import kpi

DRESS = 649_900  # DR-1001, 6 499 ₽
DAY1, DAY2 = "2026-06-15", "2026-06-16"  # NOW and a day later, Europe/Moscow


def _member_with_points(cluster: Cluster, till: Any, at_least: int) -> str:
    for n in range(1, 50):
        mid = f"m{n:08d}"
        if till.agent.card(mid).spendable >= at_least:
            return mid
    raise AssertionError("no demo member with enough points")


def _sell_and_refund(cluster: Cluster) -> dict[str, str]:
    """Day 1: B-1 (member A, 500 points spent), B-2 (A), B-3 (B), all by anna; B-1 is
    returned in full the same day. Day 2: B-4 (B, two dresses) by boris, who returns one
    of them, and returns B-3 in full."""
    till = cluster.till()
    a = _member_with_points(cluster, till, 500)
    b = next(f"m{n:08d}" for n in range(1, 50) if f"m{n:08d}" != a)
    till.sale("B-1", a, ("DR-1001", 1), redeem=500, cashier="anna")
    till.sale("B-2", a, ("DR-1001", 1), cashier="anna")
    till.sale("B-3", b, ("DR-1001", 1), cashier="anna")
    till.agent.refund("F-1", "B-1", {1: 1}, cashier_id="anna")
    till.client.drain()
    cluster.clock.advance(days=1)
    till.sale("B-4", b, ("DR-1001", 2), cashier="boris")
    till.agent.refund("F-4", "B-4", {1: 1}, cashier_id="boris")
    till.agent.refund("F-3", "B-3", {1: 1}, cashier_id="boris")
    till.client.drain()
    assert cluster.ledger("SELECT count(*) FROM events WHERE status <> 'applied'")[0][0] == 0
    return {"a": a, "b": b}


def _ledger_points(cluster: Cluster) -> int:
    (issued,) = cluster.ledger("SELECT sum(earned) + sum(bonus) FROM purchases")[0]
    (reversed_,) = cluster.ledger("SELECT sum(earn_reversed) + sum(bonus_reversed) FROM refunds")[0]
    return int(issued) - int(reversed_)


def test_refunds_in_revenue_cheques_members_and_breakdowns(cluster: Cluster) -> None:
    _sell_and_refund(cluster)
    rep = kpi.report(cluster.bo.context, kpi.period(None, None))
    t = rep["totals"]
    # paid: B-1 599 900 (500 points off), B-2 and B-3 649 900, B-4 1 299 800;
    # refunded: B-1 599 900, one dress of B-4 649 900, B-3 649 900
    assert t["revenue_kop"] == 2 * DRESS
    assert (t["cheques"], t["refunded_cheques"]) == (2, 2)  # B-2 and B-4 stand
    # A's only cheque left is B-2, B's is B-4 (B-3 came back): nobody bought twice
    assert (t["members_with_purchase"], t["repeat_buyers"]) == (2, 0)
    assert t["points_spent"] == 0  # the 500 came back with B-1
    assert t["points_issued"] == _ledger_points(cluster)
    # the base now, loaded members included (they are not "new": nobody registered them)
    (base,) = cluster.ledger("SELECT count(*) FROM members WHERE merged_into IS NULL")[0]
    assert t["members_now"] == base > 0 and t["new_members"] == 0

    days = {d["day"]: d for d in rep["by_day"]}
    assert (days[DAY1]["cheques"], days[DAY1]["refunded_cheques"]) == (2, 1)
    assert days[DAY1]["revenue_kop"] == 2 * DRESS
    # day 2: B-4 rung, B-3 (of day 1) returned in full: the refund's day carries it
    assert (days[DAY2]["cheques"], days[DAY2]["refunded_cheques"]) == (0, 1)
    assert days[DAY2]["revenue_kop"] == 0
    for rows in (rep["by_day"], rep["by_store"], rep["by_cashier"]):
        for key in ("cheques", "refunded_cheques"):
            assert sum(r[key] for r in rows) == t[key], (key, rows)
    for rows in (rep["by_day"], rep["by_store"]):
        for key in ("revenue_kop", "points_issued", "points_spent", "new_members"):
            assert sum(r[key] for r in rows) == t[key], (key, rows)
    cashiers = {c["cashier_id"]: c for c in rep["by_cashier"]}
    assert (cashiers["anna"]["cheques"], cashiers["anna"]["refunded_cheques"]) == (2, 1)
    assert (cashiers["boris"]["cheques"], cashiers["boris"]["refunded_cheques"]) == (0, 1)
    # the fraud signals look at every cheque the cashier rang, returned or not
    assert cashiers["anna"]["top_member_cheques"] == 2

    # a day's row is the report of that day alone (B-3 came back only on day 2)
    for row in rep["by_day"]:
        alone = kpi.report(cluster.bo.context, kpi.period(row["day"], row["day"]))["totals"]
        for key in ("cheques", "refunded_cheques", "members_with_purchase", "repeat_buyers"):
            assert row[key] == alone[key], (row["day"], key, row, alone)

    # a closed period keeps its figures: day 1 alone, before B-3 came back
    d1 = kpi.report(cluster.bo.context, kpi.period(DAY1, DAY1))["totals"]
    assert (d1["cheques"], d1["refunded_cheques"], d1["revenue_kop"]) == (2, 1, 2 * DRESS)
    assert (d1["members_with_purchase"], d1["repeat_buyers"]) == (2, 0)
    d2 = kpi.report(cluster.bo.context, kpi.period(DAY2, DAY2))["totals"]
    assert (d2["cheques"], d2["refunded_cheques"], d2["revenue_kop"]) == (0, 1, 0)
    assert d2["members_with_purchase"] == 1  # B, with the half of B-4 kept


def test_report_command_on_the_same_ledger(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """`kassa backoffice report` on this back office (a SQLite file or a PostgreSQL URL):
    the same figures as JSON, grouped amounts and unambiguous columns as text."""
    _sell_and_refund(cluster)
    db = str(getattr(cluster.db, "url", None) or cluster.db.path)  # type: ignore[attr-defined]
    assert main(["backoffice", "report", "--db", db, "--json"]) == 0
    t = json.loads(capsys.readouterr().out)["totals"]
    assert (t["cheques"], t["refunded_cheques"], t["revenue_kop"]) == (2, 2, 2 * DRESS)
    assert main(["backoffice", "report", "--db", db]) == 0
    text = capsys.readouterr().out
    assert f"12{NBSP}998,00{NBSP}₽" in text  # revenue, grouped, in roubles
    assert "Участников в базе сейчас" in text and "Новые участники (на кассах и на сайте)" in text
    liability = f"{t['liability_points']:,}".replace(",", NBSP)
    assert f"{liability}{NBSP}бонус" in text  # grouped (was 19565185)
    header = next(line for line in text.splitlines() if line.strip().startswith("кассир"))
    columns = [c.strip() for c in header.split("  ") if c.strip()]
    assert columns == [
        "кассир",
        "чеки",
        "возвращено",
        "по телефону",
        "макс. на участника",
        "сигналы",
    ]
    assert "чеки: без возвращённых полностью" in text  # the legend under the table


def test_a_return_completes_by_the_refunds_dates_not_their_arrival(cluster: Cluster) -> None:
    """Refunds can reach the ledger out of date order (a till's clock corrected between
    them). B-1's two dresses come back in refunds dated day 10 and then day 2: over days
    1-5 only one of them came back, so B-1 still counts, and so does its member."""
    till = cluster.till()
    a = _member_with_points(cluster, till, 0)
    till.sale("B-1", a, ("DR-1001", 2), cashier="anna")
    cluster.clock.advance(days=9)
    till.agent.refund("F-1", "B-1", {1: 1}, cashier_id="anna")  # dated day 10
    cluster.clock.advance(days=-8)
    till.agent.refund("F-2", "B-1", {1: 1}, cashier_id="anna")  # dated day 2, taken later
    till.client.drain()
    assert cluster.ledger("SELECT count(*) FROM events WHERE status <> 'applied'")[0][0] == 0
    assert sorted(d for (d,) in cluster.ledger("SELECT day FROM refunds")) == [
        DAY2,
        "2026-06-24",
    ]
    t = kpi.report(cluster.bo.context, kpi.period(DAY1, "2026-06-19"))["totals"]
    assert (t["cheques"], t["refunded_cheques"], t["revenue_kop"]) == (1, 0, DRESS)
    assert t["members_with_purchase"] == 1
    t = kpi.report(cluster.bo.context, kpi.period(DAY1, "2026-06-24"))["totals"]
    assert (t["cheques"], t["refunded_cheques"], t["revenue_kop"]) == (0, 1, 0)
    assert t["members_with_purchase"] == 0

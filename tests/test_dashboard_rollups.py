"""The dashboard's roll-ups against the KPI report: random histories of registrations,
sales and refunds (partial, full, over several passes) made by real tills in two stores,
pushed to the real back office (SQLite and PostgreSQL) and projected in passes of random
sizes, some in careful mode. Then the roll-ups the projector kept equal a rebuild from the
ledger, and the dashboard's figures for many periods, stores and days equal
``kpi.report``'s."""

from __future__ import annotations

import contextlib
import json
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster, TillNode
from conftest import FakeClock

from agent.errors import AgentError
from agent.service import Agent
from sync.backoffice import dashboard, ingest, kpi, project, rollups
from sync.client import SyncClient
from sync.enroll import enroll_till

ITEMS = ["DR-1001", "OW-4001", "BG-7001", "SH-2001", "AC-6001"]
KEYS = (
    "new_members",
    "cheques",
    "refunded_cheques",
    "revenue_kop",
    "points_issued",
    "points_spent",
    "members_with_purchase",
    "repeat_buyers",
    "redemption_rate",
)


class StoreTill(TillNode):
    """A till enrolled at ``store`` (``TillNode`` enrolls at s1)."""

    def __init__(self, cluster: Cluster, path: Path, name: str, store: str) -> None:
        self.cluster = cluster
        self.path = path
        code = cluster.bo.enroll_code(store)
        enroll_till(path, cluster.http, code, name=name, terminal_id=name, clock=cluster.clock)
        self.open()


def _project_randomly(c: Cluster, rnd: random.Random) -> None:
    """Everything accepted, in passes of random sizes, a third of them careful."""
    while True:
        careful = rnd.random() < 0.3
        if not project._pass(c.bo.context, rnd.choice([1, 3, 7, 40]), careful=careful):
            return


def _history(c: Cluster, rnd: random.Random, steps: int) -> None:
    c.bo.ensure_store("s2", "Арбат")
    tills = [c.till("t1"), StoreTill(c, c.tmp / "t2.db", "t2", "s2")]
    c.tills.append(tills[1])
    members = [f"m{n:08d}" for n in range(1, 30)]
    joined: list[str] = []  # registered at the tills in this history
    for t in tills:  # one phone at both tills, offline: the second is merged into the first
        t.agent.register(
            phone="+7 916 000-00-01",
            first_name="Ян",
            consent_programme=True,
            consent_marketing=False,
            cashier_id="anna",
        )
    sold: dict[str, list[tuple[str, int]]] = {t.agent.terminal_id: [] for t in tills}
    for step in range(steps):
        till = rnd.choice(tills)
        tid = till.agent.terminal_id
        cashier = rnd.choice(["anna", "boris", None])
        roll = rnd.random()
        with contextlib.suppress(AgentError):
            if roll < 0.15:
                reg = till.agent.register(
                    phone=f"+7 916 {rnd.randrange(10**7):07d}",
                    first_name="Ира",
                    consent_programme=True,
                    consent_marketing=rnd.random() < 0.5,
                    cashier_id=cashier,
                )
                members.append(reg.card.member_id)
                joined.append(reg.card.member_id)
            elif roll < 0.7 or not sold[tid]:
                receipt = f"{tid}-R{step}"
                lines = rnd.sample(ITEMS, rnd.randint(1, 2))
                qty = rnd.randint(1, 2)
                redeem = rnd.choice([0, 0, 100, 300])
                member = rnd.choice(joined if joined and rnd.random() < 0.5 else members)
                with contextlib.suppress(AgentError):
                    till.sale(
                        receipt,
                        member,
                        *((sku, qty) for sku in lines),
                        redeem=redeem,
                        cashier=cashier,
                    )
                    sold[tid].append((receipt, len(lines)))
            else:
                receipt, n_lines = rnd.choice(sold[tid])
                line = rnd.randint(1, n_lines)
                till.agent.refund(f"F{step}", receipt, {line: 1}, cashier_id=cashier)
        if rnd.random() < 0.2:
            c.clock.advance(hours=rnd.choice([3, 9, 20, 30]))
        if rnd.random() < 0.25:
            for t in tills:
                t.client.drain()
            _project_randomly(c, rnd)
    for t in tills:
        t.client.drain()
    _project_randomly(c, rnd)


def _snapshot(c: Cluster) -> tuple[list[Any], list[Any]]:
    days = c.ledger(
        "SELECT day, store_id, cashier_id, "
        + ", ".join(rollups.FIGURES)
        + " FROM rollup_days WHERE "
        + " OR ".join(f"{f} <> 0" for f in rollups.FIGURES)
        + " ORDER BY day, store_id, cashier_id"
    )
    returns = c.ledger("SELECT * FROM rollup_returns ORDER BY purchase_event_id")
    return [tuple(r) for r in days], [tuple(r) for r in returns]


MORE = (  # the cohort, buyer, points-held and distinct-buyer roll-ups, rows that count
    "SELECT * FROM rollup_members WHERE cohort = 1 OR cheques <> 0 ORDER BY member_id",
    "SELECT * FROM rollup_cohorts WHERE registered <> 0 OR first <> 0 OR second <> 0 "
    "ORDER BY month, store_id",
    "SELECT * FROM rollup_buyers WHERE cheques <> 0 ORDER BY month, member_id",
    "SELECT * FROM rollup_held WHERE points <> 0 ORDER BY day, store_id",
    "SELECT * FROM rollup_expiry WHERE points <> 0 ORDER BY expires_at, store_id",
    "SELECT * FROM rollup_stores WHERE members <> 0 OR debt <> 0 ORDER BY store_id",
    "SELECT * FROM rollup_chain ORDER BY member_id",
    "SELECT * FROM rollup_reach WHERE first <> 0 OR second <> 0 ORDER BY store_id, day, since",
    "SELECT * FROM rollup_early ORDER BY purchase_event_id",
)


def snapshot_more(c: Cluster) -> list[list[tuple[Any, ...]]]:
    return [[tuple(r) for r in c.ledger(sql)] for sql in MORE]


def _compare(c: Cluster, d0: date, d1: date) -> None:
    ctx = c.bo.context
    rep = kpi.report(ctx, kpi.Period(d0, d1))
    q = dashboard.query(ctx, "custom", d0.isoformat(), d1.isoformat())
    board = dashboard.build(ctx, q)
    for key in KEYS:
        assert board.totals[key] == rep["totals"][key], (key, d0, d1)
    for key in ("members_now", "points_expired", "liability_points", "liability_kop"):
        assert board.totals[key] == rep["totals"][key], key
    with c.db.reading() as tx:
        for row in rep["by_store"]:
            total, _ = dashboard.figures(tx, d0.isoformat(), d1.isoformat(), row["store_id"])
            assert {k: total[k] for k in KEYS} == {k: row[k] for k in KEYS}, row["store_id"]
        for row in rep["by_day"]:
            total, _ = dashboard.figures(tx, row["day"], row["day"])
            # a day's row of the report counts its buyers by that day's end, as a report
            # of that day alone does
            assert {k: total[k] for k in KEYS} == {k: row[k] for k in KEYS}, row["day"]
        for row in rep["by_cashier"]:
            cashier = row["cashier_id"]
            total, _ = dashboard.figures(tx, d0.isoformat(), d1.isoformat(), cashier_id=cashier)
            for key in ("cheques", "refunded_cheques", "new_members"):
                assert total[key] == row[key], (cashier, key)
    by_day = {d["day"]: d for d in board.days}
    for row in rep["by_day"]:
        for key in ("cheques", "refunded_cheques", "revenue_kop", "points_issued"):
            assert by_day[row["day"]][key] == row[key]


def cohorts_from_ledger(c: Cluster) -> dict[str, list[int]]:
    """Registered (at a till or on the members' pages) -> first -> second purchase by
    registration month, counted here from the ledger (a cheque returned in full, by its
    lines, does not count)."""
    kept: dict[str, int] = {}
    for member, eff, refunded in c.ledger("SELECT member_id, effects, refunded FROM purchases"):
        back = json.loads(refunded)
        lines = json.loads(eff)["lines"]
        if not all(back.get(str(ln["line_no"]), 0) >= ln["qty"] for ln in lines):
            kept[member] = kept.get(member, 0) + 1
    want: dict[str, list[int]] = {}
    for member, month in c.ledger(
        "SELECT member_id, substr(registered_at, 1, 7) FROM members m "
        "WHERE merged_into IS NULL AND (terminal_id IS NOT NULL OR EXISTS ("
        "SELECT 1 FROM member_sources s WHERE s.member_id = m.member_id))"
    ):
        row = want.setdefault(month, [0, 0, 0])
        n = kept.get(member, 0)
        row[0] += 1
        row[1] += n >= 1
        row[2] += n >= 2
    return want


def _compare_cohorts(c: Cluster) -> None:
    want = cohorts_from_ledger(c)
    ctx = c.bo.context
    board = dashboard.build(ctx, dashboard.query(ctx, "today"))
    got = {k.month: [k.registered, k.first, k.second] for k in board.cohorts}
    assert got == want and any(row[2] for row in got.values())


@pytest.mark.parametrize("seed", [1, 2])
def test_rollups_equal_the_kpi_report(
    cluster: Cluster, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "INLINE_MAX_EVENTS", 0)  # the projector's passes alone
    rnd = random.Random(seed)
    _history(cluster, rnd, 90)
    (left,) = cluster.ledger("SELECT count(*) FROM events WHERE status = 'accepted'")[0]
    assert left == 0
    (refunds,) = cluster.ledger("SELECT count(*) FROM rollup_returns")[0]
    (joined,) = cluster.ledger("SELECT count(*) FROM members WHERE terminal_id IS NOT NULL")[0]
    assert refunds > 0 and joined > 0  # the history has full returns and registrations
    (merged,) = cluster.ledger("SELECT count(*) FROM flags WHERE kind = 'merge'")[0]
    assert merged == 1  # and a duplicate registration, merged at once
    kept = _snapshot(cluster), snapshot_more(cluster)
    with cluster.db.transaction(feed=True) as tx:
        rollups.rebuild(tx)
    rebuilt = _snapshot(cluster), snapshot_more(cluster)
    assert rebuilt == kept
    days = [r[0] for r in cluster.ledger("SELECT DISTINCT day FROM purchases ORDER BY day")]
    first, last = date.fromisoformat(days[0]), date.fromisoformat(days[-1])
    _compare(cluster, first - timedelta(days=1), last + timedelta(days=1))
    _compare_cohorts(cluster)
    for _ in range(4):
        a = first + timedelta(days=rnd.randint(0, (last - first).days))
        b = a + timedelta(days=rnd.randint(0, 3))
        _compare(cluster, a, b)


def test_backfill_of_a_ledger_made_before_the_rollups(cluster: Cluster) -> None:
    """A database whose ledger predates the roll-ups is back-filled once at start."""
    till = cluster.till()
    till.sale("B-1", "m00000001", ("DR-1001", 2), cashier="anna")
    till.agent.refund("F-1", "B-1", {1: 2}, cashier_id="anna")
    till.client.drain()
    kept = _snapshot(cluster), snapshot_more(cluster)
    assert kept[0][1] and kept[1][5]  # B-1 returned in full; the members held
    with cluster.db.transaction() as tx:
        for table in ("rollup_days", "rollup_returns", "rollup_members", "rollup_stores"):
            tx.execute(f"DELETE FROM {table}")
        tx.execute("DELETE FROM settings WHERE key = ?", (rollups.BUILT_KEY,))
    cluster.bo.initialise()
    assert (_snapshot(cluster), snapshot_more(cluster)) == kept
    assert rollups.ensure(cluster.db) is False  # once only
    # a ledger whose daily roll-ups predate the cohort and points-held ones
    with cluster.db.transaction() as tx:
        for table in ("rollup_cohorts", "rollup_buyers", "rollup_held", "rollup_expiry"):
            tx.execute(f"DELETE FROM {table}")
        tx.execute("DELETE FROM settings WHERE key = ?", (rollups.HELD_KEY,))
    assert rollups.ensure(cluster.db) is True
    assert (_snapshot(cluster), snapshot_more(cluster)) == kept


def test_plans_and_the_store_scope(cluster: Cluster) -> None:
    """Plans on both databases: set, replaced, refused with nothing written, read with the
    month's actual; a store-bound user's dashboard is their store's whatever asked."""
    cluster.bo.ensure_store("s2", "Арбат")
    till = cluster.till()
    till.sale("B-1", "m00000001", ("DR-1001", 1), cashier="anna")
    till.sale("B-2", "m00000002", ("DR-1001", 1), cashier="anna")
    till.client.drain()
    ctx = cluster.bo.context
    assert cluster.bo.dashboard_set_plan("2026-06", "cheques", "4", None, actor="owner") == 4
    assert cluster.bo.dashboard_set_plan("2026-06", "cheques", "8", None, actor="owner") == 8
    assert (
        cluster.bo.dashboard_set_plan("2026-06", "revenue_kop", "10 000,5", "s1", actor="owner")
        == 1_000_050
    )
    for month, fig, value, store in (
        ("2026-6", "cheques", "1", None),
        ("2026-06", "margin", "1", None),
        ("2026-06", "cheques", "1.5", None),
        ("2026-06", "cheques", "1", "s9"),
    ):
        with pytest.raises(dashboard.DashboardError):
            cluster.bo.dashboard_set_plan(month, fig, value, store, actor="owner")
    rows = cluster.ledger("SELECT month, figure, store_id, target FROM dashboard_plans")
    assert sorted(tuple(r) for r in rows) == [
        ("2026-06", "cheques", "", 8),
        ("2026-06", "revenue_kop", "s1", 1_000_050),
    ]
    assert cluster.bo.verify_audit().ok
    (audited,) = cluster.ledger(
        "SELECT count(*) FROM console_audit WHERE action = 'dashboard_plan_set'"
    )[0]
    assert audited == 3
    board = cluster.bo.dashboard_view("month")
    plans = {(p.figure, p.store_id): p for p in board.plans}
    assert (plans["cheques", ""].actual, plans["cheques", ""].done_pct) == (2, 25.0)
    assert plans["revenue_kop", "s1"].actual == 2 * 649_900
    scoped = cluster.bo.dashboard_view("month", store_id="s1", store_scope="s2")
    assert scoped.query.store_id == "s2" and scoped.totals["cheques"] == 0
    assert [s for s, _ in scoped.stores] == ["s2"] and scoped.plans == []
    assert dashboard.build(ctx, dashboard.query(ctx, "month", store_id="s1")).totals["cheques"] == 2


def test_a_return_dated_before_its_cheque(cluster: Cluster) -> None:
    """A till whose clock ran three days behind rang the full return of a cheque dated
    before the cheque: the KPI report then counts the cheque's buyer in a period only when
    the return is dated before the period, which the distinct-buyer roll-ups correct from
    ``rollup_early``; the dashboard's buyers equal the report's for every period around
    the two days, for the chain and the store, and the roll-ups equal a rebuild."""
    till = cluster.till()
    till.sale("B-1", "m00000001", ("DR-1001", 1), cashier="anna")
    till.sale("B-2", "m00000002", ("DR-1001", 1), cashier="anna")
    till.sale("B-3", "m00000002", ("OW-4001", 1), cashier="anna")
    till.client.drain()
    lag = FakeClock(cluster.clock.now() - timedelta(days=3))
    till.agent = Agent(till.store, lag)
    till.client = SyncClient(till.agent, cluster.http)
    till.agent.refund("F-1", "B-1", {1: 1}, cashier_id="anna")
    till.agent.refund("F-2", "B-2", {1: 1}, cashier_id="anna")
    till.client.drain()
    while project._pass(cluster.bo.context, 50, careful=False):
        pass
    early = cluster.ledger("SELECT day, return_day FROM rollup_early ORDER BY purchase_event_id")
    sold = cluster.clock.now().date()
    assert [tuple(r) for r in early] == [
        (sold.isoformat(), (sold - timedelta(days=3)).isoformat())
    ] * 2
    kept = snapshot_more(cluster)
    with cluster.db.transaction(feed=True) as tx:
        rollups.rebuild_more(tx)
    assert snapshot_more(cluster) == kept
    seen = set()
    for a in range(-4, 2):
        for b in range(a, 2):
            d0, d1 = sold + timedelta(days=a), sold + timedelta(days=b)
            rep = kpi.report(cluster.bo.context, kpi.Period(d0, d1))
            with cluster.db.reading() as tx:
                for store, row in ((None, rep["totals"]), ("s1", rep["totals"])):
                    got = dashboard.buyers(tx, d0.isoformat(), d1.isoformat(), store)
                    want = (row["members_with_purchase"], row["repeat_buyers"])
                    assert got == want, (d0, d1, store)
                    seen.add(want)
    assert {(2, 1), (1, 0)} <= seen  # the early return counts in some periods, not in others

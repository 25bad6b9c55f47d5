"""The cohort, buyer and points-held roll-ups against a recomputation from the ledger.

Random histories (hypothesis; few examples, each adding to the same back office on SQLite
and PostgreSQL): registrations, sales with and without points spent, refunds of single
lines, the clock moving on by hours to months (lots expiring), projector passes of random
sizes (some in careful mode), console adjustments and merges. After each: the roll-ups
the projector and the console kept equal ``rollups.rebuild_more`` from the ledger; the
points held read from them (``rollups.held_now``) equal ``kpi.points_held`` over every
member's state at several moments and for several periods and stores; the dashboard's
cohorts equal a count over members and purchases; a month's buyers, and the buyers of
chosen periods on and around the days of the history's cheques and returns for the chain
and each of its two stores, equal the KPI report's."""

from __future__ import annotations

import contextlib
from datetime import date, timedelta
from typing import Any

import pytest
from cluster import Cluster, TillNode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_dashboard_rollups import cohorts_from_ledger, snapshot_more

from agent.errors import AgentError
from sync.backoffice import dashboard, ingest, kpi, project, rollups

ITEMS = ["DR-1001", "OW-4001", "BG-7001"]

OPS = st.lists(
    st.one_of(
        st.tuples(st.just("register"), st.integers(0, 10**7)),
        st.tuples(
            st.just("sale"),
            st.integers(0, 10**6),
            st.integers(1, 2),
            st.sampled_from([0, 0, 200]),
            st.integers(0, 1),
        ),
        st.tuples(st.just("refund"), st.integers(0, 10**6), st.integers(1, 2)),
        st.tuples(st.just("advance"), st.sampled_from([3, 20, 24 * 40, 24 * 200])),
        st.tuples(st.just("pass"), st.sampled_from([1, 5, 50]), st.booleans()),
        st.tuples(st.just("adjust"), st.integers(0, 10**6), st.sampled_from(["+75", "-30"])),
        st.tuples(st.just("merge"), st.integers(0, 10**6), st.integers(0, 10**6)),
    ),
    min_size=4,
    max_size=24,
)


class History:
    """What the examples of one test share: the cluster, its till, what was sold."""

    def __init__(self, cluster: Cluster) -> None:
        self.c = cluster
        self.till: TillNode = cluster.till()
        cluster.bo.ensure_store("s2", "Арбат")
        self.tills = [self.till, cluster.till("till-2", "s2")]  # a member buys in both
        self.members = [f"m{n:08d}" for n in range(1, 16)]
        self.sold: list[tuple[TillNode, str, int]] = []
        reg = self.till.agent.register(  # a cohort, whatever the examples do
            phone="+7 916 555-00-00",
            first_name="Ира",
            consent_programme=True,
            consent_marketing=False,
            cashier_id="anna",
        )
        self.members.append(reg.card.member_id)
        self.steps = 0

    def run(self, ops: list[tuple[Any, ...]]) -> None:
        c, till = self.c, self.till
        for op in ops:
            self.steps += 1
            step = self.steps
            with contextlib.suppress(AgentError):
                if op[0] == "register":
                    reg = till.agent.register(
                        phone=f"+7 916 {op[1]:07d}",
                        first_name="Ира",
                        consent_programme=True,
                        consent_marketing=False,
                        cashier_id="anna",
                    )
                    self.members.append(reg.card.member_id)
                elif op[0] == "sale":
                    receipt = f"R{step}"
                    member = self.members[op[1] % len(self.members)]
                    lines = ITEMS[: op[2]]
                    at = self.tills[op[4]]
                    at.sale(receipt, member, *((s, 1) for s in lines), redeem=op[3])
                    self.sold.append((at, receipt, len(lines)))
                elif op[0] == "refund" and self.sold:
                    at, receipt, n = self.sold[op[1] % len(self.sold)]
                    at.agent.refund(f"F{step}", receipt, {min(op[2], n): 1}, cashier_id="anna")
                elif op[0] == "advance":
                    c.clock.advance(hours=op[1])
                elif op[0] == "pass":
                    for t in self.tills:
                        t.client.drain()
                    project._pass(c.bo.context, op[1], careful=op[2])
                elif op[0] == "adjust":
                    member = self.members[op[1] % len(self.members)]
                    c.bo.adjust_points(member, op[2], "проверка", actor="owner")
                elif op[0] == "merge":
                    a = self.members[op[1] % len(self.members)]
                    b = self.members[op[2] % len(self.members)]
                    for (code,) in c.ledger("SELECT code FROM members WHERE member_id = ?", (b,)):
                        c.bo.merge_members(a, code, "дубль", actor="owner")
        for t in self.tills:
            t.client.drain()
        while project._pass(c.bo.context, 50, careful=False):
            pass

    def check(self) -> None:
        c = self.c
        kept = snapshot_more(c)
        with c.db.transaction(feed=True) as tx:
            rollups.rebuild_more(tx)
        assert snapshot_more(c) == kept
        now = c.clock.now()
        states = c.ledger("SELECT state FROM members WHERE merged_into IS NULL")
        stores = c.ledger("SELECT state FROM members WHERE merged_into IS NULL AND store_id = 's1'")
        today = now.date()
        with c.db.reading() as tx:
            for at in (now, now + timedelta(hours=7), now + timedelta(days=200)):
                for d0, d1 in (
                    (today, today),
                    (today - timedelta(days=40), today),
                    (date(2000, 1, 1), date(2100, 1, 1)),
                ):
                    for rows, store in ((states, None), (stores, "s1")):
                        want = kpi.points_held(rows, at, d0.isoformat(), d1.isoformat())
                        got = rollups.held_now(tx, at, d0.isoformat(), d1.isoformat(), store)
                        assert got == (len(rows), want.expired, want.live, want.expired_between)
        first = date(today.year, today.month, 1)
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        rep = kpi.report(c.bo.context, kpi.Period(first, last))["totals"]
        with c.db.reading() as tx:
            bought = dashboard.buyers(tx, first.isoformat(), last.isoformat())
        assert bought == (
            rep["members_with_purchase"],
            rep["repeat_buyers"],
        )
        self.check_periods()
        self.check_cohorts()

    def check_periods(self) -> None:
        """Chosen periods (from, to) on and around the days of the cheques and returns:
        the distinct buyers the dashboard reads from the roll-ups equal the KPI
        report's, for the chain and each store."""
        c = self.c
        days = sorted(
            {r[0] for r in c.ledger("SELECT day FROM purchases")}
            | {r[0] for r in c.ledger("SELECT day FROM refunds")}
        )
        if not days:
            return
        marks = [date.fromisoformat(d) for d in days]
        edges = sorted(
            {marks[0] - timedelta(days=1), marks[-1] + timedelta(days=1)}
            | {m for m in marks}
            | {m + timedelta(days=1) for m in marks}
        )
        picked = edges if len(edges) <= 5 else [edges[i * (len(edges) - 1) // 4] for i in range(5)]
        for i, d0 in enumerate(picked):
            for d1 in picked[i:]:
                rep = kpi.report(c.bo.context, kpi.Period(d0, d1))
                want = {None: rep["totals"], **{s["store_id"]: s for s in rep["by_store"]}}
                cashier = {s: self.cashier_buyers(d0, d1, s, "c1") for s in (None, "s1", "s2")}
                with c.db.reading() as tx:
                    for store, row in want.items():
                        got = dashboard.buyers(tx, d0.isoformat(), d1.isoformat(), store)
                        assert got == (row["members_with_purchase"], row["repeat_buyers"]), (
                            d0,
                            d1,
                            store,
                        )
                    for store, counted in cashier.items():  # a cashier's, counted here
                        got = dashboard.buyers(tx, d0.isoformat(), d1.isoformat(), store, "c1")
                        assert got == counted, (d0, d1, store)

    def cashier_buyers(
        self, d0: date, d1: date, store: str | None, cashier: str
    ) -> tuple[int, int]:
        """Members with >= 1 / >= 2 of the cashier's cheques of the period (at ``store``)
        not returned in full within it, from the ledger's rows."""
        a, b = d0.isoformat(), d1.isoformat()
        returned = dict(self.c.ledger("SELECT purchase_event_id, day FROM rollup_returns"))
        n: dict[str, int] = {}
        for pid, member, day, at, who in self.c.ledger(
            "SELECT event_id, member_id, day, store_id, cashier_id FROM purchases"
        ):
            back = returned.get(pid)
            kept = back is None or not a <= back <= b
            if a <= day <= b and who == cashier and store in (None, at) and kept:
                n[member] = n.get(member, 0) + 1
        return len(n), sum(1 for k in n.values() if k >= 2)

    def check_cohorts(self) -> None:
        c = self.c
        want = cohorts_from_ledger(c)
        assert want  # the base's members registered at the till
        last = date.fromisoformat(max(want) + "-01")
        with c.db.reading() as tx:
            got = {
                k.month: [k.registered, k.first, k.second]
                for k in dashboard.cohorts(tx, last, None)
            }
        assert got == {m: row for m, row in want.items() if m >= _back(last)}


def _back(month_first: date) -> str:
    """The first month of the cohort window ending at ``month_first``'s month."""
    first = month_first
    for _ in range(dashboard.COHORT_MONTHS - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    return first.isoformat()[:7]


@pytest.fixture
def history(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> History:
    monkeypatch.setattr(ingest, "INLINE_MAX_EVENTS", 0)  # the projector's passes alone
    return History(cluster)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=OPS)
def test_rollups_equal_a_recomputation(history: History, ops: list[tuple[Any, ...]]) -> None:
    history.run(ops)
    history.check()

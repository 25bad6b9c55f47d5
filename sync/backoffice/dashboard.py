"""The console's dashboard: the KPI figures of a period, per chain, store or cashier, with
their days, points held now, conversions by registration cohort and the monthly plan.

Figures (integer counts, kopecks and points; definitions are ``kpi``'s): the additive ones
are sums over the days of ``rollup_days`` (``rollups``), so the KPI report and the
dashboard give the same numbers for a period (a test compares them). Distinct-member
counts do not add up over days: members with >= 1 / >= 2 of the period's cheques not
returned in full by its end (a cheque returned in full is in ``rollup_returns`` with the
day its return completed), read for the chain or a store and any period from the
distinct-buyer roll-ups (``rollups.reach``), for a cashier from ``purchases``. Derived:
purchase frequency (cheques per member with a purchase), revenue per member and average
cheque (kopecks, rounded down), share of points spent (spent / issued). Points held now
(expired, liability) are ``kpi.points_held``'s figures, summed from the points-held
roll-ups (``rollups.held_now``: a few hundred rows, not every member's lots); the
liability's change over the period is points issued - spent - expired in the period.

Cohorts (JNBY's launch figure): members registered at the tills or on the members'
pages in a month, how many have made a first and a second purchase since (cheques not
returned in full), and their shares, from ``rollup_cohorts``. Plans: the owner's target
per month and figure, for the chain (``store_id`` ``''``) or a store; the dashboard shows
the plan, the month's actual and % done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from agent import engine
from agent.errors import InputError
from sync.backoffice import kpi, rollups
from sync.backoffice.context import Context
from sync.backoffice.db import Tx
from sync.backoffice.people import audit

PERIODS = ("today", "week", "month", "custom")
PLAN_FIGURES = (
    "new_members",
    "members_with_purchase",
    "cheques",
    "revenue_kop",
    "points_issued",
)
"""The figures a plan may be set for (``revenue_kop`` is entered in roubles)."""
PLAN_MAX = 10**15
COHORT_MONTHS = 12
MAX_DAYS = 366 * 3
"""The longest period a dashboard shows day by day (a longer one is refused)."""


class DashboardError(InputError):
    """A dashboard request or plan that cannot be served as typed (the message says
    which field and why): HTTP 400 on the form."""

    code = "bad_dashboard_input"
    title_ru = "Неверные данные сводки"
    title_en = "Bad dashboard input"


@dataclass(frozen=True, slots=True)
class Query:
    """What the dashboard shows: the period's kind (``PERIODS``) and days (both
    included), a store and a cashier (None: all)."""

    kind: str
    start: date
    end: date
    store_id: str | None = None
    cashier_id: str | None = None


@dataclass(slots=True)
class PlanRow:
    month: str
    figure: str
    store_id: str
    target: int
    actual: int
    done_pct: float | None


@dataclass(slots=True)
class Cohort:
    month: str
    registered: int
    first: int
    second: int

    @property
    def first_pct(self) -> float:
        return round(100 * self.first / self.registered, 1) if self.registered else 0.0

    @property
    def second_pct(self) -> float:
        return round(100 * self.second / self.registered, 1) if self.registered else 0.0


@dataclass(slots=True)
class Dashboard:
    query: Query
    totals: dict[str, Any]
    days: list[dict[str, Any]]
    cohorts: list[Cohort]
    plans: list[PlanRow]
    stores: list[tuple[str, str]]
    cashiers: list[str]
    generated_at: str
    extra: dict[str, Any] = field(default_factory=dict)


def _day(text: str, name: str) -> date:
    try:
        p = kpi.period(text, text)
    except kpi.PeriodError as e:
        raise DashboardError(e.message_en, e.message_ru, field=name, value=text) from None
    return p.start


def query(
    ctx: Context,
    kind: str | None,
    start: str | None = None,
    end: str | None = None,
    store_id: str | None = None,
    cashier_id: str | None = None,
) -> Query:
    """The dashboard's ``Query`` from what a page asked (today in the programme's zone);
    raises ``DashboardError`` naming the field."""
    kind = kind or "today"
    if kind not in PERIODS:
        raise DashboardError(
            f"period {kind!r}: must be one of {', '.join(PERIODS)}",
            f"период «{kind}»: нужен один из {', '.join(PERIODS)}",
            field="period",
            value=kind,
        )
    rules = ctx.programmes.get()
    assert rules is not None
    today = engine.local_date(rules, ctx.clock.now())
    if kind == "today":
        d0 = d1 = today
    elif kind == "week":
        d0, d1 = today - timedelta(days=today.weekday()), today
    elif kind == "month":
        d0, d1 = today.replace(day=1), today
    else:
        if not start or not end:
            raise DashboardError(
                "a chosen period needs both dates (from and to)",
                "для своего периода нужны обе даты: начало и конец",
                field="from" if not start else "to",
            )
        d0, d1 = _day(start, "from"), _day(end, "to")
        if d1 < d0:
            raise DashboardError(
                f"to ({d1}) is before from ({d0})",
                f"конец периода ({d1}) раньше начала ({d0})",
                field="to",
                value=end,
            )
        if (d1 - d0).days >= MAX_DAYS:
            raise DashboardError(
                f"the period is {(d1 - d0).days + 1} days long; at most {MAX_DAYS}",
                f"период длиной {(d1 - d0).days + 1} дн.; не больше {MAX_DAYS}",
                field="to",
                value=end,
            )
    return Query(kind, d0, d1, store_id or None, cashier_id or None)


def _where(q_store: str | None, q_cashier: str | None, alias: str = "") -> tuple[str, list[Any]]:
    cond, params = "", []
    if q_store is not None:
        cond += f" AND {alias}store_id = ?"
        params.append(q_store)
    if q_cashier is not None:
        cond += f" AND {alias}cashier_id = ?"
        params.append(q_cashier)
    return cond, params


def additive(
    tx: Tx, d0: str, d1: str, store_id: str | None = None, cashier_id: str | None = None
) -> dict[str, dict[str, int]]:
    """The roll-ups' sums per day of ``d0``..``d1`` (ISO dates), for the store/cashier."""
    cond, params = _where(store_id, cashier_id)
    sums = ", ".join(f"sum({f})" for f in rollups.FIGURES)
    out: dict[str, dict[str, int]] = {}
    for row in tx.all(
        f"SELECT day, {sums} FROM rollup_days WHERE day >= ? AND day <= ?{cond} "
        "GROUP BY day ORDER BY day",
        (d0, d1, *params),
    ):
        figures = dict(zip(rollups.FIGURES, (int(v) for v in row[1:]), strict=True))
        figures["points_issued"] += figures.pop("welcome_points")
        out[row[0]] = figures
    return out


def buyers(
    tx: Tx, d0: str, d1: str, store_id: str | None = None, cashier_id: str | None = None
) -> tuple[int, int]:
    """(members with a purchase, repeat buyers) over ``d0``..``d1``: distinct members with
    >= 1 / >= 2 of the period's cheques not returned in full within the period. For the
    chain or a store, any period, from the distinct-buyer roll-ups (``rollups.reach``: a
    few rows per day); for a cashier from the period's cheques at the stores where
    ``rollup_days`` counts cheques they rang (``cheques + refunded_cheques``: a return
    moves a cheque between the two), read by store and day."""
    if cashier_id is None:
        return rollups.reach(tx, d0, d1, store_id)
    cond, params = _where(store_id, cashier_id, "p.")
    if store_id is None:  # the stores the cashier rang cheques at, so by (store, day)
        stores = [
            s
            for (s,) in tx.all(
                "SELECT store_id FROM rollup_days WHERE cashier_id = ? AND day >= ? "
                "AND day <= ? GROUP BY store_id HAVING sum(cheques + refunded_cheques) > 0",
                (cashier_id, d0, d1),
            )
        ]
        if not stores:
            return 0, 0
        cond += f" AND p.store_id IN ({','.join('?' * len(stores))})"
        params += stores
    row = tx.one(
        "SELECT count(*), COALESCE(sum(CASE WHEN n >= 2 THEN 1 ELSE 0 END), 0) FROM ("
        "SELECT p.member_id, count(*) AS n FROM purchases p "
        "LEFT JOIN rollup_returns r ON r.purchase_event_id = p.event_id "
        "AND r.day >= ? AND r.day <= ? "
        f"WHERE p.day >= ? AND p.day <= ?{cond} AND r.purchase_event_id IS NULL "
        "GROUP BY p.member_id) AS m",
        (d0, d1, d0, d1, *params),
    )
    return int(row[0]), int(row[1])


def _blank() -> dict[str, int]:
    out = dict.fromkeys(rollups.FIGURES, 0)
    out.pop("welcome_points")
    return out


def figures(
    tx: Tx, d0: str, d1: str, store_id: str | None = None, cashier_id: str | None = None
) -> tuple[dict[str, Any], dict[str, dict[str, int]]]:
    """The period's figures (totals with the derived ones) and its days' additive ones."""
    days = additive(tx, d0, d1, store_id, cashier_id)
    total: dict[str, Any] = _blank()
    for d in days.values():
        for k, v in d.items():
            total[k] += v
    members, repeat = buyers(tx, d0, d1, store_id, cashier_id)
    total["members_with_purchase"] = members
    total["repeat_buyers"] = repeat
    total["redemption_rate"] = (
        round(total["points_spent"] / total["points_issued"], 4) if total["points_issued"] else 0.0
    )
    total["purchase_frequency"] = round(total["cheques"] / members, 2) if members else 0.0
    total["revenue_per_member_kop"] = total["revenue_kop"] // members if members else 0
    total["average_cheque_kop"] = (
        total["revenue_kop"] // total["cheques"] if total["cheques"] > 0 else 0
    )
    return total, days


def cohorts(tx: Tx, before: date, store_id: str | None) -> list[Cohort]:
    """The last ``COHORT_MONTHS`` months of registrations up to ``before``'s month, from
    ``rollup_cohorts`` (kept per month and store by the projector)."""
    first = date(before.year, before.month, 1)
    for _ in range(COHORT_MONTHS - 1):
        first = (first - timedelta(days=1)).replace(day=1)
    cond, params = _where(store_id, None)
    rows = tx.all(
        "SELECT month, sum(registered), sum(first), sum(second) FROM rollup_cohorts "
        f"WHERE month >= ? AND month <= ?{cond} GROUP BY month HAVING sum(registered) <> 0 "
        "ORDER BY month",
        (first.isoformat()[:7], before.isoformat()[:7], *params),
    )
    return [Cohort(m, int(n), int(a), int(b)) for m, n, a, b in rows]


def _months(d0: date, d1: date) -> list[str]:
    out: list[str] = []
    m = date(d0.year, d0.month, 1)
    while m <= d1 and len(out) < 24:
        out.append(m.isoformat()[:7])
        m = (m.replace(day=28) + timedelta(days=4)).replace(day=1)
    return out


def _month_days(month: str) -> tuple[str, str]:
    first = date.fromisoformat(f"{month}-01")
    nxt = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first.isoformat(), (nxt - timedelta(days=1)).isoformat()


def plans(tx: Tx, months: list[str], store_id: str | None) -> list[PlanRow]:
    """The plans of ``months`` for the store (or the chain and every store), with the
    month's actual and % done."""
    if not months:
        return []
    marks_ = ",".join("?" * len(months))
    cond, params = ("", []) if store_id is None else (" AND store_id = ?", [store_id])
    out: list[PlanRow] = []
    actuals: dict[tuple[str, str], dict[str, Any]] = {}
    for month, figure, store, planned in tx.all(
        f"SELECT month, figure, store_id, target FROM dashboard_plans WHERE month IN ({marks_})"
        f"{cond} ORDER BY month, store_id, figure",
        (*months, *params),
    ):
        if (month, store) not in actuals:
            d0, d1 = _month_days(month)
            actuals[month, store] = figures(tx, d0, d1, store or None)[0]
        actual = int(actuals[month, store][figure])
        target = int(planned)
        done = round(100 * actual / target, 1) if target else None
        out.append(PlanRow(month, figure, store, target, actual, done))
    return out


def build(ctx: Context, q: Query, now: datetime | None = None) -> Dashboard:
    """The dashboard for ``q`` (``Query``), read in one transaction."""
    now = now or ctx.clock.now()
    rules = ctx.programmes.get()
    assert rules is not None
    d0, d1 = q.start.isoformat(), q.end.isoformat()
    with ctx.db.reading() as tx:
        total, days = figures(tx, d0, d1, q.store_id, q.cashier_id)
        cond, params = _where(q.store_id, None)
        members, expired, live, between = rollups.held_now(tx, now, d0, d1, q.store_id)
        total["members_now"] = members
        total["points_expired"] = expired
        total["liability_points"] = live
        total["liability_kop"] = live * rules.point_value_kop
        total["expired_in_period"] = between
        total["liability_change"] = total["points_issued"] - total["points_spent"] - between
        found = cohorts(tx, q.end, q.store_id)
        planned = plans(tx, _months(q.start, q.end), q.store_id)
        stores = [
            (s, n)
            for s, n in tx.all("SELECT store_id, name FROM stores ORDER BY store_id")
            if q.store_id is None or s == q.store_id
        ]
        cashiers = [
            c
            for (c,) in tx.all(
                "SELECT DISTINCT cashier_id FROM rollup_days WHERE day >= ? AND day <= ?"
                + cond
                + " ORDER BY cashier_id",
                (d0, d1, *params),
            )
        ]
    series = []
    day = q.start
    while day <= q.end:
        series.append({"day": day.isoformat(), **days.get(day.isoformat(), _blank())})
        day += timedelta(days=1)
    return Dashboard(q, total, series, found, planned, stores, cashiers, now.isoformat())


_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_AMOUNT = re.compile(r"[0-9]+([.,][0-9]{1,2})?")


def parse_target(figure: str, text: str) -> int:
    """A plan's target as typed: a whole number; revenue in roubles with up to two
    decimals (a comma or a point; spaces between digit groups), returned in kopecks."""
    clean = text.replace(" ", "").replace("\u00a0", "")
    if figure == "revenue_kop":
        if not _AMOUNT.fullmatch(clean):
            raise DashboardError(
                f"plan value {text!r}: roubles expected, e.g. 1500000 or 1500000,50",
                f"значение плана «{text}»: нужна сумма в рублях, например 1500000 или 1500000,50",
                field="value",
                value=text,
            )
        rub, _, kop = clean.replace(",", ".").partition(".")
        value = int(rub) * 100 + int((kop + "00")[:2])
    else:
        if not clean.isdigit() or not clean.isascii():
            raise DashboardError(
                f"plan value {text!r}: a whole number expected",
                f"значение плана «{text}»: нужно целое неотрицательное число",
                field="value",
                value=text,
            )
        value = int(clean)
    if value > PLAN_MAX:
        raise DashboardError(
            f"plan value {text!r} is too large",
            f"значение плана «{text}» слишком велико",
            field="value",
            value=text,
        )
    return value


def set_plan(
    ctx: Context, month: str, figure: str, value: str, store_id: str | None, actor: str
) -> int:
    """Set (or replace) the plan of ``month`` (YYYY-MM) for ``figure`` and the store (None:
    the chain), with its audit row, in one transaction; returns the target stored."""
    month = month.strip()
    if not _MONTH.fullmatch(month):
        raise DashboardError(
            f"month {month!r}: expected YYYY-MM, e.g. 2026-12",
            f"месяц «{month}»: нужен вид ГГГГ-ММ, например 2026-12",
            field="month",
            value=month,
        )
    if figure not in PLAN_FIGURES:
        raise DashboardError(
            f"figure {figure!r}: must be one of {', '.join(PLAN_FIGURES)}",
            f"показатель «{figure}»: нужен один из {', '.join(PLAN_FIGURES)}",
            field="figure",
            value=figure,
        )
    target = parse_target(figure, value)
    now = ctx.clock.now()
    with ctx.db.transaction() as tx:
        store = store_id or ""
        if store and tx.one("SELECT 1 FROM stores WHERE store_id = ?", (store,)) is None:
            raise DashboardError(
                f"store {store!r} is not known",
                f"магазина «{store}» нет",
                field="store_id",
                value=store,
            )
        old = tx.one(
            "SELECT target FROM dashboard_plans WHERE month = ? AND figure = ? AND store_id = ?",
            (month, figure, store),
        )
        tx.execute(
            "INSERT INTO dashboard_plans(month, figure, store_id, target, set_by, set_at) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(month, figure, store_id) DO UPDATE SET "
            "target = excluded.target, set_by = excluded.set_by, set_at = excluded.set_at",
            (month, figure, store, target, actor, now.isoformat()),
        )
        audit.record(
            tx,
            now,
            actor,
            "dashboard_plan_set",
            f"{month} {figure} {store or '*'}",
            {"target": target, "before": None if old is None else int(old[0])},
        )
    return target


def show(
    ctx: Context,
    kind: str | None,
    start: str | None = None,
    end: str | None = None,
    store_id: str | None = None,
    cashier_id: str | None = None,
    store_scope: str | None = None,
) -> Dashboard:
    """The dashboard a page asked for; a store-bound user's own store is forced (whatever
    ``store_id`` the request named), so they never see another store's figures."""
    if store_scope is not None:
        store_id = store_scope
    return build(ctx, query(ctx, kind, start, end, store_id, cashier_id))

"""The dashboard's page: the programme's figures for today, this week, this month or a
chosen period, for the chain, a store or a cashier (htmx swaps the board when a filter
changes, no full reload), charts by day drawn here as inline SVG (no script, no library),
conversions by registration cohort, and the monthly plan (the owner sets it on the page).

A store manager sees their own store only: the service forces their store whatever the
request names (``dashboard.show``), and the page offers no other.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from agent.money import NBSP, format_points, format_rub
from sync.backoffice.console.guard import PREFIX, Pages, Visit
from sync.backoffice.dashboard import PERIODS, PLAN_FIGURES, Dashboard, DashboardError
from sync.backoffice.people.roles import allows

SECTION = "dashboard"
CHART_W, CHART_H = 640, 160
"""The charts' drawing size (SVG user units; the SVG scales to its box)."""
CHARTS = (
    ("dashboard_chart_revenue", ("revenue_kop",)),
    ("dashboard_chart_cheques", ("cheques",)),
    ("dashboard_chart_new_members", ("new_members",)),
    ("dashboard_chart_points", ("points_issued", "points_spent")),
)
"""Each chart: its title's text key and the figures of ``Dashboard.days`` it draws."""


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    w: float
    h: float
    series: int
    day: str
    value: int


@dataclass(frozen=True, slots=True)
class Chart:
    """One chart as the template draws it: bars in SVG units, the zero line's height,
    the largest value (its label) and the first and last day."""

    title: str
    keys: tuple[str, ...]
    bars: list[Bar]
    zero_y: float
    top: int
    first: str
    last: str


def chart(title: str, days: list[dict[str, Any]], keys: tuple[str, ...]) -> Chart:
    """Bars per day for ``keys`` (side by side within a day); negative days (refunds
    only) go below the zero line. Revenue is drawn in roubles."""
    scale = {k: 100 if k.endswith("_kop") else 1 for k in keys}
    values = [[d[k] // scale[k] for k in keys] for d in days]
    hi = max([0, *(v for row in values for v in row)])
    lo = min([0, *(v for row in values for v in row)])
    span = (hi - lo) or 1
    zero = CHART_H * hi / span
    slot = CHART_W / max(len(days), 1)
    w = max(slot * 0.8 / len(keys), 0.5)
    bars = []
    for n, (d, row) in enumerate(zip(days, values, strict=True)):
        for s, v in enumerate(row):
            h = CHART_H * abs(v) / span
            y = zero - h if v >= 0 else zero
            bars.append(
                Bar(
                    round(n * slot + slot * 0.1 + s * w, 2),
                    round(y, 2),
                    round(w, 2),
                    round(h, 2),
                    s,
                    d["day"],
                    v,
                )
            )
    return Chart(
        title,
        keys,
        bars,
        round(zero, 2),
        hi,
        days[0]["day"] if days else "",
        days[-1]["day"] if days else "",
    )


def _number(lang: str, n: int | float, decimals: int = 0) -> str:
    text = f"{n:,.{decimals}f}"
    if lang == "en":
        return text
    return text.replace(",", NBSP).replace(".", ",")


def _percent(lang: str, ratio_or_pct: float | None, *, ratio: bool = False) -> str:
    if ratio_or_pct is None:
        return "—"
    value = ratio_or_pct * 100 if ratio else ratio_or_pct
    return f"{_number(lang, value, 1)}{NBSP}%"


def _points(lang: str, points: int, *, sign: bool = False) -> str:
    return format_points(points, lang, sign=sign)


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo

    def asked(request: Request) -> dict[str, str]:
        q = request.query_params
        return {k: q.get(k, "") for k in ("period", "from", "to", "store", "cashier")}

    async def view(request: Request, visit: Visit, status: int = 200, **values: Any) -> Response:
        assert visit.user is not None
        wanted = values.pop("wanted", None) or asked(request)
        scope = visit.user.store_scope
        board: Dashboard | None = None
        error = None
        try:
            board = await pages.call(
                bo.dashboard_view,
                wanted["period"] or None,
                wanted["from"] or None,
                wanted["to"] or None,
                store_id=wanted["store"] or None,
                cashier_id=wanted["cashier"] or None,
                store_scope=scope,
            )
        except DashboardError as e:
            error = e.message(visit.lang)
            # a full page says 400; an htmx swap gets 200, as htmx swaps no error status
            status = 200 if request.headers.get("hx-request") else 400
        charts = [chart(visit.t(key), board.days, keys) for key, keys in CHARTS] if board else []
        lang = visit.lang
        values.setdefault("plan_error", None)
        values.setdefault("plan_form", {})
        values.setdefault("saved", request.query_params.get("saved") == "1")
        return pages.render(
            visit,
            "dashboard.html",
            status=status,
            block="board" if request.headers.get("hx-request") else None,
            board=board,
            error=error,
            wanted=wanted,
            periods=PERIODS,
            figures=PLAN_FIGURES,
            charts=charts,
            scope=scope,
            can_plan=allows(visit.user.role, SECTION, "write"),
            query=urlencode({k: v for k, v in wanted.items() if v}),
            rub=partial(format_rub, lang=lang),
            pts=partial(_points, lang),
            num=partial(_number, lang),
            pct=partial(_percent, lang),
            chart_w=CHART_W,
            chart_h=CHART_H,
            **values,
        )

    @pages.page(SECTION)
    async def dashboard_page(request: Request, visit: Visit) -> Response:
        return await view(request, visit)

    @pages.page(SECTION, write=True)
    async def plan_set(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        form: dict[str, str] = request.state.form
        wanted = {
            k: form.get(f"back_{k}", "") for k in ("period", "from", "to", "store", "cashier")
        }
        try:
            await pages.call(
                bo.dashboard_set_plan,
                form.get("month", ""),
                form.get("figure", ""),
                form.get("value", ""),
                form.get("plan_store") or None,
                actor=visit.user.login,
            )
        except DashboardError as e:
            kept = {k: v for k, v in form.items() if k != "csrf"}
            return await view(
                request,
                visit,
                400,
                wanted=wanted,
                plan_error=e.message(visit.lang),
                plan_form=kept,
            )
        back = urlencode({**{k: v for k, v in wanted.items() if v}, "saved": "1"})
        return RedirectResponse(f"{PREFIX}/dashboard?{back}", 303)

    return [
        Route("/dashboard", dashboard_page, methods=["GET"]),
        Route("/dashboard/plan", plan_set, methods=["POST"]),
    ]

"""The stores-and-tills page: stores (adding one), enrollment codes (made here, shown
once with their expiry), what each till last told (contact, send queue, oldest unsent
event, quarantine, software), the silent-till alarm with the owner's threshold, and the
closed-launch view of the cashiers (the KPI report's rows), and each store's sign-up
posters (PDF) with the members who joined from each. Changes are the owner's; a
store manager sees their own store only."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from agent.errors import AgentError
from sync.backoffice import kpi
from sync.backoffice.console.guard import PREFIX, Pages, Visit
from sync.backoffice.people.roles import allows
from sync.backoffice.tills import StoreError
from sync.protocol import ProtocolError

SECTION = "stores"


def when(stamp: str | None) -> str:
    """An ISO 8601 time as the page shows it: UTC, to the minute ("" for none)."""
    if not stamp:
        return ""
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return stamp[:16]
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def percent(share: float) -> str:
    return f"{round(share * 100)} %"


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo

    async def stores_view(
        request: Request, visit: Visit, status: int = 200, **values: Any
    ) -> Response:
        assert visit.user is not None
        scope = visit.user.store_scope
        data = await pages.call(bo.stores_overview, scope)
        query = request.query_params
        span = {"from": query.get("from", ""), "to": query.get("to", "")}
        cashiers: list[dict[str, Any]] = []
        period_error = None
        try:
            days = kpi.period(span["from"] or None, span["to"] or None)
        except kpi.PeriodError as e:
            period_error = e.message(visit.lang)
            status = max(status, 400)
        else:
            cashiers = await pages.call(bo.closed_launch, days, scope)
        signups = await pages.call(bo.member_signups, scope)
        for key in ("error", "new_code", "store_form", "threshold_error", "typed"):
            values.setdefault(key, None)
        return pages.render(
            visit,
            "stores.html",
            status=status,
            data=data,
            cashiers=cashiers,
            signups=signups,
            span=span,
            period_error=period_error,
            can_write=allows(visit.user.role, SECTION, "write"),
            when=when,
            percent=percent,
            **values,
        )

    @pages.page(SECTION)
    async def stores_page(request: Request, visit: Visit) -> Response:
        return await stores_view(request, visit)

    @pages.page(SECTION, write=True)
    async def store_add(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        form: dict[str, str] = request.state.form
        try:
            await pages.call(
                bo.add_store,
                form.get("store_id", ""),
                form.get("name", ""),
                actor=visit.user.login,
            )
        except StoreError as e:
            kept = {k: form.get(k, "") for k in ("store_id", "name")}
            return await stores_view(
                request, visit, 400, error=e.message(visit.lang), store_form=kept
            )
        return RedirectResponse(f"{PREFIX}/stores", 303)

    @pages.page(SECTION, write=True)
    async def code_make(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        store_id = request.path_params["store_id"]
        try:
            made = await pages.call(bo.console_enroll_code, store_id, actor=visit.user.login)
        except ProtocolError:  # unknown_store: a form for a store that is not there
            error = visit.t("stores_unknown_store", store=store_id)
            return await stores_view(request, visit, 400, error=error)
        # shown once: the page itself (no redirect), never stored in clear
        return await stores_view(request, visit, new_code=made)

    @pages.page(SECTION, write=True)
    async def threshold_set(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        minutes = request.state.form.get("minutes", "")
        try:
            await pages.call(bo.set_silent_threshold, minutes, actor=visit.user.login)
        except StoreError as e:
            return await stores_view(
                request, visit, 400, threshold_error=e.message(visit.lang), typed=minutes
            )
        return RedirectResponse(f"{PREFIX}/stores", 303)

    @pages.page(SECTION)
    async def poster_pdf(request: Request, visit: Visit) -> Response:
        """A store's sign-up poster: its QR opens ``/my/join`` with the store and poster."""
        assert visit.user is not None
        q = request.query_params
        store_id = q.get("store", "")
        if visit.user.store_scope is not None and store_id != visit.user.store_scope:
            return pages.render(visit, "message.html", status=403, kind="refused")
        base = str(request.base_url)
        try:
            body = await pages.call(
                bo.member_poster, store_id, q.get("poster", ""), base, visit.lang
            )
        except AgentError as e:
            return await stores_view(request, visit, 400, error=e.message(visit.lang))
        name = f"poster-{store_id}-{q.get('poster', '').strip()}.pdf"
        return Response(
            body,
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    return [
        Route("/stores", stores_page, methods=["GET"]),
        Route("/stores/poster.pdf", poster_pdf, methods=["GET"]),
        Route("/stores", store_add, methods=["POST"]),
        Route("/stores/threshold", threshold_set, methods=["POST"]),
        Route("/stores/{store_id}/code", code_make, methods=["POST"]),
    ]

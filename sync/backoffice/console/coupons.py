"""The coupons section: issue a coupon, one per member or a batch (one service call, one
transaction, audited), the register of issues, one issue's codes and redemptions, its
printable PDF sheet and CSV, and revoking a coupon or a whole issue."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from agent.errors import AgentError
from agent.money import format_rub
from sync.backoffice import couponsheet
from sync.backoffice.console.guard import HEADERS, PREFIX, Pages, Visit
from sync.backoffice.coupons import Batch
from sync.backoffice.people.roles import allows

SECTION = "coupons"
FORM_FIELDS = (
    "mode",
    "kind",
    "value",
    "valid_from",
    "valid_until",
    "min_cheque",
    "count",
    "members",
    "note",
)


def terms_text(visit: Visit, b: Batch) -> str:
    """An issue's terms as the page shows them, as the printed sheet does
    (``couponsheet.terms_text``: ``−10 %``, ``−500,00 ₽``, ``+300 бонусов``, with the
    minimum cheque)."""
    return couponsheet.terms_text(b, visit.lang)


def validity_text(b: Batch) -> str:
    """The days of validity, inclusive, in the programme's zone (as typed on the form)."""
    first, last = b.days()
    return f"{first.isoformat()} — {last.isoformat()} ({b.timezone})"


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo

    def shared(visit: Visit) -> dict[str, Any]:
        assert visit.user is not None
        return {
            "terms": lambda b: terms_text(visit, b),
            "validity": validity_text,
            "rub": lambda kop: format_rub(kop, lang=visit.lang),
            "can_write": allows(visit.user.role, SECTION, "write"),
        }

    async def list_view(visit: Visit, status: int = 200, **values: Any) -> Response:
        found = await pages.call(bo.coupon_batches)
        values.setdefault("error", None)
        values.setdefault("error_field", None)
        values.setdefault("form", {"mode": "single", "kind": "percent"})
        return pages.render(
            visit, "coupons.html", status=status, batches=found, **shared(visit), **values
        )

    @pages.page(SECTION)
    async def coupons_page(request: Request, visit: Visit) -> Response:
        return await list_view(visit)

    @pages.page(SECTION, write=True)
    async def coupons_issue(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        form: dict[str, str] = request.state.form
        kept = {k: form.get(k, "") for k in FORM_FIELDS}
        try:
            made = await pages.call(
                bo.coupon_issue,
                kept["mode"],
                kept["kind"],
                kept["value"],
                kept["valid_from"],
                kept["valid_until"],
                kept["min_cheque"],
                count=kept["count"],
                members=kept["members"],
                note=kept["note"],
                actor=visit.user.login,
            )
        except AgentError as e:
            return await list_view(
                visit,
                400,
                error=e.message(visit.lang),
                error_field=e.details.get("field"),
                form=kept,
            )
        return RedirectResponse(f"{PREFIX}/coupons/{made.batch_id}?issued={made.count}", 303)

    async def batch_view(visit: Visit, batch_id: str, status: int = 200, **values: Any) -> Response:
        found = await pages.call(bo.coupon_batch, batch_id)
        if found is None:
            return await list_view(visit, 404, error=visit.t("coupons_not_found"))
        batch, items, used = found
        values.setdefault("error", None)
        values.setdefault("notice", None)
        return pages.render(
            visit,
            "coupons_batch.html",
            status=status,
            batch=batch,
            items=items,
            used=used,
            **shared(visit),
            **values,
        )

    @pages.page(SECTION)
    async def coupons_batch(request: Request, visit: Visit) -> Response:
        issued = request.query_params.get("issued", "")
        revoked = request.query_params.get("revoked", "")
        notice = None
        if issued.isdigit():
            notice = visit.t("coupons_issued_ok", n=int(issued))
        elif revoked.isdigit():
            notice = visit.t("coupons_revoked_n", n=int(revoked))
        return await batch_view(visit, request.path_params["batch_id"], notice=notice)

    @pages.page(SECTION, write=True)
    async def coupons_revoke(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        batch_id = request.path_params["batch_id"]
        form: dict[str, str] = request.state.form
        try:
            n = await pages.call(
                bo.coupon_revoke,
                batch_id,
                form.get("coupon_id") or None,
                form.get("reason", ""),
                actor=visit.user.login,
            )
        except AgentError as e:
            return await batch_view(visit, batch_id, 400, error=e.message(visit.lang))
        return RedirectResponse(f"{PREFIX}/coupons/{batch_id}?revoked={n}", 303)

    @pages.page(SECTION)
    async def coupons_file(request: Request, visit: Visit) -> Response:
        batch_id = request.path_params["batch_id"]
        fmt = "pdf" if request.url.path.endswith(".pdf") else "csv"
        body = await pages.call(bo.coupon_sheet, batch_id, fmt, visit.lang)
        if body is None:
            return await list_view(visit, 404, error=visit.t("coupons_not_found"))
        kind = "application/pdf" if fmt == "pdf" else "text/csv; charset=utf-8"
        name = f"coupons-{batch_id}.{fmt}"
        return Response(
            body,
            media_type=kind,
            headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
        )

    return [
        Route("/coupons", coupons_page, methods=["GET"]),
        Route("/coupons", coupons_issue, methods=["POST"]),
        Route("/coupons/{batch_id:str}/sheet.pdf", coupons_file, methods=["GET"]),
        Route("/coupons/{batch_id:str}/codes.csv", coupons_file, methods=["GET"]),
        Route("/coupons/{batch_id:str}", coupons_batch, methods=["GET"]),
        Route("/coupons/{batch_id:str}/revoke", coupons_revoke, methods=["POST"]),
    ]

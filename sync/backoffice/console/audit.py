"""The audit log's page: every change a person made, newest first, and the check of its
hash chain (an htmx swap of the verdict)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from sync.backoffice.console.guard import Pages, Visit

SECTION = "audit"


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo

    @pages.page(SECTION)
    async def audit_page(request: Request, visit: Visit) -> Response:
        before = request.query_params.get("before")
        older = int(before) if before and before.isdigit() else None
        rows = await pages.call(bo.audit_entries, limit=100, before=older)
        return pages.render(visit, "audit.html", rows=rows, verdict=None)

    @pages.page(SECTION)
    async def audit_verify(request: Request, visit: Visit) -> Response:
        verdict = await pages.call(bo.verify_audit)
        return pages.render(visit, "audit.html", block="verdict", verdict=verdict, rows=[])

    return [
        Route("/audit", audit_page, methods=["GET"]),
        Route("/audit/verify", audit_verify, methods=["POST"]),
    ]

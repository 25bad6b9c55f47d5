"""The review of purchases held by the back office's re-score: each held cheque with the
till's claim beside the server's figures (earned, bonuses, spent, the tolerance), and
the owner's or support's decision, with a reason: release (applied once, as printed) or
refuse (it stays refused). Part of the members section (its access: support and the owner
decide, analysts and store managers read; a store manager sees their store's cheques
only). Every decision is audited by the service (``review``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sync.backoffice.console.guard import PREFIX, Pages, Visit
from sync.backoffice.member_admin import MemberAdminError
from sync.backoffice.people.roles import allows

SECTION = "members"


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo

    async def review_view(visit: Visit, status: int = 200, **values: Any) -> Response:
        assert visit.user is not None
        held = await pages.call(bo.held_purchases, visit.user.store_scope)
        values.setdefault("error", None)
        values.setdefault("error_event", None)
        values.setdefault("reason", "")
        values.setdefault("done", None)
        if values["error_event"] not in {h.event_id for h in held}:
            values["error_event"] = None  # decided meanwhile: the message above the list
        return pages.render(
            visit,
            "review.html",
            status=status,
            held=held,
            can_write=allows(visit.user.role, SECTION, "write"),
            **values,
        )

    @pages.page(SECTION)
    async def review_page(request: Request, visit: Visit) -> Response:
        done = request.query_params.get("done")
        return await review_view(visit, done=done if done in ("released", "refused") else None)

    def decide(name: str, method: str) -> Any:
        """A POST handler: ``method`` of the service with the event and the reason; a
        refusal re-renders the list with the message by the cheque and the reason kept."""

        @pages.page(SECTION, write=True)
        async def handler(request: Request, visit: Visit) -> Response:
            assert visit.user is not None
            event_id = request.path_params["event_id"]
            reason = request.state.form.get("reason", "")
            try:
                await pages.call(
                    getattr(bo, method),
                    event_id,
                    reason,
                    actor=visit.user.login,
                    store_scope=visit.user.store_scope,
                )
            except MemberAdminError as e:
                return await review_view(
                    visit, 400, error=e.message(visit.lang), error_event=event_id, reason=reason
                )
            return RedirectResponse(f"{PREFIX}/review?done={name}", 303)

        return handler

    return [
        Route("/review", review_page, methods=["GET"]),
        Route(
            "/review/{event_id}/release",
            decide("released", "release_purchase"),
            methods=["POST"],
        ),
        Route("/review/{event_id}/refuse", decide("refused", "refuse_purchase"), methods=["POST"]),
    ]

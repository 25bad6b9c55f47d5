"""The webhooks section: the subscriptions that receive the member events (URL, event
types, state, how their deliveries go), creating one with its signing secret shown once,
rotating the secret (shown once; the old one still signs for a day), disabling, enabling
and deleting, and a subscription's delivery log and dead letters with replay of one
event, a range of event ids or a time span. The owner and marketing change them;
analysts read; other roles do not see the section.

A secret is never put in a URL or a cookie: the page answering the creation or the
rotation shows it (status 200, ``Cache-Control: no-store`` like every console page), and
no later page can. Every change goes through an audited ``Backoffice.webhook_*`` method;
a refused one answers 400 with the message on its form, the field it names marked
(``WebhookError.details["field"]``) and the typed values kept."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from agent.errors import AgentError
from sync.backoffice import outbox
from sync.backoffice.console.guard import PREFIX, Pages, Visit
from sync.backoffice.people.roles import allows

SECTION = "webhooks"
LOG_PAGE = 50
"""Attempts of the delivery log shown per page."""
DEAD_PAGE = 100
"""Dead letters shown on a subscription's page."""


def types_of(form: dict[str, str]) -> list[str]:
    """The event types ticked on a form (checkboxes named ``type.<type>``)."""
    return [t for t in outbox.TYPES if form.get(f"type.{t}") == "1"]


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo

    def can_write(visit: Visit) -> bool:
        assert visit.user is not None
        return allows(visit.user.role, SECTION, "write")

    def refused(e: AgentError, visit: Visit, form: str) -> dict[str, Any]:
        return {
            "error": e.message(visit.lang),
            "error_field": e.details.get("field"),
            "error_form": form,
        }

    async def list_view(visit: Visit, status: int = 200, **values: Any) -> Response:
        subs = await pages.call(bo.webhook_subscriptions)
        health = await pages.call(bo.webhook_health, [s.id for s in subs])
        values.setdefault("error", None)
        values.setdefault("error_field", None)
        values.setdefault("error_form", None)
        values.setdefault("form", {})
        values.setdefault("chosen", types_of(values["form"]))
        values.setdefault("created", None)
        values.setdefault("notice", None)
        return pages.render(
            visit,
            "webhooks.html",
            status=status,
            subs=subs,
            health=health,
            types=outbox.TYPES,
            can_write=can_write(visit),
            **values,
        )

    async def sub_view(
        visit: Visit,
        subscription_id: int,
        status: int = 200,
        before: int | None = None,
        **values: Any,
    ) -> Response:
        try:
            sub = await pages.call(bo.webhook_subscription, subscription_id)
        except AgentError:
            return await list_view(visit, 404, error=visit.t("webhooks_not_found"))
        log = await pages.call(
            bo.webhook_delivery_log, subscription_id, limit=LOG_PAGE, before=before
        )
        dead = await pages.call(bo.webhook_dead, subscription_id, DEAD_PAGE)
        health = (await pages.call(bo.webhook_health, [subscription_id]))[subscription_id]
        for key in ("error", "error_field", "error_form", "rotated", "notice"):
            values.setdefault(key, None)
        values.setdefault("chosen", types_of(values["form"]) if values.get("form") else sub.types)
        values.setdefault("form", {})
        return pages.render(
            visit,
            "webhook.html",
            status=status,
            sub=sub,
            log=log,
            older=log[-1].id if len(log) == LOG_PAGE else None,
            dead=dead,
            health=health,
            types=outbox.TYPES,
            can_write=can_write(visit),
            **values,
        )

    @pages.page(SECTION)
    async def list_page(request: Request, visit: Visit) -> Response:
        q = request.query_params
        notice = (
            visit.t("webhooks_done_deleted", id=q["deleted"])
            if q.get("deleted", "").isdigit()
            else None
        )
        return await list_view(visit, notice=notice)

    @pages.page(SECTION, write=True)
    async def create(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        form: dict[str, str] = request.state.form
        try:
            made = await pages.call(
                bo.webhook_add, form.get("url", ""), types_of(form), actor=visit.user.login
            )
        except AgentError as e:
            return await list_view(visit, 400, form=form, **refused(e, visit, "create"))
        return await list_view(visit, created=made)

    @pages.page(SECTION)
    async def sub_page(request: Request, visit: Visit) -> Response:
        q = request.query_params
        done = q.get("done", "")
        notice = None
        if done in ("enabled", "disabled", "types"):
            notice = visit.t(f"webhooks_done_{done}")
        elif q.get("replayed", "").isdigit():
            notice = visit.t("webhooks_done_replayed", n=int(q["replayed"]))
        before = q.get("before", "")
        return await sub_view(
            visit,
            request.path_params["sid"],
            before=int(before) if before.isdecimal() and len(before) <= 18 else None,
            notice=notice,
        )

    @pages.page(SECTION, write=True)
    async def rotate(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        sid = request.path_params["sid"]
        try:
            made = await pages.call(bo.webhook_rotate, sid, actor=visit.user.login)
        except AgentError:
            return await list_view(visit, 404, error=visit.t("webhooks_not_found"))
        return await sub_view(visit, sid, rotated=made)

    @pages.page(SECTION, write=True)
    async def set_state(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        sid = request.path_params["sid"]
        active = request.state.form.get("active") == "1"
        try:
            await pages.call(bo.webhook_set_active, sid, active, actor=visit.user.login)
        except AgentError:
            return await list_view(visit, 404, error=visit.t("webhooks_not_found"))
        done = "enabled" if active else "disabled"
        return RedirectResponse(f"{PREFIX}/webhooks/{sid}?done={done}", 303)

    @pages.page(SECTION, write=True)
    async def set_types(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        sid = request.path_params["sid"]
        form: dict[str, str] = request.state.form
        try:
            await pages.call(bo.webhook_set_types, sid, types_of(form), actor=visit.user.login)
        except AgentError as e:
            return await sub_view(visit, sid, 400, form=form, **refused(e, visit, "types"))
        return RedirectResponse(f"{PREFIX}/webhooks/{sid}?done=types", 303)

    @pages.page(SECTION, write=True)
    async def delete(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        sid = request.path_params["sid"]
        try:
            await pages.call(bo.webhook_delete, sid, actor=visit.user.login)
        except AgentError:
            return await list_view(visit, 404, error=visit.t("webhooks_not_found"))
        return RedirectResponse(f"{PREFIX}/webhooks?deleted={sid}", 303)

    @pages.page(SECTION, write=True)
    async def replay(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        sid = request.path_params["sid"]
        form: dict[str, str] = request.state.form
        by_time = request.url.path.endswith("/replay-span")
        try:
            if by_time:
                n = await pages.call(
                    bo.webhook_replay_between,
                    sid,
                    form.get("since", ""),
                    form.get("until", ""),
                    actor=visit.user.login,
                )
            else:
                n = await pages.call(
                    bo.webhook_replay,
                    sid,
                    form.get("first", ""),
                    form.get("last", ""),
                    actor=visit.user.login,
                )
        except AgentError as e:
            which = "span" if by_time else "ids"
            return await sub_view(visit, sid, 400, form=form, **refused(e, visit, which))
        return RedirectResponse(f"{PREFIX}/webhooks/{sid}?replayed={n}", 303)

    return [
        Route("/webhooks", list_page, methods=["GET"]),
        Route("/webhooks", create, methods=["POST"]),
        Route("/webhooks/{sid:int}", sub_page, methods=["GET"]),
        Route("/webhooks/{sid:int}/rotate", rotate, methods=["POST"]),
        Route("/webhooks/{sid:int}/state", set_state, methods=["POST"]),
        Route("/webhooks/{sid:int}/types", set_types, methods=["POST"]),
        Route("/webhooks/{sid:int}/delete", delete, methods=["POST"]),
        Route("/webhooks/{sid:int}/replay", replay, methods=["POST"]),
        Route("/webhooks/{sid:int}/replay-span", replay, methods=["POST"]),
    ]

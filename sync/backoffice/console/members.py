"""The members section: find a member (phone, card code, name), their profile for the
hotline (points, lots, cheques explained, consents, flags), and the changes support and
the owner make there: adjust points, block or unblock, merge a duplicate, erase on
request with a printable destruction act. A store manager sees their store's members
only (the service filters by ``store_scope``); every change is audited by the service.

The search answers as a whole page or, for htmx (typing in the box), as the results
block alone. A refused change re-renders the profile with status 400, the message beside
the form it came from and what was typed kept."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sync.backoffice.console.guard import PREFIX, Pages, Visit
from sync.backoffice.member_admin import MemberAdminError
from sync.backoffice.people.roles import allows

SECTION = "members"


def rub(kop: int) -> str:
    """Kopecks as roubles for a page: ``123456`` -> ``1 234,56 ₽`` (integer arithmetic)."""
    sign = "-" if kop < 0 else ""
    whole, cents = divmod(abs(kop), 100)
    return f"{sign}{whole:,}".replace(",", "\u00a0") + f",{cents:02d}\u00a0₽"


def when(iso: str | None) -> str:
    """An ISO 8601 time as ``2026-06-15 09:00`` (UTC, as stored)."""
    return "" if not iso else iso[:16].replace("T", " ")


def pct(bp: int) -> str:
    """Basis points as a percentage: ``550`` -> ``5,5 %``."""
    whole, rest = divmod(bp, 100)
    text = f"{whole},{rest:02d}".rstrip("0") if rest else str(whole)
    return f"{text}\u00a0%"


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo
    helpers: dict[str, Any] = {"rub": rub, "when": when, "pct": pct}

    @pages.page(SECTION)
    async def search_page(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        query = request.query_params.get("q", "")
        found, error, status = None, None, 200
        if query.strip():
            try:
                found = await pages.call(bo.find_members, query, visit.user.store_scope)
            except MemberAdminError as e:
                error, status = e.message(visit.lang), 400
        block = "results" if request.headers.get("hx-request") else None
        return pages.render(
            visit,
            "members.html",
            status=status,
            block=block,
            query=query,
            found=found,
            error=error,
            scope=visit.user.store_scope,
            **helpers,
        )

    async def profile_view(
        visit: Visit, member_id: str, status: int = 200, **values: Any
    ) -> Response:
        assert visit.user is not None
        try:
            p = await pages.call(bo.member_profile, member_id, visit.user.store_scope)
        except MemberAdminError as e:
            return pages.render(
                visit,
                "members.html",
                status=404,
                query="",
                found=None,
                error=e.message(visit.lang),
                scope=visit.user.store_scope,
                **helpers,
            )
        values.setdefault("error", None)
        values.setdefault("error_form", None)
        values.setdefault("form", {})
        values.setdefault("done", None)
        return pages.render(
            visit,
            "members_profile.html",
            status=status,
            p=p,
            can_write=allows(visit.user.role, SECTION, "write"),
            **helpers,
            **values,
        )

    @pages.page(SECTION)
    async def profile_page(request: Request, visit: Visit) -> Response:
        done = request.query_params.get("done")
        return await profile_view(visit, request.path_params["member_id"], done=done)

    def change(name: str, run: Any) -> Any:
        """A POST handler for one change: ``run(visit, member_id, form)`` calls the
        service; a ``MemberAdminError`` re-renders the profile with the message."""

        @pages.page(SECTION, write=True)
        async def handler(request: Request, visit: Visit) -> Response:
            assert visit.user is not None
            member_id = request.path_params["member_id"]
            form: dict[str, str] = request.state.form
            try:
                done = await run(visit, member_id, form)
            except MemberAdminError as e:
                kept = {k: v for k, v in form.items() if k != "csrf"}
                return await profile_view(
                    visit, member_id, 400, error=e.message(visit.lang), error_form=name, form=kept
                )
            return RedirectResponse(f"{PREFIX}/members/{member_id}?done={done}", 303)

        return handler

    async def adjust(visit: Visit, member_id: str, form: dict[str, str]) -> str:
        assert visit.user is not None
        await pages.call(
            bo.adjust_points,
            member_id,
            form.get("points", ""),
            form.get("reason", ""),
            actor=visit.user.login,
            store_scope=visit.user.store_scope,
        )
        return "adjusted"

    async def block(visit: Visit, member_id: str, form: dict[str, str]) -> str:
        assert visit.user is not None
        blocked = form.get("blocked") == "1"
        await pages.call(
            bo.block_member,
            member_id,
            blocked,
            form.get("reason", ""),
            actor=visit.user.login,
            store_scope=visit.user.store_scope,
        )
        return "blocked" if blocked else "unblocked"

    async def merge(visit: Visit, member_id: str, form: dict[str, str]) -> str:
        assert visit.user is not None
        await pages.call(
            bo.merge_members,
            member_id,
            form.get("code", ""),
            form.get("reason", ""),
            actor=visit.user.login,
            store_scope=visit.user.store_scope,
        )
        return "merged"

    async def erase(visit: Visit, member_id: str, form: dict[str, str]) -> str:
        assert visit.user is not None
        if form.get("confirm") != "1":
            raise MemberAdminError(
                "confirm the erasure: tick the box",
                "подтвердите уничтожение: отметьте флажок",
                code="unconfirmed",
                field="confirm",
            )
        await pages.call(
            bo.erase_member,
            member_id,
            form.get("reason", ""),
            actor=visit.user.login,
            store_scope=visit.user.store_scope,
        )
        return "erased"

    @pages.page(SECTION)
    async def act_page(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        try:
            act = await pages.call(
                bo.erasure_act, request.path_params["member_id"], visit.user.store_scope
            )
        except MemberAdminError as e:
            return pages.render(
                visit,
                "members.html",
                status=404,
                query="",
                found=None,
                error=e.message(visit.lang),
                scope=visit.user.store_scope,
                **helpers,
            )
        return pages.render(visit, "members_act.html", act=act, **helpers)

    return [
        Route("/members", search_page, methods=["GET"]),
        Route("/members/{member_id}", profile_page, methods=["GET"]),
        Route("/members/{member_id}/adjust", change("adjust", adjust), methods=["POST"]),
        Route("/members/{member_id}/block", change("block", block), methods=["POST"]),
        Route("/members/{member_id}/merge", change("merge", merge), methods=["POST"]),
        Route("/members/{member_id}/erase", change("erase", erase), methods=["POST"]),
        Route("/members/{member_id}/act", act_page, methods=["GET"]),
    ]

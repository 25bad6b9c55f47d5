"""The people-and-rights page: console users with their roles, adding one, blocking and
unblocking (the owner's alone; every change audited by the service)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from sync.backoffice.console.guard import PREFIX, Pages, Visit
from sync.backoffice.people.roles import ROLES
from sync.backoffice.people.users import UserError

SECTION = "users"


def routes(pages: Pages) -> list[BaseRoute]:
    bo = pages.bo

    async def users_view(visit: Visit, status: int = 200, **values: Any) -> Response:
        found = await pages.call(bo.list_users)
        values.setdefault("error", None)
        values.setdefault("form", {})
        return pages.render(visit, "users.html", status=status, people=found, roles=ROLES, **values)

    @pages.page(SECTION)
    async def users_page(request: Request, visit: Visit) -> Response:
        return await users_view(visit)

    @pages.page(SECTION, write=True)
    async def user_add(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        form: dict[str, str] = request.state.form
        try:
            await pages.call(
                bo.add_user,
                form.get("login", ""),
                form.get("password", ""),
                form.get("role", ""),
                name=form.get("name") or None,
                store_id=form.get("store_id") or None,
                actor=visit.user.login,
            )
        except UserError as e:
            kept = {k: v for k, v in form.items() if k not in ("password", "csrf")}
            return await users_view(visit, 400, error=e.message(visit.lang), form=kept)
        return RedirectResponse(f"{PREFIX}/users", 303)

    @pages.page(SECTION, write=True)
    async def user_active(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        login = request.path_params["login"]
        active = request.state.form.get("active") == "1"
        if login == visit.user.login:
            return await users_view(visit, 400, error=visit.t("not_yourself"))
        try:
            await pages.call(bo.change_user, login, actor=visit.user.login, active=active)
        except UserError as e:
            return await users_view(visit, 400, error=e.message(visit.lang))
        return RedirectResponse(f"{PREFIX}/users", 303)

    return [
        Route("/users", users_page, methods=["GET"]),
        Route("/users", user_add, methods=["POST"]),
        Route("/users/{login}/active", user_active, methods=["POST"]),
    ]

"""The console's pages under ``/console``: sign-in, sign-out, the language switch and the
home page here; each section's pages in its own module (``SECTION_MODULES``), on the guard
and templates of ``guard``.
"""

from __future__ import annotations

from types import ModuleType

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from sync.backoffice.console import (
    audit,
    coupons,
    dashboard,
    members,
    review,
    rules,
    segments,
    stores,
    users,
    webhooks,
)
from sync.backoffice.console.guard import (
    LANG_COOKIE,
    PRE_COOKIE,
    PREFIX,
    SESSION_COOKIE,
    Pages,
    Visit,
    safe_next,
    set_cookie,
    sign,
)
from sync.backoffice.console.i18n import LANGS
from sync.backoffice.people.roles import allows, sections
from sync.backoffice.people.users import LOCK_AFTER, SESSION_TTL
from sync.backoffice.service import Backoffice

SECTION_MODULES: tuple[ModuleType, ...] = (
    users,
    audit,
    stores,
    members,
    review,
    dashboard,
    coupons,
    rules,
    segments,
    webhooks,
)
"""The modules with a section's pages: each has ``SECTION`` and ``routes(pages)``."""


def console(bo: Backoffice) -> Mount:
    """The console, to mount on the back office's app: its routes under ``/console``."""
    pages = Pages(bo)

    async def signin_page(request: Request) -> Response:
        visit = await pages.visit(request)
        if visit.user is not None:
            return RedirectResponse(f"{PREFIX}/", 303)
        return pages.render(
            visit, "signin.html", next=safe_next(request.query_params.get("next")), error=None
        )

    async def signin(request: Request) -> Response:
        visit = await pages.visit(request)
        if not await pages.csrf(request, visit):
            return pages.render(visit, "message.html", status=403, kind="csrf")
        form: dict[str, str] = request.state.form
        login = form.get("login", "")
        outcome = await pages.call(bo.sign_in, login, form.get("password", ""))
        target = safe_next(form.get("next"))
        if outcome.user is None:
            if outcome.locked_for is not None:
                m, s = divmod(outcome.locked_for, 60)
                time_left = visit.t("minutes_seconds", m=m, s=s)
                error = visit.t("locked", n=LOCK_AFTER, time=time_left)
                status = 429
            else:
                error = visit.t("wrong_password")
                if outcome.attempts_left is not None and outcome.attempts_left < 3:
                    error += " " + visit.t("attempts_left", n=outcome.attempts_left)
                status = 401
            return pages.render(
                visit, "signin.html", status=status, next=target, error=error, login=login
            )
        token = await pages.call(bo.open_session, outcome.user)
        response = RedirectResponse(target, 303)
        set_cookie(
            response,
            SESSION_COOKIE,
            sign(await pages.key(), token),
            int(SESSION_TTL.total_seconds()),
        )
        response.delete_cookie(PRE_COOKIE, path=PREFIX)
        return response

    @pages.page()
    async def signout(request: Request, visit: Visit) -> Response:
        await pages.call(bo.close_session, visit.token)
        response = RedirectResponse(f"{PREFIX}/signin", 303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    async def switch_lang(request: Request) -> Response:
        visit = await pages.visit(request)
        if not await pages.csrf(request, visit):
            return pages.render(visit, "message.html", status=403, kind="csrf")
        form: dict[str, str] = request.state.form
        lang = form.get("lang", "ru")
        response = pages.finish(visit, RedirectResponse(safe_next(form.get("next")), 303))
        set_cookie(response, LANG_COOKIE, lang if lang in LANGS else "ru", 365 * 86400)
        return response

    paged = pages.paged = frozenset(m.SECTION for m in SECTION_MODULES)
    section_routes: list[BaseRoute] = [r for m in SECTION_MODULES for r in m.routes(pages)]

    @pages.page()
    async def home(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        return pages.render(visit, "home.html", sections=sections(visit.user.role), paged=paged)

    @pages.page()
    async def section(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        name = request.path_params["name"]
        if name in paged:
            return RedirectResponse(f"{PREFIX}/{name}", 303)
        if not allows(visit.user.role, name):
            return pages.render(visit, "message.html", status=403, kind="refused")
        return pages.render(visit, "message.html", kind="development", section=name)

    return Mount(
        PREFIX,
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/signin", signin_page, methods=["GET"]),
            Route("/signin", signin, methods=["POST"]),
            Route("/signout", signout, methods=["POST"]),
            Route("/lang", switch_lang, methods=["POST"]),
            *section_routes,
            Route("/section/{name}", section, methods=["GET"]),
            Mount("/static", StaticFiles(packages=[("sync.backoffice.console", "static")])),
        ],
    )

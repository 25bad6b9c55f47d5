"""The console's pages under ``/console``: sign-in, sign-out, the language switch, the home
page and the audit log, with the guard every later page goes through (``Pages.page``).

Sessions: the cookie holds a random token signed with the back office's console secret
(HMAC-SHA256; ``settings.console_secret``, made on first use); the server keeps the token's
SHA-256 with its expiry (``users.open_session``). Cookies are HttpOnly, SameSite=Lax and
scoped to ``/console``. CSRF: every form carries a token bound to the session (HMAC of the
session token; before sign-in, of a pre-session cookie), also sent by htmx as
``X-CSRF-Token``; an unsafe request without the right one is refused with 403 before
anything else. A page without a session redirects to the sign-in page; an htmx request
gets 401 (with ``HX-Redirect`` to the sign-in page). Argon2 and database work run in worker
threads so the event loop keeps answering the tills.

A new page: a handler ``async def f(request, visit)`` under ``@pages.page("section")`` (or
``pages.page("section", write=True)`` for a change; the guard has parsed a POST's form
into ``request.state.form``), rendered with ``pages.render(visit, "name.html", ...)`` from
a template extending ``base.html`` (its texts in ``i18n.TEXT``), its ``Route`` in
``console()``'s list and its section in ``PAGED_SECTIONS``; a change records its audit row
with ``audit.record`` in the change's own transaction. A store-bound user's pages show only
``visit.user.store_scope``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, quote

from anyio import to_thread
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from jinja2_fragments import render_block
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sync.backoffice.console import audit, users
from sync.backoffice.console.i18n import LANGS, label, text
from sync.backoffice.console.roles import ROLES, allows, sections
from sync.backoffice.context import Context

PREFIX = "/console"
SESSION_COOKIE = "kassa_console"
PRE_COOKIE = "kassa_console_pre"
LANG_COOKIE = "kassa_console_lang"
SIGNING_SETTING = "console_secret"
MAX_FORM = 64_000
"""The most bytes of a form body read (URL-encoded forms only)."""
PAGED_SECTIONS = frozenset({"audit", "users"})
"""Sections with a page; the home page marks the others as in development."""
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    ),
}


def secret(ctx: Context) -> bytes:
    """The console's signing key, made once per back office and kept in ``settings``."""
    with ctx.db.transaction() as tx:
        tx.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (SIGNING_SETTING, secrets.token_hex(32)),
        )
        (value,) = tx.one("SELECT value FROM settings WHERE key = ?", (SIGNING_SETTING,))
    return bytes.fromhex(str(value))


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(key: bytes, value: str) -> str:
    return f"{value}.{_mac(key, 'cookie', value)}"


def unsign(key: bytes, signed: str | None) -> str | None:
    """The value of a signed cookie, or None when it is missing or its signature is wrong."""
    if not signed or "." not in signed:
        return None
    value, _, mac = signed.rpartition(".")
    return value if hmac.compare_digest(mac, _mac(key, "cookie", value)) else None


def safe_next(target: str | None) -> str:
    """Where to go after signing in or switching language: a console path only."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


@dataclass(slots=True)
class Visit:
    """One request's visitor: language, the signed-in user (or None), the session or
    pre-session token, the CSRF token bound to it, and whether the pre-session is new."""

    lang: str
    user: users.User | None
    token: str
    csrf: str
    new_pre: bool = False

    def t(self, key: str, **values: object) -> str:
        return text(self.lang, key, **values)


Page = Callable[[Request, Visit], Awaitable[Response]]


class Pages:
    """The console's templates, keys and guard over one back office ``Context``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.env = Environment(
            loader=PackageLoader("sync.backoffice.console", "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
        )
        self._key: bytes | None = None

    async def key(self) -> bytes:
        if self._key is None:
            self._key = await to_thread.run_sync(secret, self.ctx)
        return self._key

    async def visit(self, request: Request) -> Visit:
        key = await self.key()
        lang = request.cookies.get(LANG_COOKIE, "ru")
        lang = lang if lang in LANGS else "ru"
        token = unsign(key, request.cookies.get(SESSION_COOKIE))
        if token is not None:
            user = await to_thread.run_sync(users.session_user, self.ctx, token)
            if user is not None:
                return Visit(lang, user, token, _mac(key, "csrf-session", token))
        pre = unsign(key, request.cookies.get(PRE_COOKIE))
        new = pre is None
        pre = pre or secrets.token_urlsafe(24)
        return Visit(lang, None, pre, _mac(key, "csrf-pre", pre), new_pre=new)

    async def form(self, request: Request) -> dict[str, str]:
        """A URL-encoded form body (the last value of each field)."""
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                break
        return dict(parse_qsl(body[:MAX_FORM].decode("utf-8", "replace")))

    def render(
        self,
        visit: Visit,
        template: str,
        *,
        status: int = 200,
        block: str | None = None,
        **values: Any,
    ) -> Response:
        """``template`` (or one ``block`` of it, for an htmx swap) in the visitor's language."""
        values.update(
            t=visit.t,
            lang=visit.lang,
            user=visit.user,
            csrf=visit.csrf,
            prefix=PREFIX,
            label=partial(label, visit.lang),
        )
        if block is None:
            html = self.env.get_template(template).render(**values)
        else:
            html = render_block(self.env, template, block, **values)
        response = HTMLResponse(html, status_code=status, headers=HEADERS)
        return self.finish(visit, response)

    def finish(self, visit: Visit, response: Response) -> Response:
        """Set a new pre-session's cookie on ``response``."""
        if visit.new_pre:
            response.set_cookie(
                PRE_COOKIE,
                sign(self._key or b"", visit.token),
                httponly=True,
                samesite="lax",
                path=PREFIX,
            )
        return response

    def page(self, section: str | None = None, *, write: bool = False) -> Callable[[Page], Any]:
        """The guard: a session (else sign-in, or 401 for htmx), the CSRF token on unsafe
        methods (else 403), then the role's access to ``section`` (else 403)."""

        def wrap(fn: Page) -> Callable[[Request], Awaitable[Response]]:
            async def run(request: Request) -> Response:
                visit = await self.visit(request)
                if visit.user is None:
                    back = f"{PREFIX}/signin?next={quote(request.url.path)}"
                    if request.headers.get("hx-request"):
                        return Response(
                            visit.t("signin_title"), 401, {"HX-Redirect": back, **HEADERS}
                        )
                    return RedirectResponse(back, 303)
                if request.method not in ("GET", "HEAD") and not await self.csrf(request, visit):
                    return self.render(visit, "message.html", status=403, kind="csrf")
                if section is not None and not allows(
                    visit.user.role, section, "write" if write else "read"
                ):
                    return self.render(visit, "message.html", status=403, kind="refused")
                return await fn(request, visit)

            return run

        return wrap

    async def csrf(self, request: Request, visit: Visit) -> bool:
        """Whether the request carries ``visit``'s CSRF token (header or form field
        ``csrf``); the parsed form is kept in ``request.state.form``."""
        form = await self.form(request)
        request.state.form = form
        sent = request.headers.get("x-csrf-token") or form.get("csrf", "")
        return hmac.compare_digest(sent.encode(), visit.csrf.encode())


def _cookie(response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", path=PREFIX)


def console(ctx: Context) -> Mount:
    """The console, to mount on the back office's app: its routes under ``/console``."""
    pages = Pages(ctx)

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
        outcome = await to_thread.run_sync(users.sign_in, ctx, login, form.get("password", ""))
        target = safe_next(form.get("next"))
        if outcome.user is None:
            if outcome.locked_for is not None:
                m, s = divmod(outcome.locked_for, 60)
                time_left = visit.t("minutes_seconds", m=m, s=s)
                error = visit.t("locked", n=users.LOCK_AFTER, time=time_left)
                status = 429
            else:
                error = visit.t("wrong_password")
                if outcome.attempts_left is not None and outcome.attempts_left < 3:
                    error += " " + visit.t("attempts_left", n=outcome.attempts_left)
                status = 401
            return pages.render(
                visit, "signin.html", status=status, next=target, error=error, login=login
            )
        token = await to_thread.run_sync(users.open_session, ctx, outcome.user)
        response = RedirectResponse(target, 303)
        _cookie(
            response,
            SESSION_COOKIE,
            sign(await pages.key(), token),
            int(users.SESSION_TTL.total_seconds()),
        )
        response.delete_cookie(PRE_COOKIE, path=PREFIX)
        return response

    @pages.page()
    async def signout(request: Request, visit: Visit) -> Response:
        await to_thread.run_sync(users.close_session, ctx, visit.token)
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
        _cookie(response, LANG_COOKIE, lang if lang in LANGS else "ru", 365 * 86400)
        return response

    @pages.page()
    async def home(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        return pages.render(
            visit, "home.html", sections=sections(visit.user.role), paged=PAGED_SECTIONS
        )

    @pages.page()
    async def section(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        name = request.path_params["name"]
        if name in PAGED_SECTIONS:
            return RedirectResponse(f"{PREFIX}/{name}", 303)
        if not allows(visit.user.role, name):
            return pages.render(visit, "message.html", status=403, kind="refused")
        return pages.render(visit, "message.html", kind="development", section=name)

    @pages.page("audit")
    async def audit_page(request: Request, visit: Visit) -> Response:
        before = request.query_params.get("before")
        older = int(before) if before and before.isdigit() else None
        rows = await to_thread.run_sync(lambda: audit.entries(ctx.db, limit=100, before=older))
        return pages.render(visit, "audit.html", rows=rows, verdict=None)

    @pages.page("audit")
    async def audit_verify(request: Request, visit: Visit) -> Response:
        verdict = await to_thread.run_sync(audit.verify, ctx.db)
        return pages.render(visit, "audit.html", block="verdict", verdict=verdict, rows=[])

    async def users_view(visit: Visit, status: int = 200, **values: Any) -> Response:
        found = await to_thread.run_sync(users.list_users, ctx)
        values.setdefault("error", None)
        values.setdefault("form", {})
        return pages.render(visit, "users.html", status=status, people=found, roles=ROLES, **values)

    @pages.page("users")
    async def users_page(request: Request, visit: Visit) -> Response:
        return await users_view(visit)

    @pages.page("users", write=True)
    async def user_add(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        form: dict[str, str] = request.state.form
        actor = visit.user.login
        try:
            await to_thread.run_sync(
                lambda: users.add_user(
                    ctx,
                    form.get("login", ""),
                    form.get("password", ""),
                    form.get("role", ""),
                    name=form.get("name") or None,
                    store_id=form.get("store_id") or None,
                    actor=actor,
                )
            )
        except users.UserError as e:
            kept = {k: v for k, v in form.items() if k not in ("password", "csrf")}
            return await users_view(visit, 400, error=e.message(visit.lang), form=kept)
        return RedirectResponse(f"{PREFIX}/users", 303)

    @pages.page("users", write=True)
    async def user_active(request: Request, visit: Visit) -> Response:
        assert visit.user is not None
        login = request.path_params["login"]
        active = request.state.form.get("active") == "1"
        actor = visit.user.login
        if login == actor:
            return await users_view(visit, 400, error=visit.t("not_yourself"))
        try:
            await to_thread.run_sync(
                lambda: users.change_user(ctx, login, actor=actor, active=active)
            )
        except users.UserError as e:
            return await users_view(visit, 400, error=e.message(visit.lang))
        return RedirectResponse(f"{PREFIX}/users", 303)

    return Mount(
        PREFIX,
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/signin", signin_page, methods=["GET"]),
            Route("/signin", signin, methods=["POST"]),
            Route("/signout", signout, methods=["POST"]),
            Route("/lang", switch_lang, methods=["POST"]),
            Route("/audit", audit_page, methods=["GET"]),
            Route("/audit/verify", audit_verify, methods=["POST"]),
            Route("/users", users_page, methods=["GET"]),
            Route("/users", user_add, methods=["POST"]),
            Route("/users/{login}/active", user_active, methods=["POST"]),
            Route("/section/{name}", section, methods=["GET"]),
            Mount("/static", StaticFiles(packages=[("sync.backoffice.console", "static")])),
        ],
    )

"""What every console page stands on: the visitor (language, session, CSRF token), the
templates, and the guard every page goes through (``Pages.page``).

Sessions: the cookie holds a random token signed with the back office's console secret
(HMAC-SHA256; ``settings.console_secret``, made on first use); the server keeps the token's
SHA-256 with its expiry (``users.open_session``). Cookies are HttpOnly, SameSite=Lax and
scoped to ``/console``. CSRF: every form carries a token bound to the session (HMAC of the
session token; before sign-in, of a pre-session cookie), also sent by htmx as
``X-CSRF-Token``; an unsafe request without the right one is refused with 403 before
anything else. A page without a session redirects to the sign-in page; an htmx request
gets 401 (with ``HX-Redirect`` to the sign-in page). Argon2 and database work run in worker
threads so the event loop keeps answering the tills.

A section's pages live in a module of their own (``console/<section>.py``) with
``SECTION`` (its name in ``people.roles.SECTIONS``) and ``routes(pages) -> list[BaseRoute]``,
listed in ``web.SECTION_MODULES``. A handler ``async def f(request, visit)`` stands under
``@pages.page(SECTION)`` (or ``pages.page(SECTION, write=True)`` for a change; the guard has
parsed a POST's form into ``request.state.form``) and calls one method of the back office's
service (``pages.bo``, a ``Backoffice``) in a worker thread (``pages.call``); it renders
with ``pages.render(visit, "name.html", ...)`` from a template extending ``base.html``, its
texts in a module of ``console/texts/`` merged into ``i18n.TEXT``. A change records its
audit row with ``people.audit.record`` in the change's own transaction (inside the
service). A store-bound user's pages show only ``visit.user.store_scope``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote

from anyio import to_thread
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from jinja2_fragments import render_block
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from sync.backoffice.console.i18n import LANGS, label, text
from sync.backoffice.people import users
from sync.backoffice.people.roles import allows, sections
from sync.backoffice.service import Backoffice

PREFIX = "/console"
SESSION_COOKIE = "kassa_console"
PRE_COOKIE = "kassa_console_pre"
LANG_COOKIE = "kassa_console_lang"
MAX_FORM = 64_000
"""The most bytes of a form body read (URL-encoded forms only)."""
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    ),
}


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
T = TypeVar("T")


class Pages:
    """The console's templates, keys and guard over one back office's service."""

    def __init__(self, bo: Backoffice) -> None:
        self.bo = bo
        self.paged: frozenset[str] = frozenset()
        """The sections that have pages (set by ``web.console``); the rest are listed as
        in development."""
        self.env = Environment(
            loader=PackageLoader("sync.backoffice.console", "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
        )
        self._key: bytes | None = None

    async def key(self) -> bytes:
        if self._key is None:
            self._key = await to_thread.run_sync(self.bo.console_secret)
        return self._key

    async def visit(self, request: Request) -> Visit:
        key = await self.key()
        lang = request.cookies.get(LANG_COOKIE, "ru")
        lang = lang if lang in LANGS else "ru"
        token = unsign(key, request.cookies.get(SESSION_COOKIE))
        if token is not None:
            user = await to_thread.run_sync(self.bo.session_user, token)
            if user is not None:
                return Visit(lang, user, token, _mac(key, "csrf-session", token))
        pre = unsign(key, request.cookies.get(PRE_COOKIE))
        new = pre is None
        pre = pre or secrets.token_urlsafe(24)
        return Visit(lang, None, pre, _mac(key, "csrf-pre", pre), new_pre=new)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` (a service method: database work, Argon2) in a worker
        thread, so the event loop keeps answering the tills."""
        return await to_thread.run_sync(partial(fn, *args, **kwargs))

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
            nav=[]
            if visit.user is None
            else [(s, s in self.paged) for s in sections(visit.user.role)],
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


def set_cookie(response: Response, name: str, value: str, max_age: int) -> None:
    """A console cookie: HttpOnly, SameSite=Lax, scoped to the console's path."""
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", path=PREFIX)

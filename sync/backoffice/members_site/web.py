"""The members' pages under ``/my`` (mobile first, Russian by default, English switchable).

Sign-up: ``/my/join?store=<id>&poster=<id>`` (the poster's QR) asks for the phone, sends a
one-time code by SMS (``Backoffice.member_send_code``: the same answer for any valid
number), checks it (``member_sign_in``: a phone with a card is signed in to it), then asks
for the first name, an optional birthday and the consents (``member_join``), and opens the
card ``/my/card``. Three screens and one SMS between the poster and the card.

Sessions: the cookie ``kassa_my`` holds a random token (the server keeps its SHA-256,
``member_signup``); it is HttpOnly, SameSite=Lax, Secure when the page came over https,
scoped to ``/my``, and can sign nothing: the back office signs the session's own member's
QR tokens when ``/my/tokens`` is asked. CSRF: every form carries a token bound to the
session (HMAC of its token; before sign-in, of a pre-session cookie), checked before
anything else (403). Database work runs in worker threads.

The card's QR is the till's member token (``agent.tokens``), drawn as SVG here; the page's
script swaps in the next window's token before the current one expires and shows the time
left; the service worker (``/my/sw.js``, scope ``/my/``) keeps the page and the last
``/my/tokens`` answer (the current and the next windows' tokens), so the QR still shows
offline for as long as those are valid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from anyio import to_thread
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from agent.errors import AgentError
from sync.backoffice.member_otp import CodeError
from sync.backoffice.member_signup import SESSION_TTL, Session, source_id
from sync.backoffice.members_site import qr
from sync.backoffice.members_site.texts import LANGS, text
from sync.backoffice.service import Backoffice
from sync.backoffice.sms import SmsGateway, from_env

PREFIX = "/my"
SESSION_COOKIE = "kassa_my"
PRE_COOKIE = "kassa_my_pre"
LANG_COOKIE = "kassa_my_lang"
MAX_FORM = 8_000
"""The most bytes of a form body read (the pages' forms are a few fields)."""
TOKENS_AHEAD = 3
"""Member tokens handed out at once: the current window's and the next two (15 minutes
of QR offline with 5-minute windows)."""
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'"
    ),
}
T = TypeVar("T")
Handler = Callable[[Request, "Visitor", dict[str, str]], Awaitable[Response]]
"""A form's handler: the request, its visitor, the parsed form (its CSRF checked)."""


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"my-{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(slots=True)
class Visitor:
    """One request's visitor: language, the session (or None) and its cookie's token, the
    pre-session token otherwise, and the CSRF token bound to whichever it is."""

    lang: str
    session: Session | None
    token: str
    csrf: str
    new_pre: bool = False

    def t(self, key: str, **values: object) -> str:
        return text(self.lang, key, **values)


def digits_grouped(code: str) -> str:
    """A 13-digit member code as people read it aloud: ``1234 5678 9012 3``."""
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


def rub(kop: int) -> str:
    """Kopecks as roubles for the page: ``1 234,50`` (whole roubles without a fraction)."""
    whole, frac = divmod(int(kop), 100)
    head = f"{whole:,}".replace(",", "\u00a0")
    return head if frac == 0 else f"{head},{frac:02d}"


def day(stamp: str | datetime | None) -> str:
    """A date for the page: ``15.06.2026`` (ISO text or a datetime; "" for none)."""
    if stamp is None or stamp == "":
        return ""
    moment = stamp if isinstance(stamp, datetime) else datetime.fromisoformat(stamp)
    return moment.strftime("%d.%m.%Y")


def members_site(bo: Backoffice, sms: SmsGateway | None = None) -> Mount:
    """The members' pages, to mount on the back office's app (``sms``: the gateway the
    codes go through; ``sms.from_env()`` when None)."""
    gateway = sms or from_env()
    env = Environment(
        loader=PackageLoader("sync.backoffice.members_site", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
    )
    keys: list[bytes] = []

    async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await to_thread.run_sync(partial(fn, *args, **kwargs))

    async def key() -> bytes:
        if not keys:
            keys.append(await call(bo.console_secret))
        return keys[0]

    async def visit(request: Request) -> Visitor:
        k = await key()
        lang = request.cookies.get(LANG_COOKIE, "ru")
        lang = lang if lang in LANGS else "ru"
        token = request.cookies.get(SESSION_COOKIE, "")
        if token:
            s = await call(bo.member_session, token)
            if s is not None:
                return Visitor(lang, s, token, _mac(k, "csrf-session", token))
        pre = request.cookies.get(PRE_COOKIE, "")
        new = not (0 < len(pre) <= 64)
        pre = secrets.token_urlsafe(24) if new else pre
        return Visitor(lang, None, pre, _mac(k, "csrf-pre", pre), new_pre=new)

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    def cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=age,
            httponly=True,
            samesite="lax",
            secure=secure(request),
            path=PREFIX,
        )

    def finish(request: Request, v: Visitor, response: Response) -> Response:
        if v.new_pre:
            cookie(request, response, PRE_COOKIE, v.token, 86400)
        return response

    def render(
        request: Request, v: Visitor, template: str, status: int = 200, **values: Any
    ) -> Response:
        values.update(
            t=v.t, lang=v.lang, csrf=v.csrf, prefix=PREFIX, here=request.url.path, session=v.session
        )
        html = env.get_template(template).render(**values)
        return finish(request, v, HTMLResponse(html, status_code=status, headers=HEADERS))

    async def form(request: Request) -> dict[str, str]:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                break
        return dict(parse_qsl(body[:MAX_FORM].decode("utf-8", "replace")))

    def posted(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A form's handler behind the CSRF check (403 before anything else)."""

        async def run(request: Request) -> Response:
            v = await visit(request)
            fields = await form(request)
            sent = fields.get("csrf", "")
            if not hmac.compare_digest(sent.encode(), v.csrf.encode()):
                return render(request, v, "message.html", status=403, kind="csrf")
            return await fn(request, v, fields)

        return run

    def source(fields: dict[str, str] | Any) -> dict[str, str]:
        """The poster's store and poster ids, carried from screen to screen."""
        out = {}
        for name in ("store", "poster"):
            value = source_id(fields.get(name))
            if value is not None:
                out[name] = value
        return out

    def client(request: Request) -> str:
        return request.client.host if request.client else "?"

    # ------------------------------------------------------------------ sign-up
    async def home(request: Request) -> Response:
        v = await visit(request)
        if v.session is None:
            return finish(request, v, RedirectResponse(f"{PREFIX}/join", 303))
        if v.session.member_id is None:
            return RedirectResponse(f"{PREFIX}/join/profile", 303)
        return RedirectResponse(f"{PREFIX}/card", 303)

    async def join_page(request: Request) -> Response:
        v = await visit(request)
        src = source(request.query_params)
        if v.session is not None and v.session.member_id is not None:
            return RedirectResponse(f"{PREFIX}/card", 303)
        return render(request, v, "phone.html", src=src, error=None, phone="")

    async def send(request: Request, v: Visitor, fields: dict[str, str]) -> Response:
        src, phone = source(fields), fields.get("phone", "")[:40]
        try:
            sent = await call(bo.member_send_code, gateway, phone, client(request))
        except CodeError as e:
            status = 429
            if fields.get("resend"):
                return render(
                    request, v, "code.html", status, src=src, phone=phone, error=e.message(v.lang)
                )
            return render(
                request, v, "phone.html", status, src=src, phone=phone, error=e.message(v.lang)
            )
        except AgentError as e:  # the phone could not be read, the SMS could not go
            return render(
                request, v, "phone.html", 400, src=src, phone=phone, error=e.message(v.lang)
            )
        return render(request, v, "code.html", src=src, phone=sent.phone, error=None)

    async def check(request: Request, v: Visitor, fields: dict[str, str]) -> Response:
        src, phone = source(fields), fields.get("phone", "")[:40]
        try:
            token = await call(
                bo.member_sign_in,
                phone,
                fields.get("code", "")[:20],
                src.get("store"),
                src.get("poster"),
            )
        except AgentError as e:
            return render(
                request, v, "code.html", 400, src=src, phone=phone, error=e.message(v.lang)
            )
        s = await call(bo.member_session, token)
        target = "card" if s is not None and s.member_id is not None else "join/profile"
        response = RedirectResponse(f"{PREFIX}/{target}", 303)
        cookie(request, response, SESSION_COOKIE, token, int(SESSION_TTL.total_seconds()))
        response.delete_cookie(PRE_COOKIE, path=PREFIX)
        return response

    async def profile_page(request: Request) -> Response:
        v = await visit(request)
        if v.session is None:
            return finish(request, v, RedirectResponse(f"{PREFIX}/join", 303))
        if v.session.member_id is not None:
            return RedirectResponse(f"{PREFIX}/card", 303)
        return render(request, v, "profile.html", error=None, typed={})

    async def profile(request: Request, v: Visitor, fields: dict[str, str]) -> Response:
        if v.session is None:
            return RedirectResponse(f"{PREFIX}/join", 303)
        try:
            await call(
                bo.member_join,
                v.token,
                fields.get("first_name", "")[:200],
                fields.get("birthday", "")[:20],
                fields.get("consent_programme") == "yes",
                fields.get("consent_marketing") == "yes",
            )
        except AgentError as e:
            return render(request, v, "profile.html", 400, error=e.message(v.lang), typed=fields)
        return RedirectResponse(f"{PREFIX}/card", 303)

    # ------------------------------------------------------------------ the card
    def gone(request: Request, v: Visitor) -> Response:
        response = render(request, v, "message.html", status=401, kind="gone")
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    def token_list(tokens: list[Any]) -> list[dict[str, Any]]:
        return [
            {
                "token": w.token,
                "valid_from": int(w.valid_from.timestamp()),
                "expires_at": int(w.expires_at.timestamp()),
                "svg": qr.svg(w.token),
            }
            for w in tokens
        ]

    async def card_page(request: Request) -> Response:
        v = await visit(request)
        if v.session is None or v.session.member_id is None:
            return await home(request)
        member_id = v.session.member_id
        try:
            card = await call(bo.member_card, member_id)
        except AgentError:
            return gone(request, v)
        tokens = await call(bo.member_tokens, member_id, TOKENS_AHEAD)
        if tokens is None:
            return gone(request, v)
        consents = await call(bo.member_consents, member_id)
        erase = await call(bo.member_erase_requested, member_id)
        listed = token_list(tokens)
        now = int(bo.clock.now().timestamp())
        return render(
            request,
            v,
            "card.html",
            card=card,
            qr_svg=listed[0]["svg"],
            tokens_json=json.dumps({"now": now, "tokens": listed}).replace("</", "<\\/"),
            left=max(0, listed[0]["expires_at"] - now),
            consents=consent_states(consents),
            marketing=_marketing_on(consents),
            erase_at=erase,
            digits=digits_grouped(card.code),
            rub=rub,
            day=day,
        )

    async def tokens_json(request: Request) -> Response:
        v = await visit(request)
        if v.session is None or v.session.member_id is None:
            return JSONResponse({"error": "signed_out"}, 401, headers=HEADERS)
        tokens = await call(bo.member_tokens, v.session.member_id, TOKENS_AHEAD)
        if tokens is None:
            return JSONResponse({"error": "card_gone"}, 401, headers=HEADERS)
        now = int(bo.clock.now().timestamp())
        return JSONResponse({"now": now, "tokens": token_list(tokens)}, headers=HEADERS)

    async def withdraw(request: Request, v: Visitor, fields: dict[str, str]) -> Response:
        if v.session is None or v.session.member_id is None:
            return RedirectResponse(f"{PREFIX}/join", 303)
        await call(bo.member_withdraw_marketing, v.session.member_id)
        return RedirectResponse(f"{PREFIX}/card#consents", 303)

    async def erase(request: Request, v: Visitor, fields: dict[str, str]) -> Response:
        if v.session is None or v.session.member_id is None:
            return RedirectResponse(f"{PREFIX}/join", 303)
        await call(bo.member_request_erase, v.session.member_id)
        return RedirectResponse(f"{PREFIX}/card#erase", 303)

    async def signout(request: Request, v: Visitor, fields: dict[str, str]) -> Response:
        if v.session is not None:
            await call(bo.member_sign_out, v.token)
        response = RedirectResponse(f"{PREFIX}/join", 303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    async def switch_lang(request: Request, v: Visitor, fields: dict[str, str]) -> Response:
        lang = fields.get("lang", "ru")
        back = fields.get("next", "")
        target = back if back.startswith(f"{PREFIX}/") and "//" not in back else f"{PREFIX}/"
        response = finish(request, v, RedirectResponse(target, 303))
        cookie(request, response, LANG_COOKIE, lang if lang in LANGS else "ru", 365 * 86400)
        return response

    async def document(request: Request) -> Response:
        v = await visit(request)
        kind = request.path_params["kind"]
        if kind not in ("programme", "marketing"):
            return render(request, v, "message.html", status=404, kind="gone")
        version = await call(bo.member_consent_version, kind)
        back = f"{PREFIX}/join/profile" if v.session is not None else f"{PREFIX}/join"
        return render(request, v, "document.html", kind=kind, version=version, back=back)

    # ------------------------------------------------------------------ the PWA
    def packaged(name: str) -> bytes:
        return resources.files("sync.backoffice.members_site").joinpath("static", name).read_bytes()

    manifest = json.dumps(
        {
            "name": text("ru", "brand"),
            "short_name": text("ru", "brand"),
            "start_url": f"{PREFIX}/card",
            "scope": f"{PREFIX}/",
            "display": "standalone",
            "background_color": "#ffffff",
            "theme_color": "#1f6feb",
            "icons": [
                {"src": f"{PREFIX}/static/icon.svg", "sizes": "any", "type": "image/svg+xml"}
            ],
        },
        ensure_ascii=False,
    )
    worker = packaged("sw.js")

    async def manifest_file(request: Request) -> Response:
        return Response(manifest, media_type="application/manifest+json")

    async def worker_file(request: Request) -> Response:
        return Response(
            worker,
            media_type="text/javascript",
            headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": f"{PREFIX}/"},
        )

    return Mount(
        PREFIX,
        routes=[
            Route("/", home, methods=["GET"]),
            Route("/join", join_page, methods=["GET"]),
            Route("/join/phone", posted(send), methods=["POST"]),
            Route("/join/code", posted(check), methods=["POST"]),
            Route("/join/profile", profile_page, methods=["GET"]),
            Route("/join/profile", posted(profile), methods=["POST"]),
            Route("/card", card_page, methods=["GET"]),
            Route("/tokens", tokens_json, methods=["GET"]),
            Route("/consent/marketing/withdraw", posted(withdraw), methods=["POST"]),
            Route("/consent/{kind}", document, methods=["GET"]),
            Route("/erase", posted(erase), methods=["POST"]),
            Route("/signout", posted(signout), methods=["POST"]),
            Route("/lang", posted(switch_lang), methods=["POST"]),
            Route("/manifest.webmanifest", manifest_file, methods=["GET"]),
            Route("/sw.js", worker_file, methods=["GET"]),
            Mount("/static", StaticFiles(packages=[("sync.backoffice.members_site", "static")])),
        ],
    )


def consent_states(consents: Any) -> list[tuple[Any, str]]:
    """Each consent row (newest first) with what it says: ``given``, ``withdrawn`` (a
    refusal after a grant of its kind) or ``refused`` (never given)."""
    granted: set[str] = set()
    out = []
    for c in reversed(consents):
        state = "given" if c.granted else ("withdrawn" if c.kind in granted else "refused")
        if c.granted:
            granted.add(c.kind)
        out.append((c, state))
    return out[::-1]


def _marketing_on(consents: Any) -> bool:
    """Whether the newest marketing consent row is a grant."""
    for c in consents:
        if c.kind == "marketing":
            return bool(c.granted)
    return False

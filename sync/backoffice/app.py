"""The back office's HTTP face: a Starlette ASGI app (served by uvicorn).

Database work runs in worker threads so the event loop keeps answering. Every failure a
client can cause is a specific 4xx problem document (``application/problem+json``,
``agent.problem``: RFC 9457's members plus ``error``, ``message`` and the details at the
top level as before); an unexpected one is a 500 that names nothing internal, and its
transaction has rolled back (nothing half-done). A 401 carries ``WWW-Authenticate: Bearer
realm="kassa-backoffice"`` (with ``error="invalid_token"`` when a token was sent).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import orjson
import uvicorn
from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from agent.codec import to_plain
from agent.errors import AgentError
from agent.problem import bearer_challenge
from agent.version import version
from sync.backoffice import kpi, phones, project, triggers, verify
from sync.backoffice.console.web import console
from sync.backoffice.lease import projector_lease, verifier_lease
from sync.backoffice.members_site.web import members_site
from sync.backoffice.service import Backoffice
from sync.backoffice.sms import SmsGateway
from sync.backoffice.terminal import Terminal
from sync.backoffice_api import (
    ChangesQuery,
    EnrollConfirmed,
    Health,
    KpiQuery,
    Live,
    LookupQuery,
    RulesDocument,
    VerdictsQuery,
    openapi,
    parse_enroll,
    parse_enroll_confirm,
    parse_sent_at,
    read_query,
)
from sync.httpserve import (
    BodyFirst,
    FailureLimiter,
    HeaderDeadlineProtocol,
    problem_response,
    router_problem,
)
from sync.metrics import CONTENT_TYPE, Gauge, MetricsMiddleware, RequestMetrics, exposition
from sync.protocol import MAX_BATCH_BYTES, QUEUE_HEADER, ProtocolError, parse_push, parse_queue

log = logging.getLogger("kassa.backoffice")

MAX_SMALL_BODY = 64_000
FAILURES_WINDOW_S = 60.0
ADDRESS_FAILURES_MAX = 60
"""Wrong tokens or enrollment codes from one address per window before it is refused (a
chain's tills may reach the back office through one NAT address: a misconfigured till or
two must not lock out the rest; a guesser gets one try a second, against 48-bit codes and
256-bit tokens)."""
CREDENTIAL_FAILURES_MAX = 30
"""Failures (a wrong token, a lookup finding no one) per credential per window before it
is refused: a till token enumerating phones gets 30 misses a minute."""


REALM = "kassa-backoffice"
"""The bearer realm a 401 names in ``WWW-Authenticate``."""

API_PATHS = ("/v1/", "/openapi.json", "/metrics")
"""Paths whose router refusals (404, 405) are answered as problems; the console's and the
members' pages keep their own."""


def _error(request: Request, e: ProtocolError) -> Response:
    """A ``ProtocolError`` as its problem answer; a 401 with the bearer challenge."""
    headers = None
    if e.status == 401:
        _, credential = Failures.keys(request)
        headers = {"WWW-Authenticate": bearer_challenge(REALM, invalid=credential is not None)}
    return problem_response(
        request, e.status, e.code, e.message, headers=headers, details=e.details
    )


async def _router_refusal(request: Request, exc: Exception) -> Response:
    """The router's 404 and 405 on the API's paths as problems; elsewhere (the console,
    the members' pages) Starlette's own plain answer."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith(API_PATHS):
        return router_problem(request, exc)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ProtocolError(413, "body_too_large", f"request body is over {limit} bytes")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > limit:
            raise ProtocolError(413, "body_too_large", f"request body is over {limit} bytes")
    # RFC 8259: a JSON body is UTF-8. A BOM or a NUL byte (never in JSON text) is UTF-16
    # or UTF-32; other invalid UTF-8 the decoders refuse as bad_json.
    if chunks.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")) or b"\x00" in chunks:
        raise ProtocolError(
            400,
            "bad_json",
            "request body is not UTF-8 (a byte order mark or a NUL byte: UTF-16 or "
            "UTF-32?); send JSON as UTF-8",
        )
    return bytes(chunks)


def _answer(body: msgspec.Struct) -> Response:
    """A 200 whose body is one of the API's declared response models."""
    return Response(msgspec.json.encode(body), media_type="application/json")


class Failures:
    """Failed authentications limited per client address and per credential
    (``sync.httpserve.FailureLimiter``): a wrong token or enrollment code (401, 403) counts
    for both, a lookup that finds no one (404) for the credential only, since a chain's
    tills may share one address and a cashier's unknown phone is a normal miss. Past the
    limit the request is answered 429 ``too_many_failures`` before anything is looked at."""

    AUTH = frozenset({401, 403})
    MISSES = frozenset({401, 403, 404})

    def __init__(self) -> None:
        self.by_address = FailureLimiter(ADDRESS_FAILURES_MAX, FAILURES_WINDOW_S)
        self.by_credential = FailureLimiter(CREDENTIAL_FAILURES_MAX, FAILURES_WINDOW_S)

    @staticmethod
    def keys(request: Request) -> tuple[str, str | None]:
        address = request.client.host if request.client else "?"
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        credential = token.strip()
        if not credential or scheme.lower() != "bearer":
            return address, None
        return address, hashlib.sha256(credential.encode()).hexdigest()[:32]

    def refusal(self, request: Request, keys: tuple[str, str | None]) -> Response | None:
        address, credential = keys
        waits = [self.by_address.retry_after(address)]
        if credential is not None:
            waits.append(self.by_credential.retry_after(credential))
        wait = max((w for w in waits if w is not None), default=None)
        if wait is None:
            return None
        return problem_response(
            request,
            429,
            "too_many_failures",
            f"too many failed attempts; retry in {wait} s",
            f"слишком много неудачных попыток; повторите через {wait} с",
            headers={"Retry-After": str(wait)},
        )

    def count(self, keys: tuple[str, str | None], status: int) -> None:
        address, credential = keys
        if status in self.AUTH:
            self.by_address.failed(address)
        if status in self.MISSES and credential is not None:
            self.by_credential.failed(credential)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProtocolError(401, "unauthenticated", "a bearer token is required")
    return token.strip()


Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    bo: Backoffice,
    *,
    bare_endpoint: bool = False,
    verifier: bool = True,
    metrics: bool = False,
    sms: SmsGateway | None = None,
) -> Starlette:
    """The ASGI app over an initialised ``Backoffice``. ``bare_endpoint`` adds
    ``POST /v1/bare`` (reads the body, answers a constant) for the drain benchmark;
    ``metrics`` adds ``GET /metrics`` (Prometheus text, no authentication: counts only).
    ``sms``: the gateway of the members' pages' codes (``sms.from_env()`` when None).
    ``verifier``: while the app runs (its lifespan, as under uvicorn) background threads
    apply accepted events to the ledger (``project.Projector``, ``app.state.projector``)
    and re-score applied purchases (``verify.Verifier``, ``app.state.verifier``), and one
    delivers the member events to webhook subscriptions (``app.state.webhooks``). The
    handlers call ``bo`` for its use cases and hand its ``Context`` to the projector, the
    verifier and the KPI report."""
    ctx = bo.context

    async def terminal(request: Request) -> Terminal:
        token, agent_software = _bearer(request), request.headers.get("user-agent")
        queue = parse_queue(request.headers.get(QUEUE_HEADER.lower()))
        return await to_thread.run_sync(bo.authenticate, token, agent_software, queue)

    async def admin(request: Request) -> None:
        if not await to_thread.run_sync(bo.is_admin, _bearer(request)):
            raise ProtocolError(401, "bad_token", "an admin token is required")

    failures = Failures()

    def guarded(fn: Handler) -> Handler:
        async def run(request: Request) -> Response:
            keys = failures.keys(request)
            refused = failures.refusal(request, keys)
            if refused is not None:
                return refused
            response = await attempt(request)
            failures.count(keys, response.status_code)
            return response

        async def attempt(request: Request) -> Response:
            try:
                return await fn(request)
            except ProtocolError as e:
                return _error(request, e)
            except AgentError as e:
                return problem_response(
                    request,
                    400,
                    e.code,
                    e.message_en,
                    e.message_ru,
                    title=e.title_ru,
                    details=to_plain(e.details),
                )
            except ClientDisconnect:
                # The client hung up before its body arrived (a till whose network dropped,
                # its timeout): nothing was read, so nothing was written, and no one is left
                # to answer. Not our fault: one quiet line, no traceback.
                log.info("client disconnected before sending its request: %s", request.url.path)
                return problem_response(
                    request,
                    400,
                    "client_disconnected",
                    "the request was not complete",
                    "запрос пришёл не целиком",
                )
            except Exception:
                log.exception("unexpected error on %s", request.url.path)
                return problem_response(
                    request,
                    500,
                    "internal",
                    "internal error; nothing was applied",
                    "внутренняя ошибка; ничего не применено",
                )

        return run

    async def health(request: Request) -> Response:
        now = await to_thread.run_sync(bo.health)
        return _answer(Health(ok=True, version=version(), **now._asdict()))

    async def spec(request: Request) -> Response:
        return JSONResponse(openapi())

    async def enroll(request: Request) -> Response:
        req = parse_enroll(await _body(request, MAX_SMALL_BODY))
        out = await to_thread.run_sync(
            functools.partial(
                bo.enroll,
                req.code,
                req.name,
                req.terminal_id,
                request_id=req.request_id,
                public_key=req.public_key,
            )
        )
        return JSONResponse(out)

    async def enroll_confirm(request: Request) -> Response:
        term = await terminal(request)
        req = parse_enroll_confirm(await _body(request, MAX_SMALL_BODY))
        retired = await to_thread.run_sync(bo.confirm_enrollment, term, req.request_id)
        return _answer(EnrollConfirmed(retired=retired))

    async def events(request: Request) -> Response:
        term = await terminal(request)
        body = await _body(request, MAX_BATCH_BYTES)
        req, sent_at = parse_push(body), parse_sent_at(request.headers)
        out = await to_thread.run_sync(bo.push, term, req, sent_at)
        # orjson: an answer has a result per event (up to 500) and member records
        return Response(orjson.dumps(out), media_type="application/json")

    async def changes(request: Request) -> Response:
        term = await terminal(request)
        q = read_query(request.query_params, ChangesQuery)
        out = await to_thread.run_sync(bo.changes, q.cursor, q.limit, term.store_id)
        return JSONResponse(out)

    async def verdicts(request: Request) -> Response:
        term = await terminal(request)
        q = read_query(request.query_params, VerdictsQuery)
        out = await to_thread.run_sync(bo.verdicts, term, q.after, q.limit)
        return JSONResponse(out)

    async def snapshot(request: Request) -> Response:
        term = await terminal(request)
        lines = bo.snapshot_lines(store_id=term.store_id)

        async def stream() -> AsyncIterator[bytes]:
            while True:
                chunk = await to_thread.run_sync(next, lines, None)
                if chunk is None:
                    return
                yield chunk

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    async def lookup(request: Request) -> Response:
        await terminal(request)
        q = read_query(request.query_params, LookupQuery)
        out = await to_thread.run_sync(lambda: bo.lookup(phone_hash=q.phone_hash, code=q.code))
        return JSONResponse(out)

    async def member_token(request: Request) -> Response:
        # Not a till's: a till could mint any member's QR token (a member's card for
        # anyone's points). Scripts with the admin token only; the members' own pages
        # sign the member's own card in-process (docs/threat-model.md, "Scopes").
        await admin(request)
        code = request.path_params["code"]
        out = await to_thread.run_sync(bo.member_token, code)
        return JSONResponse(out)

    async def rules(request: Request) -> Response:
        await terminal(request)
        return _answer(RulesDocument(**bo.active_rules()._asdict()))

    async def member_events(request: Request) -> Response:
        # The member events' pull feed (``event_feed``): marketing systems, admin token.
        await admin(request)
        q = request.query_params
        page = functools.partial(bo.events_page, q.get("after"), q.get("limit"), q.get("types"))
        return Response(orjson.dumps(await to_thread.run_sync(page)), media_type="application/json")

    async def kpis(request: Request) -> Response:
        await admin(request)
        q = read_query(request.query_params, KpiQuery)
        days = kpi.period(q.from_, q.to)
        out = await to_thread.run_sync(bo.kpi, days)
        return JSONResponse(out)

    async def live(request: Request) -> Response:
        """Liveness for monitoring: the process answers. Public, no data, no database."""
        return _answer(Live(ok=True))

    async def metrics_text(request: Request) -> Response:
        now = await to_thread.run_sync(bo.health)
        gauges = [
            Gauge(
                "project_backlog_events",
                "Accepted events not yet applied to the ledger.",
                now.project_backlog,
            ),
            Gauge(
                "verify_backlog_events",
                "Applied purchases not yet re-scored.",
                now.verify_backlog,
            ),
        ]
        text = exposition(counter, gauges, version())
        return Response(text, media_type=CONTENT_TYPE)

    async def bare(request: Request) -> Response:
        body = await request.body()
        return JSONResponse({"ok": True, "bytes": len(body)})

    routes: list[BaseRoute] = [
        Route("/v1/health", guarded(health), methods=["GET"]),
        Route("/v1/live", live, methods=["GET"]),
        Route("/openapi.json", guarded(spec), methods=["GET"]),
        Route("/v1/enroll", guarded(enroll), methods=["POST"]),
        Route("/v1/enroll/confirm", guarded(enroll_confirm), methods=["POST"]),
        Route("/v1/events", guarded(events), methods=["POST"]),
        Route("/v1/events", guarded(member_events), methods=["GET"]),
        Route("/v1/verdicts", guarded(verdicts), methods=["GET"]),
        Route("/v1/changes", guarded(changes), methods=["GET"]),
        Route("/v1/snapshot", guarded(snapshot), methods=["GET"]),
        Route("/v1/members/lookup", guarded(lookup), methods=["GET"]),
        Route("/v1/members/{code}/token", guarded(member_token), methods=["POST"]),
        Route("/v1/rules", guarded(rules), methods=["GET"]),
        Route("/v1/kpi", guarded(kpis), methods=["GET"]),
    ]
    if bare_endpoint:
        routes.append(Route("/v1/bare", bare, methods=["POST"]))
    if metrics:
        routes.append(Route("/metrics", guarded(metrics_text), methods=["GET"]))
    routes.append(console(bo))  # the programme owners' pages under /console
    routes.append(members_site(bo, sms))  # the members' own pages under /my
    counter = RequestMetrics("kassa_backoffice", routes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # on several nodes over one PostgreSQL database, each lease's holder runs the rounds
        projector = project.Projector(ctx, projector_lease(ctx.db)) if verifier else None
        worker = verify.Verifier(ctx, verifier_lease(ctx.db)) if verifier else None
        scheduled = triggers.Triggers(ctx) if verifier else None  # member events by date
        # webhook delivery runs on every node: its claims split the work (webhooks)
        deliverer = bo.webhook_deliverer() if verifier else None
        # v1 phone fingerprints of members stored before v2, upgraded in chunks (phones)
        upgrader = phones.PhoneUpgrade(ctx) if verifier else None
        app.state.projector = projector
        app.state.verifier = worker
        app.state.triggers = scheduled
        app.state.webhooks = deliverer
        for w in (projector, worker, scheduled, deliverer, upgrader):
            if w is not None:
                w.start()
        try:
            yield
        finally:
            for w in (projector, worker, scheduled, deliverer, upgrader):
                if w is not None:
                    await to_thread.run_sync(w.stop)

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _router_refusal},
        middleware=[
            # Outermost: a push trickled or stalled by a client is cut off (sync.httpserve);
            # 2 MB in 120 s is a till on a 17 KB/s link.
            Middleware(
                BodyFirst,
                limit=MAX_BATCH_BYTES,
                idle_s=15.0,
                total_s=120.0,
            ),
            *([Middleware(MetricsMiddleware, metrics=counter)] if metrics else []),
        ],
    )
    app.state.backoffice = bo
    app.state.projector = None
    app.state.verifier = None
    app.state.webhooks = None
    app.state.triggers = None
    return app


def settle_for_serving() -> None:
    """Before the first request: ``gc.freeze()`` puts what start-up made (modules, the app,
    the rules) out of the collector's reach, so its passes scan only what requests make
    (a pushed batch parses into thousands of objects, which trigger collections)."""
    gc.collect()
    gc.freeze()


def serve(bo: Backoffice, host: str, port: int, **kwargs: Any) -> None:
    app = create_app(bo, **kwargs)
    settle_for_serving()
    uvicorn.run(app, host=host, port=port, log_level="warning", http=HeaderDeadlineProtocol)

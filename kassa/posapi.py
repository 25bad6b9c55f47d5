"""The local POS API: HTTP/JSON on loopback for the host POS software (1C, Frontol, ...).

A till's POS calls, for one cheque: ``identify`` -> ``quote`` (or ``holds``, to reserve
the points while the customer pays) -> ``commit`` (idempotent by the POS cheque id) or
``holds/{id}/cancel``; later ``refund``. Amounts are integer kopecks (``*_kop``), points
integers. Request bodies have the same shapes as the ``kassa`` JSON CLI: both decode them
with ``agent.requests`` into the models of ``agent.api_models``, from which the OpenAPI
document served at ``/openapi.json`` is generated (``OPERATIONS``, ``sync.openapi``). Each
handler parses its request, calls one method of the till service and presents the answer.

Security: every route but ``/openapi.json`` needs ``Authorization: Bearer <token>`` (401
otherwise, compared in constant time); bodies over ``max_body_bytes`` get 413 before they
are read whole; more than ``rate_burst`` requests above ``rate_per_s`` get 429. A core
call runs on the event loop when the store is free (no thread hand-off: see ``call`` in
``create_app``), else in a worker thread while the loop keeps answering; the store
serialises them either way. Every failure a caller can cause is a 4xx problem document
(``application/problem+json``, ``agent.problem``: RFC 9457's members plus ``error``,
``title``, ``message_ru``, ``message_en`` and ``details`` as before) and writes nothing
(each core operation is one transaction); anything else is a 500 that names nothing
internal and has rolled back. A 401 carries ``WWW-Authenticate: Bearer realm="kassa-pos"``
(with ``error="invalid_token"`` when a wrong token was sent).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

import msgspec
from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent.api_models import (
    Checkout,
    CommitRequest,
    HoldId,
    HoldRequest,
    IdentifyRequest,
    JobId,
    RefundRequest,
    RegisterRequest,
    SlipQuery,
)
from agent.codec import to_plain
from agent.errors import (
    AgentError,
    ConflictError,
    NotFoundError,
    StoreError,
)
from agent.model import Quote
from agent.problem import Problem, bearer_challenge, problem
from agent.requests import (
    NotJsonError,
    checkout_request,
    commit_request,
    hold_request,
    identify_input,
    job_id_of,
    read_request_json,
    refund_args,
    register_args,
    slip_width_of,
)
from agent.results import (
    DEFAULT_TTL_S,
    CommitResult,
    Hold,
    MemberCard,
    RefundOutcome,
    Registration,
    Reprint,
    SlipView,
    TillStatus,
)
from agent.service import Agent
from agent.version import version
from sync.httpserve import (
    BodyFirst,
    FailureLimiter,
    ProblemResponse,
    problem_response,
    router_problem,
)
from sync.metrics import CONTENT_TYPE, Gauge, MetricsMiddleware, RequestMetrics, exposition
from sync.openapi import Operation, Param, document, query_params
from sync.protocol import PLAIN_CHARS

log = logging.getLogger("kassa.posapi")

API_VERSION = 1


REALM = "kassa-pos"
"""The bearer realm a 401 names in ``WWW-Authenticate``."""


class ApiError(Exception):
    """A request refused before it reaches the core (auth, size, rate, JSON)."""

    def __init__(
        self,
        status: int,
        code: str,
        en: str,
        ru: str,
        *,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(en)
        self.status = status
        self.code = code
        self.en = en
        self.ru = ru
        self.headers = headers
        self.details = details

    def response(self, request: Request) -> Response:
        """The problem answer of this refusal."""
        return problem_response(
            request,
            self.status,
            self.code,
            self.en,
            self.ru,
            headers=self.headers,
            details=self.details,
        )


STORE_RETRY_AFTER_S = 5
"""``Retry-After`` of a 503 store answer (``store_write_failed``: a full disk, an I/O
error; ``store_locked``), seconds: nothing was written, the same request may simply be
sent again; the till comes back by itself once space is freed."""


def headers_for(e: AgentError) -> dict[str, str] | None:
    """Headers of a core error's answer: ``Retry-After`` on a 503 store error (the POS
    should retry it unchanged; the README lists it), none otherwise."""
    if isinstance(e, StoreError):
        return {"Retry-After": str(STORE_RETRY_AFTER_S)}
    return None


def status_for(e: AgentError) -> int:
    """HTTP status of a core error: 404 not found, 409 conflict, 503 store, 400 input."""
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, ConflictError):
        return 409
    if isinstance(e, StoreError):
        return 503
    return 400


AUTH_FAILURES_MAX = 10
AUTH_FAILURES_WINDOW_S = 60.0
"""A client address with this many wrong API tokens within the window (seconds) is
answered 429 ``too_many_failures`` (before its token is even looked at) until the oldest
failure leaves the window: a POS with a mistyped token finds out at once, a guesser gets
ten tries a minute."""


class RateLimiter:
    """Token bucket: ``rate_per_s`` requests per second sustained, ``burst`` at once.
    ``clock`` (monotonic seconds) is injectable for tests."""

    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.last = clock()
        self._lock = threading.Lock()

    def allow(self) -> bool:
        with self._lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False

    def retry_after_s(self) -> int:
        """Whole seconds until the next request would be allowed (at least 1)."""
        with self._lock:
            missing = max(0.0, 1.0 - self.tokens)
            return max(1, math.ceil(missing / self.rate)) if self.rate > 0 else 60


class ConcurrencyLimit:
    """ASGI middleware: at most ``limit`` HTTP requests in progress; the rest get a problem
    503 ``overloaded`` with ``Retry-After`` at once (instead of uvicorn's plain-text
    ``limit_concurrency`` answer, which is not the documented error format)."""

    def __init__(self, app: Any, limit: int = 64, retry_after_s: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.active = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            response = ProblemResponse(
                problem(
                    503,
                    "overloaded",
                    f"the agent is busy ({self.limit} requests in progress); retry shortly",
                    "агент перегружен запросами, повторите через секунду",
                    instance=scope.get("path"),
                    details={"limit": self.limit},
                ),
                status_code=503,
                headers={"Retry-After": str(self.retry_after_s)},
            )
            await response(scope, receive, send)
            return
        self.active += 1  # one event loop: no lock needed
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def quote_json(q: Quote) -> dict[str, Any]:
    """A quote as JSON plus the totals a fiscal receipt needs: per line the discount and
    what is left to pay, and the cheque's discounts and payable amount (kopecks)."""
    out: dict[str, Any] = to_plain(q)
    for line, plain in zip(q.lines, out["lines"], strict=True):
        plain["discount_kop"] = line.discount_kop
        plain["payable_kop"] = line.amount_kop - line.discount_kop
    out["points_discount_kop"] = q.points_discount_kop
    out["coupon_discount_kop"] = q.coupon_discount_kop
    out["discount_kop"] = q.discount_kop
    out["payable_kop"] = q.payable_kop
    out["total_earned"] = q.total_earned
    return out


def present(value: Any) -> Any:
    """JSON form of a core result; a ``quote`` inside it gets the fiscal totals."""
    if isinstance(value, Quote):
        return quote_json(value)
    out = to_plain(value)
    inner = getattr(value, "quote", None)
    if isinstance(inner, Quote) and isinstance(out, dict):
        out["quote"] = quote_json(inner)
    return out


def create_app(
    agent: Agent,
    *,
    token: str,
    max_body_bytes: int = 65_536,
    rate_per_s: float = 200.0,
    rate_burst: int = 400,
    hold_ttl_s: int = DEFAULT_TTL_S,
    printer_status: Callable[[], dict[str, Any]] | None = None,
    on_print: Callable[[], None] | None = None,
    take_scan: Callable[[], dict[str, Any] | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_concurrency: int = 64,
    metrics: bool = False,
    body_timeout_s: float = 10.0,
    auth_failures_max: int = AUTH_FAILURES_MAX,
) -> Starlette:
    """The ASGI app over one open ``Agent``. ``printer_status`` reports the print worker
    for ``/v1/status``; ``on_print`` wakes it after a slip was queued; ``take_scan`` hands
    the POS the next scan read by a serial scanner attached to the agent;
    ``max_concurrency``: requests in progress beyond which a JSON 503 answers at once
    (a request counts once its body has arrived, ``body_timeout_s`` at most, else 408);
    ``auth_failures_max``: wrong tokens per client address per minute before it is
    answered 429 ``too_many_failures``;
    ``metrics`` adds ``GET /metrics`` (Prometheus text, no token: counts only, no data)."""
    if len(token) < 16:
        raise ValueError("the API token must be at least 16 characters")
    secret = token.encode("utf-8")
    limiter = RateLimiter(rate_per_s, rate_burst, clock)
    failures = FailureLimiter(auth_failures_max, AUTH_FAILURES_WINDOW_S, clock)

    def authorise(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8"), secret
        ):
            sent = scheme.lower() == "bearer" and bool(given.strip())
            raise ApiError(
                401,
                "unauthenticated",
                "a valid API token is required (Authorization: Bearer ...)",
                "нужен действительный токен API",
                headers={"WWW-Authenticate": bearer_challenge(REALM, invalid=sent)},
            )

    async def body_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise ApiError(
                413,
                "body_too_large",
                f"request body is over {max_body_bytes} bytes",
                f"запрос больше {max_body_bytes} байт",
            )
        chunks = bytearray()
        async for chunk in request.stream():
            chunks += chunk
            if len(chunks) > max_body_bytes:
                raise ApiError(
                    413,
                    "body_too_large",
                    f"request body is over {max_body_bytes} bytes",
                    f"запрос больше {max_body_bytes} байт",
                )
        body = bytes(chunks)
        try:
            # RFC 8259: a JSON body is UTF-8 (Python's json would also read UTF-16 and -32)
            body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NotJsonError(
                f"request body is not UTF-8 (byte {e.start + 1}); send JSON as UTF-8",
                f"тело запроса не в кодировке UTF-8 (байт {e.start + 1}); отправьте JSON в UTF-8",
                field="json",
            ) from None
        if body.startswith(b"\xef\xbb\xbf") or b"\x00" in body:
            raise NotJsonError(
                "request body is not plain UTF-8 JSON (a byte order mark or a NUL byte: "
                "UTF-16 or UTF-32?); send JSON as UTF-8",
                "тело запроса не в UTF-8 (метка порядка байтов или нулевой байт: UTF-16 "
                "или UTF-32?); отправьте JSON в UTF-8",
                field="json",
            )
        return read_request_json(body)

    def guarded(
        fn: Callable[[Request], Awaitable[Any]], *, public: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                if not public:
                    client = request.client.host if request.client else "?"
                    wait = failures.retry_after(client)
                    if wait is not None:
                        raise ApiError(
                            429,
                            "too_many_failures",
                            "too many requests with a wrong API token from this address; "
                            f"retry in {wait} s",
                            "слишком много запросов с неверным токеном API; "
                            f"повторите через {wait} с",
                            headers={"Retry-After": str(wait)},
                        )
                    try:
                        authorise(request)
                    except ApiError:
                        failures.failed(client)
                        raise
                    if not limiter.allow():
                        raise ApiError(
                            429,
                            "rate_limited",
                            "too many requests",
                            "слишком много запросов",
                            headers={"Retry-After": str(limiter.retry_after_s())},
                        )
                result = await fn(request)
                if isinstance(result, Response):
                    return result
                return JSONResponse(present(result))
            except ApiError as e:
                return e.response(request)
            except AgentError as e:
                return problem_response(
                    request,
                    status_for(e),
                    e.code,
                    e.message_en,
                    e.message_ru,
                    title=e.title_ru,
                    headers=headers_for(e),
                    details=to_plain(e.details),
                )
            except ClientDisconnect:
                # The POS hung up before its request body arrived (its timeout, a killed
                # process): nothing was read, so nothing was written, and no one is left
                # to answer. Not our fault: one quiet line, no traceback.
                log.info("client disconnected before sending its request: %s", request.url.path)
                return problem_response(
                    request,
                    400,
                    "client_disconnected",
                    "the client closed the connection before sending the whole request",
                    "POS закрыл соединение, не передав запрос целиком",
                )
            except Exception:
                log.exception("unexpected error on %s", request.url.path)
                return problem_response(
                    request,
                    500,
                    "internal",
                    "internal error; nothing was written",
                    "внутренняя ошибка агента; ничего не записано",
                )

        return run

    async def call(fn: Callable[[], Any]) -> Any:
        """Run a core call. When the store is free it runs right here on the event loop:
        a quote takes about a millisecond and a commit a little more (its fsync), while
        handing it to a worker thread and back costs two context switches, which on a
        busy 2-core till cost more than the work. When the store is busy (another POS's
        call holds it) it waits in a worker thread, so the loop keeps reading requests.
        Either way the store serialises the calls; nothing runs twice at once."""
        ran, result = agent.store.run_if_free(fn)
        if ran:
            return result
        return await to_thread.run_sync(fn)

    spec_body = openapi_bytes()

    async def spec(request: Request) -> Response:
        """The document as built once per process (this route needs no token)."""
        return Response(spec_body, media_type="application/json")

    async def status(request: Request) -> Any:
        till = to_plain(await call(agent.status))
        printer = printer_status() if printer_status else None
        return {
            "ok": True,
            "api_version": API_VERSION,
            "version": version(),
            **till,
            "printer": printer,
        }

    async def live(request: Request) -> Any:
        """Liveness for store monitoring: the agent answers. Public, no data, no store."""
        return {"ok": True}

    async def metrics_text(request: Request) -> Response:
        def gauges() -> list[Gauge]:
            off = agent.offline_status()
            return [
                Gauge("online", "1 while the back office answers, else 0.", int(off.online)),
                Gauge("events_waiting", "Journal events not yet sent.", off.events_waiting),
                Gauge(
                    "print_queue_jobs", "Slips waiting for the printer.", agent.print_queue_depth()
                ),
                Gauge("holds_active", "Points holds in force.", agent.holds_active()),
            ]

        text = exposition(counter, await call(gauges), version())
        return Response(text, media_type=CONTENT_TYPE)

    async def identify(request: Request) -> Any:
        data = await body_json(request)
        return await call(lambda: agent.identify(identify_input(data)))

    async def card(request: Request) -> Any:
        member_id = request.path_params["member_id"]
        return await call(lambda: agent.card(member_id))

    async def register(request: Request) -> Any:
        data = await body_json(request)
        return await call(lambda: agent.register(**register_args(data)))

    async def quote(request: Request) -> Any:
        data = await body_json(request)
        return await call(lambda: agent.quote(checkout_request(agent, data)))

    async def place_hold(request: Request) -> Any:
        data = await body_json(request)
        return await call(lambda: agent.place_hold(*hold_request(agent, data, hold_ttl_s)))

    async def get_hold(request: Request) -> Any:
        hold_id = request.path_params["hold_id"]
        return await call(lambda: agent.get_hold(hold_id))

    async def cancel_hold(request: Request) -> Any:
        hold_id = request.path_params["hold_id"]
        return await call(lambda: agent.cancel_hold(hold_id))

    def printed(result: Any) -> Any:
        """Wake the print worker for a slip just queued (not for a retried call's)."""
        if on_print is not None and not getattr(result, "duplicate", False):
            on_print()
        return result

    async def commit(request: Request) -> Any:
        data = await body_json(request)
        return await call(lambda: printed(agent.commit(*commit_request(agent, data))))

    async def refund(request: Request) -> Any:
        data = await body_json(request)
        return await call(lambda: printed(agent.refund(**refund_args(data))))

    async def slip(request: Request) -> Any:
        job_id = job_id_of(request.path_params["job_id"])
        width = slip_width_of(request.query_params.get("width"))
        return await call(lambda: agent.slip(job_id, width))

    async def print_slip(request: Request) -> Any:
        job_id = job_id_of(request.path_params["job_id"])
        return await call(lambda: printed(agent.reprint(job_id)))

    async def next_scan(request: Request) -> Any:
        return {"scan": take_scan() if take_scan else None}

    handlers: dict[str, Callable[[Request], Awaitable[Any]]] = {
        "quote": quote,
        "commit": commit,
        "identify": identify,
        "place_hold": place_hold,
        "next_scan": next_scan,
        "refund": refund,
        "register": register,
        "card": card,
        "get_hold": get_hold,
        "cancel_hold": cancel_hold,
        "slip": slip,
        "print_slip": print_slip,
        "status": status,
        "live": live,
    }
    routes = [
        Route(op.path, guarded(handlers[name], public=not op.auth), methods=[op.method])
        for name, op in OPERATIONS.items()
    ]
    routes.append(Route("/openapi.json", guarded(spec, public=True), methods=["GET"]))

    async def http_error(request: Request, exc: Exception) -> Response:
        """Router answers (unknown path, wrong method) as the documented problem."""
        assert isinstance(exc, HTTPException)
        return router_problem(request, exc)

    if metrics:
        routes.append(Route("/metrics", guarded(metrics_text, public=True), methods=["GET"]))
    counter = RequestMetrics("kassa_agent", routes)
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        middleware=[
            # Outermost: a body still arriving holds no request slot (sync.httpserve).
            Middleware(
                BodyFirst,
                limit=max_body_bytes,
                idle_s=body_timeout_s,
                total_s=body_timeout_s,
            ),
            *([Middleware(MetricsMiddleware, metrics=counter)] if metrics else []),
            Middleware(ConcurrencyLimit, limit=max_concurrency),
        ],
    )
    app.state.agent = agent
    return app


ERRORS = {
    400: "bad input (names the field); nothing written",
    401: "missing or wrong token",
    404: "member, receipt, hold or slip not found",
    405: "method not allowed on this path (the Allow header lists the methods)",
    409: "same id with other contents, hold not usable, or not the held cheque",
    408: "request_timeout: the body did not arrive in time; nothing written",
    413: "body too large",
    429: "rate limited, or too_many_failures (wrong tokens from this address); "
    "retry after the Retry-After header's seconds",
    503: "store unavailable, or agent overloaded (Retry-After); nothing written",
}


STATUS = {
    "allOf": [
        {"$ref": "#/components/schemas/TillStatus"},
        {
            "type": "object",
            "properties": {
                "ok": {"const": True},
                "api_version": {"type": "integer"},
                "version": {"type": "string"},
                "printer": {
                    "anyOf": [{"type": "object"}, {"type": "null"}],
                    "description": "the print worker's report; null when the agent prints "
                    "nothing itself",
                },
            },
            "required": ["ok", "api_version", "version", "printer"],
        },
    ]
}
"""``GET /v1/status``: the till at a glance (``TillStatus``), the API and software
versions and the print worker's report."""


def _id(name: str) -> Param:
    """A path parameter naming a member or a hold (their ids are 1-64 characters)."""
    return Param(name, schema=msgspec.json.schema(HoldId))


JOB_ID = Param(
    "job_id",
    schema=msgspec.json.schema(JobId),
    description="print_job_id of a commit or refund",
)


def _op(
    method: str, path: str, summary: str, request: Any, response: Any, **more: Any
) -> Operation:
    return Operation(method, path, summary, request, response, ERRORS, **more)


# The router tries the routes in this order (a regex match each): the calls of every cheque
# first. No two paths overlap, so the order changes nothing else.
OPERATIONS: dict[str, Operation] = {
    "quote": _op("POST", "/v1/quote", "score a cheque; writes nothing", Checkout, Quote),
    "commit": _op(
        "POST",
        "/v1/commit",
        "commit a cheque, idempotent by receipt_id",
        CommitRequest,
        CommitResult,
    ),
    "identify": _op(
        "POST", "/v1/identify", "find a member by scan or phone", IdentifyRequest, MemberCard
    ),
    "place_hold": _op(
        "POST", "/v1/holds", "reserve points for a cheque in progress", HoldRequest, Hold
    ),
    "next_scan": _op(
        "GET",
        "/v1/scans/next",
        "the next scan from the agent's serial scanner, or null",
        None,
        {
            "type": "object",
            "properties": {"scan": {"anyOf": [{"type": "object"}, {"type": "null"}]}},
            "required": ["scan"],
        },
    ),
    "refund": _op(
        "POST", "/v1/refund", "refund lines, idempotent by refund_id", RefundRequest, RefundOutcome
    ),
    "register": _op(
        "POST", "/v1/members", "register a member with consent", RegisterRequest, Registration
    ),
    "card": _op(
        "GET",
        "/v1/members/{member_id}",
        "member card",
        None,
        MemberCard,
        params=[_id("member_id")],
    ),
    "get_hold": _op(
        "GET", "/v1/holds/{hold_id}", "a hold and its status", None, Hold, params=[_id("hold_id")]
    ),
    "cancel_hold": _op(
        "POST",
        "/v1/holds/{hold_id}/cancel",
        "release a hold (void)",
        None,
        Hold,
        params=[_id("hold_id")],
    ),
    "slip": _op(
        "GET",
        "/v1/slips/{job_id}",
        "slip text for the POS to print itself",
        None,
        SlipView,
        params=(JOB_ID, *query_params(SlipQuery)),
    ),
    "print_slip": _op(
        "POST", "/v1/slips/{job_id}/print", "print a copy of a slip", None, Reprint, params=[JOB_ID]
    ),
    "status": _op("GET", "/v1/status", "agent status: online, queue, printer, holds", None, STATUS),
    "live": Operation(
        "GET",
        "/v1/live",
        "liveness for monitoring: the agent answers (no token, no data)",
        response={"type": "object", "properties": {"ok": {"const": True}}, "required": ["ok"]},
        auth=False,
        description="alive",
    ),
}
"""Every route of the POS API but ``/openapi.json`` and ``/metrics``: handler name ->
what it takes and answers (the document's source)."""

FISCAL_TOTALS = {
    "Quote": (
        "points_discount_kop",
        "coupon_discount_kop",
        "discount_kop",
        "payable_kop",
        "total_earned",
    ),
    "QuoteLine": ("discount_kop", "payable_kop"),
}
"""What ``quote_json`` adds to a quote and its lines, beside their fields (kopecks; the
quote's ``total_earned`` in points)."""


PLAIN_STRINGS = (
    "Every string of a request body, a value or a key, is plain text (each string schema's "
    "pattern): no control character (U+0000-U+001F, U+007F-U+009F), line or paragraph "
    "separator, text-direction control, zero-width character (a zero-width joiner inside "
    "an emoji sequence excepted) or lone surrogate, else 400 bad_text naming the field."
)
"""What the document says beside the patterns ``plain_strings`` adds."""


def plain_strings(doc: dict[str, Any]) -> set[str]:
    """Give every string schema of the request bodies' types that has no pattern of its
    own the plain-text pattern (``sync.protocol.PLAIN_CHARS``: what ``agent.requests``
    lets through, for every string of a request), so the document refuses what the server
    refuses. Returns the names of the component schemas walked (the request types and
    the types inside them)."""
    schemas = doc["components"]["schemas"]
    walked: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in walked:
                walked.add(name)
                walk(schemas[name])
        if node.get("type") == "string" and not {"pattern", "enum", "const"} & node.keys():
            node["pattern"] = PLAIN_CHARS
        for key, value in node.items():
            if key != "pattern":
                walk(value)

    for path in doc["paths"].values():
        for entry in path.values():
            walk(entry.get("requestBody", {}).get("content", {}))
    return walked


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/openapi.json`` (the integrator's contract),
    generated from ``OPERATIONS`` and the request and answer types; every string of a
    request body patterned as plain text (``plain_strings``)."""
    doc = document(
        OPERATIONS.values(),
        title="Kassa local POS API",
        version=f"{API_VERSION}",
        description="Loyalty at the till: identify, quote, hold, commit, refund. Amounts in "
        "kopecks, points as integers. Loopback only by default.",
        error=Problem,
        extra_types=[TillStatus],
    )
    plain_strings(doc)
    doc["info"]["description"] += " " + PLAIN_STRINGS
    schemas = doc["components"]["schemas"]
    for name, fields in FISCAL_TOTALS.items():
        schemas[name]["properties"].update({f: {"type": "integer"} for f in fields})
        schemas[name]["required"] = [*schemas[name].get("required", []), *fields]
    return doc


@cache
def openapi_bytes() -> bytes:
    """``openapi()`` as the JSON ``/openapi.json`` serves, built once per process (the
    schemas take some milliseconds to generate)."""
    return json.dumps(openapi(), ensure_ascii=False, separators=(",", ":")).encode()

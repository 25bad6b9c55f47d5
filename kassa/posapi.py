"""The local POS API: HTTP/JSON on loopback for the host POS software (1C, Frontol, ...).

A till's POS calls, for one cheque: ``identify`` -> ``quote`` (or ``holds``, to reserve
the points while the customer pays) -> ``commit`` (idempotent by the POS cheque id) or
``holds/{id}/cancel``; later ``refund``. Amounts are integer kopecks (``*_kop``), points
integers. Request bodies have the same shapes as the ``kassa`` JSON CLI (both parse them
with ``agent.requests`` through ``kassa.cli``'s helpers).

Security: every route but ``/openapi.json`` needs ``Authorization: Bearer <token>`` (401
otherwise, compared in constant time); bodies over ``max_body_bytes`` get 413 before they
are read whole; more than ``rate_burst`` requests above ``rate_per_s`` get 429. A core
call runs on the event loop when the store is free (no thread hand-off: see ``call`` in
``create_app``), else in a worker thread while the loop keeps answering; the store
serialises them either way. Every failure a caller can cause is a 4xx ``{"error",
"title", "message_ru", "message_en", "details"}`` and writes nothing (each core operation
is one transaction); anything else is a 500 that names nothing internal and has rolled
back.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agent import holds, printq
from agent.codec import to_plain
from agent.errors import (
    AgentError,
    ConflictError,
    InputError,
    NotFoundError,
    StoreError,
)
from agent.limits import LINE_MAX_KOP
from agent.model import Quote
from agent.requests import text_fault
from agent.service import Agent
from agent.version import version
from sync.metrics import CONTENT_TYPE, Gauge, MetricsMiddleware, RequestMetrics, exposition

log = logging.getLogger("kassa.posapi")

API_VERSION = 1
MAX_TEXT = 256
MAX_DEPTH = 8


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
        self.headers = headers
        self.body = error_body(code, en, ru, **details)


def status_for(e: AgentError) -> int:
    """HTTP status of a core error: 404 not found, 409 conflict, 503 store, 400 input."""
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, ConflictError):
        return 409
    if isinstance(e, StoreError):
        return 503
    return 400


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


def error_body(code: str, en: str, ru: str, **details: Any) -> dict[str, Any]:
    """The documented error document of the POS API."""
    return {
        "error": code,
        "title": "Ошибка запроса",
        "message_ru": ru,
        "message_en": en,
        "details": details,
    }


class ConcurrencyLimit:
    """ASGI middleware: at most ``limit`` HTTP requests in progress; the rest get a JSON
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
            response = JSONResponse(
                error_body(
                    "overloaded",
                    f"the agent is busy ({self.limit} requests in progress); retry shortly",
                    "агент перегружен запросами, повторите через секунду",
                    limit=self.limit,
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


def _check_text(value: Any, where: str, depth: int = 0) -> None:
    """Refuse what SQLite or the journal cannot hold: lone surrogates, NUL, deep nesting,
    integers beyond 64 bits, over-long text; names the field."""
    if depth > MAX_DEPTH:
        raise ApiError(400, "too_deep", f"{where}: nested too deeply", f"{where}: слишком глубоко")
    if isinstance(value, str):
        if len(value) > 4096:
            raise ApiError(
                400, "bad_text", f"{where}: text too long", f"{where}: слишком длинный текст"
            )
        fault = text_fault(value)
        if fault:
            raise ApiError(
                400, "bad_text", f"{where}: {fault[0]}", f"{where}: {fault[1]}", field=where
            )
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        if abs(value) >= 2**62:
            raise ApiError(
                400, "bad_number", f"{where}: number out of range", f"{where}: слишком большое"
            )
    elif isinstance(value, float):
        # JSON has one number type; a number written with a decimal point or an exponent
        # (2.0, 1e2, 1e400) is parsed as a float even when its value is whole. Every
        # number in these requests is a whole one (kopecks, points, quantities, seconds).
        name = where or "body"
        raise ApiError(
            400,
            "bad_number",
            f"{name}: must be a whole number written with digits only, without a decimal "
            "point or exponent (2.0 and 1e2 are not accepted; amounts are integer kopecks)",
            f"{name}: нужно целое число, записанное только цифрами, без точки и экспоненты "
            "(2.0 и 1e2 не принимаются; суммы в копейках)",
            field=name,
        )
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, where, depth + 1)
            _check_text(v, f"{where}.{k}" if where else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, f"{where}[{i}]", depth + 1)


_OPTIONAL_TEXT = (
    "member_id",
    "identify",
    "identified_by",
    "coupon",
    "cashier_id",
    "shift_id",
    "hold_id",
    "refund_id",
    "receipt_id",
    "phone",
    "first_name",
    "birthday",
    "input",
    "consent_text_version",
)


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InputError("request must be a JSON object", "запрос должен быть объектом JSON")
    for key in _OPTIONAL_TEXT:
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise InputError(
                f"{key}: must be text up to {MAX_TEXT} characters",
                f"{key}: должно быть строкой до {MAX_TEXT} символов",
                field=key,
            )
    return data


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
    hold_ttl_s: int = holds.DEFAULT_TTL_S,
    printer_status: Callable[[], dict[str, Any]] | None = None,
    on_print: Callable[[], None] | None = None,
    take_scan: Callable[[], dict[str, Any] | None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    max_concurrency: int = 64,
    metrics: bool = False,
) -> Starlette:
    """The ASGI app over one open ``Agent``. ``printer_status`` reports the print worker
    for ``/v1/status``; ``on_print`` wakes it after a slip was queued; ``take_scan`` hands
    the POS the next scan read by a serial scanner attached to the agent;
    ``max_concurrency``: requests in progress beyond which a JSON 503 answers at once;
    ``metrics`` adds ``GET /metrics`` (Prometheus text, no token: counts only, no data)."""
    from kassa.cli.till import _checkout, _identify, _refund, _register
    from sync.protocol import strict_json

    if len(token) < 16:
        raise ValueError("the API token must be at least 16 characters")
    secret = token.encode("utf-8")
    limiter = RateLimiter(rate_per_s, rate_burst, clock)

    def authorise(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8"), secret
        ):
            raise ApiError(
                401,
                "unauthenticated",
                "a valid API token is required (Authorization: Bearer ...)",
                "нужен действительный токен API",
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
        try:
            data = strict_json(bytes(chunks))
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(
                400, "bad_json", f"body is not valid JSON: {e}", "запрос не является JSON"
            ) from None
        _check_text(data, "")
        return data

    def guarded(
        fn: Callable[[Request], Awaitable[Any]], *, public: bool = False
    ) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                if not public:
                    authorise(request)
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
                return JSONResponse(e.body, status_code=e.status, headers=e.headers)
            except AgentError as e:
                return JSONResponse(to_plain(e.to_dict()), status_code=status_for(e))
            except ClientDisconnect:
                # The POS hung up before its request body arrived (its timeout, a killed
                # process): nothing was read, so nothing was written, and no one is left
                # to answer. Not our fault: one quiet line, no traceback.
                log.info("client disconnected before sending its request: %s", request.url.path)
                body = error_body(
                    "client_disconnected",
                    "the client closed the connection before sending the whole request",
                    "POS закрыл соединение, не передав запрос целиком",
                )
                return JSONResponse(body, status_code=400)
            except Exception:
                log.exception("unexpected error on %s", request.url.path)
                return JSONResponse(
                    {
                        "error": "internal",
                        "title": "Внутренняя ошибка",
                        "message_ru": "внутренняя ошибка агента; ничего не записано",
                        "message_en": "internal error; nothing was written",
                        "details": {},
                    },
                    status_code=500,
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

    spec_body = json.dumps(openapi(), ensure_ascii=False, separators=(",", ":")).encode()

    async def spec(request: Request) -> Response:
        """Built once: the document is ~1.5 ms of work and this route needs no token."""
        return Response(spec_body, media_type="application/json")

    async def status(request: Request) -> Any:
        def run() -> dict[str, Any]:
            off = agent.offline_status()
            return {
                "ok": True,
                "api_version": API_VERSION,
                "version": version(),
                "terminal_id": agent.terminal_id,
                "rules_version": agent.programme().version,
                "online": off.online,
                "enrolled": agent.store.meta("sync_token") is not None,
                "last_contact": off.last_contact,
                "events_waiting": off.events_waiting,
                "holds_active": holds.active_count(agent.store, agent.clock.now()),
                "print_queue": printq.queue_depth(agent.store),
                "printer": printer_status() if printer_status else None,
            }

        return await call(run)

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
                    "print_queue_jobs",
                    "Slips waiting for the printer.",
                    printq.queue_depth(agent.store),
                ),
                Gauge(
                    "holds_active",
                    "Points holds in force.",
                    holds.active_count(agent.store, agent.clock.now()),
                ),
            ]

        text = exposition(counter, await call(gauges), version())
        return Response(text, media_type=CONTENT_TYPE)

    async def identify(request: Request) -> Any:
        data = _object(await body_json(request))
        return await call(lambda: _identify(agent, data))

    async def card(request: Request) -> Any:
        member_id = request.path_params["member_id"]
        return await call(lambda: agent.card(member_id))

    async def register(request: Request) -> Any:
        data = _object(await body_json(request))
        return await call(lambda: _register(agent, data))

    async def quote(request: Request) -> Any:
        data = _object(await body_json(request))
        return await call(lambda: agent.quote(_checkout(agent, data)))

    async def place_hold(request: Request) -> Any:
        data = _object(await body_json(request))
        ttl = data.get("ttl_s", hold_ttl_s)
        return await call(
            lambda: holds.place(agent, _checkout(agent, data, frozenset({"ttl_s"})), ttl)
        )

    async def get_hold(request: Request) -> Any:
        hold_id = request.path_params["hold_id"]
        return await call(lambda: holds.get(agent.store, hold_id, agent.clock.now()))

    async def cancel_hold(request: Request) -> Any:
        hold_id = request.path_params["hold_id"]
        return await call(lambda: holds.cancel(agent.store, hold_id, agent.clock.now()))

    async def commit(request: Request) -> Any:
        data = _object(await body_json(request))

        def run() -> Any:
            hold_id = data.get("hold_id")
            if hold_id is not None and not (isinstance(hold_id, str) and 0 < len(hold_id) <= 64):
                raise InputError(
                    "hold_id: must be the hold id text from POST /v1/holds",
                    "hold_id: номер резерва из POST /v1/holds",
                    field="hold_id",
                )
            body = data
            if hold_id is not None and "redeem_points" not in data:
                # Spend what the hold reserved unless the POS says otherwise.
                held = holds.get(agent.store, hold_id, agent.clock.now())
                body = {**data, "redeem_points": held.points}
            req = _checkout(agent, body, frozenset({"hold_id"}))
            if isinstance(hold_id, str):
                holds.check_cheque(agent.store, hold_id, req)  # 409: not the held cheque
            result = agent.commit(req, hold_id)
            if on_print is not None and not result.duplicate:
                on_print()
            return result

        return await call(run)

    async def refund(request: Request) -> Any:
        data = _object(await body_json(request))

        def run() -> Any:
            result = _refund(agent, data)
            if on_print is not None and not result.duplicate:
                on_print()
            return result

        return await call(run)

    def job_id_of(request: Request) -> int:
        text = request.path_params["job_id"]
        if not (text.isdecimal() and text.isascii()) or not text.lstrip("0"):
            raise InputError(
                f"job_id: must be a positive print job number (print_job_id of a commit or "
                f"refund), got {text[:32]!r}",
                "job_id: нужен номер задания печати: целое число больше нуля "
                "(print_job_id продажи или возврата)",
                field="job_id",
            )
        if len(text) > 12:
            raise NotFoundError(f"no print job {text[:32]!r}", "такого слипа нет")
        return int(text)

    async def slip(request: Request) -> Any:
        from agent.slip import slip_text

        job_id = job_id_of(request)
        width_text = request.query_params.get("width", "42")
        if width_text not in ("32", "42", "48"):
            raise InputError("width: must be 32, 42 or 48", "ширина: 32, 42 или 48", field="width")
        width = int(width_text)

        def run() -> Any:
            job = printq.get_job(agent.store, job_id)
            return {
                "job_id": job_id,
                "receipt_id": job.receipt_id,
                "kind": job.kind,
                "status": job.status,
                "width": width,
                "text": slip_text(job.slip, width),
            }

        return await call(run)

    async def print_slip(request: Request) -> Any:
        job_id = job_id_of(request)

        def run() -> Any:
            new_id = printq.enqueue_copy(agent.store, job_id, agent.clock.now())
            if on_print is not None:
                on_print()
            return {"job_id": new_id, "copy_of": job_id, "queued": True}

        return await call(run)

    async def next_scan(request: Request) -> Any:
        return {"scan": take_scan() if take_scan else None}

    # The router tries the routes in order (a regex match each): the calls of every cheque
    # first. No two paths overlap, so the order changes nothing else.
    routes = [
        Route("/v1/quote", guarded(quote), methods=["POST"]),
        Route("/v1/commit", guarded(commit), methods=["POST"]),
        Route("/v1/identify", guarded(identify), methods=["POST"]),
        Route("/v1/holds", guarded(place_hold), methods=["POST"]),
        Route("/v1/scans/next", guarded(next_scan), methods=["GET"]),
        Route("/v1/refund", guarded(refund), methods=["POST"]),
        Route("/v1/members", guarded(register), methods=["POST"]),
        Route("/v1/members/{member_id}", guarded(card), methods=["GET"]),
        Route("/v1/holds/{hold_id}", guarded(get_hold), methods=["GET"]),
        Route("/v1/holds/{hold_id}/cancel", guarded(cancel_hold), methods=["POST"]),
        Route("/v1/slips/{job_id}", guarded(slip), methods=["GET"]),
        Route("/v1/slips/{job_id}/print", guarded(print_slip), methods=["POST"]),
        Route("/v1/status", guarded(status), methods=["GET"]),
        Route("/v1/live", guarded(live, public=True), methods=["GET"]),
        Route("/openapi.json", guarded(spec, public=True), methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        """Router answers (unknown path, wrong method) in the documented JSON format."""
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            body = error_body(
                "method_not_allowed",
                f"method {request.method} is not allowed on {request.url.path} "
                f"(allowed: {allowed})",
                f"метод {request.method} не поддерживается для {request.url.path} "
                f"(можно: {allowed})",
                method=request.method,
                allowed=[m.strip() for m in allowed.split(",") if m.strip()],
            )
        elif exc.status_code == 404:
            body = error_body(
                "not_found",
                f"no such endpoint: {request.url.path[:128]}",
                "такого адреса в API нет",
                path=request.url.path[:128],
            )
        else:
            body = error_body("http_error", str(exc.detail), str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    if metrics:
        routes.append(Route("/metrics", guarded(metrics_text, public=True), methods=["GET"]))
    counter = RequestMetrics("kassa_agent", routes)
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_error},
        middleware=[
            *([Middleware(MetricsMiddleware, metrics=counter)] if metrics else []),
            Middleware(ConcurrencyLimit, limit=max_concurrency),
        ],
    )
    app.state.agent = agent
    return app


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document served at ``/openapi.json`` (the integrator's contract)."""
    text = {"type": "string", "maxLength": 64}
    ident = {"type": "string", "minLength": 1, "maxLength": 64}
    line = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "line_no": {"type": "integer", "minimum": 1, "maximum": 100_000},
            "sku": {
                **ident,
                "description": "article; a line without category must name a SKU of the "
                "till catalogue (else 400 unknown SKU)",
            },
            "name": {"type": "string", "maxLength": 128},
            "category": text,
            "collection": text,
            "price_kop": {
                "type": "integer",
                "minimum": 0,
                "maximum": LINE_MAX_KOP,
                "description": "unit price, kopecks; price x qty at most 1 000 000 ₽ a line "
                "and the lines at most 10 000 000 ₽ a cheque (400 cheque_limit)",
            },
            "qty": {"type": "integer", "minimum": 1, "maximum": 10000},
            "amount_kop": {
                "type": "integer",
                "minimum": 0,
                "maximum": LINE_MAX_KOP,
                "description": "line total after POS discounts, kopecks (default price*qty)",
            },
            "sale": {"type": "boolean"},
        },
        "required": ["sku"],
    }
    # What a scan or a typed entry may look like (agent.identify): an app QR token
    # (``KM1:...``, optionally after an AIM prefix such as ``]Q1``), a 13-digit member code
    # (spaces/dashes allowed) or a phone. A phone that is not a valid number, a code with a
    # wrong check digit or an expired token are schema-valid and get 400 naming the reason.
    identify_input = {
        "type": "string",
        "description": "app QR token, 13-digit member code, or phone (a scan typed in the "
        "Russian keyboard layout is repaired)",
        "anyOf": [
            {
                "maxLength": 256,
                "pattern": r"^\s*(\][A-Za-z][0-9A-Za-z])?\s*[Kk][A-Za-z][0-9]:\S+\s*$",
            },
            {  # member code: 13 digits, spaces or dashes between groups
                "maxLength": 40,
                "pattern": r"^\s*(\][A-Za-z][0-9A-Za-z])?\s*([0-9][ \-]?){12}[0-9]\s*$",
            },
            {  # phone: +E.164 up to 15 digits, or a Russian number of at most 11 digits
                "maxLength": 32,
                "pattern": r"^\s*(\+[\s\-.()]*([0-9][\s\-.()]*){4,15}"
                r"|[\s\-.()]*([0-9][\s\-.()]*){4,11})$",
            },
        ],
    }
    checkout_props: dict[str, Any] = {
        "receipt_id": {**ident, "description": "the POS cheque id"},
        "member_id": ident,
        "identify": {**identify_input, "description": "instead of member_id: scan or phone"},
        "identified_by": {"type": "string", "maxLength": 32},
        "redeem_points": {
            "oneOf": [{"type": "integer", "minimum": 0}, {"const": "max"}],
            "description": 'points to spend, or "max" (more than spendable: 400)',
        },
        "coupon": {"type": "string", "maxLength": 256},
        "cashier_id": text,
        "shift_id": text,
        "lines": {"type": "array", "items": line, "maxItems": 200},
    }

    def request(props: dict[str, Any], required: list[str], what: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": f"{what}; an unknown field is refused (400 naming it)",
            "additionalProperties": False,
            "required": required,
            "properties": props,
        }

    checkout = request(checkout_props, ["receipt_id", "lines"], "a cheque")
    hold_req = request(
        {**checkout_props, "ttl_s": {"type": "integer", "minimum": 10, "maximum": 86400}},
        ["receipt_id", "lines"],
        "a cheque to hold points for",
    )
    commit_req = request(
        {
            **checkout_props,
            "hold_id": {
                **ident,
                "description": "from POST /v1/holds; the cheque must be the held one (else 409)",
            },
        },
        ["receipt_id", "lines"],
        "a cheque to commit",
    )
    refund_req = request(
        {
            "refund_id": {**ident, "description": "the POS refund id"},
            "receipt_id": ident,
            "lines": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": {"pattern": "^[1-9][0-9]{0,5}$"},
                "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 10000},
                "description": 'line number -> quantity returned, e.g. {"2": 1} (a line '
                "or quantity the cheque does not have: 400)",
            },
            "cashier_id": text,
            "shift_id": text,
        },
        ["refund_id", "receipt_id", "lines"],
        "a refund",
    )
    register_req = request(
        {
            "phone": {"type": "string", "minLength": 1, "maxLength": 32},
            "first_name": {"type": "string", "minLength": 1, "maxLength": 60},
            "birthday": {"type": "string", "format": "date"},
            "consent_programme": {
                "const": True,
                "description": "the member's consent to the programme: required, must be true",
            },
            "consent_marketing": {"type": "boolean"},
            "cashier_id": text,
        },
        ["phone", "first_name", "consent_programme"],
        "a new member",
    )
    identify_req = request({"input": identify_input}, ["input"], "a scan or phone")
    obj = {"type": "object"}
    errors = {
        str(code): {
            "description": what,
            "content": {"application/json": {"schema": _ref("Error")}},
        }
        for code, what in (
            (400, "bad input (names the field); nothing written"),
            (401, "missing or wrong token"),
            (404, "member, receipt, hold or slip not found"),
            (405, "method not allowed on this path (the Allow header lists the methods)"),
            (409, "same id with other contents, hold not usable, or not the held cheque"),
            (413, "body too large"),
            (429, "rate limited; retry after the Retry-After header's seconds"),
            (503, "store unavailable, or agent overloaded (Retry-After); nothing written"),
        )
    }

    def op(summary: str, body: str | None, result: str = "object") -> dict[str, Any]:
        out: dict[str, Any] = {
            "summary": summary,
            "security": [{"bearer": []}],
            "responses": {
                "200": {
                    "description": "ok",
                    "content": {"application/json": {"schema": obj}},
                },
                **errors,
            },
        }
        if body:
            out["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _ref(body)}},
            }
        return out

    def path_param(name: str) -> list[dict[str, Any]]:
        return [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}]

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Kassa local POS API",
            "version": f"{API_VERSION}",
            "description": "Loyalty at the till: identify, quote, hold, commit, refund. "
            "Amounts in kopecks, points as integers. Loopback only by default.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message_ru", "message_en"],
                    "properties": {
                        "error": {"type": "string"},
                        "title": {"type": "string"},
                        "message_ru": {"type": "string"},
                        "message_en": {"type": "string"},
                        "details": {"type": "object"},
                    },
                },
                "Checkout": checkout,
                "HoldRequest": hold_req,
                "CommitRequest": commit_req,
                "RefundRequest": refund_req,
                "RegisterRequest": register_req,
                "IdentifyRequest": identify_req,
            },
        },
        "paths": {
            "/v1/status": {"get": op("agent status: online, queue, printer, holds", None)},
            "/v1/live": {
                "get": {
                    "summary": "liveness for monitoring: the agent answers (no token, no data)",
                    "security": [],
                    "responses": {"200": {"description": "alive"}},
                }
            },
            "/v1/scans/next": {
                "get": op("the next scan from the agent's serial scanner, or null", None)
            },
            "/v1/identify": {"post": op("find a member by scan or phone", "IdentifyRequest")},
            "/v1/members": {"post": op("register a member with consent", "RegisterRequest")},
            "/v1/members/{member_id}": {
                "get": {**op("member card", None), "parameters": path_param("member_id")}
            },
            "/v1/quote": {"post": op("score a cheque; writes nothing", "Checkout")},
            "/v1/holds": {"post": op("reserve points for a cheque in progress", "HoldRequest")},
            "/v1/holds/{hold_id}": {
                "get": {**op("a hold and its status", None), "parameters": path_param("hold_id")}
            },
            "/v1/holds/{hold_id}/cancel": {
                "post": {**op("release a hold (void)", None), "parameters": path_param("hold_id")}
            },
            "/v1/commit": {
                "post": op("commit a cheque, idempotent by receipt_id", "CommitRequest")
            },
            "/v1/refund": {"post": op("refund lines, idempotent by refund_id", "RefundRequest")},
            "/v1/slips/{job_id}": {
                "get": {
                    **op("slip text for the POS to print itself", None),
                    "parameters": [
                        *path_param("job_id"),
                        {
                            "name": "width",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["32", "42", "48"]},
                        },
                    ],
                }
            },
            "/v1/slips/{job_id}/print": {
                "post": {**op("print a copy of a slip", None), "parameters": path_param("job_id")}
            },
        },
    }

"""Both HTTP servers' defence against slow and stalled clients (the POS API on the till,
the back office): a deadline for a request's headers and one for its body, so a client
that sends a few bytes and then nothing holds neither a connection nor a request slot.

- Headers: ``HeaderDeadlineProtocol`` (uvicorn's protocol, passed as ``http=``) closes
  a connection whose request headers are not complete ``HEADER_TIMEOUT_S`` after it opened
  or after its previous response (uvicorn itself waits for ever: its keep-alive timer is
  cancelled by every byte received, and a new connection has none).
- Bodies: ``BodyFirst`` (ASGI middleware, outermost) reads a request's whole body before
  the app runs: at most ``limit`` + 1 bytes, with at most ``idle_s`` between two chunks and
  ``total_s`` for all of them; a client that trickles or stalls gets a problem 408 and the
  connection is closed. The app then reads the body from memory, so a concurrency limit
  inside it counts only requests that are being worked on, never ones still arriving.
- Guessing: ``FailureLimiter`` counts failed authentications and lookups per client and
  per credential and refuses a key that fails too often (429 with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

import anyio
import h11
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

from agent.problem import PROBLEM_JSON, problem

HEADER_TIMEOUT_S = 10.0
"""Seconds a client has to send a request's headers (a till on a slow link sends a few
hundred bytes: far below)."""

log = logging.getLogger("kassa.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _HeaderDeadline:
    """A deadline for each request's headers, mixed into uvicorn's HTTP protocols: armed
    when a connection opens and after each response, closed if the headers of the next
    request are not in by then (and no request is being answered)."""

    header_timeout_s = HEADER_TIMEOUT_S
    _header_timer: asyncio.TimerHandle | None = None
    _headers_in = False
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._headers_in = False
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm_header_deadline(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_arrived(self) -> None:
        self._headers_in = True
        self._disarm_header_deadline()

    def _headers_late(self) -> None:
        self._header_timer = None
        answering = self.cycle is not None and not self.cycle.response_complete
        if not self._headers_in and not answering and not self.transport.is_closing():
            log.info("closed a connection whose request headers did not arrive in time")
            self.transport.close()


class H11HeaderDeadline(_HeaderDeadline, H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in (or it failed)
            self._headers_arrived()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_header_deadline()  # the next request on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)


def _httptools_protocol() -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol with the deadline, when httptools is installed
    (uvicorn then prefers it: a faster parser)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol  # noqa: PLC0415
    except ImportError:
        return None

    class HttpToolsHeaderDeadline(_HeaderDeadline, HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_deadline()

        def on_headers_complete(self) -> None:
            self._headers_arrived()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_header_deadline()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm_header_deadline()
            super().connection_lost(exc)

    return HttpToolsHeaderDeadline


HeaderDeadlineProtocol: type[asyncio.Protocol] = _httptools_protocol() or H11HeaderDeadline
"""The protocol both servers run (uvicorn's ``http=``): the one uvicorn's ``auto`` picks
(httptools when installed, else h11), with the header deadline."""


class ProblemResponse(JSONResponse):
    """An error answer of either server: ``agent.problem.problem``'s document as
    ``application/problem+json``."""

    media_type = PROBLEM_JSON


def problem_response(
    request: Request,
    status: int,
    code: str,
    message_en: str,
    message_ru: str | None = None,
    *,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> ProblemResponse:
    """The problem answer to ``request`` (its path is the problem's ``instance``)."""
    body = problem(
        status,
        code,
        message_en,
        message_ru,
        title=title,
        instance=request.url.path,
        details=details,
    )
    return ProblemResponse(body, status_code=status, headers=headers)


def router_problem(request: Request, exc: HTTPException) -> ProblemResponse:
    """The router's own refusals (no such path, a method the path does not take) as
    problems: 404 ``not_found``, 405 ``method_not_allowed`` (its ``Allow`` header kept and
    listed in ``details``), anything else ``http_error``."""
    path = request.url.path[:128]
    if exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        return problem_response(
            request,
            405,
            "method_not_allowed",
            f"method {request.method} is not allowed on {path} (allowed: {allowed})",
            f"метод {request.method} не поддерживается для {path} (можно: {allowed})",
            headers=exc.headers,
            details={
                "method": request.method,
                "allowed": [m.strip() for m in allowed.split(",") if m.strip()],
            },
        )
    if exc.status_code == 404:
        return problem_response(
            request,
            404,
            "not_found",
            f"no such endpoint: {path}",
            "такого адреса в API нет",
            headers=exc.headers,
            details={"path": path},
        )
    return problem_response(
        request, exc.status_code, "http_error", str(exc.detail), headers=exc.headers
    )


class BodyFirst:
    """ASGI middleware: the whole request body read (bounded in size and time) before the
    app is called; see the module's docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int,
        idle_s: float = 10.0,
        total_s: float = 30.0,
    ) -> None:
        self.app = app
        self.limit = limit
        self.idle_s = idle_s
        self.total_s = total_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _has_body(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        disconnected = False
        with anyio.move_on_after(self.total_s) as total:
            while True:
                with anyio.move_on_after(self.idle_s) as idle:
                    message = await receive()
                if idle.cancelled_caught:
                    total.cancel()
                    break
                if message["type"] == "http.disconnect":
                    disconnected = True
                    break
                chunk = message.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
                if not message.get("more_body", False) or size > self.limit:
                    break
        complete = not disconnected and not total.cancel_called
        if not complete and not disconnected:
            await self._timed_out(scope, send)
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnected:
                    return {"type": "http.disconnect"}
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _timed_out(self, scope: Scope, send: Send) -> None:
        path = scope.get("path", "")
        log.info("request body did not arrive in time: %s", path)
        payload = json.dumps(
            problem(
                408,
                "request_timeout",
                f"the request body did not arrive within {self.total_s:g} s "
                f"(or paused for over {self.idle_s:g} s)",
                f"тело запроса не пришло за {self.total_s:g} с "
                f"(или прервалось больше чем на {self.idle_s:g} с)",
                instance=path,
            ),
            ensure_ascii=False,
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 408,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload, "more_body": False})


def _has_body(scope: Scope) -> bool:
    """Whether the request announces a body (a length above 0, or chunked encoding)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


class FailureLimiter:
    """Failed attempts (a wrong token, enrollment code, or a lookup that finds no one)
    counted per key (a client's address, a credential) over a sliding window: past
    ``max_failures`` within ``window_s`` the key is refused, answered 429 with
    ``Retry-After``, until its oldest failure leaves the window. Successes are not
    counted and do not reset anything (that would let a guesser interleave a good
    credential). Per process: each node of a back office keeps its own count.
    ``clock``: monotonic seconds, injectable for tests."""

    MAX_KEYS = 20_000
    """The most keys kept; past it the stalest are forgotten (memory stays bounded under a
    flood of addresses)."""

    def __init__(
        self, max_failures: int, window_s: float, clock: Callable[[], float] | None = None
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock or time.monotonic
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or None when it may now."""
        with self._lock:
            times = self._recent(key)
            if times is None or len(times) < self.max_failures:
                return None
            return max(1, math.ceil(times[0] + self.window_s - self.clock()))

    def failed(self, key: str) -> None:
        with self._lock:
            times = self._recent(key)
            if times is None:
                if len(self._failures) >= self.MAX_KEYS:
                    stalest = min(self._failures, key=lambda k: self._failures[k][-1])
                    del self._failures[stalest]
                times = self._failures[key] = deque()
            times.append(self.clock())
            while len(times) > self.max_failures:
                times.popleft()

    def _recent(self, key: str) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        edge = self.clock() - self.window_s
        while times and times[0] <= edge:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

"""Test plumbing for sync: a synchronous httpx transport into the real ASGI app, and a
fault-injecting transport (the network is the edge we fake; the server is real)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from anyio.from_thread import BlockingPortal, start_blocking_portal


class SyncASGITransport(httpx.BaseTransport):
    """Drive an ASGI app from synchronous httpx code through an anyio portal."""

    def __init__(self, app: Any, portal: BlockingPortal) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.portal = portal

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()

        async def call() -> tuple[int, list[tuple[bytes, bytes]], bytes]:
            req = httpx.Request(request.method, request.url, headers=request.headers, content=body)
            resp = await self.inner.handle_async_request(req)
            content = await resp.aread()
            return resp.status_code, resp.headers.raw, content

        status, headers, content = self.portal.call(call)
        return httpx.Response(status, headers=headers, content=content, request=request)


@contextlib.contextmanager
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as p:
        yield p


Fault = Callable[[httpx.Request], str | None]


class FaultyTransport(httpx.BaseTransport):
    """Wraps a transport; ``plan`` says per request what goes wrong:
    None (deliver), "drop_request" (never reaches the server), "drop_response" (the
    server applies it, the answer is lost), "503" (server error without applying),
    "twice" (delivered twice; the client sees the second answer)."""

    def __init__(self, inner: httpx.BaseTransport, plan: Fault | None = None) -> None:
        self.inner = inner
        self.plan: Fault = plan or (lambda r: None)
        self.log: list[tuple[str, str, str | None]] = []
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        fault = self.plan(request)
        self.log.append((request.method, request.url.path, fault))
        if request.url.path == "/v1/events":
            self.bodies.append(request.read())
        if fault == "drop_request":
            raise httpx.ConnectError("connection refused", request=request)
        if fault == "503":
            return httpx.Response(503, json={"error": "unavailable"}, request=request)
        resp = self.inner.handle_request(request)
        if fault == "twice":
            resp = self.inner.handle_request(request)
        if fault == "drop_response":
            raise httpx.ReadTimeout("timed out", request=request)
        return resp


def hang_up_mid_body(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> list[dict]:
    """Drive ``app`` as a client that sends the start of a JSON body, then closes the
    connection (a till whose network dropped, ``curl --max-time``): one ``POST path``
    announcing 100-500 bytes, a first chunk, then ``http.disconnect``. Returns what the
    app sent back."""
    import anyio

    messages = iter(
        [
            {"type": "http.request", "body": b'{"input":"', "more_body": True},
            {"type": "http.disconnect"},
        ]
    )
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-length", b"100"),
            (b"content-type", b"application/json"),
            *headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8780),
    }
    anyio.run(app, scope, receive, send)
    return sent

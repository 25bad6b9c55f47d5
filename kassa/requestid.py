"""A request id for every POS API call: the POS's own ``X-Request-Id`` when it sends a
sane one, else a new one; echoed in the response's ``X-Request-Id`` header and put on
every log line written while the call is answered (``kassa.logs.RequestIdFilter``), so a
POS vendor's ticket ("call at 12:03 failed") leads to the agent's lines for that call.

An id from the POS is accepted only if it is 1-64 characters of ``A-Za-z0-9._:-``; any
other value (spaces, newlines, very long text) is replaced, never logged: a log line must
not be forged through a header.
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from typing import Any

log = logging.getLogger("kassa.api")

HEADER = b"x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "kassa_request_id", default=None
)


def current_request_id() -> str | None:
    """The id of the POS call being answered in this context, or None."""
    return _current.get()


def accept_or_make(value: str | None) -> str:
    """The POS's id if it is sane (see the module doc), else a new random one (32 hex)."""
    if value is not None and _SANE.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestId:
    """ASGI middleware: one request id per HTTP call (the context variable is set for the
    whole call, so handlers run in the thread pool see it too). Each call is one log line
    with method, path, status and duration (ms): DEBUG when it succeeded, INFO for a 4xx
    (the POS sent something refused), WARNING for a 5xx."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = None
        for name, value in scope.get("headers", ()):
            if name == HEADER:
                sent = value.decode("latin-1")
                break
        rid = accept_or_make(sent)
        token = _current.set(rid)
        started = time.monotonic()
        status = 0

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                headers.append((HEADER, rid.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            level = (
                logging.WARNING
                if status >= 500
                else logging.INFO
                if status >= 400 or status == 0
                else logging.DEBUG
            )
            log.log(
                level,
                "%s %s -> %s in %d ms",
                scope.get("method", "?"),
                scope.get("path", "?"),
                status or "no response",
                (time.monotonic() - started) * 1000,
            )
            _current.reset(token)

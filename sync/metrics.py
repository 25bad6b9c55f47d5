"""Prometheus metrics for our HTTP services (the POS API and the back office), optional.

Counted by a pure ASGI middleware: requests by route template (``/v1/holds/{hold_id}``,
never the raw path, so the series stay few), method and status, and the seconds they
took. ``exposition`` writes them, with the gauges the service adds (queue depths, backlog),
in the Prometheus text format 0.0.4; no client library is needed for this much. Served at
``/metrics`` only when the operator turns it on (``--metrics``); it carries counts, never a
member's data.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import BaseRoute, Match

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Gauge:
    """One sample of a gauge: ``name`` (snake case, with its unit), a help line, a value."""

    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class RequestMetrics:
    """Request counts and seconds per (route template, method, status); thread-safe."""

    prefix: str
    routes: Sequence[BaseRoute] = ()
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    seconds: dict[tuple[str, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def route_of(self, scope: Scope) -> str:
        """The template of the route ``scope`` matches, or ``other`` (a 404's path is not
        a label: a scanner of random paths would make a series per path)."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                return str(getattr(route, "path", "other"))
        return "other"

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        with self.lock:
            key = (route, method, str(status))
            self.counts[key] = self.counts.get(key, 0) + 1
            skey = (route, method)
            self.seconds[skey] = self.seconds.get(skey, 0.0) + seconds


class MetricsMiddleware:
    """Counts every HTTP request that passes through it into ``metrics``."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an app that raises before it answers has failed the request

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.record(
                self.metrics.route_of(scope),
                str(scope.get("method", "")),
                status,
                time.perf_counter() - started,
            )


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in pairs
    )
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    """A sample value: integers exactly (a queue of 1,000,000 is not ``1e+06``)."""
    return str(value) if isinstance(value, int) else repr(float(value))


def exposition(metrics: RequestMetrics, gauges: Iterable[Gauge], version: str) -> str:
    """The Prometheus text exposition of the request counters and ``gauges``."""
    p = metrics.prefix
    out = [
        f"# HELP {p}_build_info The running Kassa version.",
        f"# TYPE {p}_build_info gauge",
        f"{p}_build_info{_labels([('version', version)])} 1",
        f"# HELP {p}_http_requests_total HTTP requests answered, by route template and status.",
        f"# TYPE {p}_http_requests_total counter",
    ]
    with metrics.lock:
        counts = sorted(metrics.counts.items())
        seconds = sorted(metrics.seconds.items())
    for (route, method, status), n in counts:
        labels = _labels([("route", route), ("method", method), ("status", status)])
        out.append(f"{p}_http_requests_total{labels} {n}")
    out += [
        f"# HELP {p}_http_request_seconds_total Seconds spent answering, by route template.",
        f"# TYPE {p}_http_request_seconds_total counter",
    ]
    for (route, method), s in seconds:
        labels = _labels([("route", route), ("method", method)])
        out.append(f"{p}_http_request_seconds_total{labels} {s:.6f}")
    seen: set[str] = set()
    for g in gauges:
        name = f"{p}_{g.name}"
        if name not in seen:
            out += [f"# HELP {name} {g.help}", f"# TYPE {name} gauge"]
            seen.add(name)
        out.append(f"{name}{_labels(g.labels)} {_number(g.value)}")
    return "\n".join(out) + "\n"

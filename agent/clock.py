"""Where the till service reads time: one clock per service, so every use case of one call
sees the same kind of time and tests and benchmarks can move it (no method takes ``now``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """A source of aware datetimes; tests and benchmarks pass a controllable one."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

"""What the back office's lower modules work with: the database, the programmes, the clock
and the time of the last push, bundled in one ``Context``.

The service (``service.Backoffice``) builds one ``Context`` and hands it down to the
ingest, the projector, the verifier, the KPI report and the background workers; none of
them sees the service itself, so none imports it (and the service imports them).
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from agent.clock import Clock, SystemClock
from agent.rules import Programme, parse_programme
from sync.backoffice.db import Database, Tx


def moment_text(at: datetime) -> str:
    """A moment as the fixed-width UTC text the rules schedule stores and compares
    (``2026-06-15T09:00:00.000000+00:00``): ordered as text as in time."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class Programmes:
    """The published programmes (``rules`` table): which version is active, each version's
    document, and each version parsed once. A version's document never changes (publishing
    other content under a used version is refused), so a parsed version is kept for good."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self._parsed: dict[int, Programme] = {}

    def _read(self, tx: Tx | None) -> contextlib.AbstractContextManager[Tx]:
        """Inside a transaction, read through it (never a second connection)."""
        return contextlib.nullcontext(tx) if tx is not None else self.db.reading()

    def active_version(self, tx: Tx | None = None) -> int | None:
        """The version tills run now (the clock's time), or None before any was published:
        the version of the latest activation whose ``effective_at`` has come
        (``rules_activations``; a version published for later is not active before then)."""
        with self._read(tx) as t:
            row = t.one(
                "SELECT version FROM rules_activations WHERE effective_at <= ? "
                "ORDER BY effective_at DESC, id DESC LIMIT 1",
                (moment_text(self.clock.now()),),
            )
            if row is None:  # only activations to come: the flagged one until then
                row = t.one("SELECT version FROM rules WHERE active = 1")
        return None if row is None else int(row[0])

    def document(self, version: int, tx: Tx | None = None) -> str:
        """The stored JSON text of ``version``; raises ``KeyError`` if it was never published."""
        with self._read(tx) as t:
            row = t.one("SELECT document FROM rules WHERE version = ?", (version,))
        if row is None:
            raise KeyError(version)
        return str(row[0])

    def get(self, version: int | None = None, tx: Tx | None = None) -> Programme | None:
        """Programme ``version`` (the active one when None), or None if it does not exist."""
        if version is None:
            version = self.active_version(tx)
            if version is None:
                return None
        hit = self._parsed.get(version)
        if hit is None:
            try:
                doc = self.document(version, tx)
            except KeyError:
                return None
            hit = parse_programme(json.loads(doc), f"rules v{version}")
            self._parsed[version] = hit
        return hit


@dataclass(slots=True)
class Pushes:
    """When the last push was answered, as ``time.monotonic()`` seconds (0.0: none yet).
    The background workers (``worker.RoundWorker``) yield to pushes that recent."""

    last: float = 0.0

    def note(self) -> None:
        self.last = time.monotonic()

    def seconds_since(self) -> float:
        return time.monotonic() - self.last


@dataclass(frozen=True, slots=True)
class Context:
    """The back office's shared handles: ``db`` (the ledger database), ``programmes`` (the
    published rules, parsed once), ``clock`` (business time: acceptance, verdicts, expiry)
    and ``pushes`` (when tills last pushed, for the workers to yield to)."""

    db: Database
    programmes: Programmes
    clock: Clock
    pushes: Pushes

    @classmethod
    def over(cls, db: Database, clock: Clock | None = None) -> Context:
        """A context over ``db`` (the system clock unless ``clock``), no push seen yet."""
        clock = clock or SystemClock()
        return cls(db, Programmes(db, clock), clock, Pushes())

"""Stores and tills for the console: the stores, their enrollment codes, what each till
last told (contact, send queue, software), the silent-till alarm and the closed-launch
view of the cashiers.

A till tells its send queue with every call (``X-Kassa-Queue``, ``protocol.QueueReport``);
``Contacts`` writes it, with the contact's time, only when it matters: the first report
after a start, a change in what is quarantined or in whether anything waits, a changed
count after ``QUEUE_EVERY``, and otherwise a fresh contact every ``CONTACT_EVERY``. So a
thousand tills calling every few seconds cost a write a minute each, and the page's
"last contact" is never older than a minute for a till that calls.

A till is *silent* when it is not revoked and its last contact (or, never seen, its
enrolment) is older than the owner's threshold (``settings.console_silent_minutes``,
default ``SILENT_DEFAULT_MIN`` minutes). The closed-launch view is the KPI report's
cashier rows (``kpi.report``: one definition), a store manager's filtered to their store.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from agent.errors import AgentError
from sync.backoffice import kpi
from sync.backoffice.context import Context
from sync.backoffice.people import audit
from sync.protocol import ProtocolError, QueueReport, clean_text

SILENT_KEY = "console_silent_minutes"
SILENT_DEFAULT_MIN = 30
SILENT_MIN, SILENT_MAX = 5, 7 * 24 * 60
"""The silent-till threshold's bounds, minutes (five minutes to a week)."""
CONTACT_EVERY = timedelta(seconds=60)
QUEUE_EVERY = timedelta(seconds=15)
STORE_ID_RE = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_.-]{0,31}$")
STORE_NAME_MAX = 80


class StoreError(AgentError):
    """A store or a setting of the page cannot be saved as asked (the message says why)."""

    code = "store_refused"
    title_ru = "Не сохранено"
    title_en = "Not saved"

    def __init__(
        self, message_en: str, message_ru: str, *, code: str = code, **details: Any
    ) -> None:
        """``code``: what was wrong (``bad_store_id``, ``store_exists``...)."""
        super().__init__(message_en, message_ru, **details)
        self.code = code


@dataclass(frozen=True, slots=True)
class StoreRow:
    """A store: its id and name, when it was added, its tills (not revoked) and the
    enrollment codes still open (unused, unexpired)."""

    store_id: str
    name: str
    created_at: str
    tills: int
    open_codes: int


@dataclass(frozen=True, slots=True)
class TillRow:
    """A till as it last told: ``last_seen`` (ISO UTC, None: never called since its
    enrolment), its send queue (``waiting`` events, the ``oldest`` unsent one's time by the
    till's clock, ``quarantined`` events; None when it never reported, as before the
    report existed), when it reported (``queue_at``), its ``software`` (User-Agent) and
    whether it is ``silent`` (for ``silent_minutes``)."""

    terminal_id: str
    store_id: str
    name: str
    enrolled_at: str
    last_seen: str | None
    software: str | None
    revoked: bool
    waiting: int | None
    oldest: str | None
    quarantined: int | None
    queue_at: str | None
    silent: bool
    silent_minutes: int


@dataclass(frozen=True, slots=True)
class Overview:
    """The page's data: stores and tills (of one store for a store manager), the silent
    threshold (minutes) and how many tills are silent now."""

    stores: list[StoreRow]
    tills: list[TillRow]
    threshold_minutes: int
    silent: int
    now: str


@dataclass(frozen=True, slots=True)
class EnrollCode:
    """A new enrollment code (shown once; only its hash is kept) and when it expires."""

    code: str
    store_id: str
    expires_at: str


def silent_threshold(ctx: Context) -> int:
    """The owner's silent-till threshold, minutes."""
    with ctx.db.reading() as tx:
        row = tx.one("SELECT value FROM settings WHERE key = ?", (SILENT_KEY,))
    return int(row[0]) if row is not None else SILENT_DEFAULT_MIN


def set_silent_threshold(ctx: Context, minutes: str | int, *, actor: str) -> int:
    """Set the silent-till threshold (``SILENT_MIN``..``SILENT_MAX`` minutes; text from a
    form is read as digits), audited as ``actor``; returns it."""
    text = str(minutes).strip()
    if not (text.isascii() and text.isdigit()) or not SILENT_MIN <= int(text) <= SILENT_MAX:
        raise StoreError(
            f"the threshold is a whole number of minutes, {SILENT_MIN} to {SILENT_MAX}, "
            f"not {text!r}",
            f"порог: целое число минут от {SILENT_MIN} до {SILENT_MAX}, а не {text!r}",
            code="bad_threshold",
            field="minutes",
        )
    value = int(text)
    now = ctx.clock.now()
    with ctx.db.transaction() as tx:
        before = tx.one("SELECT value FROM settings WHERE key = ?", (SILENT_KEY,))
        tx.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (SILENT_KEY, str(value)),
        )
        audit.record(
            tx,
            now,
            actor,
            "silent_threshold_set",
            None,
            {"minutes": value, "before": int(before[0]) if before else SILENT_DEFAULT_MIN},
        )
    return value


def add_store(ctx: Context, store_id: str, name: str, *, actor: str) -> StoreRow:
    """A new store (``StoreError`` when the id is taken or a field is invalid), audited."""
    store_id = store_id.strip()
    name = " ".join(name.split())
    if not STORE_ID_RE.match(store_id):
        raise StoreError(
            "a store id is 1-32 latin letters, digits, '_', '.', '-', starting with a letter "
            "or digit",
            "код магазина: 1-32 латинские буквы, цифры, '_', '.', '-', первый знак буква или цифра",
            code="bad_store_id",
            field="store_id",
        )
    try:
        clean_text(name, "name", STORE_NAME_MAX)
    except ProtocolError:  # a control or bidi character, too long
        name = ""
    if not name:
        raise StoreError(
            f"a store name is 1-{STORE_NAME_MAX} characters of plain text",
            f"название магазина: 1-{STORE_NAME_MAX} знаков обычного текста",
            code="bad_store_name",
            field="name",
        )
    now = ctx.clock.now()
    with ctx.db.transaction() as tx:
        if tx.one("SELECT 1 FROM stores WHERE store_id = ?", (store_id,)):
            raise StoreError(
                f"store {store_id} already exists",
                f"магазин {store_id} уже есть",
                code="store_exists",
                field="store_id",
            )
        tx.execute(
            "INSERT INTO stores(store_id, name, created_at) VALUES (?, ?, ?)",
            (store_id, name, now.isoformat()),
        )
        audit.record(tx, now, actor, "store_added", store_id, {"name": name})
    return StoreRow(store_id, name, now.isoformat(), 0, 0)


def code_expiry(ctx: Context, code_hash: str) -> str:
    """When the enrollment code with SHA-256 ``code_hash`` expires (ISO 8601)."""
    with ctx.db.reading() as tx:
        row = tx.one("SELECT expires_at FROM enroll_codes WHERE code_hash = ?", (code_hash,))
    assert row is not None, "the code was just made"
    return str(row[0])


def overview(ctx: Context, store_scope: str | None = None) -> Overview:
    """Every store and till (``store_scope``: that store's only), with the alarm."""
    now = ctx.clock.now()
    stamp = now.isoformat()
    where, args = ("WHERE s.store_id = ?", (store_scope,)) if store_scope else ("", ())
    with ctx.db.reading() as tx:
        row = tx.one("SELECT value FROM settings WHERE key = ?", (SILENT_KEY,))
        threshold = int(row[0]) if row is not None else SILENT_DEFAULT_MIN
        stores = tx.all(
            "SELECT s.store_id, s.name, s.created_at, "
            "(SELECT count(*) FROM terminals t WHERE t.store_id = s.store_id "
            "AND t.revoked = 0), "
            "(SELECT count(*) FROM enroll_codes c WHERE c.store_id = s.store_id "
            "AND c.used_by IS NULL AND c.expires_at > ?) "
            f"FROM stores s {where} ORDER BY s.store_id",
            (stamp, *args),
        )
        tills = tx.all(
            "SELECT t.terminal_id, t.store_id, t.name, t.enrolled_at, t.last_seen, t.software, "
            "t.revoked, t.queue_waiting, t.queue_oldest, t.queue_quarantined, t.queue_at "
            f"FROM terminals t JOIN stores s ON s.store_id = t.store_id {where} "
            "ORDER BY t.store_id, t.terminal_id",
            args,
        )
    limit = timedelta(minutes=threshold)
    rows = []
    for r in tills:
        seen = datetime.fromisoformat(str(r[4] or r[3]))
        quiet = now - seen
        silent = not r[6] and quiet > limit
        rows.append(
            TillRow(
                terminal_id=str(r[0]),
                store_id=str(r[1]),
                name=str(r[2]),
                enrolled_at=str(r[3]),
                last_seen=r[4],
                software=r[5],
                revoked=bool(r[6]),
                waiting=None if r[7] is None else int(r[7]),
                oldest=r[8],
                quarantined=None if r[9] is None else int(r[9]),
                queue_at=r[10],
                silent=silent,
                silent_minutes=max(0, int(quiet.total_seconds() // 60)),
            )
        )
    return Overview(
        [StoreRow(str(s[0]), str(s[1]), str(s[2]), int(s[3]), int(s[4])) for s in stores],
        rows,
        threshold,
        sum(t.silent for t in rows),
        stamp,
    )


def closed_launch(
    ctx: Context, period: kpi.Period, store_scope: str | None = None
) -> list[dict[str, Any]]:
    """The KPI report's cashier rows over ``period`` (registrations, cheques, refunds,
    scans vs typed phones, signals), a store manager's (``store_scope``) of their store."""
    rows: list[dict[str, Any]] = kpi.report(ctx, period)["by_cashier"]
    return [r for r in rows if store_scope is None or r["store_id"] == store_scope]


class Contacts:
    """What the back office last wrote of each till's contact and queue (this process),
    so most calls write nothing (see the module's docstring)."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[datetime, QueueReport | None]] = {}
        self._lock = threading.Lock()

    def due(self, terminal_id: str, report: QueueReport | None, now: datetime) -> bool:
        """Whether this call's contact and report are to be written."""
        last = self._last.get(terminal_id)
        if last is None:
            return True
        at, told = last
        if now - at >= CONTACT_EVERY:
            return True
        if report is None or report == told:
            return False
        if told is None or report.quarantined != told.quarantined:
            return True
        if (report.waiting == 0) != (told.waiting == 0):
            return True
        return now - at >= QUEUE_EVERY

    def note(self, ctx: Context, terminal_id: str, report: QueueReport | None) -> None:
        """Write the till's contact (and its report, if any) when ``due``."""
        now = ctx.clock.now()
        with self._lock:
            if not self.due(terminal_id, report, now):
                return
        stamp = now.isoformat()
        with ctx.db.transaction() as tx:
            if report is None:
                tx.execute(
                    "UPDATE terminals SET last_seen = ? WHERE terminal_id = ?",
                    (stamp, terminal_id),
                )
            else:
                tx.execute(
                    "UPDATE terminals SET last_seen = ?, queue_waiting = ?, queue_oldest = ?, "
                    "queue_quarantined = ?, queue_at = ? WHERE terminal_id = ?",
                    (stamp, report.waiting, report.oldest, report.quarantined, stamp, terminal_id),
                )
        with self._lock:
            self._last[terminal_id] = (now, report)

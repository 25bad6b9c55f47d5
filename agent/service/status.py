"""The till's state as the offline policy, the status bar, ``/v1/status`` and ``kassa sync
status`` see it: online or not (the back office answered within the programme's grace),
the offline counters, the journal waiting to be sent, holds and print jobs in force."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from agent import journal, printq, training
from agent.results import JournalPage, OfflineStatus, SyncView, TillStatus
from agent.service import holds
from agent.service.context import Context
from agent.store import disk_free_bytes, disk_full


class CounterColumns(Protocol):
    """The counters the offline policy and the journal read (text as stored, None when
    not yet set): ``Counters``, and the same names in the cheque read's row."""

    @property
    def last_contact(self) -> str | None: ...
    @property
    def acked_events(self) -> str | None: ...
    @property
    def offline_consecutive(self) -> str | None: ...
    @property
    def terminal_offline_spent(self) -> str | None: ...
    @property
    def last_seq(self) -> str | None: ...


class Counters(NamedTuple):
    last_contact: str | None
    acked_events: str | None
    offline_consecutive: str | None
    terminal_offline_spent: str | None
    last_seq: str | None


_STORED_AS = {"terminal_offline_spent": "offline_spent"}
"""Counters stored under another name (``sync_state.offline_spent``: the whole till's)."""


def counter_sql(name: str) -> str:
    """A scalar subquery reading counter ``name`` of ``Counters`` (``last_seq`` is in
    ``meta``, the others in ``sync_state``)."""
    if name == "last_seq":
        return "(SELECT value FROM meta WHERE key = 'last_seq')"
    return f"(SELECT value FROM sync_state WHERE name = '{_STORED_AS.get(name, name)}')"


# Every counter in one statement, one row.
STATUS_SQL = "SELECT " + ", ".join(counter_sql(n) for n in Counters._fields)


def offline_from(ctx: Context, c: CounterColumns, now: datetime) -> tuple[OfflineStatus, int]:
    """The offline status and the journal's last ``seq`` from the counters ``c`` (read in
    the caller's transaction, so the counters a commit writes build on what it read)."""
    rules = ctx.programme()
    last_dt = datetime.fromisoformat(c.last_contact) if c.last_contact else None
    online = (
        last_dt is not None
        and (now - last_dt).total_seconds() <= rules.offline.online_grace_seconds
    )
    # last_seq - acked, not count(*): a count scans the backlog, which grows in an outage.
    last_seq = int(c.last_seq or 0)
    status = OfflineStatus(
        online=online,
        last_contact=last_dt,
        consecutive_offline=int(c.offline_consecutive or 0),
        terminal_offline_spent=int(c.terminal_offline_spent or 0),
        events_waiting=last_seq - int(c.acked_events or 0),
    )
    return status, last_seq


def read_counters(conn: sqlite3.Connection) -> Counters:
    return Counters._make(conn.execute(STATUS_SQL).fetchone())


def offline_status(ctx: Context) -> OfflineStatus:
    with ctx.store.read() as conn:
        return offline_from(ctx, read_counters(conn), ctx.clock.now())[0]


def record_contact(ctx: Context) -> None:
    """The back office answered: the till is online; offline counters start again.

    Called by the sync client after every successful exchange.
    """
    with ctx.store.write() as conn:
        journal.mark_contact(conn, ctx.now_iso())


def record_sync_error(ctx: Context, text: str) -> None:
    """Remember why the last exchange with the back office failed (shown by status)."""
    journal.record_error(ctx.store, text, ctx.now_iso())


_PENDING_KEYS = (
    "seq",
    "event_id",
    "terminal_id",
    "terminal_epoch",
    "type",
    "schema_version",
    "created_at",
    "payload",
    "payload_hash",
)


def pending_page(ctx: Context, limit: int) -> tuple[list[dict[str, Any]], int]:
    """The oldest ``limit`` journal rows waiting (in ``seq`` order) and how many wait in
    all, read together (the count is taken before the LIMIT, in the same query)."""
    with ctx.store.read() as conn:
        rows = conn.execute(
            f"SELECT {', '.join(_PENDING_KEYS)}, count(*) OVER () FROM outbox "
            "WHERE status = 'pending' ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
    total = int(rows[0][-1]) if rows else 0
    return [dict(zip(_PENDING_KEYS, r[:-1], strict=True)) for r in rows], total


def journal_page(ctx: Context, limit: int) -> JournalPage:
    """The oldest ``limit`` events waiting, and whether more wait."""
    shown, total = pending_page(ctx, limit)
    return JournalPage(
        pending=shown,
        shown=len(shown),
        total=total,
        truncated=total > len(shown),
        limit=limit,
        status=offline_status(ctx),
    )


def till_status(ctx: Context) -> TillStatus:
    """The till at a glance (``/v1/status``, the status bar)."""
    off = offline_status(ctx)
    return TillStatus(
        terminal_id=ctx.terminal_id,
        rules_version=ctx.programme().version,
        online=off.online,
        enrolled=ctx.store.meta("sync_token") is not None,
        last_contact=off.last_contact,
        events_waiting=off.events_waiting,
        holds_active=holds.active_count(ctx.store, ctx.clock.now()),
        print_queue=printq.queue_depth(ctx.store),
    )


QUARANTINE_SHOWN = 10
"""The latest quarantined events ``sync_status`` lists."""


def sync_status(ctx: Context) -> SyncView:
    """What ``kassa sync status`` prints: the journal's sync state, whether the back
    office answers now, the enrolment and the latest quarantined events."""
    st = journal.status(ctx.store)
    full = disk_full(ctx.store.path)
    if full and not (st.last_error or "").startswith("till store"):
        # The sync loop could not record its failure: the disk has no room for that either.
        free = disk_free_bytes(ctx.store.path) or 0
        st = replace(
            st,
            last_error=f"till store: the disk is full ({free} bytes free): nothing can be "
            "saved, the events wait until space is freed",
        )
    return SyncView(
        **asdict(st),
        disk_full=full,
        online=offline_status(ctx).online,
        enrolled=ctx.store.meta("sync_token") is not None,
        backoffice_url=ctx.store.meta("backoffice_url"),
        terminal_id=ctx.terminal_id,
        quarantine=tuple(journal.quarantine_rows(ctx.store)[-QUARANTINE_SHOWN:]),
    )


def is_training(ctx: Context) -> bool:
    """Whether the store is a training copy (``agent.training``): its journal is never
    sent to the back office."""
    return training.is_training(ctx.store)

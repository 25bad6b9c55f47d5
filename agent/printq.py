"""The print queue in the till store: the SQL behind ``drivers.printq.PrintWorker``.

Why here and not in the driver: a slip is queued in the sale's own transaction
(``agent.service.context.Context.queue_print``), so the queue is part of the store's
durable state and its SQL belongs to the core; the driver only moves bytes. A printer
fault must never lose or block a sale, so jobs leave the queue only when printed (or when
the slip itself cannot be rendered, a bug kept visible as ``failed``).

Job life (``print_jobs.status``)::

    queued --claim_next--> printing --mark_printed--> printed
       ^                      |
       +---- mark_failed -----+   (printer fault: back to queued, last_error, retried later)
                              +--> failed             (permanent: the slip cannot be rendered)

``attempts`` counts claims. A job left ``printing`` by a crash is put back by
``requeue_stale`` when the worker starts (it may then print twice: at-least-once across a
crash, exactly once across printer faults). Every write is one ``store.write()``
transaction (``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from agent import codec
from agent.errors import NotFoundError
from agent.slip import Slip
from agent.store import Store

__all__ = [
    "FAILED",
    "PRINTED",
    "PRINTING",
    "QUEUED",
    "PrintJob",
    "claim_next",
    "enqueue_copy",
    "get_job",
    "mark_failed",
    "mark_printed",
    "queue_depth",
    "recent_jobs",
    "requeue_stale",
]

QUEUED = "queued"
PRINTING = "printing"
PRINTED = "printed"
FAILED = "failed"

_COLUMNS = (
    "job_id, receipt_id, kind, created_at, slip, status, attempts, last_error, printed_at, copy"
)


@dataclass(frozen=True, slots=True)
class PrintJob:
    """One row of ``print_jobs``; ``slip`` decoded. Times are ISO 8601 strings as stored."""

    job_id: int
    receipt_id: str
    kind: str
    created_at: str
    slip: Slip
    status: str
    attempts: int
    last_error: str | None
    printed_at: str | None
    copy: bool


def _job(row: tuple[object, ...]) -> PrintJob:
    job_id, receipt_id, kind, created_at, slip, status, attempts, error, printed, copy = row
    return PrintJob(
        job_id=int(str(job_id)),
        receipt_id=str(receipt_id),
        kind=str(kind),
        created_at=str(created_at),
        slip=codec.loads(Slip, str(slip)),
        status=str(status),
        attempts=int(str(attempts)),
        last_error=None if error is None else str(error),
        printed_at=None if printed is None else str(printed),
        copy=bool(copy),
    )


def _select(conn: sqlite3.Connection, where: str, params: tuple[object, ...]) -> PrintJob | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM print_jobs WHERE {where}", params).fetchone()
    return None if row is None else _job(row)


def claim_next(store: Store) -> PrintJob | None:
    """Take the oldest queued job (FIFO by ``job_id``): status ``printing``, attempts + 1.

    Returns None when nothing is queued. Slips print in the order the sales were made.
    """
    with store.write() as conn:
        job = _select(conn, "status = ? ORDER BY job_id LIMIT 1", (QUEUED,))
        if job is None:
            return None
        conn.execute(
            "UPDATE print_jobs SET status = ?, attempts = attempts + 1 WHERE job_id = ?",
            (PRINTING, job.job_id),
        )
    return replace(job, status=PRINTING, attempts=job.attempts + 1)


def mark_printed(store: Store, job_id: int, now: datetime) -> bool:
    """Record that the printer took the slip (write and status check both succeeded).

    Only a job this worker claimed (status ``printing``) changes; returns False otherwise,
    so a stale worker cannot mark a re-queued job printed.
    """
    with store.write() as conn:
        cur = conn.execute(
            "UPDATE print_jobs SET status = ?, printed_at = ?, last_error = NULL "
            "WHERE job_id = ? AND status = ?",
            (PRINTED, now.isoformat(), job_id, PRINTING),
        )
        return cur.rowcount == 1


def mark_failed(store: Store, job_id: int, error: str, *, permanent: bool = False) -> None:
    """Record a failed attempt with its error (English, for logs and the job list).

    A printer fault puts the job back in the queue (retried after a backoff, never lost);
    ``permanent=True`` (the slip cannot be rendered) parks it as ``failed`` so it does not
    block the slips behind it; the cashier can still reprint it after a fix.
    """
    with store.write() as conn:
        conn.execute(
            "UPDATE print_jobs SET status = ?, last_error = ? WHERE job_id = ? AND status = ?",
            (FAILED if permanent else QUEUED, error[:500], job_id, PRINTING),
        )


def requeue_stale(store: Store) -> int:
    """Put jobs left ``printing`` (the process died mid-print) back in the queue; returns
    how many. Call once when the worker starts, before claiming."""
    with store.write() as conn:
        cur = conn.execute(
            "UPDATE print_jobs SET status = ?, "
            "last_error = coalesce(last_error, 'interrupted while printing') WHERE status = ?",
            (QUEUED, PRINTING),
        )
        return cur.rowcount


def get_job(store: Store, job_id: int) -> PrintJob:
    with store.read() as conn:
        job = _select(conn, "job_id = ?", (job_id,))
    if job is None:
        raise NotFoundError(f"no print job {job_id}", f"слипа №{job_id} нет")
    return job


def recent_jobs(store: Store, limit: int = 20) -> list[PrintJob]:
    """The newest ``limit`` jobs, newest first (the reprint list on the cashier screen)."""
    with store.read() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM print_jobs ORDER BY job_id DESC LIMIT ?", (limit,)
        ).fetchall()
    return [_job(r) for r in rows]


def queue_depth(store: Store) -> int:
    """Slips waiting for the printer (queued or being printed), for the status bar."""
    row = store.one("SELECT count(*) FROM print_jobs WHERE status IN (?, ?)", (QUEUED, PRINTING))
    return 0 if row is None else int(row[0])


def enqueue_copy(store: Store, job_id: int, now: datetime) -> int:
    """Queue a reprint of ``job_id``: the same slip with ``copy=True`` (printed «КОПИЯ»).

    The slip is the stored one, so the copy shows what the member got the first time (the
    balance then, not now). Any job can be copied, printed or not. Returns the new job id;
    ``NotFoundError`` if ``job_id`` does not exist.
    """
    with store.write() as conn:
        job = _select(conn, "job_id = ?", (job_id,))
        if job is None:
            raise NotFoundError(f"no print job {job_id}", f"слипа №{job_id} нет")
        slip = replace(job.slip, copy=True)
        cur = conn.execute(
            "INSERT INTO print_jobs(receipt_id, kind, created_at, slip, copy) "
            "VALUES (?, ?, ?, ?, 1)",
            (job.receipt_id, job.kind, now.astimezone(UTC).isoformat(), codec.dumps(slip)),
        )
        return int(cur.lastrowid or 0)

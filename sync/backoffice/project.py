"""The projector: applies accepted events to the ledger, exactly once, in ``pos`` order.

A push only accepts events (``ingest``); this module turns them into balances, lots,
tiers, purchases, refunds, registrations and change-feed entries. One pass takes the
oldest accepted events (``events.status = 'accepted'``, ``ORDER BY pos``, a partial index
holds exactly those), applies them as one set (``batch.Batch``: every member, receipt and
refunded purchase read with one statement each, the effects computed in memory in
``pos`` order, the writes in bulk) and writes every event's verdict (``applied`` or
``rejected`` with a code) in the same transaction as its effects, under the feed lock: a
crash before the commit leaves the events accepted (projected again, from scratch), after
it leaves them decided; two projectors (threads, processes, a push projecting inline)
never apply one event twice, because each pass reads the accepted events inside the
locked transaction.

Order: ``pos`` is acceptance order, so a terminal's events are projected in its seq
order (a refund after its purchase), and a terminal's decided events are always a prefix
of its accepted ones; ``verdicts`` relies on that to give a till a cursor that never
skips an event.

``kassa backoffice serve`` runs one ``Projector`` thread (the app's lifespan). While pushes
arrive it yields to them: nothing until the oldest accepted event has waited
``BUSY_LAG_S``, then small passes with pauses nine times as long as the pass (at most a
tenth of the time; a till pushing a few events at the counter is projected inline by its
own push anyway); it catches up at full speed when they stop. Its backlog is in
``GET /v1/health`` and the KPI report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sync.backoffice.batch import Batch, chunks
from sync.backoffice.checks import Rejected, is_db_outage, parse_payload
from sync.backoffice.context import Context
from sync.backoffice.db import Tx, marks
from sync.backoffice.feed import member_records
from sync.backoffice.terminal import Terminal
from sync.backoffice.worker import RoundWorker
from sync.protocol import EventResult, WireEvent

CHUNK = 500  # accepted events per pass when the back office is idle
BUSY_CHUNK = 50  # ... while pushes are arriving
BUSY_YIELD = 9.0  # while busy, pause this many times the last pass's duration
IDLE_S = 0.5  # pause when nothing is waiting
BUSY_LAG_S = 10.0  # while busy, project only once the oldest accepted event waited this long
VERDICTS_PAGE_MAX = 1000

# Every accepted event lies after the last position projected (``settings.projected_pos``:
# acceptance commits positions in order and the projector decides a prefix), so each
# query of the accepted starts its index scan there: on PostgreSQL the entries of decided
# events stay in the partial index as dead tuples until a vacuum, and a scan from the start
# would walk all of them on every pass.
AFTER = (
    "status = 'accepted' AND pos > "
    "COALESCE((SELECT CAST(value AS BIGINT) FROM settings WHERE key = 'projected_pos'), 0)"
)
_ACCEPTED = (
    "SELECT event_id, terminal_id, epoch, seq, type, schema_version, created_at, payload, "
    f"payload_hash, pos FROM events WHERE {AFTER} ORDER BY pos LIMIT ?"
)


def backlog(ctx: Context) -> int:
    """Accepted events not yet projected."""
    with ctx.db.reading() as tx:
        return int(tx.one(f"SELECT count(*) FROM events WHERE {AFTER}")[0])


def oldest_wait_s(ctx: Context) -> float:
    """How long the oldest accepted event has waited for the projector (0 if none)."""
    with ctx.db.reading() as tx:
        row = tx.one(f"SELECT received_at FROM events WHERE {AFTER} ORDER BY pos LIMIT 1")
    if row is None:
        return 0.0
    return (ctx.clock.now() - datetime.fromisoformat(row[0])).total_seconds()


def backlog_over(ctx: Context, n: int) -> bool:
    """Whether more than ``n`` events wait (reads at most ``n + 1`` index entries)."""
    with ctx.db.reading() as tx:
        row = tx.one(
            f"SELECT count(*) FROM (SELECT 1 FROM events WHERE {AFTER} LIMIT ?) AS w",
            (n + 1,),
        )
    return int(row[0]) > n


def run_once(ctx: Context, limit: int = CHUNK) -> int:
    """Project up to ``limit`` accepted events (oldest first); returns how many."""
    try:
        return _pass(ctx, limit, careful=False)
    except Exception as e:
        if is_db_outage(e):
            raise
        # A collected write was refused by the database: again, event by event.
        return _pass(ctx, limit, careful=True)


def run_all(ctx: Context) -> int:
    """Project everything accepted (tests, ``kassa backoffice report``); returns how many."""
    total = 0
    while n := run_once(ctx):
        total += n
    return total


def _pass(ctx: Context, limit: int, *, careful: bool) -> int:
    now = ctx.clock.now()
    with ctx.db.transaction(feed=True) as tx, tx.pinned():  # plans pinned for the pass
        rows = tx.all_by_index(_ACCEPTED, (limit,))
        if not rows:
            return 0
        terminals: dict[str, Terminal] = {}
        ids = sorted({r[1] for r in rows})
        for part in chunks(ids):
            for tid, store_id, name in tx.all(
                "SELECT terminal_id, store_id, name FROM terminals "
                f"WHERE terminal_id IN ({marks(len(part))})",
                part,
            ):
                terminals[tid] = Terminal(tid, store_id, name)
        events = [
            WireEvent(r[0], r[1], r[2], int(r[3]), r[4], int(r[5]), r[6], r[7], r[8]) for r in rows
        ]
        _apply(ctx, terminals, events, now, tx, careful)
        tx.execute(
            "INSERT INTO settings(key, value) VALUES ('projected_pos', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(int(rows[-1][9])),),
        )
    return len(rows)


def _apply(
    ctx: Context,
    terminals: dict[str, Terminal],
    events: list[WireEvent],
    now: datetime,
    tx: Tx,
    careful: bool,
) -> None:
    """Apply the pass's accepted events, in ``pos`` order, as one ``Batch`` (a payload
    that does not parse is refused like any other event the ledger cannot apply)."""
    payloads: list[dict[str, Any] | Rejected] = []
    for ev in events:
        try:
            payloads.append(parse_payload(ev))
        except Rejected as e:
            payloads.append(e)
    batch = Batch(ctx.programmes, now, tx, careful)
    batch.prefetch(events, payloads)
    for ev, payload in zip(events, payloads, strict=True):
        batch.one(ev, payload, terminals[ev.terminal_id])
    batch.finish()


# ---------------------------------------------------------------------- verdicts
def verdicts_of(
    ctx: Context, event_ids: list[str]
) -> tuple[dict[str, EventResult], dict[str, dict[str, Any]]]:
    """The decided verdicts among ``event_ids`` and the records of their members."""
    out: dict[str, EventResult] = {}
    with ctx.db.reading() as tx:
        for part in chunks(event_ids):
            for event_id, seq, status, code, message, member_id in tx.all(
                "SELECT event_id, seq, status, code, message, member_id FROM events "
                f"WHERE event_id IN ({marks(len(part))}) AND status <> 'accepted'",
                part,
            ):
                out[event_id] = EventResult(event_id, int(seq), status, code, message, member_id)
        members = member_records(tx, {r.member_id for r in out.values() if r.member_id})
    return out, members


def verdicts(ctx: Context, terminal_id: str, after: int, limit: int) -> dict[str, Any]:
    """A page of this terminal's decided events after position ``after``, in ``pos``
    order, up to the first one still waiting (so ``next`` never passes an undecided
    event), with the current records of the members they touched."""
    with ctx.db.reading() as tx:
        rows = tx.all(
            "SELECT pos, event_id, seq, status, code, message, member_id FROM events "
            "WHERE terminal_id = ? AND pos > ? ORDER BY pos LIMIT ?",
            (terminal_id, after, limit),
        )
        decided: list[EventResult] = []
        waiting = False
        nxt = after
        for pos, event_id, seq, status, code, message, member_id in rows:
            if status == "accepted":
                waiting = True
                break
            decided.append(EventResult(event_id, int(seq), status, code, message, member_id))
            nxt = int(pos)
        members = member_records(tx, {r.member_id for r in decided if r.member_id})
    return {
        "verdicts": [r.to_dict() for r in decided],
        "members": members,
        "next": nxt,
        "more": not waiting and len(rows) == limit,
        "waiting": waiting,
    }


class Projector(RoundWorker):
    """The projector thread of a serving back office (started and stopped by the app).

    While pushes arrive it waits until the oldest accepted event is ``BUSY_LAG_S`` old
    (a burst of backlogs is taken at full speed first), then takes at most a tenth of the
    time, so the ledger never falls behind without bound under a steady stream."""

    name = "kassa-projector"
    idle_s = IDLE_S

    def round(self, busy: bool) -> int:
        if busy and oldest_wait_s(self.ctx) < BUSY_LAG_S:
            return 0
        return run_once(self.ctx, BUSY_CHUNK if busy else CHUNK)

    def busy_pause(self, elapsed: float) -> float:
        return BUSY_YIELD * elapsed

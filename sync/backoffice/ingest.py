"""Accepting a pushed batch: durable, deduplicated, answered fast; applied behind.

Why two steps: a till back from an outage pushes its whole backlog, and the ledger work of
an event (the member's state, lots, tiers, the change feed; about a millisecond of CPU)
would hold that drain to about a thousand events a second. So the push only *accepts*:

1. every event's envelope is checked in Python (``checks``: seq, epoch, type, schema,
   size, the payload's SHA-256, the till's time), no database. The payload is read by
   the projector: parsing it is most of an event's cost, and the hash proves it is the
   text the till wrote (a payload that is not a JSON object of integers is refused
   there, ``bad_payload``, and its verdict says so);
2. one transaction (under the acceptance lock, so positions commit in order; not the
   feed lock, so pushes go on while the projector works) looks up the
   batch's event ids, writes each new event's row to ``events`` with status
   ``accepted`` (or ``rejected`` when the checks refused it) and its position ``pos``
   (a gapless counter over all tills, kept in ``settings``), records conflicts, tracks
   each terminal epoch's seq range (gaps are reported in the answer) and flags clock
   trouble. When it commits, the event is durably on the server: the answer says
   ``accepted``, and a resend is a ``duplicate`` (or ``accepted`` again while it waits).

The projector (``project``) then applies accepted events to the ledger in ``pos`` order,
exactly once: it changes an event's status to ``applied`` or ``rejected`` (with a code) in
the same transaction as the event's effects. Tills learn the verdicts from
``GET /v1/verdicts`` (``project.verdicts``) or, when the back office is idle, in the push
answer itself: a small push with no backlog ahead of it is projected at once
(``INLINE_MAX_EVENTS``), so a till online at the counter gets ``applied`` and the member's
new record in the same round trip.

Exactly once: the ``events`` row keyed by ``event_id`` is written once, at acceptance; the
same id with another payload hash is a ``conflict`` and changes nothing; the projector
claims an event by its status, under the feed lock, in the transaction of its effects.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sync.backoffice import project
from sync.backoffice.batch import FLAG_INSERT, chunks, flag_row, storable
from sync.backoffice.checks import Rejected, check_envelope, is_db_outage
from sync.backoffice.context import Context
from sync.backoffice.db import Tx, marks
from sync.backoffice.utf8 import UTF8_TEXT, Utf8Text
from sync.protocol import EventResult, WireEvent

if TYPE_CHECKING:
    from sync.backoffice.terminal import Terminal

log = logging.getLogger("kassa.backoffice.ingest")

CLOCK_SKEW_FLAG_SECONDS = 300
INLINE_MAX_EVENTS = 50
"""A push of at most this many new events, with no other accepted events waiting, is
projected before the answer (the till at the counter gets its verdicts at once)."""

EVENT_COLUMNS = (  # the events row of an accepted (or refused) event; PostgreSQL types
    ("event_id", "text"),
    ("terminal_id", "text"),
    ("epoch", "text"),
    ("seq", "int8"),
    ("type", "text"),
    ("schema_version", "int4"),
    ("payload_hash", "text"),
    ("payload", UTF8_TEXT),  # the UTF-8 bytes the hash was checked on (``utf8.Utf8Text``)
    ("created_at", "text"),
    ("received_at", "text"),
    ("status", "text"),
    ("code", "text"),
    ("message", "text"),
    ("pos", "int8"),
)
_NO_PAYLOAD = Utf8Text(b"")  # a refused event's row keeps no payload
ENVELOPE_REFUSALS = frozenset(
    {
        "bad_seq",
        "bad_epoch",
        "unknown_type",
        "unsupported_schema",
        "payload_too_large",
        "hash_mismatch",
    }
)
"""``check_envelope``'s refusal codes (but its ``created_at`` check's ``bad_payload``,
which the projector's payload refusals share): the event's row keeps none of its payload,
so the id may be taken by a sound event later (``_Acceptance._revives``)."""


def push(
    ctx: Context, terminal: Terminal, events: tuple[WireEvent, ...], now: datetime, skew: Any
) -> dict[str, Any]:
    """Accept a batch (see module doc); returns the answer without ``server_time``."""
    results: list[EventResult] = []
    with ctx.db.transaction(accept=True) as tx:
        accept = _Acceptance(tx, terminal, now)
        accept.prepare(events)
        # The rows are checked and made while the database takes them (on PostgreSQL a
        # COPY: the server stores one part of the batch while Python checks the next).
        tx.insert_many("events", EVENT_COLUMNS, accept.rows(events, results))
        accept.finish_positions()
        gaps = accept.track_seq(events)  # after the insert: the gap query reads the rows
        if skew is not None and abs(skew) > CLOCK_SKEW_FLAG_SECONDS:
            accept.flag("clock_skew", None, {"skew_seconds": round(skew, 1)})
        accept.write()
    waiting = [r.event_id for r in results if r.status == "accepted"]
    members: dict[str, Any] = {}
    if waiting and len(waiting) <= INLINE_MAX_EVENTS:
        try:
            if not project.backlog_over(ctx, INLINE_MAX_EVENTS):
                project.run_once(ctx, INLINE_MAX_EVENTS)
                verdicts, members = project.verdicts_of(ctx, waiting)
                results = [_decided(r, verdicts.get(r.event_id)) for r in results]
        except Exception as e:
            if not is_db_outage(e):
                raise
            # Accepted is durable: the verdicts come later, from the projector.
            log.warning("inline projection failed; left to the projector: %s", e)
    again = [r.event_id for r in results if r.event_id not in accept.new_ids]
    if again:
        results, members = _with_records(ctx, results, again, members)
    return {"results": [r.to_dict() for r in results], "gaps": gaps, "members": members}


def _with_records(
    ctx: Context, results: list[EventResult], again: list[str], members: dict[str, Any]
) -> tuple[list[EventResult], dict[str, Any]]:
    """The answers to events sent again (an answer the till never got) that the ledger
    decided earlier, each with its member and the member's current record, like any
    verdict: the till that takes the ack without the record would keep its own state with
    an old feed position, and let an older feed entry replace it."""
    decided, records = project.verdicts_of(ctx, again)
    out = []
    for r in results:
        known = decided.get(r.event_id)
        if known is not None and r.member_id is None and r.status in ("duplicate", "rejected"):
            out.append(replace(r, member_id=known.member_id))
        else:
            out.append(r)
    return out, {**records, **members}


def _decided(result: EventResult, verdict: EventResult | None) -> EventResult:
    """An ``accepted`` result replaced by its verdict, if there is one (the seq stays the
    request's: a batch may carry one event id twice)."""
    if result.status != "accepted" or verdict is None:
        return result
    return replace(verdict, seq=result.seq)


class _Acceptance:
    """The work of one push transaction."""

    def __init__(self, tx: Tx, terminal: Terminal, now: datetime) -> None:
        self.tx = tx
        self.terminal = terminal
        self.now_iso = now.isoformat()
        self.new_ids: set[str] = set()
        self._known: dict[str, tuple[str, str, str | None]] = {}
        self.pos = 0
        self.conflicts: list[tuple[Any, ...]] = []
        self.revived: list[tuple[Any, ...]] = []
        self.flags: list[tuple[Any, ...]] = []

    def known(self, events: tuple[WireEvent, ...]) -> dict[str, tuple[str, str, str | None]]:
        """The batch's event ids already in the ledger: payload hash, status, code."""
        out: dict[str, tuple[str, str, str | None]] = {}
        ids = [e.event_id for e in events]
        if self.tx.dialect == "postgresql":
            # One parameter (one plan, one round trip): the ids as one comma-separated text,
            # split by the server. They are 32 hex digits (``parse_push`` checked each), and
            # psycopg would quote each element of a text array with a regex (~2 us an id).
            rows = self.tx.all(
                "SELECT event_id, payload_hash, status, code FROM events "
                "WHERE event_id = ANY(string_to_array(?, ','))",
                (",".join(ids),),
            )
        else:
            rows = [
                row
                for part in chunks(ids)
                for row in self.tx.all(
                    "SELECT event_id, payload_hash, status, code FROM events "
                    f"WHERE event_id IN ({marks(len(part))})",
                    part,
                )
            ]
        for row in rows:
            out[row[0]] = (row[1], row[2], row[3])
        return out

    def prepare(self, events: tuple[WireEvent, ...]) -> None:
        """The reads acceptance needs, before the rows are written: the known ids and the
        last position given."""
        self._known = self.known(events)
        row = self.tx.one("SELECT value FROM settings WHERE key = 'events_pos'")
        self.pos = int(row[0]) if row else 0

    def rows(
        self, events: tuple[WireEvent, ...], results: list[EventResult]
    ) -> Iterator[tuple[Any, ...]]:
        """Check each event and yield the ``events`` row of each new one (with status
        ``accepted``, or ``rejected`` when its envelope is refused); ``results`` gets
        one result per event, in order. CPU only: no database call while it runs."""
        known = self._known
        for ev in events:
            prior = known.get(ev.event_id)
            if prior is not None and not self._revives(ev, prior, results):
                results.append(self._again(ev, prior))
                continue
            if prior is not None:
                continue
            try:
                check_envelope(ev)
                status, code, message = "accepted", None, None
                payload = Utf8Text(ev.payload_bytes())
            except Rejected as e:
                status, code, message = "rejected", e.code, storable(e.message)
                payload = _NO_PAYLOAD
            self.pos += 1
            known[ev.event_id] = (ev.payload_hash, status, code)
            self.new_ids.add(ev.event_id)
            results.append(EventResult(ev.event_id, ev.seq, status, code, message))
            yield (
                ev.event_id,
                ev.terminal_id,
                ev.terminal_epoch,
                ev.seq,
                ev.type,
                ev.schema_version,
                ev.payload_hash,
                payload,
                ev.created_at,
                self.now_iso,
                status,
                code,
                message,
                self.pos,
            )

    def _revives(
        self, ev: WireEvent, prior: tuple[str, str, str | None], results: list[EventResult]
    ) -> bool:
        """Whether ``ev`` takes the place of an earlier event of its id that was refused
        for its envelope (a payload garbled on the way, a bad hash): such a refusal kept
        nothing of the till's event, so the genuine one sent later is accepted (its row
        updated, with a new position) instead of being a ``conflict`` for ever."""
        if prior[1] != "rejected" or prior[2] not in ENVELOPE_REFUSALS:
            return False
        try:
            check_envelope(ev)
        except Rejected:
            return False
        self.pos += 1
        self._known[ev.event_id] = (ev.payload_hash, "accepted", None)
        self.revived.append(
            (
                ev.terminal_id,
                ev.terminal_epoch,
                ev.seq,
                ev.type,
                ev.schema_version,
                ev.payload_hash,
                ev.payload,
                ev.created_at,
                self.now_iso,
                self.pos,
                ev.event_id,
            )
        )
        results.append(EventResult(ev.event_id, ev.seq, "accepted"))
        return True

    def finish_positions(self) -> None:
        """Store the last position given (with the rows, in the same transaction)."""
        if self.new_ids:
            self.tx.execute(
                "INSERT INTO settings(key, value) VALUES ('events_pos', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(self.pos),),
            )

    def _again(self, ev: WireEvent, prior: tuple[str, str, str | None]) -> EventResult:
        """An event id the ledger already holds (a resend, or a clash of ids)."""
        if prior[0] != ev.payload_hash:
            self.conflicts.append((ev.event_id, ev.terminal_id, ev.payload_hash, self.now_iso))
            return EventResult(
                ev.event_id,
                ev.seq,
                "conflict",
                "payload_mismatch",
                "this event id is already in the ledger with another payload",
            )
        if prior[1] == "rejected":
            return EventResult(ev.event_id, ev.seq, "rejected", prior[2], "rejected before")
        if prior[1] == "accepted":  # still waiting for the projector
            return EventResult(ev.event_id, ev.seq, "accepted")
        return EventResult(ev.event_id, ev.seq, "duplicate")

    def flag(self, kind: str, ev: WireEvent | None, detail: dict[str, Any]) -> None:
        self.flags.append(
            flag_row(
                kind,
                ev.event_id if ev else None,
                None,
                self.terminal.terminal_id,
                detail,
                self.now_iso,
            )
        )

    def write(self) -> None:
        self.tx.executemany(
            "UPDATE events SET terminal_id = ?, epoch = ?, seq = ?, type = ?, "
            "schema_version = ?, payload_hash = ?, payload = ?, created_at = ?, "
            "received_at = ?, status = 'accepted', code = NULL, message = NULL, pos = ? "
            "WHERE event_id = ? AND status = 'rejected'",
            self.revived,
        )
        self.tx.executemany(
            "INSERT INTO conflicts(event_id, terminal_id, payload_hash, received_at) "
            "VALUES (?,?,?,?)",
            self.conflicts,
        )
        self.tx.execute(
            "UPDATE terminals SET last_seen = ? WHERE terminal_id = ?",
            (self.now_iso, self.terminal.terminal_id),
        )
        self.tx.executemany(FLAG_INSERT, self.flags)

    def track_seq(self, events: tuple[WireEvent, ...]) -> list[dict[str, Any]]:
        """Keep per (terminal, epoch) seq bounds; report the missing ranges, if any.

        Also flags a till clock that runs backwards (created_at falling as seq rises).
        """
        gaps: list[dict[str, Any]] = []
        tid = self.terminal.terminal_id
        by_epoch: dict[str, list[WireEvent]] = {}
        for ev in events:
            if ev.seq >= 1 and ev.terminal_epoch:
                by_epoch.setdefault(ev.terminal_epoch, []).append(ev)
        new_ids = self.new_ids
        for epoch, evs in by_epoch.items():
            fresh = [e for e in evs if e.event_id in new_ids]
            row = self.tx.one(
                "SELECT min_seq, max_seq, events, last_created_at FROM epochs "
                "WHERE terminal_id = ? AND epoch = ?",
                (tid, epoch),
            )
            lo = min((e.seq for e in fresh), default=None)
            hi = max((e.seq for e in fresh), default=None)
            last_created = row[3] if row else None
            for e in sorted(fresh, key=lambda e: e.seq):
                if last_created and e.created_at < last_created and (row is None or e.seq > row[1]):
                    self.flag("clock_backwards", e, {"created_at": e.created_at})
                last_created = max(last_created or e.created_at, e.created_at)
            if row is None:
                if not fresh:
                    continue
                # A terminal's first epoch starts at seq 1 (a missing head is a gap); a
                # restored store's epoch starts wherever its backup left off.
                first = self.tx.one("SELECT 1 FROM epochs WHERE terminal_id = ?", (tid,))
                lo = 1 if first is None else lo
                self.tx.execute(
                    "INSERT INTO epochs(terminal_id, epoch, min_seq, max_seq, events, "
                    "last_created_at, first_seen) VALUES (?,?,?,?,?,?,?)",
                    (tid, epoch, lo, hi, len(fresh), last_created, self.now_iso),
                )
                mn, mx, count = lo, hi, len(fresh)
            else:
                mn = min(row[0], lo) if lo is not None else row[0]
                mx = max(row[1], hi) if hi is not None else row[1]
                count = row[2] + len(fresh)
                if fresh:
                    self.tx.execute(
                        "UPDATE epochs SET min_seq = ?, max_seq = ?, events = ?, "
                        "last_created_at = ? WHERE terminal_id = ? AND epoch = ?",
                        (mn, mx, count, last_created, tid, epoch),
                    )
            assert mn is not None and mx is not None
            if count < mx - mn + 1:
                for a, b in self.tx.all(
                    "SELECT COALESCE(prev, ?) + 1, seq - 1 FROM (SELECT seq, LAG(seq) OVER "
                    "(ORDER BY seq) AS prev FROM events WHERE terminal_id = ? AND epoch = ?) "
                    "AS s WHERE seq - COALESCE(prev, ?) > 1",
                    (mn - 1, tid, epoch, mn - 1),
                ):
                    gaps.append({"epoch": epoch, "from": int(a), "to": int(b)})
        return gaps

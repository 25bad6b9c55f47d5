"""The member events: a durable outbox in the ledger's database, written in the
transaction of the change that causes them.

An event is never lost (it commits with its cause) and never invented (a rolled-back
change rolls its events back too). Whoever hands events to marketing systems (the pull
feed ``event_feed``, webhook delivery) reads this table; nothing here sends anything.

Shape (migration ``0018_outbox``):

- ``outbox(id, member_id, member_seq, type, occurred_at, data, created_at)``: ``id`` is
  the global order, and the pull feed's cursor; ``member_seq`` numbers each member's
  events 1, 2, 3... without gaps (``UNIQUE(member_id, member_seq)``), so a receiver can
  order them and see one it missed; ``type`` is one of ``TYPES``; ``occurred_at`` is when
  the cause happened (fixed-width ISO UTC text, ``context.moment_text``); ``data`` the
  event's JSON object (integers for kopecks and points, never floats); ``created_at``
  when the row was written (ISO UTC).
- ``outbox_seq(member_id, last_seq)``: each member's last ``member_seq``; ``emit_many``
  takes the numbers of all its members in one statement (an upsert adding each member's
  count, ``RETURNING`` the new last), then inserts the rows in one ``executemany``
  (``COPY`` on PostgreSQL).
- ``outbox_once(member_id, kind, day)``: a scheduled event (``triggers``) happens once per
  member, kind and day (``once``).

Order: emit only inside a ``Database.transaction(feed=True)`` (the lock the projector and
the console's member changes hold). Emitters then commit one after another, so ids
commit in increasing order and a reader that saw id ``n`` never later finds a smaller one
(the pull feed's cursor relies on it); on PostgreSQL ``outbox_seq``'s row lock would keep
a member's numbers right without it, but not the global order.

The events and their ``data`` (``member_id`` is the row's, not repeated in ``data``):

- ``member.registered``: ``{"code", "store_id", "terminal_id", "consent_marketing"}``;
- ``member.activated`` (the first purchase) and ``member.second_purchase``:
  ``{"purchase_event_id", "store_id"}``;
- ``purchase``: ``{"event_id", "receipt_id", "store_id", "terminal_id", "amount_kop",
  "paid_kop", "earned", "bonus", "spent"}``; ``refund``: ``{"event_id", "refund_id",
  "purchase_event_id", "store_id", "amount_kop", "earn_reversed", "bonus_reversed",
  "returned"}``;
- ``points.earned`` / ``points.spent`` / ``points.returned`` (points given back by a
  refund) / ``points.adjusted`` (a console adjustment, signed) / ``points.expired``:
  ``{"points", "cause"}`` where ``cause`` is the event id, ``adjustment:<n>`` or
  ``expiry``; ``balance.changed``: ``{"balance", "available", "pending", "delta"}`` (points);
- ``tier.up`` / ``tier.down``: ``{"from", "to"}`` (tier names);
- ``points.expiring``: ``{"points", "expires_on", "days"}``; ``birthday.soon``:
  ``{"days"}``; ``member.lapsed``: ``{"last_purchase_at", "days"}``;
- ``collection.progress`` / ``collection.completed``: ``{"mechanic", "units", "target"}``;
- ``consent.changed``: ``{"consent_marketing"}``; ``member.erased``: ``{}``;
- ``segment.entered`` / ``segment.left``: ``{"segment_id", ...}`` (audiences).

``data`` carries no personal data (no phone, name or birthday), so an erasure has
nothing to destroy here.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from sync.backoffice.context import moment_text
from sync.backoffice.db import Database, Tx, marks

MEMBER_REGISTERED = "member.registered"
MEMBER_ACTIVATED = "member.activated"
MEMBER_SECOND_PURCHASE = "member.second_purchase"
PURCHASE = "purchase"
REFUND = "refund"
POINTS_EARNED = "points.earned"
POINTS_SPENT = "points.spent"
POINTS_RETURNED = "points.returned"
POINTS_ADJUSTED = "points.adjusted"
POINTS_EXPIRED = "points.expired"
BALANCE_CHANGED = "balance.changed"
TIER_UP = "tier.up"
TIER_DOWN = "tier.down"
POINTS_EXPIRING = "points.expiring"
BIRTHDAY_SOON = "birthday.soon"
COLLECTION_PROGRESS = "collection.progress"
COLLECTION_COMPLETED = "collection.completed"
MEMBER_LAPSED = "member.lapsed"
CONSENT_CHANGED = "consent.changed"
MEMBER_ERASED = "member.erased"
SEGMENT_ENTERED = "segment.entered"
SEGMENT_LEFT = "segment.left"

TYPES: tuple[str, ...] = (
    MEMBER_REGISTERED,
    MEMBER_ACTIVATED,
    MEMBER_SECOND_PURCHASE,
    PURCHASE,
    REFUND,
    POINTS_EARNED,
    POINTS_SPENT,
    POINTS_RETURNED,
    POINTS_ADJUSTED,
    POINTS_EXPIRED,
    BALANCE_CHANGED,
    TIER_UP,
    TIER_DOWN,
    POINTS_EXPIRING,
    BIRTHDAY_SOON,
    COLLECTION_PROGRESS,
    COLLECTION_COMPLETED,
    MEMBER_LAPSED,
    CONSENT_CHANGED,
    MEMBER_ERASED,
    SEGMENT_ENTERED,
    SEGMENT_LEFT,
)
"""Every event type, in the order the docstring lists them."""
_KNOWN = frozenset(TYPES)

_INSERT = (
    "INSERT INTO outbox(member_id, member_seq, type, occurred_at, data, created_at) "
    "VALUES (?,?,?,?,?,?)"
)
_COLS = "id, member_id, member_seq, type, occurred_at, data, created_at"


class Pending(NamedTuple):
    """An event to emit: the member, its type (one of ``TYPES``), its data, when it
    happened (an aware datetime)."""

    member_id: str
    type: str
    data: dict[str, Any]
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Row:
    """A stored event: ``id`` (global order), the member and its ``member_seq``, the
    type, ``occurred_at`` and ``created_at`` (ISO UTC text), ``data`` (decoded)."""

    id: int
    member_id: str
    member_seq: int
    type: str
    occurred_at: str
    data: dict[str, Any]
    created_at: str


def emit(
    tx: Tx,
    member_id: str,
    type: str,
    data: dict[str, Any],
    occurred_at: datetime,
    *,
    now: datetime | None = None,
) -> None:
    """Write one event of ``member_id`` in ``tx`` with the member's next ``member_seq``
    (see the module docstring: ``tx`` holds the feed lock)."""
    emit_many(tx, [Pending(member_id, type, data, occurred_at)], now=now)


def emit_many(tx: Tx, rows: Sequence[Pending], *, now: datetime | None = None) -> None:
    """Write ``rows`` in ``tx``, each member's in the order given, numbered after the
    member's last ``member_seq``: one upsert of ``outbox_seq`` for all the members, one
    ``executemany`` of the rows. ``now``: the rows' ``created_at`` (the system clock's UTC
    time when None). A type not in ``TYPES`` or a naive time raises ``ValueError`` before
    anything is written."""
    if not rows:
        return
    counts: dict[str, int] = {}
    for r in rows:
        if r.type not in _KNOWN:
            raise ValueError(f"outbox: unknown event type {r.type!r}")
        if r.occurred_at.tzinfo is None:
            raise ValueError(f"outbox: occurred_at of {r.type} must carry a time zone")
        if not isinstance(r.member_id, str) or not r.member_id:
            raise ValueError(f"outbox: member_id of {r.type} must be a non-empty string")
        counts[r.member_id] = counts.get(r.member_id, 0) + 1
    last = _take(tx, counts)
    created = moment_text(now or datetime.now(UTC))
    nxt = {mid: last[mid] - n for mid, n in counts.items()}  # the seq before the first
    out: list[tuple[Any, ...]] = []
    for r in rows:
        nxt[r.member_id] += 1
        out.append(
            (
                r.member_id,
                nxt[r.member_id],
                r.type,
                moment_text(r.occurred_at),
                _data_text(r.data),
                created,
            )
        )
    tx.executemany(_INSERT, out)


def _take(tx: Tx, counts: dict[str, int]) -> dict[str, int]:
    """Advance each member's ``outbox_seq`` by its count in one statement; returns each
    member's new last seq."""
    doc = json.dumps(sorted(counts.items()))
    if tx.dialect == "postgresql":
        source = "SELECT x->>0, (x->>1)::int FROM json_array_elements(?::json) AS x"
    else:
        source = (
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') "
            "FROM json_each(?) WHERE true"
        )
    got = {
        str(mid): int(seq)
        for mid, seq in tx.all(
            f"INSERT INTO outbox_seq(member_id, last_seq) {source} "
            "ON CONFLICT(member_id) DO UPDATE SET last_seq = outbox_seq.last_seq + "
            "excluded.last_seq RETURNING member_id, last_seq",
            (doc,),
        )
    }
    assert got.keys() == counts.keys()
    return got


def _data_text(data: dict[str, Any]) -> str:
    """``data`` as compact JSON text (``orjson``; ``json`` for what it refuses, such as
    an integer over 64 bits)."""
    try:
        return orjson.dumps(data).decode()
    except orjson.JSONEncodeError:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def once(tx: Tx, keys: Sequence[tuple[str, str, str]], now: datetime) -> set[tuple[str, str]]:
    """Mark ``(member_id, kind, day)`` keys done in ``tx``, in one statement; returns the
    ``(member_id, kind)`` pairs not marked before for that day (whose event is to be
    emitted now; a re-run the same day gets none)."""
    if not keys:
        return set()
    doc = json.dumps([[*k, moment_text(now)] for k in dict.fromkeys(keys)])
    if tx.dialect == "postgresql":
        source = "SELECT x->>0, x->>1, x->>2, x->>3 FROM json_array_elements(?::json) AS x"
    else:
        source = (
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
            "json_extract(value, '$[2]'), json_extract(value, '$[3]') FROM json_each(?) "
            "WHERE true"
        )
    return {
        (str(m), str(k))
        for m, k in tx.all(
            f"INSERT INTO outbox_once(member_id, kind, day, created_at) {source} "
            "ON CONFLICT DO NOTHING RETURNING member_id, kind",
            (doc,),
        )
    }


def read_after(
    db: Database, after_id: int, limit: int, types: Sequence[str] | None = None
) -> list[Row]:
    """The events after ``after_id`` in ``id`` order, at most ``limit``, only of
    ``types`` when given (each one of ``TYPES``, else ``ValueError``)."""
    if types is not None:
        unknown = [t for t in types if t not in _KNOWN]
        if unknown:
            raise ValueError(f"outbox: unknown event type {unknown[0]!r}")
    sql = f"SELECT {_COLS} FROM outbox WHERE id > ?"
    params: list[Any] = [after_id]
    if types:
        sql += f" AND type IN ({marks(len(types))})"
        params.extend(types)
    sql += " ORDER BY id LIMIT ?"
    params.append(limit)
    with db.reading() as tx:
        return [row_of(r) for r in tx.all(sql, params)]


def row_of(r: Sequence[Any]) -> Row:
    """A ``Row`` from the columns ``id, member_id, member_seq, type, occurred_at, data,
    created_at`` of ``outbox``."""
    return Row(int(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), json.loads(r[5]), str(r[6]))

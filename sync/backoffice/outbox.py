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
  ``expiry``;
- ``balance.changed``: ``{"balance", "available", "pending", "before", "delta", "cause"}``
  (points): one per ledger change that moves the balance (a purchase, a refund, a
  registration's welcome bonus, a console adjustment or merge), right after that change's
  own events. ``balance``, ``available`` and ``pending`` are the member's after the
  change, ``before`` the balance just before it and ``delta`` = ``balance - before``, both
  at the moment the change is recorded, so ``delta`` is that change's effect alone. Lots
  that burn by time between two changes are reported as ``points.expired`` (``triggers``),
  not here, so a ``before`` can be below the previous event's ``balance``. ``cause``: the
  till event's id, ``adjustment:<n>`` or ``merge:<member_id>`` (the member merged in or
  the one merged into);
- ``tier.up`` / ``tier.down``: ``{"from", "to"}`` (tier names), once per projector pass
  and member (a tier is the member's rolling spend at the pass's time);
- ``points.expiring``: ``{"points", "expires_on", "days"}``; ``birthday.soon``:
  ``{"days"}``; ``member.lapsed``: ``{"last_purchase_at", "days"}``;
- ``collection.progress``: ``{"mechanic", "units", "target", "cause"}``, ``units`` of
  ``target`` now counted toward the mechanic's next reward ("you collected 4 of 5"), when a
  purchase adds units of its collection, or a refund takes units back (``units`` lower,
  or, when the refund takes a reward back, the units counted before that reward);
  ``collection.completed``: ``{"mechanic", "units", "target", "rewards", "points",
  "cause"}`` when a purchase completes it (``units`` = ``target``; ``rewards``: times
  completed by this purchase, ``points``: the reward points granted), followed by a
  ``collection.progress`` of the units left over when there are any. ``mechanic`` is the
  programme's collection mechanic id, ``cause`` the till event's id;
- ``consent.changed``: ``{"consent_marketing"}``; ``member.erased``: ``{}``;
- ``segment.entered`` / ``segment.left``: ``{"segment_id", ...}`` (audiences).

``data`` carries no personal data (no phone, name or birthday), so an erasure has
nothing to destroy here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from agent import engine
from agent.model import MemberState
from agent.rules import Programme
from sync.backoffice.context import moment_text
from sync.backoffice.db import Database, Tx, marks
from sync.backoffice.effects import BatchMember

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


class Step(NamedTuple):
    """One applied till event's change of one member in a projector pass: the event,
    the member, its state before (None: the event registered it) and after."""

    event_id: str
    member_id: str
    before: MemberState | None
    after: MemberState


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


def once(tx: Tx, keys: Sequence[tuple[str, str, str]], now: datetime) -> set[tuple[str, str, str]]:
    """Mark ``(member_id, kind, day)`` keys done in ``tx``, in one statement; returns the
    keys not marked before (whose event is to be emitted now: a re-run gets none)."""
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
        (str(m), str(k), str(d))
        for m, k, d in tx.all(
            f"INSERT INTO outbox_once(member_id, kind, day, created_at) {source} "
            "ON CONFLICT DO NOTHING RETURNING member_id, kind, day",
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


# ---------------------------------------------------------------------- the projector's pass
_STAGED = re.compile(r"\s*INSERT INTO (purchases|refunds)\(([^)]*)\)")
_PURCHASE: tuple[str, ...] = (
    "event_id",
    "receipt_id",
    "terminal_id",
    "store_id",
    "member_id",
    "occurred_at",
    "amount_kop",
    "paid_kop",
    "earned",
    "bonus",
    "spent",
)
_REFUND: tuple[str, ...] = (
    "event_id",
    "refund_id",
    "purchase_event_id",
    "store_id",
    "member_id",
    "occurred_at",
    "amount_kop",
    "earn_reversed",
    "bonus_reversed",
    "returned",
)


def _staged(staged: Mapping[str, Sequence[tuple[Any, ...]]]) -> dict[str, list[dict[str, Any]]]:
    """The pass's staged purchases and refunds (table -> rows as dicts by column)."""
    out: dict[str, list[dict[str, Any]]] = {"purchases": [], "refunds": []}
    for sql, rows in staged.items():
        m = _STAGED.match(sql)
        if m is not None:
            cols = [c.strip() for c in m[2].split(",")]
            out[m[1]].extend(dict(zip(cols, row, strict=True)) for row in rows)
    return out


def _any_of(tx: Tx, column: str, values: Sequence[str]) -> tuple[str, tuple[str]]:
    doc = json.dumps(sorted(set(values)))
    if tx.dialect == "postgresql":
        return f"{column} IN (SELECT json_array_elements_text(?::json))", (doc,)
    return f"{column} IN (SELECT value FROM json_each(?))", (doc,)


def _stored(tx: Tx, table: str, cols: Sequence[str], ids: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of ``table`` by event id (a careful pass has run its writes already)."""
    cond, params = _any_of(tx, "event_id", ids)
    sql = f"SELECT {', '.join(cols)} FROM {table} WHERE {cond}"
    return [dict(zip(cols, r, strict=True)) for r in tx.all_by_index(sql, params)]


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def record(
    tx: Tx,
    staged: Mapping[str, Sequence[tuple[Any, ...]]],
    verdicts: Sequence[tuple[Any, ...]],
    members: Mapping[str, BatchMember],
    origin: Mapping[str, Any],
    rules: Programme,
    now: datetime,
    *,
    careful: bool,
    steps: Sequence[Step] = (),
) -> None:
    """Emit the member events of one projector pass, in its transaction, before its
    writes run (the members' rows still hold their state before the pass).

    ``staged``: the pass's collected writes (empty in careful mode, where each event's
    writes ran already: its purchases and refunds are read back by event id);
    ``verdicts``: ``(status, code, message, member_id, event_id)`` per event in ``pos``
    order; ``members``: the pass's members by id (their state after it; those it
    registered are ``new``); ``origin``: member registered here -> its terminal
    (``.store_id``, ``.terminal_id``); ``rules``: the active programme; ``now``: the
    pass's time; ``steps``: each applied event's changed members with their states
    before and after it, in ``pos`` order (``Batch.steps``).

    Per event, in ``pos`` order: a registration gives ``member.registered`` (and
    ``points.earned`` for a welcome bonus); a purchase ``member.activated`` or
    ``member.second_purchase`` when it is the member's first or second, ``purchase``,
    ``points.spent``, ``points.earned``, then ``collection.completed`` /
    ``collection.progress`` for each collection it adds units to; a refund ``refund``,
    ``points.returned`` and ``collection.progress`` where it takes units back; each of
    them then ``balance.changed`` when it moved the balance (its states before and after,
    summarised at ``now``). Then per member changed by the pass, once: ``tier.up`` /
    ``tier.down``. A registration merged at once into an earlier one (a duplicate phone)
    gives nothing of its own. Cost: a statement for the members' tiers before, one for
    their earlier purchases, one for the welcome bonuses (only with registrations), a
    summary per step, the purchases' effects decoded only when they advanced a
    collection, then ``emit_many``."""
    order = {v[4]: n for n, v in enumerate(verdicts) if v[0] == "applied"}
    if not order:
        return
    if careful:
        ids = list(order)
        bought = _stored(tx, "purchases", (*_PURCHASE, "effects"), ids)
        refunds = _stored(tx, "refunds", _REFUND, ids)
        for read in (bought, refunds):  # read back in no order: the nth purchase counts
            read.sort(key=lambda r: order[r["event_id"]])
    else:
        rows = _staged(staged)
        bought, refunds = rows["purchases"], rows["refunds"]
    pending: list[tuple[int, int, Pending]] = []  # (event order, within it, event)
    when: dict[str, str] = {}  # event id -> its occurred_at text

    def add(event_id: str, member_id: str, kind: str, data: dict[str, Any], at: str) -> None:
        when.setdefault(event_id, at)
        pending.append((order[event_id], len(pending), Pending(member_id, kind, data, _at(at))))

    changed = [
        m for mid, m in members.items() if mid == m.member_id and m.dirty and m.merged_into is None
    ]
    new = {m.member_id for m in changed if m.new}
    _registrations(tx, verdicts, members, new, origin, add)
    _purchases(tx, bought, careful, add)
    for r in refunds:
        add(r["event_id"], r["member_id"], REFUND, _refund_data(r), r["occurred_at"])
        if int(r["returned"]):
            cause = {"points": int(r["returned"]), "cause": r["event_id"]}
            add(r["event_id"], r["member_id"], POINTS_RETURNED, cause, r["occurred_at"])
    live = {m.member_id for m in changed}
    fx = {p["event_id"]: p["effects"] for p in bought}
    _steps([s for s in steps if s.member_id in live], fx, rules, now, when, add)
    pending.sort(key=lambda x: (x[0], x[1]))
    last = {p.member_id: (n, p.occurred_at) for n, _, p in pending}  # its last event
    for p in _summaries(tx, changed, new, rules, now, last):
        pending.append((last[p.member_id][0] if p.member_id in last else len(order), 1 << 30, p))
    pending.sort(key=lambda x: (x[0], x[1]))
    emit_many(tx, [p for _, _, p in pending], now=now)


Add = Any  # (event_id, member_id, type, data, occurred_at text) -> None


def _registrations(
    tx: Tx,
    verdicts: Sequence[tuple[Any, ...]],
    members: Mapping[str, BatchMember],
    new: set[str],
    origin: Mapping[str, Any],
    add: Add,
) -> None:
    """``member.registered`` (and the welcome bonus's ``points.earned``) of the members
    the pass registered: each one's first applied event is its registration."""
    if not new:
        return
    first: dict[str, str] = {}
    for status, _, _, member_id, event_id in verdicts:
        if status == "applied" and member_id in new:
            first.setdefault(member_id, event_id)
    cond, params = _any_of(tx, "event_id", list(first.values()))
    welcome = {
        event_id: json.loads(payload).get("welcome_points", 0)
        for event_id, payload in tx.all(
            f"SELECT event_id, payload FROM events WHERE {cond}", params
        )
    }
    for mid, event_id in first.items():
        m, till = members[mid], origin[mid]
        at = str((m.extra or {}).get("registered_at"))
        data = {
            "code": m.code,
            "store_id": till.store_id,
            "terminal_id": till.terminal_id,
            "consent_marketing": m.consent_marketing,
        }
        add(event_id, mid, MEMBER_REGISTERED, data, at)
        points = welcome.get(event_id, 0)
        if isinstance(points, int) and not isinstance(points, bool) and points > 0:
            add(event_id, mid, POINTS_EARNED, {"points": points, "cause": event_id}, at)


def _purchases(tx: Tx, bought: list[dict[str, Any]], careful: bool, add: Add) -> None:
    """Per purchase: ``member.activated`` / ``member.second_purchase`` (the member's
    first / second purchase in the ledger), ``purchase``, ``points.spent``,
    ``points.earned`` (the accrual and bonuses, pending or not)."""
    if not bought:
        return
    cond, params = _any_of(tx, "member_id", [p["member_id"] for p in bought])
    before = {
        str(mid): int(n)
        for mid, n in tx.all_by_index(
            f"SELECT member_id, count(*) FROM purchases WHERE {cond} GROUP BY member_id", params
        )
    }
    if careful:  # this pass's purchases are in the table already
        for p in bought:
            before[p["member_id"]] -= 1
    for p in bought:
        mid, eid, at = p["member_id"], p["event_id"], p["occurred_at"]
        nth = before[mid] = before.get(mid, 0) + 1
        if nth <= 2:
            kind = MEMBER_ACTIVATED if nth == 1 else MEMBER_SECOND_PURCHASE
            add(eid, mid, kind, {"purchase_event_id": eid, "store_id": p["store_id"]}, at)
        add(eid, mid, PURCHASE, {k: p[k] for k in _PURCHASE if k not in _ROW_KEYS}, at)
        if int(p["spent"]):
            add(eid, mid, POINTS_SPENT, {"points": int(p["spent"]), "cause": eid}, at)
        earned = int(p["earned"]) + int(p["bonus"])
        if earned:
            add(eid, mid, POINTS_EARNED, {"points": earned, "cause": eid}, at)


_ROW_KEYS = ("member_id", "occurred_at")  # the outbox row's own columns, not repeated in data


def _refund_data(r: dict[str, Any]) -> dict[str, Any]:
    return {k: r[k] for k in _REFUND if k not in _ROW_KEYS}


def balance_changed(
    member_id: str, after: engine.MemberSummary, before: int, at: datetime, cause: str
) -> Pending:
    """``balance.changed``: the member's balance, available and pending points after the
    change, ``before`` (the balance just before it), ``delta`` = balance after minus
    ``before`` (points), and ``cause``, what changed it (see the module docstring)."""
    return _moved(member_id, (after.balance, after.available, after.pending), before, at, cause)


def _moved(
    member_id: str, after: tuple[int, int, int], before: int, at: datetime, cause: str
) -> Pending:
    """``balance.changed`` from ``after`` = (balance, available, pending) (points)."""
    balance, available, pending = after
    data = {
        "balance": balance,
        "available": available,
        "pending": pending,
        "before": before,
        "delta": balance - before,
        "cause": cause,
    }
    return Pending(member_id, BALANCE_CHANGED, data, at)


def _points(state: MemberState, now: datetime) -> tuple[int, int, int]:
    """(balance, available, pending) of ``state`` at ``now`` in points, as
    ``engine.member_summary`` counts them, without its expiry and tier work (a step's
    balance is all ``balance.changed`` needs)."""
    available, pending = engine.held_points(state, now)
    return available + pending - state.debt, available, pending


_NO_COLLECTION = '"collection_mechanics":[]'  # in a purchase's effects text (canonical)


def _steps(
    steps: Sequence[Step],
    effects: Mapping[str, str],
    rules: Programme,
    now: datetime,
    when: Mapping[str, str],
    add: Add,
) -> None:
    """Per step (an applied event's change of a live member), after the event's own
    events: its collection events, then ``balance.changed`` when the balance moved.
    ``effects``: the pass's purchases' effects text by event id; ``when``: each event's
    ``occurred_at`` text (``now`` for an event that gave nothing else)."""
    targets = {m.id: m.target for m in rules.collections}
    counted: dict[int, tuple[int, int, int]] = {}  # id(state) -> its points at now

    def points(state: MemberState) -> tuple[int, int, int]:
        got = counted.get(id(state))  # the steps hold every state: no id is reused
        if got is None:
            got = counted[id(state)] = _points(state, now)
        return got

    for st in steps:
        at = when.get(st.event_id) or now.isoformat()
        text = effects.get(st.event_id)
        after = dict(st.after.collections)
        if text is not None and _NO_COLLECTION not in text:
            for kind, data in _collected(orjson.loads(text), after):
                add(st.event_id, st.member_id, kind, {**data, "cause": st.event_id}, at)
        elif text is None and (targets or st.after.collections):
            before = dict(st.before.collections) if st.before is not None else {}
            for mech in sorted(before.keys() | after.keys()):
                units = after.get(mech, 0)
                if units != before.get(mech, 0) and mech in targets:
                    data = {"mechanic": mech, "units": units, "target": targets[mech]}
                    add(
                        st.event_id,
                        st.member_id,
                        COLLECTION_PROGRESS,
                        {**data, "cause": st.event_id},
                        at,
                    )
        was = 0 if st.before is None else points(st.before)[0]
        got = points(st.after)
        if got[0] != was:
            p = _moved(st.member_id, got, was, _at(at), st.event_id)
            add(st.event_id, st.member_id, p.type, p.data, at)


def _collected(fx: dict[str, Any], after: Mapping[str, int]) -> list[tuple[str, dict[str, Any]]]:
    """The collection events of one purchase, from its effects (``ledger.PurchaseEffects``
    as the JSON object ``effects.canonical`` stored; read as plain JSON, ~12 us against
    ~90 us to decode the dataclasses): per mechanic it adds units to, a
    ``collection.completed`` when it granted the reward (its grant's points; times
    completed = points over the reward, or the units' arithmetic for a reward of 0),
    and a ``collection.progress`` of the units now counted (left over) unless none are."""
    out: list[tuple[str, dict[str, Any]]] = []
    before = {str(k): int(v) for k, v in fx["collections_before"]}
    for mech, collection, target, reward in fx["collection_mechanics"]:
        units = sum(
            int(rl["collection_units"]) for rl in fx["lines"] if rl["collection"] == collection
        )
        if not units:
            continue
        now_counted = after.get(mech, 0)
        grant = next(
            (g for g in fx["grants"] if g["kind"] == "collection" and g["ref"] == mech), None
        )
        points = int(grant["granted"]) if grant is not None else 0
        if reward > 0:
            rewards = points // reward
        else:
            rewards = max(0, (before.get(mech, 0) + units - now_counted) // target)
        if rewards:
            data = {"mechanic": mech, "units": target, "target": target}
            out.append((COLLECTION_COMPLETED, {**data, "rewards": rewards, "points": points}))
        if now_counted or not rewards:
            data = {"mechanic": mech, "units": now_counted, "target": target}
            out.append((COLLECTION_PROGRESS, data))
    return out


def _summaries(
    tx: Tx,
    changed: list[BatchMember],
    new: set[str],
    rules: Programme,
    now: datetime,
    last: Mapping[str, tuple[int, datetime]],
) -> list[Pending]:
    """``tier.up`` / ``tier.down`` of each member the pass changed, against its stored
    tier (the first tier when new)."""
    if not changed:
        return []
    cond, params = _any_of(
        tx, "member_id", [m.member_id for m in changed if m.member_id not in new]
    )
    stored = {
        str(mid): str(tier)
        for mid, tier in tx.all_by_index(
            f"SELECT member_id, tier FROM members WHERE {cond}", params
        )
    }
    codes = [t.code for t in rules.tiers]
    out: list[Pending] = []
    for m in changed:
        tier = stored.get(m.member_id, codes[0])
        s = engine.member_summary(m.state, rules, now)
        at = last[m.member_id][1] if m.member_id in last else now
        if s.tier != tier:
            up = codes.index(s.tier) > (codes.index(tier) if tier in codes else -1)
            kind = TIER_UP if up else TIER_DOWN
            out.append(Pending(m.member_id, kind, {"from": tier, "to": s.tier}, at))
    return out

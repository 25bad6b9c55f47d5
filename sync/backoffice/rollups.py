"""The dashboard's daily roll-ups: the additive KPI figures per local day, store and cashier.

Definitions are ``kpi``'s (its module docstring); this module keeps them summed per
``(day, store_id, cashier_id)`` in ``rollup_days`` (a missing cashier is ``'-'``, as in the
KPI report), so a period's figures are a sum over its days instead of a walk over every
cheque. Columns (integer counts, kopecks, points):

- ``cheques`` / ``refunded_cheques`` / ``revenue_kop`` / ``points_issued`` (accrual and
  bonuses, net of reversals) / ``points_spent`` (net of points given back): a purchase on
  its day, store and cashier; a refund on its own; a cheque returned in full moves one
  from ``cheques`` to ``refunded_cheques`` on the day, store and cashier of the refund that
  completed the return (the cheque's last refund by date, then by ``pos``), which
  ``rollup_returns`` records per cheque so a later refund dated after it moves the count;
- ``new_members`` / ``welcome_points``: a registration at a till (not merged away at once
  as a duplicate phone) on ``registered_at``'s date, at the store and by the cashier that
  registered it, with the welcome bonus the registration granted (the event's
  ``welcome_points``; points issued = ``points_issued + welcome_points``); and a join on
  the members' pages (``web_join``) on its local day, at its poster's store (``''``
  without one), with no cashier (``'-'``) and the welcome bonus it granted.

Kept by the projector in the ledger's transaction: ``record`` is called once per pass
(``batch.Batch.finish``) with what the pass staged, and writes one upsert per changed key
(one ``executemany``), plus one upsert per cheque whose completing refund changed.
``rebuild`` recomputes everything from the ledger (the back-fill of an existing database,
run once at start by ``ensure``). Distinct-member counts are not additive: the cohort
and month buyer roll-ups (``_Buyers``) and, for any period of the chain or a store, the
distinct-buyer steps (``Reach``, read by ``reach``): a member with >= 1 cheque of
d0..d1 not returned in full within it is one whose latest cheque still not returned by
d1's end is dated d0 or later (>= 2: the second latest), so per scope and day only the
changes of those two days are kept, summed over the days up to d1 with ``since`` >= d0.
"""

from __future__ import annotations

import bisect
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from agent import codec
from agent.model import MemberState
from sync.backoffice.db import Database, Tx
from sync.backoffice.effects import BatchMember

NO_CASHIER = "-"
BUILT_KEY = "rollups_built"
HELD_KEY = "rollups_held_built"
"""Set once the cohort, buyer and points-held roll-ups are built (``rebuild_more``)."""
REACH_KEY = "rollups_reach_built"
"""Set once the distinct buyer roll-ups of any period are built (``rebuild_reach``)."""
FIGURES = (
    "new_members",
    "welcome_points",
    "cheques",
    "refunded_cheques",
    "revenue_kop",
    "points_issued",
    "points_spent",
)
"""The columns of ``rollup_days`` after its key, in this order everywhere."""

_UPSERT = (
    "INSERT INTO rollup_days(day, store_id, cashier_id, "
    + ", ".join(FIGURES)
    + ") VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(day, store_id, cashier_id) DO UPDATE SET "
    + ", ".join(f"{f} = rollup_days.{f} + excluded.{f}" for f in FIGURES)
)
_RETURN_UPSERT = (
    "INSERT INTO rollup_returns(purchase_event_id, refund_event_id, day, store_id, "
    "cashier_id) VALUES (?,?,?,?,?) ON CONFLICT(purchase_event_id) DO UPDATE SET "
    "refund_event_id = excluded.refund_event_id, day = excluded.day, "
    "store_id = excluded.store_id, cashier_id = excluded.cashier_id"
)
_INSERT = re.compile(r"\s*INSERT INTO (\w+)\(([^)]*)\)")
_REFUNDED = "UPDATE purchases SET refunded = ? WHERE event_id = ?"

Key = tuple[str, str, str]  # (day, store_id, cashier_id)


class _Tally:
    """Deltas per key, as lists of the ``FIGURES`` in order."""

    def __init__(self) -> None:
        self.rows: defaultdict[Key, list[int]] = defaultdict(lambda: [0] * len(FIGURES))

    def add(self, key: Key, **figures: int) -> None:
        row = self.rows[key]
        for name, value in figures.items():
            row[FIGURES.index(name)] += value

    def write(self, tx: Tx) -> None:
        tx.executemany(
            _UPSERT,
            [(*key, *row) for key, row in sorted(self.rows.items()) if any(row)],
        )


def _month(registered_at: Any) -> str:
    return str(registered_at or "")[:7]


def _add_many(
    tx: Tx,
    table: str,
    key: Sequence[tuple[str, str]],
    values: Sequence[tuple[str, str]],
    rows: Sequence[tuple[Any, ...]],
    *,
    replace: bool = False,
) -> None:
    """Upsert ``rows`` (the ``key`` columns, then the ``values``) into ``table``: each
    value added to the stored one (``replace``: stored as given). Columns pair a name with
    its PostgreSQL type. Keys are unique within ``rows``. SQLite: ``executemany``;
    PostgreSQL: one statement over a JSON document (``json_to_recordset``), not a
    pipelined statement per row (~0.1 ms each, a pass writes hundreds)."""
    if not rows:
        return
    cols = [c for c, _ in (*key, *values)]
    keys = ", ".join(c for c, _ in key)
    sets = ", ".join(
        f"{c} = excluded.{c}" if replace else f"{c} = {table}.{c} + excluded.{c}" for c, _ in values
    )
    if tx.dialect != "postgresql":
        tx.executemany(
            f"INSERT INTO {table}({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
            f"ON CONFLICT({keys}) DO UPDATE SET {sets}",
            rows,
        )
        return
    doc = orjson.dumps([dict(zip(cols, row, strict=True)) for row in rows]).decode()
    spec = ", ".join(f"{c} {t}" for c, t in (*key, *values))
    tx.execute(
        f"INSERT INTO {table}({', '.join(cols)}) SELECT {', '.join(cols)} "
        f"FROM json_to_recordset(?::json) AS v({spec}) "
        f"ON CONFLICT({keys}) DO UPDATE SET {sets}",
        (doc,),
    )


class _Buyers:
    """A pass's changes to the cohort and distinct-buyer roll-ups.

    ``rollup_members``: per member its cheques not returned in full and the cohort it
    counts in (``cohort`` 1: registered at a till or on the members' pages and not merged
    away; ``month`` of
    ``registered_at``, ``store_id`` where); ``rollup_cohorts``: per cohort month and store
    the members registered, with >= 1 and >= 2 such cheques (moved when a member's count
    crosses 1 or 2); ``rollup_buyers``: per purchase month and member the month's cheques
    not returned in full within that month."""

    def __init__(self) -> None:
        self.cheques: defaultdict[str, int] = defaultdict(int)
        self.months: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.new: dict[str, tuple[str, str]] = {}  # member -> (cohort month, store)

    def bought(self, member: str, day: str) -> None:
        self.cheques[member] += 1
        self.months[day[:7], member] += 1

    def returned(self, member: str, bought_on: str, day: str, before: str | None) -> None:
        """The cheque ``member`` bought on ``bought_on`` is returned in full by a refund
        of ``day`` (``before``: the day of the refund that completed it until now)."""
        month = bought_on[:7]
        if before is None:
            self.cheques[member] -= 1
        else:
            self.months[month, member] += before[:7] == month
        self.months[month, member] -= day[:7] == month

    def joined(self, member: str, month: str, store: str) -> None:
        self.new[member] = (month, store)

    def write(self, tx: Tx) -> None:
        touched = sorted(set(self.cheques) | set(self.new))
        if touched:
            cond, params = _any(tx, "member_id", touched)
            stored = {
                mid: (month, store, int(cohort), int(n))
                for mid, month, store, cohort, n in tx.all(
                    "SELECT member_id, month, store_id, cohort, cheques FROM rollup_members "
                    f"WHERE {cond}",
                    params,
                )
            }
            rows = []
            cohorts: defaultdict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
            for mid in touched:
                month, store, cohort, n = stored.get(mid, ("", "", 0, 0))
                was = cohort
                if mid in self.new:
                    (month, store), cohort = self.new[mid], 1
                after = n + self.cheques.get(mid, 0)
                if was:
                    row = cohorts[month, store]
                    row[0] -= 1
                    row[1] -= n >= 1
                    row[2] -= n >= 2
                if cohort:
                    row = cohorts[month, store]
                    row[0] += 1
                    row[1] += after >= 1
                    row[2] += after >= 2
                rows.append((mid, month, store, cohort, after))
            _add_many(tx, "rollup_members", _MEMBER_KEY, _MEMBER_VALUES, rows, replace=True)
            _add_cohorts(tx, cohorts)
        _add_many(
            tx,
            "rollup_buyers",
            (("month", "text"), ("member_id", "text")),
            (("cheques", "bigint"),),
            [(m, mid, n) for (m, mid), n in sorted(self.months.items()) if n],
        )


_MEMBER_KEY = (("member_id", "text"),)
_MEMBER_VALUES = (("month", "text"), ("store_id", "text"), ("cohort", "int"), ("cheques", "bigint"))


def _add_cohorts(tx: Tx, cohorts: Mapping[tuple[str, str], Sequence[int]]) -> None:
    _add_many(
        tx,
        "rollup_cohorts",
        (("month", "text"), ("store_id", "text")),
        (("registered", "bigint"), ("first", "bigint"), ("second", "bigint")),
        [(m, s, *row) for (m, s), row in sorted(cohorts.items()) if any(row)],
    )


def member_state(text: str) -> MemberState:
    """A stored member state, decoded by ``agent.codec`` (the exact path; the projector's
    faster decoder is ``batch``'s, above this module)."""
    return codec.loads(MemberState, text)


_UTC_TEXT: dict[datetime, str] = {}


def _utc(at: datetime) -> str:
    """``at`` in UTC as ISO text (how ``kpi.points_held`` compares expiries), memoised:
    a pass sees the same few expiry instants many times."""
    text = _UTC_TEXT.get(at)
    if text is None:
        if len(_UTC_TEXT) > 100_000:
            _UTC_TEXT.clear()
        text = _UTC_TEXT[at] = at.astimezone(UTC).isoformat()
    return text


class Held:
    """Changes to the points-held roll-ups (``kpi.points_held``'s figures without reading
    every member's lots): ``rollup_expiry`` points in lots per exact expiry (UTC ISO
    text) and store, ``rollup_held`` the same per UTC expiry day and store,
    ``rollup_stores`` per store the members not merged away and their debt. A member
    merged away counts nothing (its state is ``None`` here)."""

    def __init__(self) -> None:
        self.lots: defaultdict[tuple[str, str], int] = defaultdict(int)  # (at, store)
        self.stores: defaultdict[str, list[int]] = defaultdict(lambda: [0, 0])

    def change(self, store: str, old: MemberState | None, new: MemberState | None) -> None:
        """A member of ``store`` went from ``old`` to ``new`` (None: absent or merged)."""
        kept = {id(lot) for lot in old.lots} if old is not None else set()
        if old is not None and new is not None:
            same = {id(lot) for lot in new.lots} & kept
        else:
            same = set()
        for state, sign in ((old, -1), (new, 1)):
            if state is None:
                continue
            for lot in state.lots:
                if lot.points and id(lot) not in same:
                    self.lots[_utc(lot.expires_at), store] += sign * lot.points
            row = self.stores[store]
            row[0] += sign
            row[1] += sign * state.debt

    def write(self, tx: Tx) -> None:
        days: defaultdict[tuple[str, str], int] = defaultdict(int)
        for (at, store), points in self.lots.items():
            days[at[:10], store] += points
        _add_many(
            tx,
            "rollup_expiry",
            (("expires_at", "text"), ("store_id", "text")),
            (("points", "bigint"),),
            [(at, s, p) for (at, s), p in sorted(self.lots.items()) if p],
        )
        _add_many(
            tx,
            "rollup_held",
            (("day", "text"), ("store_id", "text")),
            (("points", "bigint"),),
            [(d, s, p) for (d, s), p in sorted(days.items()) if p],
        )
        _add_many(
            tx,
            "rollup_stores",
            (("store_id", "text"),),
            (("members", "bigint"), ("debt", "bigint")),
            [(s, *row) for s, row in sorted(self.stores.items()) if any(row)],
        )


def _any(tx: Tx, column: str, values: Iterable[str]) -> tuple[str, tuple[Any, ...]]:
    doc = json.dumps(sorted(set(values)))
    if tx.dialect == "postgresql":
        return f"{column} IN (SELECT json_array_elements_text(?::json))", (doc,)
    return f"{column} IN (SELECT value FROM json_each(?))", (doc,)


def _rows_of(staged: Mapping[str, Sequence[tuple[Any, ...]]], table: str) -> list[dict[str, Any]]:
    """The rows staged for ``INSERT INTO table(cols)``, as dicts by column name (the
    columns are read from the statement, so their order is the statement's)."""
    out: list[dict[str, Any]] = []
    for sql, rows in staged.items():
        m = _INSERT.match(sql)
        if m is None or m[1] != table:
            continue
        cols = [c.strip() for c in m[2].split(",")]
        out.extend(dict(zip(cols, row, strict=True)) for row in rows)
    return out


_PURCHASE_COLS = ("event_id", "store_id", "day", "cashier_id", "paid_kop", "earned", "bonus")
_REFUND_COLS = (
    "event_id",
    "purchase_event_id",
    "store_id",
    "day",
    "occurred_at",
    "cashier_id",
    "amount_kop",
    "earn_reversed",
    "bonus_reversed",
    "returned",
)


def record(
    tx: Tx,
    staged: Mapping[str, Sequence[tuple[Any, ...]]],
    verdicts: Sequence[tuple[Any, ...]],
    members: Mapping[str, BatchMember],
    stores: Mapping[str, Any],
    before: Mapping[str, tuple[str, MemberState | None]] | None = None,
) -> None:
    """Add one projector pass to the roll-ups, in its transaction, before its writes run.

    ``staged``: the pass's collected writes (statement -> rows; empty in careful mode,
    where each event's writes already ran, and then the pass's purchases and refunds are
    read back by their event ids); ``verdicts``: ``(status, code, message, member_id,
    event_id)`` per event; ``members``: the pass's members by id (those it registered are
    ``new``); ``stores``: member registered here -> its terminal (``.store_id``);
    ``before``: each member loaded from the ledger -> (its store, its state as loaded,
    None if merged away), for the points held (``Held``)."""
    applied = [v[4] for v in verdicts if v[0] == "applied"]
    if not applied:
        return
    tally = _Tally()
    buyers = _Buyers()
    held = Held()
    chains = Reach()
    for mid, m in members.items():
        if mid != m.member_id or not m.dirty:
            continue
        if m.new:
            store, old = stores[mid].store_id, None
        else:
            store, old = (before or {}).get(mid, ("", None))
        held.change(store or "", old, m.state if m.merged_into is None else None)
    if staged:
        bought = _rows_of(staged, "purchases")
        refunds = _rows_of(staged, "refunds")
        refunded_after = {pid: text for text, pid in staged.get(_REFUNDED, ())}
        in_db = False
    else:
        bought, refunds, in_db = _read_back(tx, applied), _read_back_refunds(tx, applied), True
        refunded_after = {}
    for p in bought:
        buyers.bought(p["member_id"], p["day"])
        chains.buy(p["member_id"], p["day"], p["store_id"])
        tally.add(
            (p["day"], p["store_id"], p["cashier_id"] or NO_CASHIER),
            cheques=1,
            revenue_kop=int(p["paid_kop"]),
            points_issued=int(p["earned"]) + int(p["bonus"]),
            points_spent=int(p["spent"]),
        )
    for r in refunds:
        tally.add(
            (r["day"], r["store_id"], r["cashier_id"] or NO_CASHIER),
            revenue_kop=-int(r["amount_kop"]),
            points_issued=-int(r["earn_reversed"]) - int(r["bonus_reversed"]),
            points_spent=-int(r["returned"]),
        )
    if refunds:
        _completions(tx, tally, buyers, chains, refunds, bought, refunded_after, in_db)
    new = [
        m for mid, m in members.items() if m.new and mid == m.member_id and m.merged_into is None
    ]
    if new:
        _registrations(tx, tally, new, verdicts, stores)
        for m in new:
            buyers.joined(
                m.member_id,
                _month((m.extra or {}).get("registered_at")),
                stores[m.member_id].store_id,
            )
    tally.write(tx)
    buyers.write(tx)
    chains.write(tx)
    held.write(tx)


def _read_back(tx: Tx, ids: list[str]) -> list[dict[str, Any]]:
    cond, params = _any(tx, "event_id", ids)
    cols = (*_PURCHASE_COLS, "spent", "member_id")
    return [
        dict(zip(cols, row, strict=True))
        for row in tx.all(f"SELECT {', '.join(cols)} FROM purchases WHERE {cond}", params)
    ]


def _read_back_refunds(tx: Tx, ids: list[str]) -> list[dict[str, Any]]:
    cond, params = _any(tx, "event_id", ids)
    return [
        dict(zip(_REFUND_COLS, row, strict=True))
        for row in tx.all(f"SELECT {', '.join(_REFUND_COLS)} FROM refunds WHERE {cond}", params)
    ]


def _full(effects: str, refunded: str) -> bool:
    back = json.loads(refunded)
    return all(back.get(str(ln["line_no"]), 0) >= ln["qty"] for ln in json.loads(effects)["lines"])


def _completions(
    tx: Tx,
    tally: _Tally,
    buyers: _Buyers,
    chains: Reach,
    refunds: list[dict[str, Any]],
    bought: list[dict[str, Any]],
    refunded_after: dict[str, str],
    in_db: bool,
) -> None:
    """Move a cheque from ``cheques`` to ``refunded_cheques`` at its completing refund,
    when the pass completed its return or refunded it again later by date."""
    touched = {r["purchase_event_id"] for r in refunds}
    cond, params = _any(tx, "event_id", touched)
    effects: dict[str, tuple[str, str]] = {}
    owner: dict[str, tuple[str, str, str]] = {}  # purchase -> (member, day, store)
    for pid, eff, refunded, member, bought_on, at in tx.all(
        f"SELECT event_id, effects, refunded, member_id, day, store_id FROM purchases WHERE {cond}",
        params,
    ):
        effects[pid] = (eff, refunded)
        owner[pid] = (member, bought_on, at)
    staged_effects = {p["event_id"]: p.get("effects") for p in bought}
    owner.update((p["event_id"], (p["member_id"], p["day"], p["store_id"])) for p in bought)
    cond, params = _any(tx, "r.purchase_event_id", touched)
    history: defaultdict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for pid, rid, day, occurred, store, cashier, pos in tx.all(
        "SELECT r.purchase_event_id, r.event_id, r.day, r.occurred_at, r.store_id, "
        f"r.cashier_id, e.pos FROM refunds r JOIN events e ON e.event_id = r.event_id WHERE {cond}",
        params,
    ):
        history[pid].append((day, occurred, (0, int(pos)), rid, store, cashier))
    if not in_db:
        for n, r in enumerate(refunds):
            history[r["purchase_event_id"]].append(
                (
                    r["day"],
                    r["occurred_at"],
                    (1, n),
                    r["event_id"],
                    r["store_id"],
                    r["cashier_id"],
                )
            )
    cond, params = _any(tx, "purchase_event_id", touched)
    before = {
        pid: (rid, day, store, cashier)
        for pid, rid, day, store, cashier in tx.all(
            "SELECT purchase_event_id, refund_event_id, day, store_id, cashier_id "
            f"FROM rollup_returns WHERE {cond}",
            params,
        )
    }
    moved = []
    for pid in sorted(touched):
        stored = effects.get(pid)
        eff = stored[0] if stored is not None else staged_effects.get(pid)
        refunded = refunded_after.get(pid, stored[1] if stored is not None else "{}")
        if eff is None or not _full(eff, refunded):
            continue
        day, _, _, rid, store, cashier = max(history[pid], key=lambda h: (h[0], h[1], h[2]))
        old = before.get(pid)
        if old is not None and old[0] == rid:
            continue
        if old is not None:
            tally.add((old[1], old[2], old[3]), cheques=1, refunded_cheques=-1)
        member, bought_on, at = owner[pid]
        buyers.returned(member, bought_on, day, None if old is None else old[1])
        chains.returned(pid, member, bought_on, at, None if old is None else old[1], day)
        cashier = cashier or NO_CASHIER
        tally.add((day, store, cashier), cheques=-1, refunded_cheques=1)
        moved.append((pid, rid, day, store, cashier))
    tx.executemany(_RETURN_UPSERT, moved)


def _registrations(
    tx: Tx,
    tally: _Tally,
    new: list[BatchMember],
    verdicts: Sequence[tuple[Any, ...]],
    stores: Mapping[str, Any],
) -> None:
    """Count the pass's registrations with the welcome bonus each event granted."""
    first: dict[str, str] = {}  # member -> its registration (its first applied event)
    for status, _, _, member_id, event_id in verdicts:
        if status == "applied" and member_id is not None:
            first.setdefault(member_id, event_id)
    cond, params = _any(tx, "event_id", [first[m.member_id] for m in new if m.member_id in first])
    welcome: dict[str, int] = {}
    for event_id, payload in tx.all(f"SELECT event_id, payload FROM events WHERE {cond}", params):
        welcome[event_id] = _welcome_of(payload)
    for m in new:
        x = m.extra or {}
        tally.add(
            (
                str(x.get("registered_at") or "")[:10],
                stores[m.member_id].store_id,
                x.get("cashier_id") or NO_CASHIER,
            ),
            new_members=1,
            welcome_points=welcome.get(first.get(m.member_id, ""), 0),
        )


def _welcome_of(payload: str) -> int:
    value = json.loads(payload).get("welcome_points", 0)
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0


# ---------------------------------------------------------------------- back-fill
def rebuild(tx: Tx) -> None:
    """Recompute every roll-up from the ledger (purchases, refunds, registrations)."""
    tx.execute("DELETE FROM rollup_days")
    tx.execute("DELETE FROM rollup_returns")
    tally = _Tally()
    for day, store, cashier, n, paid, issued, spent in tx.all(
        "SELECT day, store_id, COALESCE(cashier_id, '-'), count(*), sum(paid_kop), "
        "sum(earned + bonus), sum(spent) FROM purchases GROUP BY day, store_id, "
        "COALESCE(cashier_id, '-')"
    ):
        tally.add(
            (day, store, cashier),
            cheques=int(n),
            revenue_kop=int(paid),
            points_issued=int(issued),
            points_spent=int(spent),
        )
    for day, store, cashier, amount, reversed_, given in tx.all(
        "SELECT day, store_id, COALESCE(cashier_id, '-'), sum(amount_kop), "
        "sum(earn_reversed + bonus_reversed), sum(returned) FROM refunds "
        "GROUP BY day, store_id, COALESCE(cashier_id, '-')"
    ):
        tally.add(
            (day, store, cashier),
            revenue_kop=-int(amount),
            points_issued=-int(reversed_),
            points_spent=-int(given),
        )
    full = {
        pid
        for pid, eff, refunded in tx.all(
            "SELECT event_id, effects, refunded FROM purchases WHERE refunded <> '{}'"
        )
        if _full(eff, refunded)
    }
    last: dict[str, tuple[Any, ...]] = {}
    for pid, rid, day, store, cashier in tx.all(
        "SELECT r.purchase_event_id, r.event_id, r.day, r.store_id, r.cashier_id FROM refunds r "
        "JOIN events e ON e.event_id = r.event_id ORDER BY r.day, r.occurred_at, e.pos"
    ):
        if pid in full:
            last[pid] = (pid, rid, day, store, cashier or NO_CASHIER)
    for _, _, day, store, cashier in last.values():
        tally.add((day, store, cashier), cheques=-1, refunded_cheques=1)
    tx.executemany(_RETURN_UPSERT, sorted(last.values()))
    for payload, store, registered, cashier in tx.all(
        "SELECT e.payload, m.store_id, m.registered_at, m.cashier_id FROM events e "
        "JOIN members m ON m.member_id = e.member_id WHERE e.type = 'member_registered' "
        "AND e.status = 'applied' AND m.terminal_id IS NOT NULL AND NOT EXISTS ("
        "SELECT 1 FROM flags f WHERE f.kind = 'merge' AND f.event_id = e.event_id)"
    ):
        # a duplicate phone merged at its registration is flagged 'merge' with its event
        # (as ``record`` leaves it out); a member merged later in the console stays counted
        tally.add(
            (registered[:10], store, cashier or NO_CASHIER),
            new_members=1,
            welcome_points=_welcome_of(payload),
        )
    for day, store, welcome in tx.all(
        "SELECT s.day, COALESCE(s.store_id, ''), s.welcome_points FROM member_sources s "
        "JOIN members m ON m.member_id = s.member_id"
    ):
        tally.add((day, store, NO_CASHIER), new_members=1, welcome_points=int(welcome))
    tally.write(tx)
    _mark(tx, BUILT_KEY)
    rebuild_more(tx)


def rebuild_more(tx: Tx) -> None:
    """Recompute the cohort, buyer, points-held and distinct-buyer roll-ups from the
    ledger: members, their states, purchases and ``rollup_returns`` (``rebuild`` makes
    that first)."""
    for table in (
        "rollup_members",
        "rollup_cohorts",
        "rollup_buyers",
        "rollup_held",
        "rollup_expiry",
        "rollup_stores",
    ):
        tx.execute(f"DELETE FROM {table}")
    tx.execute(
        "INSERT INTO rollup_members(member_id, month, store_id, cohort, cheques) "
        "SELECT member_id, CASE WHEN cohort = 1 THEN month ELSE '' END, "
        "CASE WHEN cohort = 1 THEN store_id ELSE '' END, cohort, n FROM ("
        "SELECT m.member_id, substr(COALESCE(m.registered_at, ''), 1, 7) AS month, "
        "COALESCE(m.store_id, '') AS store_id, CASE WHEN (m.terminal_id IS NOT NULL OR "
        "EXISTS (SELECT 1 FROM member_sources s WHERE s.member_id = m.member_id)) AND "
        "m.merged_into IS NULL THEN 1 ELSE 0 END AS cohort, COALESCE(k.n, 0) AS n "
        "FROM members m LEFT JOIN (SELECT p.member_id, count(*) AS n FROM purchases p "
        "LEFT JOIN rollup_returns r ON r.purchase_event_id = p.event_id "
        "WHERE r.purchase_event_id IS NULL GROUP BY p.member_id) k "
        "ON k.member_id = m.member_id) AS x WHERE cohort = 1 OR n > 0"
    )
    tx.execute(
        "INSERT INTO rollup_cohorts(month, store_id, registered, first, second) "
        "SELECT month, store_id, count(*), sum(CASE WHEN cheques >= 1 THEN 1 ELSE 0 END), "
        "sum(CASE WHEN cheques >= 2 THEN 1 ELSE 0 END) FROM rollup_members WHERE cohort = 1 "
        "GROUP BY month, store_id"
    )
    tx.execute(
        "INSERT INTO rollup_buyers(month, member_id, cheques) "
        "SELECT substr(p.day, 1, 7), p.member_id, sum(CASE WHEN r.day IS NOT NULL AND "
        "substr(r.day, 1, 7) = substr(p.day, 1, 7) THEN 0 ELSE 1 END) FROM purchases p "
        "LEFT JOIN rollup_returns r ON r.purchase_event_id = p.event_id "
        "GROUP BY substr(p.day, 1, 7), p.member_id"
    )
    held = Held()
    for store, text in tx.all(
        "SELECT COALESCE(store_id, ''), state FROM members WHERE merged_into IS NULL"
    ):
        held.change(store, None, member_state(text))
    held.write(tx)
    _mark(tx, HELD_KEY)
    rebuild_reach(tx)


def _mark(tx: Tx, key: str) -> None:
    tx.execute(
        "INSERT INTO settings(key, value) VALUES (?, '1') "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key,),
    )


def state_written(tx: Tx, member_id: str, state: MemberState) -> None:
    """The points held after a member's state is replaced outside the projector (the
    console's adjustment or merge), in the writer's transaction, before it writes."""
    _held_change(tx, member_id, state)


def merged_away(tx: Tx, member_id: str) -> None:
    """A member merged into another in the console (its state emptied by
    ``state_written`` first): it leaves the live members and its cohort, in the merge's
    transaction, before ``merged_into`` is set."""
    if not _held_change(tx, member_id, None):
        return
    kept = tx.one(
        "SELECT month, store_id, cheques FROM rollup_members WHERE member_id = ? AND cohort = 1",
        (member_id,),
    )
    if kept is not None:
        n = int(kept[2])
        _add_cohorts(tx, {(kept[0], kept[1]): (-1, -(n >= 1), -(n >= 2))})
        tx.execute(
            "UPDATE rollup_members SET cohort = 0, month = '', store_id = '' WHERE member_id = ?",
            (member_id,),
        )


def _held_change(tx: Tx, member_id: str, state: MemberState | None) -> bool:
    """The member's stored state (unless merged away) replaced by ``state`` (None: no
    longer counted) in the points held; whether it was counted."""
    row = tx.one(
        "SELECT COALESCE(store_id, ''), state, merged_into FROM members WHERE member_id = ?",
        (member_id,),
    )
    if row is None or row[2] is not None:
        return False
    held = Held()
    held.change(row[0], member_state(row[1]), state)
    held.write(tx)
    return True


def loaded(tx: Tx, rows: Iterable[tuple[str | None, str]]) -> None:
    """Members bulk-loaded into the base (``(store_id, state text)`` each, none merged):
    their points held, in the load's transaction."""
    held = Held()
    for store, text in rows:
        held.change(store or "", None, member_state(text))
    held.write(tx)


def held_now(tx: Tx, now: datetime, d0: str, d1: str, store_id: str | None = None) -> Any:
    """``kpi.points_held``'s figures at ``now`` for the members (of ``store_id``) not
    merged away, from the roll-ups: (members, expired, live, expired between ``d0`` and
    ``d1``). Days before today's (UTC) are wholly expired, days after it wholly live; within
    today the exact expiries split at ``now``."""
    stamp = now.astimezone(UTC).isoformat()
    today = stamp[:10]
    cond, params = ("", ()) if store_id is None else (" AND store_id = ?", (store_id,))
    past = future = whole = between = 0
    for day, points in tx.all(
        f"SELECT day, sum(points) FROM rollup_held WHERE points <> 0{cond} GROUP BY day",
        params,
    ):
        if day < today:
            past += int(points)
            between += int(points) if d0 <= day <= d1 else 0
        elif day > today:
            future += int(points)
        else:
            whole = int(points)
    (gone,) = tx.one(
        "SELECT COALESCE(sum(points), 0) FROM rollup_expiry WHERE expires_at >= ? "
        f"AND expires_at <= ?{cond}",
        (today, stamp, *params),
    )
    members, debt = tx.one(
        f"SELECT COALESCE(sum(members), 0), COALESCE(sum(debt), 0) FROM rollup_stores "
        f"WHERE 1 = 1{cond}",
        params,
    )
    gone = int(gone)
    return (
        int(members),
        past + gone,
        future + whole - gone - int(debt),
        between + (gone if d0 <= today <= d1 else 0),
    )


def ensure(db: Database) -> bool:
    """Back-fill the roll-ups of a ledger made before them (once; under the projector's
    lock, so no pass runs meanwhile): all of them, those ``rebuild_more`` makes for a
    ledger whose daily roll-ups are there already, or the distinct buyers' alone
    (``rebuild_reach``). Returns whether it rebuilt any."""
    everything = {BUILT_KEY, HELD_KEY, REACH_KEY}
    with db.reading() as tx:
        if _built(tx) == everything:
            return False
    with db.transaction(feed=True) as tx:
        built = _built(tx)
        if built == everything:
            return False
        if BUILT_KEY not in built:
            rebuild(tx)
        elif HELD_KEY not in built:
            rebuild_more(tx)
        else:
            rebuild_reach(tx)
    return True


def _built(tx: Tx) -> set[str]:
    """Which of ``BUILT_KEY`` / ``HELD_KEY`` / ``REACH_KEY`` are set (each later one is
    built after the earlier)."""
    keys = (BUILT_KEY, HELD_KEY, REACH_KEY)
    return {str(k) for (k,) in tx.all("SELECT key FROM settings WHERE key IN (?, ?, ?)", keys)}


# ------------------------------------------------------------------ distinct buyers
Cheque = tuple[str, str, str]  # (day, store_id, day of the completing return or "")
_CHAIN_KEY = (("member_id", "text"),)
_CHAIN_VALUES = (("cheques", "text"),)
_STEP_KEY = (("store_id", "text"), ("day", "text"), ("since", "text"))
_STEP_VALUES = (("first", "bigint"), ("second", "bigint"))


def _alive_steps(cheques: Iterable[Cheque], out: defaultdict[Any, list[int]], scope: str) -> None:
    """Add to ``out`` one member's steps in ``scope``: a cheque is alive from its day
    until the day of the return that completed it (a return dated before the cheque: for
    ever, ``rollup_early`` corrects it); on each day the latest / second latest alive
    cheque's day changes, -1 at (scope, day, old) and +1 at (scope, day, new) in column 0
    / 1. Summed over members and days <= d1, the rows with ``since`` >= d0 count the
    members with >= 1 / >= 2 alive cheques dated d0 or later at d1's end."""
    moves: defaultdict[str, list[tuple[int, str]]] = defaultdict(list)
    for day, _, back in cheques:
        moves[day].append((1, day))
        if back and back >= day:
            moves[back].append((-1, day))
    alive: list[str] = []  # days of the alive cheques, sorted
    top: list[str | None] = [None, None]
    for day in sorted(moves):
        for sign, bought in moves[day]:
            if sign > 0:
                bisect.insort(alive, bought)
            else:
                alive.pop(bisect.bisect_left(alive, bought))
        now = [alive[-1] if alive else None, alive[-2] if len(alive) > 1 else None]
        for col in (0, 1):
            if now[col] != top[col]:
                if top[col] is not None:
                    out[scope, day, top[col]][col] -= 1
                if now[col] is not None:
                    out[scope, day, now[col]][col] += 1
        top = now


def _kept_steps(days: Iterable[str], out: defaultdict[Any, list[int]], scope: str) -> None:
    """``_alive_steps`` of cheques none of which is returned (``days`` sorted), in one
    walk: a cheque of day p after cheques of q (the one before) and q2 moves the latest
    from q to p and the second latest from q2 to q (same-day cheques cancel out)."""
    q: str | None = None
    q2: str | None = None
    for p in days:
        out[scope, p, p][0] += 1
        if q is not None:
            row = out[scope, p, q]
            row[0] -= 1
            row[1] += 1
            if q2 is not None:
                out[scope, p, q2][1] -= 1
        q2, q = q, p


def _steps(cheques: Sequence[Cheque], out: defaultdict[Any, list[int]]) -> None:
    """Add a member's steps for the chain ('') and each of its stores to ``out``
    (``cheques`` sorted)."""
    for scope in ("", *sorted({c[1] for c in cheques})):
        mine = cheques if scope == "" else [c for c in cheques if c[1] == scope]
        if any(back and back >= day for day, _, back in mine):
            _alive_steps(mine, out, scope)
        else:
            _kept_steps((c[0] for c in mine), out, scope)


def reach_steps(cheques: Sequence[Cheque]) -> defaultdict[Any, list[int]]:
    """A member's steps (``_alive_steps``) for the chain ('') and each of its stores."""
    out: defaultdict[Any, list[int]] = defaultdict(lambda: [0, 0])
    _steps(sorted(cheques), out)
    return out


def _decode_chain(text: str) -> list[Cheque]:
    return [(str(d), str(s), str(b)) for d, s, b in orjson.loads(text)]


class Reach:
    """A pass's changes to the members' cheques (``rollup_chain``) and so to the distinct
    buyer steps (``rollup_reach``) and the cheques returned before their date
    (``rollup_early``): cheques bought, and cheques whose completing return moved."""

    def __init__(self) -> None:
        self.bought: defaultdict[str, list[Cheque]] = defaultdict(list)
        self.moved: defaultdict[str, list[tuple[Cheque, str]]] = defaultdict(list)
        self.early: dict[str, tuple[str, str, str, str] | None] = {}

    def buy(self, member: str, day: str, store: str) -> None:
        self.bought[member].append((day, store, ""))

    def returned(
        self, pid: str, member: str, day: str, store: str, before: str | None, back: str
    ) -> None:
        """Cheque ``pid`` (of ``member``, bought on ``day`` at ``store``) is now returned in
        full by a return of ``back`` (``before``: the completing return's day until now)."""
        self.moved[member].append(((day, store, before or ""), back))
        self.early[pid] = (member, day, store, back) if back < day else None

    def write(self, tx: Tx) -> None:
        touched = sorted(set(self.bought) | set(self.moved))
        if not touched:
            return
        cond, params = _any(tx, "member_id", touched)
        stored = {
            mid: _decode_chain(text)
            for mid, text in tx.all(
                f"SELECT member_id, cheques FROM rollup_chain WHERE {cond}", params
            )
        }
        delta: defaultdict[Any, list[int]] = defaultdict(lambda: [0, 0])
        rows = []
        for mid in touched:
            old = stored.get(mid, [])
            new = [*old, *self.bought.get(mid, ())]
            for was, back in self.moved.get(mid, ()):
                at = new.index(was)  # any of equal cheques: they count alike
                new[at] = (was[0], was[1], back)
            new.sort()
            for key, (a, b) in reach_steps(old).items():
                delta[key][0] -= a
                delta[key][1] -= b
            for key, (a, b) in reach_steps(new).items():
                delta[key][0] += a
                delta[key][1] += b
            rows.append((mid, orjson.dumps(new).decode()))
        _add_many(tx, "rollup_chain", _CHAIN_KEY, _CHAIN_VALUES, rows, replace=True)
        _add_many(
            tx,
            "rollup_reach",
            _STEP_KEY,
            _STEP_VALUES,
            [(*key, *row) for key, row in sorted(delta.items()) if any(row)],
        )
        for pid, early in sorted(self.early.items()):
            tx.execute("DELETE FROM rollup_early WHERE purchase_event_id = ?", (pid,))
            if early is not None:
                tx.execute(
                    "INSERT INTO rollup_early(purchase_event_id, member_id, day, store_id, "
                    "return_day) VALUES (?,?,?,?,?)",
                    (pid, *early),
                )


def rebuild_reach(tx: Tx) -> None:
    """Recompute the distinct buyer roll-ups from ``purchases`` and ``rollup_returns``,
    a member at a time in member order."""
    for table in ("rollup_chain", "rollup_reach", "rollup_early"):
        tx.execute(f"DELETE FROM {table}")
    back = dict(tx.all("SELECT purchase_event_id, day FROM rollup_returns"))
    total: defaultdict[Any, list[int]] = defaultdict(lambda: [0, 0])
    chains: list[tuple[str, str]] = []
    early: list[tuple[str, str, str, str, str]] = []

    def flush(mid: str | None, cheques: list[Cheque]) -> None:
        if mid is None:
            return
        cheques.sort()
        _steps(cheques, total)
        chains.append((mid, orjson.dumps(cheques).decode()))

    # members in ranges of ~20,000 (a range's cheques read by ``purchases_member``), not
    # every cheque of the ledger in one result
    ids = [str(m) for (m,) in tx.all("SELECT member_id FROM members ORDER BY member_id")]
    bounds: list[str | None] = [None, *ids[20_000::20_000], None]
    for lo, hi in itertools.pairwise(bounds):
        cond = " AND ".join(
            c for c, v in (("member_id >= ?", lo), ("member_id < ?", hi)) if v is not None
        )
        member: str | None = None
        cheques: list[Cheque] = []
        for pid, mid, day, store in tx.all(
            "SELECT event_id, member_id, day, store_id FROM purchases "
            f"WHERE {cond or '1 = 1'} ORDER BY member_id",
            [v for v in (lo, hi) if v is not None],
        ):
            if mid != member:
                flush(member, cheques)
                member, cheques = mid, []
            returned = back.get(pid, "")
            cheques.append((day, store, returned))
            if returned and returned < day:
                early.append((pid, mid, day, store, returned))
        flush(member, cheques)
        _add_many(tx, "rollup_chain", _CHAIN_KEY, _CHAIN_VALUES, chains, replace=True)
        chains.clear()
    rows = [(*key, *row) for key, row in sorted(total.items()) if any(row)]
    for at in range(0, len(rows), 50_000):
        _add_many(tx, "rollup_reach", _STEP_KEY, _STEP_VALUES, rows[at : at + 50_000])
    tx.executemany(
        "INSERT INTO rollup_early(purchase_event_id, member_id, day, store_id, return_day) "
        "VALUES (?,?,?,?,?)",
        early,
    )
    _mark(tx, REACH_KEY)


def reach(tx: Tx, d0: str, d1: str, store_id: str | None = None) -> tuple[int, int]:
    """(members with >= 1, >= 2 of the cheques of ``d0``..``d1`` (ISO dates, both
    included; of ``store_id``) not returned in full within the period), from the steps:
    a few rows per day and store instead of every cheque. A cheque whose completing
    return is dated before it counts in the steps whenever its day is in the period, but
    for the KPI report only when its return is dated before ``d0``: the members with
    such a cheque in the period are counted again from their cheques."""
    scope = store_id or ""
    row = tx.one(
        "SELECT COALESCE(sum(first), 0), COALESCE(sum(second), 0) FROM rollup_reach "
        "WHERE store_id = ? AND day >= ? AND day <= ? AND since >= ?",
        (scope, d0, d1, d0),
    )
    one, two = int(row[0]), int(row[1])
    cond, params = ("", ()) if store_id is None else (" AND store_id = ?", (store_id,))
    early = [
        mid
        for (mid,) in tx.all(
            "SELECT DISTINCT member_id FROM rollup_early WHERE day >= ? AND day <= ? "
            f"AND return_day >= ?{cond} ORDER BY member_id",
            (d0, d1, d0, *params),
        )
    ]
    if early:
        where, ids = _any(tx, "member_id", early)
        for (text,) in tx.all(f"SELECT cheques FROM rollup_chain WHERE {where}", ids):
            counted = kept = 0
            for day, store, back in _decode_chain(text):
                if not d0 <= day <= d1 or (store_id is not None and store != store_id):
                    continue
                counted += not back or back < day or back > d1
                kept += not back or not d0 <= back <= d1
            one += (kept >= 1) - (counted >= 1)
            two += (kept >= 2) - (counted >= 2)
    return one, two


def web_join(
    tx: Tx,
    day: str,
    store_id: str | None,
    welcome_points: int,
    state: MemberState,
    registered_at: str,
) -> None:
    """Count a member who joined on the members' pages (``member_signup.join``) as a new
    member of ``day`` (the programme's local date, ISO) at ``store_id`` (``''`` without
    one), with no cashier, and the welcome bonus the join granted (points): what the KPI
    report and the dashboard read, as for a till's registration (``rebuild`` counts the
    join again from ``member_sources``); in the registration cohort of the month of
    ``registered_at`` (UTC ISO text, as a till's registration's); and its ``state`` in the
    points held and the live members, in the join's transaction."""
    tally = _Tally()
    tally.add((day, store_id or "", NO_CASHIER), new_members=1, welcome_points=welcome_points)
    tally.write(tx)
    buyers = _Buyers()
    buyers.joined(state.member_id, registered_at[:7], store_id or "")
    buyers.write(tx)
    held = Held()
    held.change(store_id or "", None, state)
    held.write(tx)


def registrations(tx: Tx, d0: str, d1: str) -> list[tuple[str, str, str, int, int]]:
    """``(store_id, day, cashier_id, new members, welcome points)`` of the days ``d0`` to
    ``d1`` (ISO dates, both included): the KPI report's registrations."""
    return [
        (store, day, cashier, int(n), int(w))
        for store, day, cashier, n, w in tx.all(
            "SELECT store_id, day, cashier_id, new_members, welcome_points FROM rollup_days "
            "WHERE day >= ? AND day <= ? AND new_members <> 0",
            (d0, d1),
        )
    ]

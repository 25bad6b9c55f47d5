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
  ``welcome_points``; points issued = ``points_issued + welcome_points``).

Kept by the projector in the ledger's transaction: ``record`` is called once per pass
(``batch.Batch.finish``) with what the pass staged, and writes one upsert per changed key
(one ``executemany``), plus one upsert per cheque whose completing refund changed.
``rebuild`` recomputes everything from the ledger (the back-fill of an existing database,
run once at start by ``ensure``). Distinct-member counts are not additive and are not
kept here (``dashboard`` reads them from ``purchases`` joined to ``rollup_returns``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sync.backoffice.db import Database, Tx
from sync.backoffice.effects import BatchMember

NO_CASHIER = "-"
BUILT_KEY = "rollups_built"
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
) -> None:
    """Add one projector pass to the roll-ups, in its transaction, before its writes run.

    ``staged``: the pass's collected writes (statement -> rows; empty in careful mode,
    where each event's writes already ran, and then the pass's purchases and refunds are
    read back by their event ids); ``verdicts``: ``(status, code, message, member_id,
    event_id)`` per event; ``members``: the pass's members by id (those it registered are
    ``new``); ``stores``: member registered here -> its terminal (``.store_id``)."""
    applied = [v[4] for v in verdicts if v[0] == "applied"]
    if not applied:
        return
    tally = _Tally()
    if staged:
        bought = _rows_of(staged, "purchases")
        refunds = _rows_of(staged, "refunds")
        refunded_after = {pid: text for text, pid in staged.get(_REFUNDED, ())}
        in_db = False
    else:
        bought, refunds, in_db = _read_back(tx, applied), _read_back_refunds(tx, applied), True
        refunded_after = {}
    for p in bought:
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
        _completions(tx, tally, refunds, bought, refunded_after, in_db)
    new = [
        m for mid, m in members.items() if m.new and mid == m.member_id and m.merged_into is None
    ]
    if new:
        _registrations(tx, tally, new, verdicts, stores)
    tally.write(tx)


def _read_back(tx: Tx, ids: list[str]) -> list[dict[str, Any]]:
    cond, params = _any(tx, "event_id", ids)
    cols = (*_PURCHASE_COLS, "spent")
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
    refunds: list[dict[str, Any]],
    bought: list[dict[str, Any]],
    refunded_after: dict[str, str],
    in_db: bool,
) -> None:
    """Move a cheque from ``cheques`` to ``refunded_cheques`` at its completing refund,
    when the pass completed its return or refunded it again later by date."""
    touched = {r["purchase_event_id"] for r in refunds}
    cond, params = _any(tx, "event_id", touched)
    effects = {
        pid: (eff, refunded)
        for pid, eff, refunded in tx.all(
            f"SELECT event_id, effects, refunded FROM purchases WHERE {cond}", params
        )
    }
    staged_effects = {p["event_id"]: p.get("effects") for p in bought}
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
    tally.write(tx)
    tx.execute(
        "INSERT INTO settings(key, value) VALUES (?, '1') "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (BUILT_KEY,),
    )


def ensure(db: Database) -> bool:
    """Back-fill the roll-ups of a ledger made before them (once; under the projector's
    lock, so no pass runs meanwhile). Returns whether it rebuilt them."""
    with db.reading() as tx:
        if tx.one("SELECT 1 FROM settings WHERE key = ?", (BUILT_KEY,)) is not None:
            return False
    with db.transaction(feed=True) as tx:
        if tx.one("SELECT 1 FROM settings WHERE key = ?", (BUILT_KEY,)) is not None:
            return False
        rebuild(tx)
    return True


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

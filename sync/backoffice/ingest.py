"""Applying a pushed batch to the ledger: one transaction, one result per event.

Exactly once: an event's row in ``events`` (keyed by ``event_id``) and its effect on the
member commit in one transaction, so a resend after a lost response finds the row and is
answered ``duplicate`` with nothing applied twice; the same id with another payload hash
is a ``conflict`` and changes nothing. The server never rejects a spend after the fact
(the goods have left the store): a spend the member's server balance cannot cover
becomes debt, flagged as an ``overdraft`` and repaid from later accruals.

How a batch is applied (why it is fast and still exact):

1. every event's envelope and payload are checked in Python (``checks``), no database;
2. what the batch needs is read with a few set-based queries: known event ids, the
   members it touches (following merges), its receipt ids, the purchases its refunds
   refer to;
3. the events are applied in order, in memory (``effects``: what each event type does).
   An event's writes are collected, not run; an event refused half-way is undone in
   memory (an undo log of what it changed), so it leaves no trace and the batch goes on;
4. the collected writes run as one ``executemany`` per statement (``COPY`` for plain
   inserts on PostgreSQL, ``db.Tx``), every changed member is written once, and the
   transaction commits.

If the database refuses one of the collected writes (a value it cannot store that the
checks did not foresee), the whole transaction is rolled back and the batch is applied
again in careful mode: each event's writes run at its end under a savepoint, so only that
event is rejected, as before.

Re-scoring: each applied purchase is queued (``verify_queue``, with the member's state
before it) for the background verifier (``verify``), which scores the cheque again with the
same ``agent.engine`` and flags differences (``rescore_mismatch``). The ledger honours what
the till printed either way, so re-scoring is not on the push's critical path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from agent import codec, engine
from agent.errors import AgentError
from agent.ledger import PurchaseEffects
from agent.model import MemberState
from agent.rules import Programme
from sync.backoffice import effects
from sync.backoffice.checks import (
    Rejected,
    check_event,
    is_db_outage,
)
from sync.backoffice.db import Tx
from sync.backoffice.effects import BatchMember, BatchPurchase
from sync.protocol import EventResult, WireEvent

if TYPE_CHECKING:
    from sync.backoffice.service import Backoffice, Terminal

CLOCK_SKEW_FLAG_SECONDS = 300
IN_CHUNK = 400  # ids per ``IN (...)`` list (SQLite allows 999 variables at the least)

_MEMBER_COLS = (
    "member_id, state, code, phone_hash, phone_masked, first_name, consent_programme, "
    "consent_marketing, merged_into"
)


_MEMBER_UPDATE = (  # what a batch changes in a member row (PostgreSQL types)
    ("state", "text"),
    ("balance", "bigint"),
    ("available", "bigint"),
    ("pending", "bigint"),
    ("expiring_points", "bigint"),
    ("expiring_on", "text"),
    ("tier", "text"),
    ("debt", "bigint"),
    ("updated_at", "text"),
)


def push(
    bo: Backoffice, terminal: Terminal, events: tuple[WireEvent, ...], now: datetime, skew: Any
) -> dict[str, Any]:
    """Apply a batch (see module doc); returns the answer without ``server_time``."""
    checked: list[dict[str, Any] | Rejected] = []
    for ev in events:
        try:
            checked.append(check_event(ev))
        except Rejected as e:
            checked.append(e)
    try:
        return _run(bo, terminal, events, checked, now, skew, careful=False)
    except Exception as e:
        if is_db_outage(e):
            raise
        # A collected write was refused by the database: apply again, event by event.
        return _run(bo, terminal, events, checked, now, skew, careful=True)


def _run(
    bo: Backoffice,
    terminal: Terminal,
    events: tuple[WireEvent, ...],
    checked: list[dict[str, Any] | Rejected],
    now: datetime,
    skew: Any,
    *,
    careful: bool,
) -> dict[str, Any]:
    with bo.db.transaction(feed=True) as tx:
        batch = _Batch(bo, terminal, now, tx, careful)
        known = batch.known(events)
        batch.prefetch(events, checked, known)
        results = [batch.one(ev, c, known) for ev, c in zip(events, checked, strict=True)]
        batch.write_ops()
        members = batch.flush()
        gaps = batch.track_seq(events)
        if skew is not None and abs(skew) > CLOCK_SKEW_FLAG_SECONDS:
            batch.flag("clock_skew", None, None, {"skew_seconds": round(skew, 1)})
        batch.flags.extend(batch.ev_flags)
        tx.execute(
            "UPDATE terminals SET last_seen = ? WHERE terminal_id = ?",
            (batch.now_iso, terminal.terminal_id),
        )
        tx.executemany(
            "INSERT INTO flags(kind, event_id, member_id, terminal_id, detail, created_at) "
            "VALUES (?,?,?,?,?,?)",
            batch.flags,
        )
    return {"results": [r.to_dict() for r in results], "gaps": gaps, "members": members}


def _chunks(ids: list[str]) -> list[list[str]]:
    return [ids[i : i + IN_CHUNK] for i in range(0, len(ids), IN_CHUNK)]


def _marks(n: int) -> str:
    return ",".join("?" * n)


class _Batch:
    """The work of one push transaction."""

    def __init__(
        self, bo: Backoffice, terminal: Terminal, now: datetime, tx: Tx, careful: bool
    ) -> None:
        self.bo = bo
        self.terminal = terminal
        self.now = now
        self.now_iso = now.isoformat()
        self.tx = tx
        self.careful = careful
        self.members: dict[str, BatchMember] = {}
        self.requested: dict[str, str] = {}  # member id as the till sent it -> resolved id
        self.flags: list[tuple[Any, ...]] = []
        self.event_rows: list[tuple[Any, ...]] = []
        self.ops: dict[str, list[tuple[Any, ...]]] = {}  # statement -> rows, first-use order
        self.receipts: set[str] = set()  # this terminal's receipt ids in the ledger
        self.purchases: dict[str, BatchPurchase | None] = {}
        self._rules: Programme | None = None
        # this event's pending work, kept apart until it is applied
        self.ev_ops: list[tuple[str, tuple[Any, ...]]] = []
        self.ev_flags: list[tuple[Any, ...]] = []
        self.ev_undo: list[Callable[[], None]] = []
        self.ev_done: list[Callable[[], None]] = []

    @property
    def rules(self) -> Programme:
        if self._rules is None:
            rules = self.bo.rules(None, self.tx)
            assert rules is not None
            self._rules = rules
        return self._rules

    # -- reads, set-based
    def known(self, events: tuple[WireEvent, ...]) -> dict[str, tuple[str, str, str | None]]:
        out: dict[str, tuple[str, str, str | None]] = {}
        for part in _chunks([e.event_id for e in events]):
            for row in self.tx.all(
                "SELECT event_id, payload_hash, status, code FROM events "
                f"WHERE event_id IN ({_marks(len(part))})",
                part,
            ):
                out[row[0]] = (row[1], row[2], row[3])
        return out

    def prefetch(
        self,
        events: tuple[WireEvent, ...],
        checked: list[dict[str, Any] | Rejected],
        known: dict[str, Any],
    ) -> None:
        """Read the members, receipts and refunded purchases the batch refers to."""
        member_ids: set[str] = set()
        receipts: set[str] = set()
        bought: set[str] = set()
        for ev, p in zip(events, checked, strict=True):
            if isinstance(p, Rejected) or ev.event_id in known:
                continue
            if ev.type == "purchase":
                if isinstance(p.get("member_id"), str):
                    member_ids.add(p["member_id"])
                if isinstance(p.get("receipt_id"), str):
                    receipts.add(p["receipt_id"])
            elif ev.type == "refund" and isinstance(p.get("purchase_event_id"), str):
                bought.add(p["purchase_event_id"])
        for part in _chunks(sorted(bought)):
            for row in self.tx.all(
                "SELECT event_id, member_id, effects, refunded FROM purchases "
                f"WHERE event_id IN ({_marks(len(part))})",
                part,
            ):
                refunded = {int(k): int(v) for k, v in json.loads(row[3]).items()}
                done = codec.loads(PurchaseEffects, row[2])
                self.purchases[row[0]] = BatchPurchase(row[1], done, refunded, False)
                member_ids.add(row[1])
        tid = self.terminal.terminal_id
        for part in _chunks(sorted(receipts)):
            for (receipt,) in self.tx.all(
                "SELECT receipt_id FROM purchases WHERE terminal_id = ? "
                f"AND receipt_id IN ({_marks(len(part))})",
                [tid, *part],
            ):
                self.receipts.add(receipt)
        wanted = member_ids
        for _ in range(5):  # merge chains are at most a few links
            merged: set[str] = set()
            for part in _chunks(sorted(wanted)):
                for row in self.tx.all(
                    f"SELECT {_MEMBER_COLS} FROM members WHERE member_id IN ({_marks(len(part))})",
                    part,
                ):
                    self.members[row[0]] = self._loaded(row)
                    if row[8] is not None and row[8] not in self.members:
                        merged.add(row[8])
            if not merged:
                break
            wanted = merged

    @staticmethod
    def _loaded(row: Any) -> BatchMember:
        return BatchMember(
            row[0],
            codec.loads(MemberState, row[1]),
            row[2],
            row[3],
            row[4],
            row[5],
            bool(row[6]),
            bool(row[7]),
            row[8],
            text=row[1],
        )

    # -- one event
    def one(
        self,
        ev: WireEvent,
        checked: dict[str, Any] | Rejected,
        known: dict[str, tuple[str, str, str | None]],
    ) -> EventResult:
        prior = known.get(ev.event_id)
        if prior is not None:
            if prior[0] != ev.payload_hash:
                self._write(
                    "INSERT INTO conflicts(event_id, terminal_id, payload_hash, received_at) "
                    "VALUES (?,?,?,?)",
                    (ev.event_id, ev.terminal_id, ev.payload_hash, self.now_iso),
                )
                return EventResult(
                    ev.event_id,
                    ev.seq,
                    "conflict",
                    "payload_mismatch",
                    "this event id is already in the ledger with another payload",
                )
            if prior[1] == "rejected":
                return EventResult(ev.event_id, ev.seq, "rejected", prior[2], "rejected before")
            return EventResult(ev.event_id, ev.seq, "duplicate")
        member_id: str | None = None
        status, code, message = "applied", None, None
        if self.careful:
            # Careful mode: the event's reads and writes run under a savepoint of their own.
            self.tx.execute("SAVEPOINT event")
        try:
            if isinstance(checked, Rejected):
                raise checked
            member_id = effects.apply(self, ev, checked)
            self._commit_event()
        except Exception as e:
            if self.careful:
                self.tx.execute("ROLLBACK TO SAVEPOINT event")
            self._undo_event()
            member_id = None
            if isinstance(e, Rejected):
                status, code, message = "rejected", e.code, e.message
            elif isinstance(e, AgentError):
                status, code, message = "rejected", e.code, e.message_en
            elif not is_db_outage(e):
                status, code = "rejected", "bad_payload"
                message = f"payload cannot be applied: {type(e).__name__}"
            else:
                raise
        finally:
            if self.careful:
                self.tx.execute("RELEASE SAVEPOINT event")
        known[ev.event_id] = (ev.payload_hash, status, code)
        self.event_rows.append(
            (
                ev.event_id,
                ev.terminal_id,
                ev.terminal_epoch,
                ev.seq,
                ev.type,
                ev.schema_version,
                ev.payload_hash,
                ev.payload if status == "applied" else "",
                ev.created_at,
                self.now_iso,
                status,
                code,
                member_id,
            )
        )
        return EventResult(ev.event_id, ev.seq, status, code, message)

    def _commit_event(self) -> None:
        if self.careful:
            for sql, row in self.ev_ops:
                self.tx.execute(sql, row)
        else:
            for sql, row in self.ev_ops:
                self.ops.setdefault(sql, []).append(row)
        self.flags.extend(self.ev_flags)
        for done in self.ev_done:
            done()
        self.ev_ops, self.ev_flags, self.ev_undo, self.ev_done = [], [], [], []

    def _undo_event(self) -> None:
        for undo in reversed(self.ev_undo):
            undo()
        self.ev_ops, self.ev_flags, self.ev_undo, self.ev_done = [], [], [], []

    def _write(self, sql: str, row: tuple[Any, ...]) -> None:
        """A write outside any event's undo scope (conflicts): collected as well."""
        if self.careful:
            self.tx.execute(sql, row)
        else:
            self.ops.setdefault(sql, []).append(row)

    def write_ops(self) -> None:
        """Run the collected writes: one ``executemany`` per statement, updates last (an
        update may refer to a row this batch inserts; the order within each is kept)."""
        for sql in sorted(self.ops, key=lambda s: s.startswith("UPDATE")):
            self.tx.executemany(sql, self.ops[sql])
        self.ops.clear()

    # -- in-memory changes with undo
    def _set_state(self, m: BatchMember, state: MemberState) -> None:
        old = (m.state, m.dirty, m.text, m.merged_into, m.phone_hash)

        def undo() -> None:
            m.state, m.dirty, m.text, m.merged_into, m.phone_hash = old

        self.ev_undo.append(undo)
        m.state, m.dirty, m.text = state, True, None

    def _request(self, asked: str, resolved: str) -> None:
        had = asked in self.requested
        old = self.requested.get(asked)

        def undo() -> None:
            if had:
                self.requested[asked] = old  # type: ignore[assignment]
            else:
                self.requested.pop(asked, None)

        self.ev_undo.append(undo)
        self.requested[asked] = resolved

    def member(self, member_id: Any) -> BatchMember:
        if not isinstance(member_id, str) or not member_id:
            raise Rejected("bad_payload", "payload.member_id must be a non-empty string")
        asked = member_id
        for _ in range(5):  # follow merges (a chain is at most a few links)
            m = self.members.get(member_id)
            if m is None:
                row = self.tx.one(
                    f"SELECT {_MEMBER_COLS} FROM members WHERE member_id = ?", (member_id,)
                )
                if row is None:
                    raise Rejected("unknown_member", f"member {member_id} is not known")
                m = self.members[member_id] = self._loaded(row)
            if m.merged_into is None:
                self._request(asked, m.member_id)
                return m
            member_id = m.merged_into
        raise Rejected("unknown_member", f"member {asked} merge chain too long")

    def rules_for(self, version: Any, ev: WireEvent) -> Programme:
        rules = self.bo.rules(version, self.tx) if isinstance(version, int) else None
        if rules is None:
            self.flag("unknown_rules_version", ev, None, {"version": version})
            return self.rules
        return rules

    def flag(
        self, kind: str, ev: WireEvent | None, member_id: str | None, detail: dict[str, Any]
    ) -> None:
        row = (
            kind,
            ev.event_id if ev else None,
            member_id,
            self.terminal.terminal_id,
            json.dumps(detail, ensure_ascii=False, default=str),
            self.now_iso,
        )
        (self.ev_flags if ev is not None else self.flags).append(row)

    # -- apply
    # -- write back
    def flush(self) -> dict[str, Any]:
        """Write every changed member once, append its change, return the till's view."""
        rules = self.rules
        records: dict[str, dict[str, Any]] = {}
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        changes: list[tuple[Any, ...]] = []
        for mid, m in self.members.items():
            if mid != m.member_id or not m.dirty:
                continue
            s = engine.member_summary(m.state, rules, self.now)
            state_text = codec.dumps(m.state)
            expiring_on = s.expiring_on.isoformat() if s.expiring_on else None
            body = {
                "member_id": m.member_id,
                "code": m.code,
                "phone_hash": m.phone_hash,
                "phone_masked": m.phone_masked,
                "first_name": m.first_name,
                "state": state_text,
                "balance": s.balance,
                "available": s.available,
                "pending": s.pending,
                "expiring_points": s.expiring_points,
                "expiring_on": expiring_on,
                "tier": s.tier,
                "consent_programme": m.consent_programme,
                "consent_marketing": m.consent_marketing,
                "merged_into": m.merged_into,
            }
            if m.new:
                x = m.extra or {}
                inserts.append(
                    (
                        m.member_id,
                        m.code,
                        m.phone_hash,
                        m.phone_masked,
                        x.get("phone_sealed"),
                        m.first_name,
                        x.get("birthday"),
                        int(m.consent_marketing),
                        x.get("consent_text_version"),
                        x.get("registered_at"),
                        self.terminal.store_id,
                        self.terminal.terminal_id,
                        x.get("cashier_id"),
                        m.merged_into,
                        self.now_iso,
                    )
                )
            updates.append(
                (
                    state_text,
                    s.balance,
                    s.available,
                    s.pending,
                    s.expiring_points,
                    expiring_on,
                    s.tier,
                    m.state.debt,
                    self.now_iso,
                    m.member_id,
                )
            )
            if m.merged_into is None:
                changes.append(
                    ("member", m.member_id, json.dumps(body, ensure_ascii=False), self.now_iso)
                )
            records[m.member_id] = body
        self.tx.executemany(
            "INSERT INTO members(member_id, code, phone_hash, phone_masked, phone_sealed, "
            "first_name, birthday, consent_programme, consent_marketing, "
            "consent_text_version, registered_at, store_id, terminal_id, cashier_id, "
            "merged_into, state, balance, available, pending, expiring_points, tier, "
            "updated_at) VALUES (?,?,?,?,?,?,?,1,?,?,?,?,?,?,?,'',0,0,0,0,'',?)",
            inserts,
        )
        self.tx.update_many("members", "member_id", _MEMBER_UPDATE, updates)
        self.tx.executemany(
            "INSERT INTO changes(kind, member_id, body, created_at) VALUES (?,?,?,?)", changes
        )
        self.tx.executemany(
            "INSERT INTO events(event_id, terminal_id, epoch, seq, type, schema_version, "
            "payload_hash, payload, created_at, received_at, status, code, member_id) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            self.event_rows,
        )
        return {
            asked: records[resolved]
            for asked, resolved in self.requested.items()
            if resolved in records
        }

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
        new_ids = {row[0] for row in self.event_rows}
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
                    self.flag("clock_backwards", e, None, {"created_at": e.created_at})
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

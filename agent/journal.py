"""The till side of sync, as storage: batches out of the journal, acks in, server state in.

The network lives in ``sync/``; this module is the part that must be exactly right on the
till's disk, so it sits with the store and is tested against real SQLite:

- ``next_batch``: pending journal rows in ``seq`` order, capped in count and bytes;
- ``settle``: the back office's per-event answers (of a push, or verdicts pulled later),
  written in one transaction: ``accepted`` rows leave the send queue and wait for their
  verdict; decided rows are acked, or go to the quarantine when refused (with an alert;
  the queue moves on); each member's ``unsynced`` count drops with each decided event,
  and the server's member state replaces the cache for members with no local events left
  in flight;
- ``apply_changes`` / ``load_snapshot``: pulled member, merge and rules changes stored
  with their cursor atomically; a snapshot never touches the outbox.

A member with local events the server has not yet counted keeps its local state: the
server's copy would not include them. The ack of the last such event brings the server's
state (which then does).

Server records arrive from three places that are not in step: push answers and verdicts
carry the member's current record, the change feed replays the records of every past
change, page by page, and after an outage it lags far behind the answers. So each record
carries the feed position it reflects (``MemberRecord.feed_seq``: for a feed entry its own
``seq``, for an answer or a snapshot row the feed's head when the row was read) and the
cache keeps it (``members.feed_seq``): an older record never replaces a newer one, else
the till would sell against a balance from before its own last sales (a cheque whose
``balance_before`` is not the balance after the member's previous event, and an overdraft
or a rescore mismatch at the back office).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from agent.erasure import erase_cached, set_blocked
from agent.results import SyncStatus
from agent.store import MEMBER_LOAD_COLUMNS, Store

__all__ = [
    "ACCEPTED",
    "EVENT_OVERHEAD_BYTES",
    "SETTLED_OK",
    "Change",
    "EventStatus",
    "MemberRecord",
    "OutboxEvent",
    "SettleSummary",
    "Settlement",
    "apply_changes",
    "has_awaiting_verdict",
    "install_rules_document",
    "load_snapshot",
    "load_snapshot_wire",
    "mark_contact",
    "member_record_from_wire",
    "next_batch",
    "note_revoked_coupons",
    "outbox_events",
    "quarantine_rows",
    "record_error",
    "settle",
    "snapshot_row",
    "start_new_epoch",
    "status",
    "upsert_members",
]


EventStatus = Literal["accepted", "applied", "duplicate", "conflict", "rejected"]
SETTLED_OK: frozenset[str] = frozenset({"applied", "duplicate"})
ACCEPTED = "accepted"
"""On the server, durably, not yet in its ledger: the outbox row leaves the send queue
(status ``accepted``) but the member's ``unsynced`` count stays until the verdict."""

# Bytes an event adds to a batch besides its payload (ids, hash, field names), for the cap.
EVENT_OVERHEAD_BYTES = 320


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One journal row as it travels: ``payload`` is the exact canonical JSON text that
    ``payload_hash`` (SHA-256 hex) covers; ``member_id`` stays on the till."""

    seq: int
    event_id: str
    terminal_id: str
    terminal_epoch: str
    type: str
    schema_version: int
    created_at: str
    payload: str
    payload_hash: str
    member_id: str | None = None

    def wire(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "terminal_id": self.terminal_id,
            "terminal_epoch": self.terminal_epoch,
            "seq": self.seq,
            "type": self.type,
            "schema_version": self.schema_version,
            "created_at": self.created_at,
            "payload": self.payload,
            "payload_hash": self.payload_hash,
        }


@dataclass(frozen=True, slots=True)
class Settlement:
    """The back office's answer for one event."""

    event_id: str
    status: EventStatus
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """A member as the back office sends it: ``state`` is the canonical JSON text of the
    ``MemberState`` (stored verbatim, never re-encoded); the summary beside it is the
    server's at the time of the change (points, ISO date of the next expiry, tier code)."""

    member_id: str
    code: str
    phone_hash: str | None
    phone_masked: str | None
    first_name: str | None
    state: str
    balance: int
    available: int
    pending: int
    expiring_points: int
    expiring_on: str | None
    tier: str
    consent_programme: bool
    consent_marketing: bool
    merged_into: str | None = None
    feed_seq: int | None = None
    """The back office's change-feed position this record reflects: every member change up
    to it and none after (None: a back office that does not say; such a record is taken
    as before, with no ordering)."""

    def row(self, now_iso: str) -> tuple[Any, ...]:
        """The ``MEMBER_LOAD_COLUMNS`` row for the till's members cache."""
        return (
            self.member_id,
            self.code,
            self.phone_hash,
            self.phone_masked,
            self.first_name,
            self.state,
            self.balance,
            self.available,
            self.pending,
            self.expiring_points,
            self.expiring_on,
            self.tier,
            now_iso,
            0,
            int(self.consent_programme),
            int(self.consent_marketing),
            now_iso,
        )


@dataclass(frozen=True, slots=True)
class SettleSummary:
    acked: int  # decided and in the ledger
    quarantined: int  # refused (now or by a verdict)
    members_refreshed: int
    accepted: int = 0  # on the server, waiting for its verdict


_OUTBOX_COLS = (
    "seq, event_id, terminal_id, terminal_epoch, type, schema_version, created_at, "
    "payload, payload_hash, member_id"
)


def next_batch(store: Store, *, max_events: int, max_bytes: int) -> list[OutboxEvent]:
    """The oldest pending events, in ``seq`` order, at most ``max_events`` and about
    ``max_bytes`` of JSON (always at least one event, so an oversized one is answered —
    refused by the server and quarantined — instead of blocking the queue)."""
    with store.read() as conn:
        rows = conn.execute(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT ?",
            (max_events,),
        ).fetchall()
    batch: list[OutboxEvent] = []
    size = 0
    for row in rows:
        size += len(row[7].encode()) + EVENT_OVERHEAD_BYTES
        if batch and size > max_bytes:
            break
        batch.append(OutboxEvent(*row))
    return batch


def upsert_members(conn: sqlite3.Connection, records: Iterable[MemberRecord], now_iso: str) -> int:
    """Replace cached members with the server's copy, except members with local events in
    flight (``unsynced > 0``) and members whose cached record reflects a later feed
    position than the incoming one (``feed_seq``, see the module doc). Returns how many
    rows were written."""
    cols = ", ".join(MEMBER_LOAD_COLUMNS)
    marks = ", ".join("?" * len(MEMBER_LOAD_COLUMNS))
    updates = ", ".join(
        f"{c} = excluded.{c}" for c in MEMBER_LOAD_COLUMNS if c not in ("member_id",)
    )
    sql = (
        f"INSERT INTO members({cols}, merged_into, feed_seq) VALUES ({marks}, ?, ?) "
        f"ON CONFLICT(member_id) DO UPDATE SET {updates}, merged_into = excluded.merged_into, "
        "offline_spent = 0, feed_seq = max(members.feed_seq, excluded.feed_seq) "
        "WHERE members.unsynced = 0 AND (? OR excluded.feed_seq >= members.feed_seq)"
    )
    cur = conn.executemany(
        sql,
        [
            (*rec.row(now_iso), rec.merged_into, rec.feed_seq or 0, rec.feed_seq is None)
            for rec in records
        ],
    )
    return max(cur.rowcount, 0)


def settle(
    store: Store,
    batch: Sequence[OutboxEvent],
    results: Sequence[Settlement],
    members: Mapping[str, MemberRecord],
    now_iso: str,
    *,
    clock_skew_seconds: float | None = None,
    verdict_cursor: int | None = None,
) -> SettleSummary:
    """Write the back office's answers for ``batch`` in one transaction (see module doc).

    ``members`` is keyed by the till's member ids. Idempotent: a row already decided (an
    answer received twice) is left alone, and ``accepted`` never undoes a verdict.
    Answers for events not in the batch are ignored; events of the batch without an
    answer stay as they are (pending ones are sent again). ``verdict_cursor``: the
    position of the verdicts page these answers came from, stored with them.
    """
    by_id = {e.event_id: e for e in batch}
    answered: dict[int, tuple[OutboxEvent, Settlement]] = {}
    for res in results:
        event = by_id.get(res.event_id)
        if event is not None and event.seq not in answered:
            answered[event.seq] = (event, res)
    touched: set[str] = set()
    with store.write() as conn:
        # Only rows not yet decided are settled (an answer received twice changes
        # nothing); the whole answer is then written with one executemany per statement.
        open_rows: dict[int, str] = {}
        seqs = sorted(answered)
        for i in range(0, len(seqs), 500):
            part = seqs[i : i + 500]
            marks = ",".join("?" * len(part))
            open_rows.update(
                conn.execute(
                    f"SELECT seq, status FROM outbox WHERE status IN ('pending', '{ACCEPTED}') "
                    f"AND seq IN ({marks})",
                    part,
                ).fetchall()
            )
        accepted_rows: list[tuple[str, int]] = []
        ok_rows: list[tuple[str, int]] = []
        bad_rows: list[tuple[str, int]] = []
        quarantine: list[tuple[Any, ...]] = []
        unsynced: dict[str, int] = {}
        delivered = 0  # rows leaving the send queue
        for seq in seqs:
            was = open_rows.get(seq)
            if was is None:
                continue
            event, res = answered[seq]
            if res.status == ACCEPTED:
                if was == "pending":
                    accepted_rows.append((now_iso, seq))
                    delivered += 1
                continue
            delivered += was == "pending"
            if res.status in SETTLED_OK:
                ok_rows.append((now_iso, seq))
            else:
                bad_rows.append((now_iso, seq))
                quarantine.append(
                    (
                        seq,
                        event.event_id,
                        res.status,
                        res.code or res.status,
                        res.message or "",
                        now_iso,
                    )
                )
            if event.member_id:
                touched.add(event.member_id)
                unsynced[event.member_id] = unsynced.get(event.member_id, 0) + 1
        conn.executemany(
            f"UPDATE outbox SET status = '{ACCEPTED}', acked_at = ? WHERE seq = ?", accepted_rows
        )
        conn.executemany("UPDATE outbox SET status = 'acked', acked_at = ? WHERE seq = ?", ok_rows)
        conn.executemany(
            "UPDATE outbox SET status = 'quarantined', acked_at = ? WHERE seq = ?", bad_rows
        )
        conn.executemany(
            "INSERT OR REPLACE INTO quarantine(seq, event_id, status, code, message, "
            "quarantined_at) VALUES (?,?,?,?,?,?)",
            quarantine,
        )
        conn.executemany(
            "UPDATE members SET unsynced = max(unsynced - ?, 0) WHERE member_id = ?",
            [(n, mid) for mid, n in unsynced.items()],
        )
        if delivered:
            done = int(_sync_value(conn, "acked_events") or 0) + delivered
            Store.set_sync(conn, "acked_events", str(done), now_iso)
        refreshed = upsert_members(
            conn, (rec for mid, rec in members.items() if mid in touched), now_iso
        )
        for mid, rec in members.items():
            if mid in touched and rec.member_id != mid:  # merged at the back office
                conn.execute(
                    "UPDATE members SET merged_into = ?, phone_hash = NULL WHERE member_id = ?",
                    (rec.member_id, mid),
                )
        if verdict_cursor is not None:
            Store.set_sync(conn, "verdict_cursor", str(verdict_cursor), now_iso)
        mark_contact(conn, now_iso)
        if clock_skew_seconds is not None:
            Store.set_sync(conn, "clock_skew_seconds", f"{clock_skew_seconds:.1f}", now_iso)
    return SettleSummary(len(ok_rows), len(bad_rows), refreshed, len(accepted_rows))


def has_awaiting_verdict(store: Store) -> bool:
    """Whether any event waits for the back office's verdict (one index probe)."""
    with store.read() as conn:
        row = conn.execute(f"SELECT 1 FROM outbox WHERE status = '{ACCEPTED}' LIMIT 1")
        return row.fetchone() is not None


def outbox_events(store: Store, event_ids: Sequence[str]) -> list[OutboxEvent]:
    """The journal rows of ``event_ids`` (those this till has), whatever their status."""
    out: list[OutboxEvent] = []
    with store.read() as conn:
        for i in range(0, len(event_ids), 500):
            part = list(event_ids[i : i + 500])
            marks = ",".join("?" * len(part))
            out.extend(
                OutboxEvent(*row)
                for row in conn.execute(
                    f"SELECT {_OUTBOX_COLS} FROM outbox WHERE event_id IN ({marks})", part
                )
            )
    return out


def _sync_value(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute("SELECT value FROM sync_state WHERE name = ?", (name,)).fetchone()
    return None if row is None else str(row[0])


def mark_contact(conn: sqlite3.Connection, now_iso: str) -> None:
    """The back office answered: the till is online; offline counters start again."""
    Store.set_sync(conn, "last_contact", now_iso, now_iso)
    Store.set_sync(conn, "offline_consecutive", "0", now_iso)
    Store.set_sync(conn, "offline_spent", "0", now_iso)
    conn.execute("DELETE FROM sync_state WHERE name = 'last_error'")


def record_error(store: Store, message: str, now_iso: str) -> None:
    """Remember why the last exchange failed (shown by ``kassa sync status`` and the UI)."""
    with store.write() as conn:
        Store.set_sync(conn, "last_error", message[:500], now_iso)


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the back office's change feed."""

    seq: int
    kind: Literal["member", "merge", "rules", "erase", "block", "coupon_revoked", "other"]
    member: MemberRecord | None = None
    merged_from: str | None = None
    merged_into: str | None = None
    rules_version: int | None = None
    rules_document: str | None = None
    member_id: str | None = None
    """``erase``: the member whose personal data is destroyed (``agent.erasure``);
    ``block``: the member blocked or unblocked (``blocked``)."""
    blocked: bool | None = None
    coupon_ids: tuple[str, ...] = ()
    """``coupon_revoked``: the coupons revoked (refused at this till from now on)."""
    revoked_at: str | None = None


def apply_changes(store: Store, changes: Sequence[Change], next_cursor: str, now_iso: str) -> bool:
    """Store a pulled page and its cursor in one transaction. Re-applying a page is
    harmless (rows are replaced, rules versions are inserted once). Returns whether a
    rules version was activated (the caller resets its cached programme)."""
    rules_changed = False
    with store.write() as conn:
        upsert_members(
            conn,
            (replace(c.member, feed_seq=c.seq) for c in changes if c.member is not None),
            now_iso,
        )
        for c in changes:
            if c.kind == "merge" and c.merged_from and c.merged_into:
                conn.execute(
                    "UPDATE members SET merged_into = ?, phone_hash = NULL WHERE member_id = ?",
                    (c.merged_into, c.merged_from),
                )
            elif c.kind == "rules" and c.rules_version is not None and c.rules_document:
                install_rules_document(conn, c.rules_version, c.rules_document, now_iso)
                rules_changed = True
            elif c.kind == "erase" and c.member_id:
                erase_cached(conn, c.member_id)
            elif c.kind == "block" and c.member_id and c.blocked is not None:
                set_blocked(conn, c.member_id, c.blocked)
            elif c.kind == "coupon_revoked" and c.coupon_ids:
                revoke_coupons(conn, c.coupon_ids, c.revoked_at or now_iso, now_iso)
        Store.set_sync(conn, "cursor", next_cursor, now_iso)
        mark_contact(conn, now_iso)
    return rules_changed


def revoke_coupons(
    conn: sqlite3.Connection, coupon_ids: Iterable[str], revoked_at: str, now_iso: str
) -> None:
    """Note coupons the programme revoked (ids, 32 hex digits); noting one twice is
    harmless."""
    conn.executemany(
        "INSERT INTO coupons_revoked(coupon_id, revoked_at, received_at) VALUES (?,?,?) "
        "ON CONFLICT(coupon_id) DO NOTHING",
        [(str(cid).lower(), revoked_at, now_iso) for cid in coupon_ids],
    )


def note_revoked_coupons(store: Store, coupon_ids: Iterable[str], now_iso: str) -> None:
    """The snapshot's list of revoked coupons noted (``revoke_coupons``) in one write."""
    with store.write() as conn:
        revoke_coupons(conn, coupon_ids, now_iso, now_iso)


def install_rules_document(
    conn: sqlite3.Connection, version: int, document: str, now_iso: str
) -> None:
    """Insert a programme version received from the back office (once) and activate it."""
    conn.execute(
        "INSERT INTO rules(version, document, received_at) VALUES (?,?,?) "
        "ON CONFLICT(version) DO NOTHING",
        (version, document, now_iso),
    )
    conn.execute("UPDATE rules SET active = (version = ?)", (version,))


def load_snapshot(store: Store, records: Iterable[MemberRecord], cursor: str, now_iso: str) -> int:
    """Load a member snapshot streamed from the back office, then set the pull cursor.

    An empty cache takes the fast bulk path; otherwise rows are upserted (members with
    local events in flight keep their local state). The outbox is never touched: an
    expired cursor costs a reload, never an unsent sale.
    """
    empty = store.one("SELECT 1 FROM members LIMIT 1") is None
    if empty:
        count = store.bulk_load_members(rec.row(now_iso) for rec in records)
    else:
        with store.write() as conn:
            count = upsert_members(conn, records, now_iso)
    with store.write() as conn:
        Store.set_sync(conn, "cursor", cursor, now_iso)
        mark_contact(conn, now_iso)
    return count


def load_snapshot_wire(
    store: Store, items: Iterable[Mapping[str, Any]], cursor: str, now_iso: str
) -> int:
    """``load_snapshot`` of member records as decoded from the wire (JSON objects).

    Into an empty cache each record goes straight to a row (``snapshot_row``), without a
    ``MemberRecord`` in between: a first load of a million members spends a third less
    time in Python."""
    empty = store.one("SELECT 1 FROM members LIMIT 1") is None
    if empty:
        count = store.bulk_load_members(snapshot_row(d, now_iso) for d in items)
    else:
        with store.write() as conn:
            count = upsert_members(conn, (member_record_from_wire(d) for d in items), now_iso)
    with store.write() as conn:
        Store.set_sync(conn, "cursor", cursor, now_iso)
        mark_contact(conn, now_iso)
    return count


def snapshot_row(data: Mapping[str, Any], now_iso: str) -> tuple[Any, ...]:
    """``member_record_from_wire(data).row(now_iso)``, the same checks and conversions."""
    state = data["state"]
    return (
        str(data["member_id"]),
        str(data["code"]),
        data.get("phone_hash"),
        data.get("phone_masked"),
        data.get("first_name"),
        state if isinstance(state, str) else json.dumps(state),
        int(data["balance"]),
        int(data["available"]),
        int(data["pending"]),
        int(data["expiring_points"]),
        data.get("expiring_on"),
        str(data["tier"]),
        now_iso,
        0,
        int(bool(data["consent_programme"])),
        int(bool(data["consent_marketing"])),
        now_iso,
    )


def status(store: Store) -> SyncStatus:
    with store.read() as conn:
        last_seq = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        acked = _sync_value(conn, "acked_events")
        oldest = conn.execute(
            "SELECT created_at FROM outbox WHERE status = 'pending' ORDER BY seq LIMIT 1"
        ).fetchone()
        q = conn.execute("SELECT count(*), max(code || ': ' || message) FROM quarantine").fetchone()
        skew = _sync_value(conn, "clock_skew_seconds")
        awaiting = conn.execute(
            f"SELECT count(*) FROM outbox WHERE status = '{ACCEPTED}'"
        ).fetchone()
        return SyncStatus(
            last_contact=_sync_value(conn, "last_contact"),
            events_waiting=int(last_seq[0] if last_seq else 0) - int(acked or 0),
            oldest_waiting=oldest[0] if oldest else None,
            quarantined=int(q[0]),
            last_quarantine=q[1],
            cursor=_sync_value(conn, "cursor"),
            last_error=_sync_value(conn, "last_error"),
            clock_skew_seconds=float(skew) if skew is not None else None,
            awaiting_verdict=int(awaiting[0]),
        )


def quarantine_rows(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(
            "SELECT q.seq, q.event_id, q.status, q.code, q.message, q.quarantined_at, o.type "
            "FROM quarantine q JOIN outbox o ON o.seq = q.seq ORDER BY q.seq"
        ).fetchall()
    keys = ("seq", "event_id", "status", "code", "message", "quarantined_at", "type")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def member_record_from_wire(data: Mapping[str, Any]) -> MemberRecord:
    """Decode a member record from the wire; ``KeyError``/``TypeError`` on a bad one."""
    state = data["state"]
    return MemberRecord(
        member_id=str(data["member_id"]),
        code=str(data["code"]),
        phone_hash=data.get("phone_hash"),
        phone_masked=data.get("phone_masked"),
        first_name=data.get("first_name"),
        state=state if isinstance(state, str) else json.dumps(state),
        balance=int(data["balance"]),
        available=int(data["available"]),
        pending=int(data["pending"]),
        expiring_points=int(data["expiring_points"]),
        expiring_on=data.get("expiring_on"),
        tier=str(data["tier"]),
        consent_programme=bool(data["consent_programme"]),
        consent_marketing=bool(data["consent_marketing"]),
        merged_into=data.get("merged_into"),
        feed_seq=None if data.get("feed_seq") is None else int(data["feed_seq"]),
    )


def start_new_epoch(store: Store, now_iso: str) -> str:
    """Give a restored or cloned store a new terminal epoch (returns it).

    Events journalled from now on carry the new epoch, so the back office tracks their
    ``seq`` separately from the original's (which may have gone on past the backup) and
    never mistakes them for duplicates; pending events keep the epoch they were made in.
    """
    epoch = uuid.uuid4().hex
    with store.write() as conn:
        Store.set_meta(conn, "terminal_epoch", epoch)
        Store.set_sync(conn, "epoch_started", now_iso, now_iso)
    return epoch

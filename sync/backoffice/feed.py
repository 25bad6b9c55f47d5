"""The change feed and the member snapshot: what tills pull from the back office.

- ``changes``: pages of member / merge / rules changes after a cursor (the ``changes``
  sequence); a cursor older than the pruned head is ``410 cursor_expired``.
- ``snapshot_lines``: every member as NDJSON (a header with the cursor to continue from,
  one line per member, a trailer with the count), for a new till or an expired cursor.
  The database writes each member's JSON line itself (``json_object`` on SQLite,
  ``json_build_object`` on PostgreSQL): for a million members the server then only joins
  text, which halves the time a till waits for its first load. Pages are keyset pages on
  ``member_id``, so memory stays bounded whatever the size of the base.

Scope: a till receives full records only of its own store's members (``members.store_id``,
the store that registered the member); of the rest of the chain it gets the record a till
needs to identify a member offline and let them spend (id, code, phone hash, state,
points, tier), with ``first_name`` and ``phone_masked`` null (``PERSONAL``), so one stolen
till token exports no names or masked phones of other stores (docs/threat-model.md,
"Scopes"). ``store_id`` None (the back office's own callers) reads every record in full.

Every member record a till receives outside the feed (``member_records``: push answers,
verdicts; snapshot rows) carries ``feed_seq``, the feed's head read in the same statement
as the row: the row reflects exactly the changes up to it (feed numbers commit in order,
``db``), so the till can tell a feed entry older than the record it holds from a newer one
(``agent.journal.upsert_members``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sync.backoffice.db import Database, Tx
from sync.protocol import MAX_ENVELOPE_INT, ProtocolError

CHANGES_PAGE_MAX = 1000
SNAPSHOT_PAGE = 10_000  # members per database round trip and per streamed chunk

# The member record of the wire (``agent.journal.MemberRecord``), field by field.
_FIELDS = (
    "member_id",
    "code",
    "phone_hash",
    "phone_masked",
    "first_name",
    "state",
    "balance",
    "available",
    "pending",
    "expiring_points",
    "expiring_on",
    "tier",
    "consent_programme",
    "consent_marketing",
    "merged_into",
)
_BOOLS = ("consent_programme", "consent_marketing")
PERSONAL = ("first_name", "phone_masked")
"""The record's personal fields a till of another store than the member's gets as null."""


HEAD_SQL = "(SELECT COALESCE(max(seq), 0) FROM changes)"
"""The feed's head, as a column of a statement that reads member rows (``feed_seq``)."""


def _record_sql(dialect: str, scoped: bool = False) -> str:
    """The SQL expression that renders one ``members`` row as its wire JSON text, with the
    feed position it reflects (``feed_seq``). ``scoped``: the ``PERSONAL`` fields are
    null unless the row's ``store_id`` is the statement's first parameters (one per
    field, in ``PERSONAL``'s order)."""
    parts = [f"'feed_seq', {HEAD_SQL}"]
    for name in _FIELDS:
        if scoped and name in PERSONAL:
            value = f"CASE WHEN store_id = ? THEN {name} END"
        elif name in _BOOLS:
            value = (
                f"json(CASE WHEN {name} <> 0 THEN 'true' ELSE 'false' END)"
                if dialect == "sqlite"
                else f"({name} <> 0)"
            )
        else:
            value = name
        parts.append(f"'{name}', {value}")
    if dialect == "sqlite":
        return f"json_object({', '.join(parts)})"
    return f"json_build_object({', '.join(parts)})::text"


def line(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def feed_head(db: Database) -> int:
    with db.reading() as tx:
        row = tx.one("SELECT max(seq) FROM changes")
    return int(row[0] or 0)


def snapshot_lines(
    db: Database,
    rules_version: int | None,
    page: int = SNAPSHOT_PAGE,
    revoked_coupons: list[str] | None = None,
    blocked_members: list[str] | None = None,
    store_id: str | None = None,
) -> Iterator[bytes]:
    """NDJSON chunks (see module doc); the cursor is taken first, so changes made while
    the snapshot streams are pulled again afterwards (applying them twice is harmless).
    The header lists ``revoked_coupons`` (ids of revoked coupons still within their
    validity) and ``blocked_members`` (the members whose card is blocked): the feed's
    older ``coupon_revoked`` and ``block`` changes are behind the cursor. ``store_id``:
    the reading till's store (other stores' members without ``PERSONAL``; None: all in
    full)."""
    head = feed_head(db)
    header: dict[str, Any] = {
        "kind": "snapshot",
        "cursor": str(head),
        "rules_version": rules_version,
    }
    if revoked_coupons:
        header["revoked_coupons"] = revoked_coupons
    if blocked_members:
        header["blocked_members"] = blocked_members
    yield line(header)
    scoped = store_id is not None
    sql = (
        f"SELECT member_id, {_record_sql(db.dialect, scoped)} FROM members "
        "WHERE member_id > ? ORDER BY member_id LIMIT ?"
    )
    scope = (store_id,) * len(PERSONAL) if scoped else ()
    last = ""
    count = 0
    while True:
        with db.reading() as tx:
            rows = tx.all(sql, (*scope, last, page))
        if not rows:
            break
        count += len(rows)
        last = rows[-1][0]
        yield ("\n".join([r[1] for r in rows]) + "\n").encode()
    yield line({"kind": "end", "members": count})


def changes(
    db: Database, cursor: str | None, limit: int = 500, store_id: str | None = None
) -> dict[str, Any]:
    """A page of changes after ``cursor``; 410 ``cursor_expired`` when pruned past it.
    ``store_id``: the reading till's store (a ``member`` change of another store's member
    carries its record without ``PERSONAL``; None: all in full)."""
    try:
        after = int(cursor or "0")
    except ValueError:
        raise ProtocolError(400, "bad_cursor", f"cursor {cursor!r} is not valid") from None
    if not 0 <= after <= MAX_ENVELOPE_INT:
        raise ProtocolError(400, "bad_cursor", "cursor is out of range")
    limit = max(1, min(limit, CHANGES_PAGE_MAX))
    with db.reading() as tx:
        oldest = tx.one("SELECT value FROM settings WHERE key = 'feed_pruned_through'")
        if oldest is not None and after < int(oldest[0]):
            raise ProtocolError(
                410,
                "cursor_expired",
                "changes before this cursor were pruned; load /v1/snapshot",
                pruned_through=int(oldest[0]),
            )
        rows = tx.all(
            "SELECT c.seq, c.kind, c.member_id, c.body, m.store_id FROM changes c "
            "LEFT JOIN members m ON m.member_id = c.member_id AND c.kind = 'member' "
            "WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
            (after, limit + 1),
        )
    more = len(rows) > limit
    rows = rows[:limit]
    out = []
    for r in rows:
        body = json.loads(r[3])
        if store_id is not None and r[1] == "member" and r[4] != store_id:
            body.update(dict.fromkeys(PERSONAL))
        out.append({"seq": int(r[0]), "kind": r[1], "member_id": r[2], "body": body})
    next_cursor = str(rows[-1][0]) if rows else str(after)
    return {"changes": out, "next_cursor": next_cursor, "more": more}


def prune_changes(db: Database, keep_after: int) -> int:
    """Drop changes up to ``keep_after``; cursors before it are then expired."""
    with db.transaction(feed=True) as tx:
        n = tx.execute("DELETE FROM changes WHERE seq <= ?", (keep_after,)).rowcount
        tx.execute(
            "INSERT INTO settings(key, value) VALUES ('feed_pruned_through', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(keep_after),),
        )
    return n


RECORD_COLS = (
    "member_id, code, phone_hash, phone_masked, first_name, state, balance, available, "
    "pending, expiring_points, expiring_on, tier, consent_programme, consent_marketing, "
    f"merged_into, {HEAD_SQL}"
)


def record_from_row(r: Any) -> dict[str, Any]:
    return {
        "member_id": r[0],
        "code": r[1],
        "phone_hash": r[2],
        "phone_masked": r[3],
        "first_name": r[4],
        "state": r[5],
        "balance": int(r[6]),
        "available": int(r[7]),
        "pending": int(r[8]),
        "expiring_points": int(r[9]),
        "expiring_on": r[10],
        "tier": r[11],
        "consent_programme": bool(r[12]),
        "consent_marketing": bool(r[13]),
        "merged_into": r[14],
        "feed_seq": int(r[15]),
    }


def member_records(tx: Tx, member_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The current wire records of ``member_ids``; a merged member's id maps to the record
    of the member it was merged into (what its till should hold from now on)."""
    rows: dict[str, Any] = {}
    wanted = set(member_ids)
    for _ in range(5):  # merge chains are at most a few links
        ids = sorted(wanted - rows.keys())
        for i in range(0, len(ids), 400):
            part = ids[i : i + 400]
            marks = ",".join("?" * len(part))
            for row in tx.all(
                f"SELECT {RECORD_COLS} FROM members WHERE member_id IN ({marks})", part
            ):
                rows[row[0]] = row
        wanted = {r[14] for r in rows.values() if r[14] is not None} - rows.keys()
        if not wanted:
            break
    out: dict[str, dict[str, Any]] = {}
    for mid in member_ids:
        row = rows.get(mid)
        for _ in range(5):
            if row is None or row[14] is None:
                break
            row = rows.get(row[14])
        if row is not None and row[14] is None:
            out[mid] = record_from_row(row)
    return out

"""The back office: enrollment, the exactly-once ledger, the change feed, rules, tokens.

Exactly once: an event's row in ``events`` (keyed by ``event_id``) and its effect on the
member commit in one transaction, so a resend after a lost response finds the row and is
answered ``duplicate`` with nothing applied twice; the same id with another payload hash
is a ``conflict`` and changes nothing. The server never rejects a spend after the fact
(the goods have left the store): a spend the member's server balance cannot cover
becomes debt, flagged as an ``overdraft`` and repaid from later accruals.

Every event is re-scored with the same rules engine the till ran (``agent.engine``); a
difference from what the till printed is flagged (``rescore_mismatch``), never silently
"corrected": the slip the customer holds is what the ledger honours.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import psycopg

from agent import codec, engine
from agent.errors import AgentError, RedemptionError
from agent.identify import check_member_code
from agent.journal import MemberRecord
from agent.ledger import PurchaseEffects, apply_purchase, apply_refund
from agent.model import Cart, MemberState, PointLot, Quote
from agent.rules import Programme, parse_programme, programme_to_dict
from agent.seed import demo_programme
from agent.service import Clock, SystemClock
from agent.tokens import (
    TokenSigner,
    generate_programme_keys,
    issue_member_token,
    load_ed25519_private_key,
)
from sync.backoffice.db import Database, Tx
from sync.backoffice.schema import migrate
from sync.protocol import (
    EVENT_TYPES,
    HASH_RE,
    MAX_ENVELOPE_INT,
    MAX_PAYLOAD_BYTES,
    SUPPORTED_SCHEMAS,
    TERMINAL_ID_RE,
    EventResult,
    ProtocolError,
    PushRequest,
    WireEvent,
    clean_text,
    strict_json,
)

CLOCK_SKEW_FLAG_SECONDS = 300
CHANGES_PAGE_MAX = 1000
ENROLL_CODE_TTL_HOURS = 24


class Rejected(Exception):
    """An event that cannot enter the ledger: answered ``rejected`` with ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Terminal:
    terminal_id: str
    store_id: str
    name: str


def token_hash(token: str) -> str:
    """Bearer tokens and enrollment codes are stored as SHA-256 hex, never in clear."""
    return hashlib.sha256(token.encode()).hexdigest()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class _Member:
    """A member loaded into a batch: its state is changed in memory, written once."""

    member_id: str
    state: MemberState
    code: str
    phone_hash: str | None
    phone_masked: str | None
    first_name: str | None
    consent_programme: bool
    consent_marketing: bool
    merged_into: str | None
    new: bool = False
    dirty: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


_MEMBER_COLS = (
    "member_id, state, code, phone_hash, phone_masked, first_name, consent_programme, "
    "consent_marketing, merged_into"
)


class Backoffice:
    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self._rules: dict[int, Programme] = {}
        self._terminals: dict[str, Terminal] = {}
        self._settings: dict[str, str] = {}

    # ------------------------------------------------------------------ set-up
    def initialise(self) -> None:
        """Migrate, make the programme keys once, publish the demo programme if none."""
        migrate(self.db)
        with self.db.transaction() as tx:
            if tx.one("SELECT 1 FROM settings WHERE key = 'token_private_key'") is None:
                values = {**generate_programme_keys(), "admin_token_hash": ""}
                tx.executemany(
                    "INSERT INTO settings(key, value) VALUES (?, ?)", list(values.items())
                )
        if self.active_rules_version() is None:
            self.publish_rules(demo_programme())

    def setting(self, key: str) -> str:
        if key not in self._settings:
            with self.db.reading() as tx:
                row = tx.one("SELECT value FROM settings WHERE key = ?", (key,))
            if row is None:
                raise KeyError(key)
            self._settings[key] = str(row[0])
        return self._settings[key]

    def new_admin_token(self) -> str:
        """A fresh admin token (for the KPI endpoint); only its hash is kept."""
        token = secrets.token_urlsafe(32)
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE settings SET value = ? WHERE key = 'admin_token_hash'",
                (token_hash(token),),
            )
        self._settings.pop("admin_token_hash", None)
        return token

    def is_admin(self, token: str) -> bool:
        expected = self.setting("admin_token_hash")
        return bool(expected) and secrets.compare_digest(expected, token_hash(token))

    def ensure_store(self, store_id: str, name: str) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO stores(store_id, name, created_at) VALUES (?,?,?) "
                "ON CONFLICT(store_id) DO NOTHING",
                (store_id, name, self.clock.now().isoformat()),
            )

    def enroll_code(self, store_id: str, *, ttl_hours: int = ENROLL_CODE_TTL_HOURS) -> str:
        """A one-time code an installer types at a new till (kept hashed, expires)."""
        raw = secrets.token_hex(6).upper()
        code = f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"
        now = self.clock.now()
        with self.db.transaction() as tx:
            if tx.one("SELECT 1 FROM stores WHERE store_id = ?", (store_id,)) is None:
                raise ProtocolError(404, "unknown_store", f"store {store_id} does not exist")
            tx.execute(
                "INSERT INTO enroll_codes(code_hash, store_id, created_at, expires_at) "
                "VALUES (?,?,?,?)",
                (
                    token_hash(code),
                    store_id,
                    now.isoformat(),
                    (now + timedelta(hours=ttl_hours)).isoformat(),
                ),
            )
        return code

    def enroll(self, code: str, name: str, terminal_id: str | None = None) -> dict[str, Any]:
        """Exchange a one-time code for a terminal id and bearer token (shown once)."""
        if not code.isascii() or not code.isprintable() or len(code) > 64:
            raise ProtocolError(403, "bad_enroll_code", "enrollment code is not valid")
        clean_text(name, "name", 80)
        if terminal_id is not None and not TERMINAL_ID_RE.match(terminal_id):
            raise ProtocolError(
                400, "bad_field", "terminal_id: 1-64 letters, digits, _ . : -", field="terminal_id"
            )
        now = self.clock.now()
        token = secrets.token_urlsafe(32)
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT store_id, expires_at, used_by FROM enroll_codes WHERE code_hash = ?",
                (token_hash(code.strip().upper()),),
            )
            if row is None:
                raise ProtocolError(403, "bad_enroll_code", "enrollment code is not valid")
            if row[2] is not None:
                raise ProtocolError(403, "enroll_code_used", "enrollment code was already used")
            if datetime.fromisoformat(row[1]) < now:
                raise ProtocolError(403, "enroll_code_expired", "enrollment code has expired")
            tid = terminal_id or f"t-{secrets.token_hex(6)}"
            if tx.one("SELECT 1 FROM terminals WHERE terminal_id = ?", (tid,)):
                raise ProtocolError(409, "terminal_exists", f"terminal {tid} already enrolled")
            tx.execute(
                "INSERT INTO terminals(terminal_id, store_id, name, token_hash, enrolled_at) "
                "VALUES (?,?,?,?,?)",
                (tid, row[0], name[:80] or tid, token_hash(token), now.isoformat()),
            )
            tx.execute(
                "UPDATE enroll_codes SET used_by = ?, used_at = ? WHERE code_hash = ?",
                (tid, now.isoformat(), token_hash(code.strip().upper())),
            )
            store_name = tx.one("SELECT name FROM stores WHERE store_id = ?", (row[0],))[0]
        version = self.active_rules_version()
        assert version is not None
        return {
            "terminal_id": tid,
            "token": token,
            "store_id": row[0],
            "store_name": store_name,
            "phone_hash_key": self.setting("phone_hash_key"),
            "token_public_key": self.setting("token_public_key"),
            "seal_public_key": self.setting("seal_public_key"),
            "rules": {"version": version, "document": self.rules_document(version)},
        }

    def authenticate(self, token: str) -> Terminal | None:
        key = token_hash(token)
        hit = self._terminals.get(key)
        if hit is not None:
            return hit
        with self.db.reading() as tx:
            row = tx.one(
                "SELECT terminal_id, store_id, name FROM terminals "
                "WHERE token_hash = ? AND revoked = 0",
                (key,),
            )
        if row is None:
            return None
        term = Terminal(*row)
        self._terminals[key] = term
        return term

    # ------------------------------------------------------------------ rules
    def publish_rules(self, programme: Programme) -> int:
        """Make ``programme`` the active one and announce it to tills in the change feed."""
        doc = codec.dumps(programme_to_dict(programme))
        now = self.clock.now().isoformat()
        with self.db.transaction(feed=True) as tx:
            row = tx.one("SELECT document FROM rules WHERE version = ?", (programme.version,))
            if row is not None and row[0] != doc:
                raise ProtocolError(
                    409,
                    "rules_version_exists",
                    f"rules version {programme.version} exists with other content",
                )
            if row is None:
                tx.execute(
                    "INSERT INTO rules(version, document, published_at) VALUES (?,?,?)",
                    (programme.version, doc, now),
                )
            tx.execute(
                "UPDATE rules SET active = CASE WHEN version = ? THEN 1 ELSE 0 END",
                (programme.version,),
            )
            body = json.dumps({"version": programme.version, "document": doc})
            tx.execute(
                "INSERT INTO changes(kind, member_id, body, created_at) "
                "VALUES ('rules', NULL, ?, ?)",
                (body, now),
            )
        return programme.version

    def active_rules_version(self, tx: Tx | None = None) -> int | None:
        with self._read(tx) as t:
            row = t.one("SELECT version FROM rules WHERE active = 1")
        return None if row is None else int(row[0])

    def rules_document(self, version: int, tx: Tx | None = None) -> str:
        with self._read(tx) as t:
            row = t.one("SELECT document FROM rules WHERE version = ?", (version,))
        if row is None:
            raise KeyError(version)
        return str(row[0])

    def _read(self, tx: Tx | None) -> contextlib.AbstractContextManager[Tx]:
        """Inside a transaction, read through it (never a second connection)."""
        return contextlib.nullcontext(tx) if tx is not None else self.db.reading()

    def rules(self, version: int | None = None, tx: Tx | None = None) -> Programme | None:
        if version is None:
            version = self.active_rules_version(tx)
            if version is None:
                return None
        hit = self._rules.get(version)
        if hit is None:
            try:
                doc = self.rules_document(version, tx)
            except KeyError:
                return None
            hit = self._rules[version] = parse_programme(json.loads(doc), f"rules v{version}")
        return hit

    # ------------------------------------------------------------------ ingest
    def push(
        self, terminal: Terminal, req: PushRequest, sent_at: datetime | None = None
    ) -> dict[str, Any]:
        """Apply a batch in one transaction; one result per event (see module doc)."""
        if req.terminal_id != terminal.terminal_id:
            raise ProtocolError(403, "wrong_terminal", "this token belongs to another terminal")
        for i, ev in enumerate(req.events):
            if ev.terminal_id != terminal.terminal_id:
                raise ProtocolError(
                    403,
                    "wrong_terminal",
                    f"events[{i}] belongs to terminal {ev.terminal_id}, not this token's",
                    index=i,
                )
        now = self.clock.now()
        skew = (sent_at - now).total_seconds() if sent_at else None
        batch = _Batch(self, terminal, now)
        with self.db.transaction(feed=True) as tx:
            batch.tx = tx
            known = batch.known(req.events)
            results = [batch.one(ev, known) for ev in req.events]
            members = batch.flush()
            gaps = batch.track_seq(req.events)
            if skew is not None and abs(skew) > CLOCK_SKEW_FLAG_SECONDS:
                batch.flag("clock_skew", None, None, {"skew_seconds": round(skew, 1)})
            tx.execute(
                "UPDATE terminals SET last_seen = ? WHERE terminal_id = ?",
                (now.isoformat(), terminal.terminal_id),
            )
            batch.write_flags()
        return {
            "results": [r.to_dict() for r in results],
            "gaps": gaps,
            "members": members,
            "server_time": now.isoformat(),
            "clock_skew_seconds": None if skew is None else round(skew, 1),
        }

    # ------------------------------------------------------------------ feed
    def changes(self, cursor: str | None, limit: int = 500) -> dict[str, Any]:
        """A page of changes after ``cursor``; 410 ``cursor_expired`` when pruned past it."""
        try:
            after = int(cursor or "0")
        except ValueError:
            raise ProtocolError(400, "bad_cursor", f"cursor {cursor!r} is not valid") from None
        if not 0 <= after <= MAX_ENVELOPE_INT:
            raise ProtocolError(400, "bad_cursor", "cursor is out of range")
        limit = max(1, min(limit, CHANGES_PAGE_MAX))
        with self.db.reading() as tx:
            oldest = tx.one("SELECT value FROM settings WHERE key = 'feed_pruned_through'")
            if oldest is not None and after < int(oldest[0]):
                raise ProtocolError(
                    410,
                    "cursor_expired",
                    "changes before this cursor were pruned; load /v1/snapshot",
                    pruned_through=int(oldest[0]),
                )
            rows = tx.all(
                "SELECT seq, kind, member_id, body FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit + 1),
            )
        more = len(rows) > limit
        rows = rows[:limit]
        changes = [
            {"seq": int(r[0]), "kind": r[1], "member_id": r[2], "body": json.loads(r[3])}
            for r in rows
        ]
        next_cursor = str(rows[-1][0]) if rows else str(after)
        return {"changes": changes, "next_cursor": next_cursor, "more": more}

    def prune_changes(self, keep_after: int) -> int:
        """Drop changes up to ``keep_after``; cursors before it are then expired."""
        with self.db.transaction(feed=True) as tx:
            n = tx.execute("DELETE FROM changes WHERE seq <= ?", (keep_after,)).rowcount
            tx.execute(
                "INSERT INTO settings(key, value) VALUES ('feed_pruned_through', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(keep_after),),
            )
        return n

    def feed_head(self) -> int:
        with self.db.reading() as tx:
            row = tx.one("SELECT max(seq) FROM changes")
        return int(row[0] or 0)

    def snapshot_lines(self, page: int = 5000) -> Iterator[bytes]:
        """NDJSON: a header with the cursor to continue from, one line per member, a trailer.

        Streamed page by page (keyset on member_id) so memory stays bounded whatever the
        size of the base; the cursor is taken first, so later changes are re-pulled.
        """
        head = self.feed_head()
        version = self.active_rules_version()
        yield _line({"kind": "snapshot", "cursor": str(head), "rules_version": version})
        last = ""
        count = 0
        while True:
            with self.db.reading() as tx:
                rows = tx.all(
                    f"SELECT {_RECORD_COLS} FROM members WHERE member_id > ? "
                    "ORDER BY member_id LIMIT ?",
                    (last, page),
                )
            if not rows:
                break
            out = bytearray()
            for r in rows:
                out += _line(_record_from_row(r))
            count += len(rows)
            last = rows[-1][0]
            yield bytes(out)
        yield _line({"kind": "end", "members": count})

    # ------------------------------------------------------------------ members
    def lookup(self, *, phone_hash: str | None = None, code: str | None = None) -> dict[str, Any]:
        if bool(phone_hash) == bool(code):
            raise ProtocolError(400, "bad_query", "give exactly one of phone_hash or code")
        where, value = ("phone_hash", phone_hash) if phone_hash else ("code", code)
        if not value or not value.isascii() or not value.isalnum() or len(value) > 64:
            raise ProtocolError(404, "member_not_found", "no such member")
        with self.db.reading() as tx:
            row = tx.one(
                f"SELECT {_RECORD_COLS} FROM members WHERE {where} = ? AND merged_into IS NULL",
                (value,),
            )
        if row is None:
            raise ProtocolError(404, "member_not_found", "no such member")
        return _record_from_row(row)

    def member_token(self, code: str, ttl_seconds: int = 300) -> dict[str, Any]:
        try:
            code = check_member_code(code)
        except AgentError as e:
            raise ProtocolError(400, "bad_member_code", e.message_en) from None
        self.lookup(code=code)
        now = self.clock.now()
        signer = TokenSigner(1, load_ed25519_private_key(self.setting("token_private_key")))
        return {
            "token": issue_member_token(signer, code, now, ttl_seconds),
            "expires_at": (now + timedelta(seconds=ttl_seconds)).isoformat(),
        }

    def load_members(self, rows: Iterator[tuple[Any, ...]], store_id: str | None = None) -> int:
        """Bulk insert members (demo seed): rows in the till's ``MEMBER_LOAD_COLUMNS`` order."""
        sql = (
            "INSERT INTO members(member_id, code, phone_hash, phone_masked, first_name, state, "
            "balance, available, pending, expiring_points, expiring_on, tier, "
            "consent_programme, consent_marketing, registered_at, store_id, updated_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        )
        count = 0
        chunk: list[tuple[Any, ...]] = []
        with self.db.transaction() as tx:
            for r in rows:
                chunk.append((*r[:12], int(r[14]), int(r[15]), r[12], store_id, r[16]))
                if len(chunk) >= 10_000:
                    tx.executemany(sql, chunk)
                    count += len(chunk)
                    chunk.clear()
            tx.executemany(sql, chunk)
            count += len(chunk)
        return count


_RECORD_COLS = (
    "member_id, code, phone_hash, phone_masked, first_name, state, balance, available, "
    "pending, expiring_points, expiring_on, tier, consent_programme, consent_marketing, "
    "merged_into"
)


def _record_from_row(r: Any) -> dict[str, Any]:
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
    }


def _line(obj: Any) -> bytes:
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def _no_floats(value: Any, path: str = "payload") -> None:
    """Money and points are integers: a float anywhere in a payload is refused."""
    if isinstance(value, float):
        raise Rejected("bad_payload", f"{path} must be an integer, got {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            _no_floats(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_floats(v, f"{path}[{i}]")


MAX_POINTS = 10**12


def _nonneg(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_POINTS:
        raise Rejected("bad_payload", f"{path} must be an integer from 0 to {MAX_POINTS}")
    return value


def _is_db_outage(e: Exception) -> bool:
    """A lost database connection is not the event's fault: let the push fail (5xx, the
    till resends) instead of rejecting a good event."""
    return isinstance(e, psycopg.OperationalError | sqlite3.OperationalError) and not isinstance(
        e, psycopg.errors.DataError
    )


def _opt(payload: dict[str, Any], key: str, limit: int = 200) -> str | None:
    """An optional text field as both databases can store it (or a rejection naming it)."""
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise Rejected("bad_payload", f"payload.{key} must be text up to {limit} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Rejected("bad_payload", f"payload.{key} is not valid text") from None
    return value


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise Rejected("bad_payload", f"payload.{key} must be a non-empty string")
    return value


def _moment(text: Any, path: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise Rejected("bad_payload", f"{path} must be an ISO 8601 time") from None
    if dt.tzinfo is None:
        raise Rejected("bad_payload", f"{path} must carry a UTC offset")
    return dt


class _Batch:
    """The work of one push transaction."""

    def __init__(self, bo: Backoffice, terminal: Terminal, now: datetime) -> None:
        self.bo = bo
        self.terminal = terminal
        self.now = now
        self.now_iso = now.isoformat()
        self.tx: Tx
        self.members: dict[str, _Member] = {}
        self.requested: dict[str, str] = {}  # member id as the till sent it -> resolved id
        self.flags: list[tuple[Any, ...]] = []
        self.event_rows: list[tuple[Any, ...]] = []

    # -- dedup
    def known(self, events: tuple[WireEvent, ...]) -> dict[str, tuple[str, str, str | None]]:
        ids = [e.event_id for e in events]
        out: dict[str, tuple[str, str, str | None]] = {}
        for i in range(0, len(ids), 400):
            part = ids[i : i + 400]
            marks = ",".join("?" * len(part))
            for row in self.tx.all(
                f"SELECT event_id, payload_hash, status, code FROM events "
                f"WHERE event_id IN ({marks})",
                part,
            ):
                out[row[0]] = (row[1], row[2], row[3])
        return out

    def one(self, ev: WireEvent, known: dict[str, tuple[str, str, str | None]]) -> EventResult:
        prior = known.get(ev.event_id)
        if prior is not None:
            if prior[0] != ev.payload_hash:
                self.tx.execute(
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
        # Each event runs under a savepoint with the batch's in-memory state saved: an
        # event refused half-way (bad data deep in a payload, a value the database will
        # not store) leaves no trace, and the rest of the batch goes on.
        saved = {k: (m.state, m.dirty, m.merged_into) for k, m in self.members.items()}
        saved_requested = dict(self.requested)
        saved_flags = len(self.flags)
        self.tx.execute("SAVEPOINT event")
        try:
            payload = self.check(ev)
            member_id = self.apply(ev, payload)
            self.tx.execute("RELEASE SAVEPOINT event")
        except Exception as e:
            self.tx.execute("ROLLBACK TO SAVEPOINT event")
            self.tx.execute("RELEASE SAVEPOINT event")
            for k in [k for k in self.members if k not in saved]:
                del self.members[k]
            for k, (state, dirty, merged) in saved.items():
                m = self.members[k]
                m.state, m.dirty, m.merged_into = state, dirty, merged
            self.requested = saved_requested
            del self.flags[saved_flags:]
            member_id = None
            if isinstance(e, Rejected):
                status, code, message = "rejected", e.code, e.message
            elif isinstance(e, AgentError):
                status, code, message = "rejected", e.code, e.message_en
            elif isinstance(e, Exception) and not _is_db_outage(e):
                status, code = "rejected", "bad_payload"
                message = f"payload cannot be applied: {type(e).__name__}"
            else:
                raise
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

    def check(self, ev: WireEvent) -> dict[str, Any]:
        if ev.seq < 1:
            raise Rejected("bad_seq", "seq must be 1 or more")
        if not ev.terminal_epoch or len(ev.terminal_epoch) > 64:
            raise Rejected("bad_epoch", "terminal_epoch must be 1-64 characters")
        if ev.type not in EVENT_TYPES:
            raise Rejected("unknown_type", f"event type {ev.type!r} is not known")
        if ev.schema_version not in SUPPORTED_SCHEMAS:
            raise Rejected(
                "unsupported_schema", f"schema_version {ev.schema_version} is not supported"
            )
        if len(ev.payload) > MAX_PAYLOAD_BYTES:
            raise Rejected("payload_too_large", f"payload is over {MAX_PAYLOAD_BYTES} bytes")
        if not HASH_RE.match(ev.payload_hash) or _sha(ev.payload) != ev.payload_hash:
            raise Rejected("hash_mismatch", "payload_hash is not the SHA-256 of payload")
        _moment(ev.created_at, "created_at")
        try:
            payload = strict_json(ev.payload)
        except ValueError as e:
            raise Rejected("bad_payload", f"payload is not valid JSON: {e}") from None
        if not isinstance(payload, dict):
            raise Rejected("bad_payload", "payload must be a JSON object")
        _no_floats(payload)
        return payload

    # -- members
    def member(self, member_id: Any) -> _Member:
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
                m = _Member(
                    row[0],
                    codec.loads(MemberState, row[1]),
                    row[2],
                    row[3],
                    row[4],
                    row[5],
                    bool(row[6]),
                    bool(row[7]),
                    row[8],
                )
                self.members[member_id] = m
            if m.merged_into is None:
                self.requested[asked] = m.member_id
                return m
            member_id = m.merged_into
        raise Rejected("unknown_member", f"member {asked} merge chain too long")

    def rules_for(self, version: Any, ev: WireEvent) -> Programme:
        rules = self.bo.rules(version, self.tx) if isinstance(version, int) else None
        if rules is None:
            active = self.bo.rules(None, self.tx)
            assert active is not None
            self.flag("unknown_rules_version", ev, None, {"version": version})
            return active
        return rules

    def flag(
        self, kind: str, ev: WireEvent | None, member_id: str | None, detail: dict[str, Any]
    ) -> None:
        self.flags.append(
            (
                kind,
                ev.event_id if ev else None,
                member_id,
                self.terminal.terminal_id,
                json.dumps(detail, ensure_ascii=False, default=str),
                self.now_iso,
            )
        )

    # -- apply
    def apply(self, ev: WireEvent, payload: dict[str, Any]) -> str:
        if ev.type == "purchase":
            return self.purchase(ev, payload)
        if ev.type == "refund":
            return self.refund(ev, payload)
        return self.registration(ev, payload)

    def purchase(self, ev: WireEvent, p: dict[str, Any]) -> str:
        m = self.member(p.get("member_id"))
        occurred = _moment(p.get("occurred_at"), "payload.occurred_at")
        try:
            cart = codec.from_plain(Cart, p["cart"])
            q = codec.from_plain(Quote, p["quote"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise Rejected("bad_payload", f"cart or quote is malformed: {e!r}") from None
        receipt_id = _text(p, "receipt_id")
        if q.receipt_id != receipt_id or cart.receipt_id != receipt_id:
            raise Rejected("bad_payload", "receipt_id differs between cart, quote and payload")
        _nonneg(q.redeem_points, "quote.redeem_points")
        _nonneg(q.earn_points, "quote.earn_points")
        for b in q.bonuses:
            _nonneg(b.points, "quote.bonuses.points")
        if {ql.line_no for ql in q.lines} != {line.line_no for line in cart.lines}:
            raise Rejected("bad_payload", "quote lines do not match cart lines")
        if sum(ql.redeemed_points for ql in q.lines) != q.redeem_points:
            raise Rejected("bad_payload", "line redemptions do not add up to redeem_points")
        rules = self.rules_for(q.rules_version, ev)
        engine.validate_cart(cart, rules)
        if self.tx.one(
            "SELECT 1 FROM purchases WHERE terminal_id = ? AND receipt_id = ?",
            (self.terminal.terminal_id, receipt_id),
        ):
            raise Rejected("duplicate_receipt", f"receipt {receipt_id} already in the ledger")
        self.rescore(ev, m, cart, q, rules, occurred)
        q = replace(q, member_id=m.member_id)
        state = replace(m.state, member_id=m.member_id)
        available = state.available_points(occurred) - state.debt
        new_state, effects = apply_purchase(
            state, cart, q, rules, occurred, ev.event_id, allow_overdraft=True
        )
        if effects.overdraft:
            self.flag(
                "overdraft",
                ev,
                m.member_id,
                {
                    "spent": q.redeem_points,
                    "available": available,
                    "overdraft": effects.overdraft,
                    "debt_after": new_state.debt,
                },
            )
        m.state, m.dirty = new_state, True
        bonus = sum(b.points for b in q.bonuses)
        self.tx.execute(
            "INSERT INTO purchases(event_id, receipt_id, terminal_id, store_id, member_id, "
            "occurred_at, day, cashier_id, identified_by, offline, amount_kop, paid_kop, earned, "
            "bonus, spent, effects) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                ev.event_id,
                receipt_id,
                self.terminal.terminal_id,
                self.terminal.store_id,
                m.member_id,
                occurred.isoformat(),
                engine.local_date(rules, occurred).isoformat(),
                _opt(p, "cashier_id"),
                _opt(p, "identified_by"),
                int(bool(p.get("offline"))),
                cart.total_kop,
                sum(ql.payable_kop for ql in q.lines),
                q.earn_points,
                bonus,
                q.redeem_points,
                codec.dumps(effects),
            ),
        )
        return m.member_id

    def rescore(
        self, ev: WireEvent, m: _Member, cart: Cart, q: Quote, rules: Programme, at: datetime
    ) -> None:
        """Score the cheque again at the centre; flag what differs from the till."""
        try:
            try:
                mine = engine.quote(cart, m.state, rules, at, redeem_points=q.redeem_points)
            except RedemptionError:  # the centre's balance is lower (an overdraft)
                mine = engine.quote(cart, m.state, rules, at, redeem_points="max")
        except AgentError as e:
            self.flag("rescore_mismatch", ev, m.member_id, {"error": e.code})
            return
        till = (q.earn_points, sorted((b.kind, b.points) for b in q.bonuses))
        ours = (mine.earn_points, sorted((b.kind, b.points) for b in mine.bonuses))
        if till != ours and not q.coupon_id:
            self.flag(
                "rescore_mismatch",
                ev,
                m.member_id,
                {"till": till, "server": ours, "redeem": q.redeem_points},
            )

    def refund(self, ev: WireEvent, p: dict[str, Any]) -> str:
        occurred = _moment(p.get("occurred_at"), "payload.occurred_at")
        purchase_event = _text(p, "purchase_event_id")
        row = self.tx.one(
            "SELECT member_id, effects, refunded, store_id FROM purchases WHERE event_id = ?",
            (purchase_event,),
        )
        if row is None:
            raise Rejected("unknown_purchase", f"purchase {purchase_event} is not in the ledger")
        lines = p.get("lines")
        if not isinstance(lines, dict) or not lines:
            raise Rejected("bad_payload", "payload.lines must map line numbers to units")
        try:
            request = {int(k): _nonneg(v, f"lines.{k}") for k, v in lines.items()}
        except ValueError:
            raise Rejected("bad_payload", "payload.lines keys must be line numbers") from None
        m = self.member(row[0])
        effects = codec.loads(PurchaseEffects, row[1])
        before = {int(k): int(v) for k, v in json.loads(row[2]).items()}
        new_state, result = apply_refund(m.state, effects, before, request, occurred)
        till = p.get("result") or {}
        if isinstance(till, dict) and (
            till.get("earn_reversed"),
            till.get("points_returned"),
        ) != (result.earn_reversed, result.points_returned):
            self.flag(
                "rescore_mismatch",
                ev,
                m.member_id,
                {"till": till.get("earn_reversed"), "server": result.earn_reversed},
            )
        m.state, m.dirty = new_state, True
        after = dict(before)
        for k, v in request.items():
            after[k] = after.get(k, 0) + v
        self.tx.execute(
            "UPDATE purchases SET refunded = ? WHERE event_id = ?",
            (json.dumps({str(k): v for k, v in sorted(after.items())}), purchase_event),
        )
        rules = self.bo.rules(None, self.tx)
        assert rules is not None
        self.tx.execute(
            "INSERT INTO refunds(event_id, refund_id, purchase_event_id, terminal_id, store_id, "
            "member_id, occurred_at, day, cashier_id, amount_kop, earn_reversed, "
            "bonus_reversed, returned) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                ev.event_id,
                _text(p, "refund_id"),
                purchase_event,
                self.terminal.terminal_id,
                self.terminal.store_id,
                m.member_id,
                occurred.isoformat(),
                engine.local_date(rules, occurred).isoformat(),
                _opt(p, "cashier_id"),
                result.amount_kop,
                result.earn_reversed,
                result.bonus_reversed,
                result.points_returned,
            ),
        )
        return m.member_id

    def registration(self, ev: WireEvent, p: dict[str, Any]) -> str:
        member_id = _text(p, "member_id")
        try:
            code = check_member_code(_text(p, "member_code"))
        except AgentError:
            raise Rejected(
                "bad_payload", "payload.member_code is not a valid member code"
            ) from None
        phone = _text(p, "phone_hash")
        if len(phone) != 32 or any(c not in "0123456789abcdef" for c in phone):
            raise Rejected("bad_payload", "payload.phone_hash must be 32 hex digits")
        occurred = _moment(p.get("occurred_at"), "payload.occurred_at")
        if p.get("consent_programme") is not True:
            raise Rejected("no_consent", "a member must consent to the programme rules")
        welcome = _nonneg(p.get("welcome_points", 0), "payload.welcome_points")
        if member_id in self.members or self.tx.one(
            "SELECT 1 FROM members WHERE member_id = ? OR code = ?", (member_id, code)
        ):
            raise Rejected("member_exists", f"member {member_id} or code {code} already exists")
        rules = self.bo.rules(None, self.tx)
        assert rules is not None
        if welcome != rules.welcome_points:
            self.flag(
                "rescore_mismatch",
                ev,
                member_id,
                {"welcome": welcome, "rules": rules.welcome_points},
            )
        birthday = p.get("birthday")
        lots: tuple[PointLot, ...] = ()
        if welcome:
            lots = (
                PointLot(
                    f"{ev.event_id}:welcome",
                    welcome,
                    occurred,
                    occurred,
                    occurred + timedelta(days=rules.welcome_expiry_days),
                    "welcome",
                ),
            )
        state = MemberState(
            member_id,
            lots=lots,
            birthday=datetime.fromisoformat(birthday).date() if isinstance(birthday, str) else None,
        )
        survivor_row = self.tx.one(
            "SELECT member_id FROM members WHERE phone_hash = ? AND merged_into IS NULL",
            (phone,),
        )
        m = _Member(
            member_id,
            state,
            code,
            phone,
            _opt(p, "phone_masked"),
            _opt(p, "first_name"),
            True,
            bool(p.get("consent_marketing")),
            None,
            new=True,
            dirty=True,
        )
        m.extra = {
            "phone_sealed": _opt(p, "phone_sealed", 2000),
            "birthday": birthday if isinstance(birthday, str) else None,
            "consent_text_version": _opt(p, "consent_text_version"),
            "registered_at": occurred.isoformat(),
            "cashier_id": _opt(p, "cashier_id"),
        }
        self.members[member_id] = m
        if survivor_row is not None:
            # Registered twice (two tills offline, or a till that did not know the member):
            # the first registration wins; the welcome bonus is not given twice. Points the
            # duplicate already spent are owed by the survivor (its later events follow the
            # merge), so nothing the tills did is lost.
            survivor = self.member(survivor_row[0])
            m.merged_into = survivor.member_id
            m.phone_hash = None
            m.state = replace(state, lots=())
            self.flag("merge", ev, survivor.member_id, {"merged": member_id})
            self.tx.execute(
                "INSERT INTO changes(kind, member_id, body, created_at) VALUES ('merge', ?, ?, ?)",
                (
                    member_id,
                    json.dumps({"from": member_id, "into": survivor.member_id}),
                    self.now_iso,
                ),
            )
            self.requested[member_id] = survivor.member_id
            survivor.dirty = True
        else:
            self.requested[member_id] = member_id
        return member_id

    # -- write back
    def flush(self) -> dict[str, Any]:
        """Write every changed member once, append its change, return the till's view."""
        rules = self.bo.rules(None, self.tx)
        assert rules is not None
        records: dict[str, dict[str, Any]] = {}
        for mid, m in self.members.items():
            if mid != m.member_id or not m.dirty:
                continue
            s = engine.member_summary(m.state, rules, self.now)
            state_text = codec.dumps(m.state)
            rec = MemberRecord(
                m.member_id,
                m.code,
                m.phone_hash,
                m.phone_masked,
                m.first_name,
                state_text,
                s.balance,
                s.available,
                s.pending,
                s.expiring_points,
                s.expiring_on.isoformat() if s.expiring_on else None,
                s.tier,
                m.consent_programme,
                m.consent_marketing,
                m.merged_into,
            )
            body = codec.to_plain(rec)
            if m.new:
                x = m.extra
                self.tx.execute(
                    "INSERT INTO members(member_id, code, phone_hash, phone_masked, phone_sealed, "
                    "first_name, birthday, consent_programme, consent_marketing, "
                    "consent_text_version, registered_at, store_id, terminal_id, cashier_id, "
                    "merged_into, state, balance, available, pending, expiring_points, tier, "
                    "updated_at) VALUES (?,?,?,?,?,?,?,1,?,?,?,?,?,?,?,'',0,0,0,0,'',?)",
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
                    ),
                )
            self.tx.execute(
                "UPDATE members SET state = ?, balance = ?, available = ?, pending = ?, "
                "expiring_points = ?, expiring_on = ?, tier = ?, debt = ?, updated_at = ? "
                "WHERE member_id = ?",
                (
                    state_text,
                    s.balance,
                    s.available,
                    s.pending,
                    s.expiring_points,
                    body["expiring_on"],
                    s.tier,
                    m.state.debt,
                    self.now_iso,
                    m.member_id,
                ),
            )
            if m.merged_into is None:
                self.tx.execute(
                    "INSERT INTO changes(kind, member_id, body, created_at) "
                    "VALUES ('member', ?, ?, ?)",
                    (m.member_id, json.dumps(body, ensure_ascii=False), self.now_iso),
                )
            records[m.member_id] = body
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

    def write_flags(self) -> None:
        self.tx.executemany(
            "INSERT INTO flags(kind, event_id, member_id, terminal_id, detail, created_at) "
            "VALUES (?,?,?,?,?,?)",
            self.flags,
        )

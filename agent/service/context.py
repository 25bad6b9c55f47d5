"""What every use case of the till service shares: the open store, the clock, the caches
(programme, token keys, phone hash key, the last member state decoded, the last quote),
the terminal's identity, and the writes each business operation ends with: the journal
append (gapless ``seq``), the print job, the member's cache row.

Nothing here is a use case; the modules above (members, sales, refunds, ...) take a
``Context`` and the facade (``agent.service.Agent``) holds one.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from agent import codec, engine, quotememo
from agent.clock import Clock
from agent.errors import ConflictError, StoreError
from agent.model import MemberState
from agent.money import Points
from agent.rules import Programme, parse_programme, programme_to_dict
from agent.slip import Slip
from agent.store import Store
from agent.tokens import TokenVerifier, load_ed25519_public_key

SCHEMA_VERSION = 1
"""The journal events' schema version (``outbox.schema_version``)."""


class MemberColumns(Protocol):
    """The member cache columns a card, a quote and a slip read (``MemberRow``, and the
    same names at the head of the cheque read's row)."""

    @property
    def member_id(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def phone_masked(self) -> str | None: ...
    @property
    def first_name(self) -> str | None: ...
    @property
    def state(self) -> str: ...
    @property
    def provisional(self) -> int: ...
    @property
    def consent_marketing(self) -> int: ...
    @property
    def unsynced(self) -> int: ...
    @property
    def synced_at(self) -> str | None: ...
    @property
    def offline_spent(self) -> Points: ...
    @property
    def merged_into(self) -> str | None: ...


class MemberRow(NamedTuple):
    """A row of ``members`` as ``CARD_COLS`` selects it (``provisional`` and
    ``consent_marketing`` are SQLite 0/1; ``state`` the member state document)."""

    member_id: str
    code: str
    phone_masked: str | None
    first_name: str | None
    state: str
    provisional: int
    consent_marketing: int
    unsynced: int
    synced_at: str | None
    offline_spent: Points
    merged_into: str | None


CARD_COLS = ", ".join(MemberRow._fields)
"""The ``members`` columns of a ``MemberRow``, in its order."""


@dataclass
class Cached:
    """What is read once from the store and kept until the programme changes."""

    version: int = -1
    programme: Programme | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def initialise(
    store: Store,
    *,
    terminal_id: str | None = None,
    store_name: str = "Kassa",
    phone_hash_key: bytes | None = None,
    token_public_key: str | None = None,
    seal_public_key: str | None = None,
) -> None:
    """Give a fresh store its identity: terminal id, epoch, keys from the back office."""
    with store.write() as conn:
        if store.meta("terminal_id"):
            raise ConflictError("store already initialised", "база кассы уже создана")
        Store.set_meta(conn, "terminal_id", terminal_id or uuid.uuid4().hex)
        Store.set_meta(conn, "terminal_epoch", uuid.uuid4().hex)
        Store.set_meta(conn, "store_name", store_name)
        Store.set_meta(conn, "last_seq", "0")
        if phone_hash_key is not None:
            Store.set_meta(conn, "phone_hash_key", phone_hash_key.hex())
        if token_public_key is not None:
            Store.set_meta(conn, "token_public_key", token_public_key)
        if seal_public_key is not None:
            Store.set_meta(conn, "seal_public_key", seal_public_key)


class Context:
    """The till service's shared state over one open ``Store`` (see the module)."""

    def __init__(self, store: Store, clock: Clock, *, store_name: str = "") -> None:
        self.store = store
        self.clock = clock
        self.cache = Cached()
        # The last member state document decoded, and its decoding: identify, quote and
        # commit of one cheque read the same document three times. MemberState is frozen,
        # so sharing the decoded value is safe; a changed document is decoded afresh.
        self.state_memo: tuple[str, MemberState] = ("", MemberState(""))
        # The last quote scored, reused by the commit of the same cheque when none of its
        # inputs changed (agent.quotememo): commit re-scores inside its transaction.
        self.quote_memo: quotememo.Memo | None = None
        self.terminal_id = store.meta("terminal_id") or ""
        self.terminal_epoch = store.meta("terminal_epoch") or ""
        self.store_name = store_name or store.meta("store_name") or "Kassa"
        if not self.terminal_id:
            raise StoreError(
                "till store is not initialised (run `kassa init`)",
                "База кассы не инициализирована (выполните kassa init)",
            )

    # ----------------------------------------------------------------- programme, keys
    def install_rules(self, programme: Programme, *, activate: bool = True) -> None:
        """Store a programme version (idempotent per version) and make it active."""
        now = self.now_iso()
        doc = codec.dumps(programme_to_dict(programme))
        with self.store.write() as conn:
            row = conn.execute(
                "SELECT document FROM rules WHERE version = ?", (programme.version,)
            ).fetchone()
            if row is not None and row[0] != doc:
                raise ConflictError(
                    f"rules version {programme.version} already stored with other content",
                    f"версия правил {programme.version} уже есть с другим содержимым",
                    version=programme.version,
                )
            if row is None:
                conn.execute(
                    "INSERT INTO rules(version, document, received_at) VALUES (?,?,?)",
                    (programme.version, doc, now),
                )
            if activate:
                conn.execute("UPDATE rules SET active = (version = ?)", (programme.version,))
        self.cache = Cached()

    def rules_changed(self) -> None:
        """A new programme version was stored (pulled from the back office): reload it."""
        self.cache = Cached()

    def programme(self) -> Programme:
        """The active programme, cached: this process owns the store (lock), so only
        ``install_rules`` changes it and that resets the cache."""
        if self.cache.programme is not None:
            return self.cache.programme
        row = self.store.one("SELECT version, document FROM rules WHERE active = 1")
        if row is None:
            raise StoreError("no programme rules installed", "правила программы не загружены")
        self.cache = Cached(row[0], parse_programme(json.loads(row[1]), "store"))
        assert self.cache.programme is not None
        return self.cache.programme

    def token_verifier(self) -> TokenVerifier | None:
        """The back office's public keys for QR tokens and coupons (None before enrolment
        or the demo set-up gave them), loaded once."""
        if "verifier" not in self.cache.extra:
            key = self.store.meta("token_public_key")
            self.cache.extra["verifier"] = (
                TokenVerifier({1: load_ed25519_public_key(key)}) if key else None
            )
        verifier: TokenVerifier | None = self.cache.extra["verifier"]
        return verifier

    def hash_key(self) -> bytes:
        """The phone hash key, cached once found: it is set only when the store is
        initialised (``initialise`` refuses a second time), so it cannot change later."""
        cached: bytes | None = self.cache.extra.get("hash_key")
        if cached is not None:
            return cached
        key = self.store.meta("phone_hash_key")
        if not key:
            raise StoreError(
                "till has no phone hash key (not enrolled)",
                "касса не подключена к программе: нет ключа поиска по телефону",
            )
        self.cache.extra["hash_key"] = raw = bytes.fromhex(key)
        return raw

    def now_iso(self) -> str:
        return self.clock.now().isoformat()

    # ----------------------------------------------------------------- members' rows
    def state(self, document: str) -> MemberState:
        """The decoded member state document (memoised for the last document, see init)."""
        memo = self.state_memo
        if memo[0] == document and document:
            return memo[1]
        state = codec.loads(MemberState, document)
        self.state_memo = (document, state)
        return state

    def member_row(self, where: str, value: Any) -> MemberRow | None:
        """A member's cache row; a member the back office merged into another (registered
        twice offline) leads to the surviving member."""
        row = self.store.one(f"SELECT {CARD_COLS} FROM members WHERE {where}", (value,))
        if row is None:
            return None
        member = MemberRow._make(row)
        if member.merged_into:
            survivor = self.store.one(
                f"SELECT {CARD_COLS} FROM members WHERE member_id = ?", (member.merged_into,)
            )
            return MemberRow._make(survivor) if survivor else member
        return member

    # ----------------------------------------------------------------- the writes
    def save_member(
        self,
        conn: sqlite3.Connection,
        member_id: str,
        state: MemberState,
        rules: Programme,
        now: datetime,
        *,
        offline_spent: Points = 0,
    ) -> None:
        """Write the member's new state and its summary columns; one more local event the
        back office has not counted (``unsynced``)."""
        summary = engine.member_summary(state, rules, now)
        conn.execute(
            "UPDATE members SET state = ?, balance = ?, available = ?, pending = ?, "
            "expiring_points = ?, expiring_on = ?, tier = ?, unsynced = unsynced + 1, "
            "offline_spent = offline_spent + ?, updated_at = ? WHERE member_id = ?",
            (
                codec.dumps(state),
                summary.balance,
                summary.available,
                summary.pending,
                summary.expiring_points,
                summary.expiring_on.isoformat() if summary.expiring_on else None,
                summary.tier,
                offline_spent,
                now.isoformat(),
                member_id,
            ),
        )

    def append_event(
        self,
        conn: sqlite3.Connection,
        event_id: str,
        kind: str,
        payload: Mapping[str, Any],
        now_iso: str,
        *,
        last_seq: int | None = None,
        body: str | None = None,
    ) -> int:
        """Append to the journal with the next gapless ``seq`` (same transaction as the effect).

        ``last_seq``: the counter as already read in this transaction (saves a read);
        ``body``: ``payload`` already encoded as canonical JSON (parts shared, encoded once)."""
        if last_seq is None:
            last = conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
            last_seq = int(last[0]) if last else 0
        seq = last_seq + 1
        if body is None:
            body = codec.dumps(payload)
        conn.execute(
            "INSERT INTO outbox(seq, event_id, terminal_id, terminal_epoch, type, "
            "schema_version, created_at, payload, payload_hash, member_id) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                seq,
                event_id,
                self.terminal_id,
                self.terminal_epoch,
                kind,
                SCHEMA_VERSION,
                now_iso,
                body,
                codec.digest(body),
                payload.get("member_id"),
            ),
        )
        Store.set_meta(conn, "last_seq", str(seq))
        return seq

    def queue_print(
        self, conn: sqlite3.Connection, receipt_id: str, kind: str, slip: Slip, now_iso: str
    ) -> int:
        """Queue ``slip`` for the printer in the operation's transaction; the job's id."""
        cur = conn.execute(
            "INSERT INTO print_jobs(receipt_id, kind, created_at, slip) VALUES (?,?,?,?)",
            (receipt_id, kind, now_iso, codec.dumps(slip)),
        )
        return int(cur.lastrowid or 0)

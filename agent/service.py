"""The Agent: the till's loyalty service that the cashier UI, the POS API and the CLI call.

Each business operation is one store transaction together with its journal row (and its
print job): a sale, a refund or a registration is either fully there or not at all.
Commits and refunds are idempotent by the POS's own ids (``receipt_id``, ``refund_id``): a
retry with the same request returns the stored result, a retry with a different request
is a ``ConflictError``.

Balance shown = the last server state + local events the server has not yet counted; the
member state in the cache is kept that way (``members.unsynced`` counts the local events,
and the card says the balance is provisional while it is not zero).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, Literal

from agent import codec, engine, history, holds, journal, printq, quotememo, receipts, shifts
from agent.clock import Clock, SystemClock
from agent.errors import (
    AgentError,
    ConflictError,
    ConsentError,
    CouponError,
    InputError,
    NotFoundError,
    StoreError,
)
from agent.identify import (
    make_member_code,
    mask_phone,
    normalize_phone,
    parse_identifier,
    phone_hash,
)
from agent.ids import time_ordered_id
from agent.ledger import (
    PurchaseEffects,
    apply_purchase,
    apply_refund,
    registration_lots,
)
from agent.model import CollectionProgress, MemberState, Quote
from agent.money import Points, format_points, format_rub
from agent.results import (
    Cashier,
    CheckoutRequest,
    Cheque,
    CommitResult,
    HistoryEntry,
    Hold,
    JournalPage,
    MemberCard,
    MemberMatch,
    OfflineStatus,
    RefundOutcome,
    RefundResult,
    Registration,
    Reprint,
    Shift,
    SlipView,
    SyncView,
    TillStatus,
    XReport,
)
from agent.rules import Programme, parse_programme, programme_to_dict
from agent.slip import Slip, SlipLine, sale_lines, slip_text
from agent.store import Store
from agent.tokens import (
    Coupon,
    TokenVerifier,
    load_ed25519_public_key,
    load_x25519_public_key,
    seal_for_backoffice,
    verify_coupon,
)

# The value types are re-exported for callers that still import them from here; their
# home is agent.results (and the clock's agent.clock).
__all__ = [
    "SCHEMA_VERSION",
    "Agent",
    "CheckoutRequest",
    "Clock",
    "CommitResult",
    "MemberCard",
    "OfflineStatus",
    "RefundOutcome",
    "Registration",
    "SystemClock",
]

SCHEMA_VERSION = 1

SLIP_WIDTHS = (32, 42, 48)
"""Characters a line of a slip rendered as text (``Agent.slip``): the common roll widths."""

# The counters the offline policy and the journal read (``Agent._STATUS_SQL``), and where
# they and the stored request hash stand in a row of ``Agent._CHEQUE_READ_SQL`` (after the
# 11 member columns, the held points and the active-hold flag).
_STATUS_NAMES = ("last_contact", "acked_events", "offline_consecutive", "offline_spent", "last_seq")
_STATUS_AT = 13
_STORED_HASH = _STATUS_AT + len(_STATUS_NAMES)


@dataclass
class _Cached:
    version: int = -1
    programme: Programme | None = None
    verifier: TokenVerifier | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Agent:
    """The till's loyalty core over one open ``Store``."""

    def __init__(self, store: Store, clock: Clock | None = None, *, store_name: str = "") -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self._cache = _Cached()
        # The last member state document decoded, and its decoding: identify, quote and
        # commit of one cheque read the same document three times. MemberState is frozen,
        # so sharing the decoded value is safe; a changed document is decoded afresh.
        self._state_memo: tuple[str, MemberState] = ("", MemberState(""))
        # The last quote scored, reused by the commit of the same cheque when none of its
        # inputs changed (agent.quotememo): commit re-scores inside its transaction.
        self._quote_memo: quotememo.Memo | None = None
        self.terminal_id = store.meta("terminal_id") or ""
        self.terminal_epoch = store.meta("terminal_epoch") or ""
        self.store_name = store_name or store.meta("store_name") or "Kassa"
        if not self.terminal_id:
            raise StoreError(
                "till store is not initialised (run `kassa init`)",
                "База кассы не инициализирована (выполните kassa init)",
            )

    # ----------------------------------------------------------------- set-up
    @staticmethod
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

    def install_rules(self, programme: Programme, *, activate: bool = True) -> None:
        """Store a programme version (idempotent per version) and make it active."""
        now = self._now_iso()
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
        self._cache = _Cached()

    def programme(self) -> Programme:
        """The active programme, cached: this process owns the store (lock), so only
        ``install_rules`` changes it and that resets the cache."""
        if self._cache.programme is not None:
            return self._cache.programme
        row = self.store.one("SELECT version, document FROM rules WHERE active = 1")
        if row is None:
            raise StoreError("no programme rules installed", "правила программы не загружены")
        self._cache = _Cached(row[0], parse_programme(json.loads(row[1]), "store"))
        assert self._cache.programme is not None
        return self._cache.programme

    def token_verifier(self) -> TokenVerifier | None:
        """The back office's public keys for QR tokens and coupons (None before enrolment
        or the demo set-up gave them), loaded once."""
        if "verifier" not in self._cache.extra:
            key = self.store.meta("token_public_key")
            self._cache.extra["verifier"] = (
                TokenVerifier({1: load_ed25519_public_key(key)}) if key else None
            )
        verifier: TokenVerifier | None = self._cache.extra["verifier"]
        return verifier

    def _state(self, document: str) -> MemberState:
        """The decoded member state document (memoised for the last document, see init)."""
        memo = self._state_memo
        if memo[0] == document and document:
            return memo[1]
        state = codec.loads(MemberState, document)
        self._state_memo = (document, state)
        return state

    def _hash_key(self) -> bytes:
        """The phone hash key, cached once found: it is set only when the store is
        initialised (``initialise`` refuses a second time), so it cannot change later."""
        cached: bytes | None = self._cache.extra.get("hash_key")
        if cached is not None:
            return cached
        key = self.store.meta("phone_hash_key")
        if not key:
            raise StoreError(
                "till has no phone hash key (not enrolled)",
                "касса не подключена к программе: нет ключа поиска по телефону",
            )
        self._cache.extra["hash_key"] = raw = bytes.fromhex(key)
        return raw

    def _now_iso(self) -> str:
        return self.clock.now().isoformat()

    # ----------------------------------------------------------------- identify
    def identify(self, text: str) -> MemberCard:
        """Find a member by a scan (member code, app QR token) or a typed phone number."""
        now = self.clock.now()
        ident = parse_identifier(text, self.token_verifier(), now)
        if ident.kind == "phone":
            assert ident.phone_e164 is not None
            row = self._member_row("phone_hash = ?", phone_hash(ident.phone_e164, self._hash_key()))
            how = "phone"
        else:
            row = self._member_row("code = ?", ident.member_code)
            how = "scan_token" if ident.kind == "token" else "scan_code"
        if row is None:  # under the title «Не найдено»: the message says what, not again
            if ident.kind == "phone":
                en, ru = (
                    "no member with this phone; they can be registered",
                    "с этим телефоном участника нет — можно зарегистрировать",
                )
            else:
                en, ru = (
                    "no member with this code on this till",
                    "участника с этим кодом нет на кассе",
                )
            raise NotFoundError(en, ru, kind=ident.kind)
        return replace(self._card(row, now), identified_by=how)

    def card(self, member_id: str) -> MemberCard:
        row = self._member_row("member_id = ?", member_id)
        if row is None:
            raise NotFoundError(
                f"no member {member_id} on this till", "такого участника нет", member_id=member_id
            )
        return self._card(row, self.clock.now())

    _CARD_COLS = (
        "member_id, code, phone_masked, first_name, state, provisional, "
        "consent_marketing, unsynced, synced_at, offline_spent, merged_into"
    )

    def _member_row(self, where: str, value: Any) -> tuple[Any, ...] | None:
        """A member's cache row; a member the back office merged into another (registered
        twice offline) leads to the surviving member."""
        row = self.store.one(f"SELECT {self._CARD_COLS} FROM members WHERE {where}", (value,))
        if row is not None and row[10]:
            survivor = self.store.one(
                f"SELECT {self._CARD_COLS} FROM members WHERE member_id = ?", (row[10],)
            )
            return survivor or row
        return row

    def _card(self, row: tuple[Any, ...], now: datetime) -> MemberCard:
        rules = self.programme()
        state = self._state(row[4])
        spend = engine.rolling_spend(state, rules, now)
        tier = rules.tier_for_spend(spend)
        nxt = rules.next_tier(tier)
        exp_points, exp_on = engine.expiring_soon(state.lots, rules, now)
        today = engine.local_date(rules, now)
        bday = engine.birthday_occurrence(rules, state, today)
        spendable = state.spendable(now)
        after_sync = 0
        if row[5] and not self.offline_status().online:
            after_sync = spendable - engine.unconfirmed_spendable(state, rules, now)
        progress = tuple(
            CollectionProgress(m.id, m.name_ru, state.collection_progress(m.id), m.target)
            for m in rules.collections
        )
        return MemberCard(
            member_id=row[0],
            code=row[1],
            phone_masked=row[2],
            first_name=row[3],
            tier=engine.tier_info(tier),
            balance=state.balance(now),
            available=state.available_points(now),
            pending=state.pending_points(now),
            spendable=spendable - after_sync,
            debt=state.debt,
            expiring_points=exp_points,
            expiring_on=exp_on,
            next_tier=engine.tier_info(nxt) if nxt else None,
            to_next_tier_kop=nxt.threshold_kop - spend if nxt else None,
            collections=progress,
            birthday_window=bday is not None and state.birthday_bonus_year != bday,
            consent_marketing=bool(row[6]),
            provisional=bool(row[5]),
            unsynced_events=int(row[7]),
            spendable_after_sync=after_sync,
        )

    # ----------------------------------------------------------------- offline policy
    def offline_status(self) -> OfflineStatus:
        with self.store.read() as conn:
            return self._status(conn, self.clock.now())[0]

    # Every counter the offline policy and the journal need, in one statement.
    _STATUS_SQL = (
        "SELECT name, value FROM sync_state WHERE name IN "
        f"({', '.join(repr(n) for n in _STATUS_NAMES[:-1])}) "
        "UNION ALL SELECT 'last_seq', value FROM meta WHERE key = 'last_seq'"
    )

    # A cheque's reads (the quote's, and the commit's in its transaction), in one statement
    # that always gives one row: the
    # member's row (NULLs when unknown), the points other cheques hold, whether this
    # receipt has an active hold, the counters of ``_STATUS_SQL`` (in ``_STATUS_NAMES``
    # order) and the request hash if the receipt is already committed. Parameters: member
    # id, ``holds.stamp(now)``, the receipt id three times, the member id.
    _CHEQUE_READ_SQL = (
        f"SELECT {_CARD_COLS}, ({holds.HELD_SQL}), EXISTS(SELECT 1 FROM holds "
        "WHERE receipt_id = ? AND status = 'active'), "
        + ", ".join(
            f"(SELECT value FROM {'meta' if n == 'last_seq' else 'sync_state'} "
            f"WHERE {'key' if n == 'last_seq' else 'name'} = '{n}')"
            for n in _STATUS_NAMES
        )
        + ", (SELECT request_hash FROM purchases WHERE receipt_id = ?) "
        "FROM (SELECT 1) LEFT JOIN members ON member_id = ?"
    )

    def _status(
        self, conn: sqlite3.Connection, now: datetime, *, values: dict[str, Any] | None = None
    ) -> tuple[OfflineStatus, int]:
        """The offline status and the journal's last ``seq``, read on ``conn`` (inside the
        commit's transaction, so the counters it writes build on what it read);
        ``values``: the rows of ``_STATUS_SQL`` if already read."""
        rules = self.programme()
        if values is None:
            values = dict(conn.execute(self._STATUS_SQL).fetchall())
        last = values.get("last_contact")
        last_dt = datetime.fromisoformat(last) if last else None
        online = (
            last_dt is not None
            and (now - last_dt).total_seconds() <= rules.offline.online_grace_seconds
        )
        # last_seq - acked, not count(*): a count scans the backlog, which grows in an outage.
        last_seq = int(values.get("last_seq") or 0)
        status = OfflineStatus(
            online=online,
            last_contact=last_dt,
            consecutive_offline=int(values.get("offline_consecutive") or 0),
            terminal_offline_spent=int(values.get("offline_spent") or 0),
            events_waiting=last_seq - int(values.get("acked_events") or 0),
        )
        return status, last_seq

    def record_contact(self) -> None:
        """The back office answered: the till is online; offline counters start again.

        Called by the sync client after every successful exchange.
        """
        with self.store.write() as conn:
            journal.mark_contact(conn, self._now_iso())

    def rules_changed(self) -> None:
        """A new programme version was stored (pulled from the back office): reload it."""
        self._cache = _Cached()

    def _offline_limit(
        self,
        status: OfflineStatus,
        row: tuple[Any, ...],
        state: MemberState,
        rules: Programme,
        now: datetime,
    ) -> tuple[str, Points] | None:
        """The bound on spending for this cheque when offline (DESIGN.md §3), or None.

        A member who joined here and whom the back office has not confirmed (``provisional``)
        spends only what ``engine.unconfirmed_spendable`` allows (the welcome bonus, if the
        programme says so), within the caps; the cache-age check does not apply to them:
        their row is this till's own registration."""
        if status.online:
            return None
        policy = rules.offline
        synced_at = row[8]
        bounds: dict[str, Points] = {}
        if row[5]:
            unconfirmed = engine.unconfirmed_spendable(state, rules, now)
            if unconfirmed <= 0:
                return ("offline_provisional", 0)
            bounds["offline_welcome_only"] = unconfirmed
        elif synced_at is None or now - datetime.fromisoformat(synced_at) > timedelta(
            hours=policy.max_cache_age_hours
        ):
            return ("offline_stale_cache", 0)
        if status.consecutive_offline >= policy.consecutive_limit:
            return ("offline_consecutive", 0)
        bounds |= {
            "offline_per_transaction": policy.per_transaction_points,
            "offline_per_member": policy.per_member_points - int(row[9]),
            "offline_terminal_budget": policy.terminal_budget_points
            - status.terminal_offline_spent,
        }
        key = min(bounds, key=lambda k: bounds[k])
        return (key, bounds[key])

    # ----------------------------------------------------------------- quote
    def _read_coupon(self, text: str, now: datetime) -> Coupon:
        """The coupon ``text`` with its signature and dates checked at ``now`` (offline,
        with the programme's key); ``CouponError`` (or a token error) saying why not."""
        verifier = self.token_verifier()
        if verifier is None:
            raise CouponError(
                "till has no back office key to check coupons",
                "касса не может проверить купон: нет ключа программы",
            )
        return verify_coupon(verifier, text.strip(), now)

    def _coupon(self, text: str | None, member_code: str, now: datetime) -> Coupon | None:
        if not text:
            return None
        coupon = self._read_coupon(text, now)
        if coupon.member_code is not None and coupon.member_code != member_code:
            raise CouponError(
                "personal coupon of another member",
                "это персональный купон другого участника",
                coupon_id=coupon.coupon_id,
            )
        used = self.store.one(
            "SELECT receipt_id FROM coupons_used WHERE coupon_id = ?", (coupon.coupon_id,)
        )
        if used is not None:
            raise CouponError(
                f"coupon already used on cheque {used[0]}",
                f"купон уже использован (чек {used[0]})",
                coupon_id=coupon.coupon_id,
                receipt_id=used[0],
            )
        return coupon

    def quote(self, req: CheckoutRequest) -> Quote:
        """Score a cheque without writing anything (what the cashier sees before confirming)."""
        now = self.clock.now()
        with self.store.read() as conn:
            # The commit's read, one consistent snapshot in one statement: the member's
            # row, the points other cheques hold and the offline counters.
            read = self._cheque_read(conn, req, now)
            status = self._status(
                conn, now, values=dict(zip(_STATUS_NAMES, read[_STATUS_AT:], strict=False))
            )[0]
        row: tuple[Any, ...] | None = read
        held: int | None = int(read[11] or 0)
        if read[0] is None or read[10]:  # unknown, or merged into another: the survivor
            row = self._member_row("member_id = ?", req.member_id)
            held = None
        if row is None:
            raise NotFoundError(
                f"no member {req.member_id} on this till",
                "такого участника нет",
                member_id=req.member_id,
            )
        state = self._state(row[4])
        return self._quote(req, row, state, now, status, held)

    def _cheque_read(
        self, conn: sqlite3.Connection, req: CheckoutRequest, now: datetime
    ) -> tuple[Any, ...]:
        """The row of ``_CHEQUE_READ_SQL`` for ``req`` (always one row)."""
        receipt_id = req.cart.receipt_id
        row: tuple[Any, ...] = conn.execute(
            self._CHEQUE_READ_SQL,
            (req.member_id, holds.stamp(now), receipt_id, receipt_id, receipt_id, req.member_id),
        ).fetchone()
        return row

    def _quote(
        self,
        req: CheckoutRequest,
        row: tuple[Any, ...],
        state: MemberState,
        now: datetime,
        status: OfflineStatus,
        held: int | None = None,
    ) -> Quote:
        """``held``: the member's points reserved by other cheques, if already read."""
        rules = self.programme()
        coupon = self._coupon(req.coupon, row[1], now)
        limit = self._offline_limit(status, row, state, rules, now)
        # Points reserved by other cheques in progress (agent.holds) are not spendable here.
        if held is None:
            held = holds.held_points(self.store, req.member_id, now, req.cart.receipt_id)
        if held and (limit is None or state.spendable(now) - held < limit[1]):
            limit = ("on_hold", state.spendable(now) - held)
        redeem = _redeem(req)
        # Every input of engine.quote but ``now`` (agent.quotememo says what ``now`` moves).
        key = (req.cart, redeem, row[4], limit)
        if coupon is None:
            memoised = quotememo.recall(self._quote_memo, key, rules, now)
            if memoised is not None:
                return memoised
        q = engine.quote(
            req.cart,
            state,
            rules,
            now,
            redeem_points=redeem,
            coupon=coupon,
            redeem_limit=limit,
        )
        if coupon is None:
            self._quote_memo = quotememo.remember(key, state, rules, now, q)
        return q

    # ----------------------------------------------------------------- commit
    def commit(self, req: CheckoutRequest, hold_id: str | None = None) -> CommitResult:
        """Commit a cheque: member state, purchase, journal event and print job, atomically.

        Idempotent by ``req.cart.receipt_id``. ``hold_id`` names the points hold placed for
        this cheque (``agent.holds``): it must still be active and be for this very cheque
        (``HoldChequeChangedError``, 409, when its lines, coupon or points differ), and
        ``req.redeem_points`` None spends the points it reserved. Any active hold of this
        receipt is consumed in the same transaction.
        """
        req = self._with_hold(req, hold_id)
        # The request, the cart and the quote are made JSON-ready once each and shared by
        # the documents that hold them (request hash, journal payload, stored result).
        req_plain = codec.to_plain_with(req, cart=None)
        cart_text = codec.dumps(req.cart)
        request_hash = codec.digest(codec.dumps_with(req_plain, cart=cart_text))
        if self.store.read_only:  # no write lock to take: answer a repeat, else refuse below
            stored = self._stored_commit(req.cart.receipt_id, request_hash)
            if stored is not None:
                return stored
        now = self.clock.now()
        now_iso = now.isoformat()
        rules = self.programme()
        with self.store.write() as conn:
            # Read inside the transaction, in one statement: the offline counters written
            # below must build on what no other commit has changed since, and a repeat of
            # this receipt (a POS retry, another thread) is seen under the same lock, so
            # the check and the write cannot race. A repeat writes nothing.
            # Also the member's row, the points other cheques hold (agent.holds) and
            # whether this receipt has an active hold; consuming this receipt's own hold
            # below does not change the points the others hold.
            receipt_id = req.cart.receipt_id
            row = self._cheque_read(conn, req, now)
            if row[_STORED_HASH] is not None:
                stored = self._stored_commit(receipt_id, request_hash)
                if stored is not None:
                    return stored
            receipts.claim(conn, receipt_id)  # this till's own number: taken now, gapless
            status, last_seq = self._status(
                conn, now, values=dict(zip(_STATUS_NAMES, row[_STATUS_AT:], strict=False))
            )
            if row[0] is None:
                raise NotFoundError(
                    f"no member {req.member_id} on this till",
                    "такого участника нет",
                    member_id=req.member_id,
                )
            if hold_id is not None or row[12]:  # else there is no hold to check or close
                holds.consume(conn, req.cart.receipt_id, req.member_id, hold_id, now)
            state = self._state(row[4])
            q = self._quote(req, row, state, now, status, int(row[11]))
            event_id = time_ordered_id()
            new_state, effects = apply_purchase(state, req.cart, q, rules, now, event_id)
            offline = not status.online
            self._save_member(
                conn,
                req.member_id,
                new_state,
                rules,
                now,
                offline_spent=q.redeem_points if offline else 0,
            )
            q_text = codec.dumps(q)
            payload = {
                "receipt_id": q.receipt_id,
                "member_id": req.member_id,
                "member_code": row[1],
                "cart": None,  # below, as text
                "redeem_points": q.redeem_points,
                "coupon": req_plain["coupon"],
                "coupon_id": q.coupon_id,
                "earn_points": q.earn_points,
                "rules_version": q.rules_version,
                "quote": None,  # below, as text
                "cashier_id": req_plain["cashier_id"],
                "shift_id": req_plain["shift_id"],
                "identified_by": req_plain["identified_by"],
                "offline": offline,
                "occurred_at": now_iso,
            }
            seq = self._append_event(
                conn,
                event_id,
                "purchase",
                payload,
                now_iso,
                last_seq=last_seq,
                body=codec.dumps_with(payload, cart=cart_text, quote=q_text),
            )
            slip = self._sale_slip(q, row, now, provisional=offline)
            job_id = self._queue_print(conn, q.receipt_id, "sale", slip, now_iso)
            result = CommitResult(q.receipt_id, event_id, seq, q, offline, job_id)
            conn.execute(
                "INSERT INTO purchases(receipt_id, op_id, member_id, created_at, request_hash, "
                "result, effects, cashier_id, shift_id, offline) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    q.receipt_id,
                    event_id,
                    req.member_id,
                    now_iso,
                    request_hash,
                    codec.dumps_with(codec.to_plain_with(result, quote=None), quote=q_text),
                    codec.dumps(effects),
                    req.cashier_id,
                    req.shift_id,
                    int(offline),
                ),
            )
            if q.coupon_id:
                conn.execute(
                    "INSERT INTO coupons_used(coupon_id, receipt_id, used_at) VALUES (?,?,?)",
                    (q.coupon_id, q.receipt_id, now_iso),
                )
            if offline:
                conn.executemany(
                    "INSERT INTO sync_state(name, value, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    (
                        ("offline_consecutive", str(status.consecutive_offline + 1), now_iso),
                        (
                            "offline_spent",
                            str(status.terminal_offline_spent + q.redeem_points),
                            now_iso,
                        ),
                    ),
                )
        return result

    def _stored_commit(self, receipt_id: str, request_hash: str) -> CommitResult | None:
        row = self.store.one(
            "SELECT request_hash, result FROM purchases WHERE receipt_id = ?", (receipt_id,)
        )
        if row is None:
            return None
        if row[0] != request_hash:
            raise ConflictError(
                f"receipt {receipt_id} was already committed with other contents",
                f"чек {receipt_id} уже проведён с другим содержимым",
                receipt_id=receipt_id,
            )
        return replace(codec.loads(CommitResult, row[1]), duplicate=True)

    def _save_member(
        self,
        conn: sqlite3.Connection,
        member_id: str,
        state: MemberState,
        rules: Programme,
        now: datetime,
        *,
        offline_spent: Points = 0,
    ) -> None:
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

    def _append_event(
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

    def _queue_print(
        self, conn: sqlite3.Connection, receipt_id: str, kind: str, slip: Slip, now_iso: str
    ) -> int:
        cur = conn.execute(
            "INSERT INTO print_jobs(receipt_id, kind, created_at, slip) VALUES (?,?,?,?)",
            (receipt_id, kind, now_iso, codec.dumps(slip)),
        )
        return int(cur.lastrowid or 0)

    def _sale_slip(
        self, q: Quote, row: tuple[Any, ...], now: datetime, *, provisional: bool
    ) -> Slip:
        bonus_notes = [f"{b.note_ru}: +{b.points}" for b in q.bonuses]
        if q.tier_after != q.tier_before:
            bonus_notes.append(f"Новый уровень: «{q.tier_after.name_ru}»")
        if provisional and row[5]:  # offline, and the back office has not seen the member
            bonus_notes.extend(
                engine.UNCONFIRMED_SLIP_NOTES[self.programme().welcome_spend_before_sync]
            )
        return Slip(
            kind="sale",
            store_name=self.store_name,
            terminal_id=self.terminal_id,
            receipt_id=q.receipt_id,
            printed_at=now.astimezone(self.programme().tz),
            member=row[2] or row[1],
            tier=q.tier_after.name_ru,
            lines=sale_lines(
                balance_before=q.balance_before,
                balance_after=q.balance_after,
                earned=q.total_earned,
                pending_until=engine.local_date(self.programme(), q.earn_available_from)
                if q.earn_points and q.earn_available_from > now
                else None,
                spent=q.redeem_points,
                discount_kop=q.points_discount_kop,
                coupon_discount_kop=q.coupon_discount_kop,
                expiring=q.expiring_points,
                expiring_on=q.expiring_on,
                to_next_tier_kop=q.to_next_tier_kop,
                next_tier=q.next_tier.name_ru if q.next_tier else None,
                collections=[(c.name_ru, c.collected, c.target) for c in q.collections],
                notes=bonus_notes,
            ),
            qr_payload=row[1],
            provisional=provisional,
        )

    # ----------------------------------------------------------------- refund
    def refund(
        self,
        refund_id: str,
        receipt_id: str,
        lines: Mapping[int, int],
        *,
        cashier_id: str | None = None,
        shift_id: str | None = None,
    ) -> RefundOutcome:
        """Refund units of a committed cheque, idempotent by ``refund_id``. ``receipt_id``
        is found as a cashier types it (``agent.receipts.resolve``: the full number, this
        till's short number, or the last characters of a recent cheque)."""
        if not refund_id or len(refund_id) > 64:
            raise InputError(
                "refund id must be 1-64 characters",
                "номер возврата должен быть от 1 до 64 символов",
                field="refund_id",
            )
        with self.store.read() as conn:
            receipt_id = receipts.resolve(conn, receipt_id)
        request = {int(k): int(v) for k, v in lines.items()}
        request_hash = codec.digest(codec.dumps({"receipt_id": receipt_id, "lines": request}))
        stored = self._stored_refund(refund_id, request_hash)
        if stored is not None:
            return stored
        now = self.clock.now()
        now_iso = now.isoformat()
        rules = self.programme()
        online = self.offline_status().online
        with self.store.write() as conn:
            stored = self._stored_refund(refund_id, request_hash)
            if stored is not None:
                return stored
            purchase = conn.execute(
                "SELECT member_id, effects, refunded FROM purchases WHERE receipt_id = ?",
                (receipt_id,),
            ).fetchone()
            if purchase is None:
                raise NotFoundError(
                    f"no receipt {receipt_id} on this till",
                    f"чека {receipt_id} нет на этой кассе",
                    receipt_id=receipt_id,
                )
            member = conn.execute(
                f"SELECT {self._CARD_COLS} FROM members WHERE member_id = ?", (purchase[0],)
            ).fetchone()
            effects = codec.loads(PurchaseEffects, purchase[1])
            before = {int(k): int(v) for k, v in json.loads(purchase[2]).items()}
            state = codec.loads(MemberState, member[4])
            new_state, result = apply_refund(state, effects, before, request, now)
            self._save_member(conn, purchase[0], new_state, rules, now)
            after = dict(before)
            for line_no, qty in request.items():
                after[line_no] = after.get(line_no, 0) + qty
            conn.execute(
                "UPDATE purchases SET refunded = ? WHERE receipt_id = ?",
                (codec.dumps(after), receipt_id),
            )
            event_id = time_ordered_id()
            payload = {
                "refund_id": refund_id,
                "receipt_id": receipt_id,
                "purchase_event_id": effects.op_id,
                "member_id": purchase[0],
                "lines": request,
                "result": result,
                "cashier_id": cashier_id,
                "shift_id": shift_id,
                "occurred_at": now_iso,
            }
            seq = self._append_event(conn, event_id, "refund", payload, now_iso)
            slip = Slip(
                kind="refund",
                store_name=self.store_name,
                terminal_id=self.terminal_id,
                receipt_id=receipt_id,
                printed_at=now.astimezone(rules.tz),
                member=member[2] or member[1],
                tier=rules.tier_for_spend(engine.rolling_spend(new_state, rules, now)).name_ru,
                lines=_refund_lines(result),
                provisional=not online,
            )
            job_id = self._queue_print(conn, receipt_id, "refund", slip, now_iso)
            outcome = RefundOutcome(refund_id, event_id, seq, result, job_id)
            conn.execute(
                "INSERT INTO refunds(refund_id, receipt_id, op_id, created_at, "
                "request_hash, result) VALUES (?,?,?,?,?,?)",
                (refund_id, receipt_id, event_id, now_iso, request_hash, codec.dumps(outcome)),
            )
        return outcome

    def _stored_refund(self, refund_id: str, request_hash: str) -> RefundOutcome | None:
        row = self.store.one(
            "SELECT request_hash, result FROM refunds WHERE refund_id = ?", (refund_id,)
        )
        if row is None:
            return None
        if row[0] != request_hash:
            raise ConflictError(
                f"refund {refund_id} was already made with other contents",
                f"возврат {refund_id} уже проведён с другим содержимым",
                refund_id=refund_id,
            )
        return replace(codec.loads(RefundOutcome, row[1]), duplicate=True)

    # ----------------------------------------------------------------- registration
    def register(
        self,
        *,
        phone: str,
        first_name: str,
        consent_programme: bool,
        consent_marketing: bool,
        birthday: date | None = None,
        cashier_id: str | None = None,
        consent_text_version: str | None = None,
    ) -> Registration:
        """Join a new member at the till, online or offline (provisional until synced).

        The raw phone never lands in the store: only its keyed hash and mask, and, inside
        the journal event, sealed to the back office's public key.
        """
        rules = self.programme()
        if not consent_programme:
            raise ConsentError(
                "the member must accept the programme rules",
                "участник должен согласиться с правилами программы",
            )
        name = (first_name or "").strip()
        if not name or len(name) > 60 or not name.isprintable():
            raise InputError(
                "first name must be 1-60 printable characters",
                "укажите имя (до 60 символов)",
                field="first_name",
            )
        now = self.clock.now()
        if birthday is not None and not date(1900, 1, 1) <= birthday <= now.date():
            raise InputError(
                "birthday is not a plausible date", "неверная дата рождения", field="birthday"
            )
        e164 = normalize_phone(phone)
        seal_key = self.store.meta("seal_public_key")
        if not seal_key:
            raise StoreError(
                "till has no back office key to protect phone numbers",
                "касса не подключена к программе: нет ключа шифрования",
            )
        sealed = seal_for_backoffice(e164.encode(), load_x25519_public_key(seal_key))
        hashed = phone_hash(e164, self._hash_key())
        version = consent_text_version or rules.consent_text_version
        now_iso = now.isoformat()
        member_id = time_ordered_id()
        event_id = time_ordered_id()
        state = MemberState(
            member_id, lots=registration_lots(rules, now, event_id), birthday=birthday
        )
        with self.store.write() as conn:
            dup = conn.execute(
                "SELECT code FROM members WHERE phone_hash = ?", (hashed,)
            ).fetchone()
            if dup is not None:
                raise ConflictError(
                    "a member with this phone already exists",
                    "участник с этим телефоном уже зарегистрирован",
                    member_code=dup[0],
                )
            code = self._new_member_code(conn, event_id)
            conn.execute(
                "INSERT INTO members(member_id, code, phone_hash, phone_masked, first_name, "
                "state, balance, available, tier, provisional, consent_programme, "
                "consent_marketing, unsynced, updated_at) VALUES (?,?,?,?,?,?,?,?,?,1,1,?,1,?)",
                (
                    member_id,
                    code,
                    hashed,
                    mask_phone(e164),
                    name,
                    codec.dumps(state),
                    state.balance(now),
                    state.available_points(now),
                    rules.tiers[0].code,
                    int(consent_marketing),
                    now_iso,
                ),
            )
            payload = {
                "member_id": member_id,
                "member_code": code,
                "phone_hash": hashed,
                "phone_masked": mask_phone(e164),
                "phone_sealed": sealed,
                "first_name": name,
                "birthday": birthday,
                "consent_programme": True,
                "consent_marketing": consent_marketing,
                "consent_text_version": version,
                "consented_at": now_iso,
                "cashier_id": cashier_id,
                "welcome_points": rules.welcome_points,
                "occurred_at": now_iso,
            }
            self._append_event(conn, event_id, "member_registered", payload, now_iso)
        card = self.card(member_id)
        return Registration(card, event_id, rules.welcome_points, code)

    def _new_member_code(self, conn: sqlite3.Connection, seed: str) -> str:
        for attempt in range(10):
            digest = hashlib.sha256(f"{seed}:{attempt}".encode()).digest()
            code = make_member_code(int.from_bytes(digest[:8], "big") % 10**12)
            if conn.execute("SELECT 1 FROM members WHERE code = ?", (code,)).fetchone() is None:
                return code
        raise StoreError("could not allocate a member code", "не удалось выдать номер участника")

    def catalog_lookup(self, sku: str) -> tuple[str, str, str | None, int] | None:
        """The till catalogue: sku -> (name, category, collection, price_kop)."""
        row = self.store.one(
            "SELECT name, category, collection, price_kop FROM catalog WHERE sku = ?", (sku,)
        )
        return None if row is None else (row[0], row[1], row[2], int(row[3]))

    # ----------------------------------------------------------------- journal views
    def pending_events(self, limit: int = 500) -> list[dict[str, Any]]:
        """Journal rows not yet acknowledged by the back office, in ``seq`` order."""
        return self.pending_page(limit)[0]

    def pending_page(self, limit: int) -> tuple[list[dict[str, Any]], int]:
        """The oldest ``limit`` journal rows waiting (``pending_events``) and how many wait
        in all, read together (the count is taken before the LIMIT, in the same query)."""
        with self.store.read() as conn:
            rows = conn.execute(
                "SELECT seq, event_id, terminal_id, terminal_epoch, type, schema_version, "
                "created_at, payload, payload_hash, count(*) OVER () FROM outbox "
                "WHERE status = 'pending' ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        keys = (
            "seq",
            "event_id",
            "terminal_id",
            "terminal_epoch",
            "type",
            "schema_version",
            "created_at",
            "payload",
            "payload_hash",
        )
        total = int(rows[0][-1]) if rows else 0
        return [dict(zip(keys, r[:-1], strict=True)) for r in rows], total

    def print_job(self, job_id: int) -> Slip:
        row = self.store.one("SELECT slip FROM print_jobs WHERE job_id = ?", (job_id,))
        if row is None:
            raise NotFoundError(f"no print job {job_id}", f"слипа №{job_id} нет")
        return codec.loads(Slip, row[0])

    def _with_hold(self, req: CheckoutRequest, hold_id: str | None) -> CheckoutRequest:
        """``req`` as committed with ``hold_id``: points None become the hold's (or 0
        without one); a cheque that is not the held one is refused before anything is
        read for the commit (``holds.check_cheque``)."""
        if hold_id is None:
            return req if req.redeem_points is not None else replace(req, redeem_points=0)
        if not 0 < len(hold_id) <= 64:
            raise InputError(
                "hold_id: must be the hold id text from POST /v1/holds",
                "hold_id: номер резерва из POST /v1/holds",
                field="hold_id",
            )
        if req.redeem_points is None:  # spend what the hold reserved
            req = replace(req, redeem_points=self.get_hold(hold_id).points)
        holds.check_cheque(self.store, hold_id, req)  # 409: not the held cheque
        return req

    # ----------------------------------------------------------------- members
    def find_members(self, query: str, limit: int = history.NAME_MATCH_LIMIT) -> list[MemberMatch]:
        """Members whose first name contains ``query`` (at most ``limit``)."""
        return history.find_by_name(self.store, query, limit)

    def member_history(self, member_id: str) -> list[HistoryEntry]:
        """The member's recent cheques and refunds on this till, newest first."""
        return history.member_history(self.store, member_id)

    # ----------------------------------------------------------------- sales
    def read_coupon(self, text: str) -> Coupon:
        """A coupon scanned before the member: its signature and dates checked now; the
        member, the cheque and single use are checked by the quote."""
        return self._read_coupon(text, self.clock.now())

    def coupon_terms(self, text: str | None) -> tuple[str, int]:
        """The kind and value of a coupon (a short label instead of its id); ("", 0) when
        there is none or it cannot be read (any reason)."""
        if not text or self.token_verifier() is None:
            return "", 0
        try:
            coupon = self.read_coupon(text)
        except AgentError:
            return "", 0
        return coupon.kind, coupon.value

    def redeem_limit_text(self, reason: str) -> tuple[str, str]:
        """What limited the points of a quote (``Quote.redeem_limited_by``), in English
        and Russian, with the programme's figures."""
        return engine.redeem_limit_text(reason, self.programme())

    def upcoming_receipt(self) -> str:
        """The number this till's next own cheque gets (``agent.receipts``)."""
        return receipts.upcoming(self.store)

    # ----------------------------------------------------------------- holds
    def place_hold(self, req: CheckoutRequest, ttl_s: int = holds.DEFAULT_TTL_S) -> Hold:
        """Reserve the points ``req`` spends for ``ttl_s`` seconds (``agent.holds``)."""
        if req.redeem_points is None:
            req = replace(req, redeem_points=0)
        return holds.place(self, req, ttl_s)

    def get_hold(self, hold_id: str) -> Hold:
        """The hold with its status now (an active one past its time reads expired)."""
        return holds.get(self.store, hold_id, self.clock.now())

    def cancel_hold(self, hold_id: str) -> Hold:
        """Release a hold (idempotent; a committed one cannot be cancelled)."""
        return holds.cancel(self.store, hold_id, self.clock.now())

    def holds_active(self) -> int:
        """Holds in force now."""
        return holds.active_count(self.store, self.clock.now())

    # ----------------------------------------------------------------- refunds
    def find_cheques(self, text: str) -> list[str]:
        """The cheques ``text`` names as a cashier types it, newest first."""
        return history.find_cheques(self.store, text)

    def cheque(self, receipt_id: str) -> Cheque:
        """A cheque of this till with what is left to refund on each line."""
        return history.cheque(self.store, receipt_id)

    def cheque_entries(self, receipt_ids: list[str]) -> list[HistoryEntry]:
        """The purchases ``receipt_ids`` as history entries, in the order given."""
        return history.cheque_entries(self.store, receipt_ids)

    def refund_preview(self, receipt_id: str, lines: Mapping[int, int]) -> RefundResult:
        """What ``refund`` would do for ``lines`` (line -> units) now, writing nothing."""
        return history.refund_preview(self.store, receipt_id, lines, self.clock.now())

    # ----------------------------------------------------------------- slips
    def slip(self, job_id: int, width: int = 42) -> SlipView:
        """Print job ``job_id`` as text ``width`` characters wide (``SLIP_WIDTHS``)."""
        if width not in SLIP_WIDTHS:
            raise InputError("width: must be 32, 42 or 48", "ширина: 32, 42 или 48", field="width")
        job = printq.get_job(self.store, job_id)
        return SlipView(
            job_id, job.receipt_id, job.kind, job.status, width, slip_text(job.slip, width)
        )

    def reprint(self, job_id: int) -> Reprint:
        """Queue a copy of print job ``job_id`` (printed «КОПИЯ»)."""
        return Reprint(printq.enqueue_copy(self.store, job_id, self.clock.now()), job_id)

    def print_queue_depth(self) -> int:
        """Slips waiting for the printer."""
        return printq.queue_depth(self.store)

    # ----------------------------------------------------------------- shifts
    def cashiers(self) -> list[Cashier]:
        return shifts.cashiers(self.store)

    def verify_pin(self, cashier_id: str, pin: str) -> Cashier:
        """The cashier if ``pin`` is theirs (``PinError``, ``PinLockedError`` else)."""
        return shifts.verify_pin(self.store, cashier_id, pin)

    def open_shift(self, cashier_id: str) -> Shift:
        """Open a shift for the cashier now, or resume the one they have open."""
        return shifts.open_shift(self.store, cashier_id, self.clock.now())

    def close_shift(self, shift_id: str) -> XReport:
        """Close the shift now; its final report (Z)."""
        return shifts.close_shift(self.store, shift_id, self.clock.now())

    def x_report(self, shift_id: str) -> XReport:
        """The shift's figures so far."""
        return shifts.x_report(self.store, shift_id, self.clock.now())

    def queue_report(self, report: XReport, *, training: bool = False) -> int:
        """Queue ``report`` for the printer; the print job's id."""
        return shifts.queue_report(self.store, report, self.store_name, training=training)

    # ----------------------------------------------------------------- status
    def status(self) -> TillStatus:
        """The till at a glance (``/v1/status``)."""
        off = self.offline_status()
        return TillStatus(
            terminal_id=self.terminal_id,
            rules_version=self.programme().version,
            online=off.online,
            enrolled=self.store.meta("sync_token") is not None,
            last_contact=off.last_contact,
            events_waiting=off.events_waiting,
            holds_active=self.holds_active(),
            print_queue=self.print_queue_depth(),
        )

    def journal(self, limit: int) -> JournalPage:
        """The oldest ``limit`` events waiting, and whether more wait."""
        shown, total = self.pending_page(limit)
        return JournalPage(
            pending=shown,
            shown=len(shown),
            total=total,
            truncated=total > len(shown),
            limit=limit,
            status=self.offline_status(),
        )

    def sync_status(self) -> SyncView:
        """What ``kassa sync status`` prints: the journal's sync state, whether the back
        office answers now, the enrolment and the last ten quarantined events."""
        st = journal.status(self.store)
        return SyncView(
            **asdict(st),
            online=self.offline_status().online,
            enrolled=self.store.meta("sync_token") is not None,
            backoffice_url=self.store.meta("backoffice_url"),
            terminal_id=self.terminal_id,
            quarantine=tuple(journal.quarantine_rows(self.store)[-10:]),
        )

    def record_sync_error(self, text: str) -> None:
        """Remember why the last exchange with the back office failed (shown by status)."""
        journal.record_error(self.store, text, self._now_iso())


def _redeem(req: CheckoutRequest) -> Points | Literal["max"]:
    """The points ``req`` asks to spend: None (no hold named) is none."""
    return 0 if req.redeem_points is None else req.redeem_points


def _refund_lines(result: RefundResult) -> tuple[SlipLine, ...]:
    out = [SlipLine("Возврат на сумму", format_rub(result.amount_kop))]
    if result.earn_reversed or result.bonus_reversed:
        out.append(
            SlipLine(
                "Начисление отменено",
                format_points(-(result.earn_reversed + result.bonus_reversed)),
            )
        )
    if result.points_returned:
        out.append(SlipLine("Бонусы возвращены", format_points(result.points_returned, sign=True)))
    out.append(SlipLine("Баланс", format_points(result.balance_after)))
    if result.debt_after:
        out.append(SlipLine("Задолженность", format_points(result.debt_after)))
    return tuple(out)

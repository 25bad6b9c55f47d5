"""Members: identify by a scan or a phone, the member's card, registration at the till
(online or offline: provisional until the back office confirms it), and the reads for
staff (a name search, the member's cheques on this till).

Balance shown = the last server state + local events the server has not yet counted; the
member state in the cache is kept that way (``members.unsynced`` counts the local events,
and the card says the balance is provisional while it is not zero).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import replace
from datetime import date, datetime

from agent import codec, engine, history
from agent.erasure import refuse_blocked
from agent.errors import ConflictError, ConsentError, InputError, NotFoundError, StoreError
from agent.identify import (
    make_member_code,
    mask_phone,
    normalize_phone,
    parse_identifier,
)
from agent.ids import time_ordered_id
from agent.ledger import registration_lots
from agent.model import CollectionProgress, MemberState
from agent.phonehash import lookup_fingerprints, store_mask
from agent.results import (
    ChequeSearch,
    HistoryEntry,
    MemberCard,
    MemberLookup,
    MemberMatch,
    Registration,
    TillRegistration,
)
from agent.service import status
from agent.service.context import Context, MemberColumns
from agent.tokens import load_x25519_public_key, seal_for_backoffice


def identify(ctx: Context, text: str) -> MemberCard:
    """Find a member by a scan (member code, app QR token) or a typed phone number."""
    now = ctx.clock.now()
    ident = parse_identifier(text, ctx.token_verifier(), now)
    if ident.kind == "phone":
        assert ident.phone_e164 is not None
        row = None
        # v2 first; v1 for a row cached before the switch and not yet refreshed by the
        # snapshot or feed (agent.phonehash.lookup_fingerprints).
        for hashed in lookup_fingerprints(
            ident.phone_e164, ctx.hash_key(), ctx.programme().phone_hash
        ):
            row = ctx.member_row("phone_hash = ?", hashed)
            if row is not None:
                break
        how = "phone"
    else:
        row = ctx.member_row("code = ?", ident.member_code)
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
    refuse_blocked(ctx.store, row.member_id)
    found = replace(card_of(ctx, row, now), identified_by=how)
    if ident.phone_e164 is not None:
        # The store keeps no digit of the phone (agent.phonehash.store_mask); the cashier
        # confirms the member by the last digits of the number just typed.
        found = replace(found, phone_masked=mask_phone(ident.phone_e164))
    return found


def card(ctx: Context, member_id: str) -> MemberCard:
    row = ctx.member_row("member_id = ?", member_id)
    if row is None:
        raise NotFoundError(
            f"no member {member_id} on this till", "такого участника нет", member_id=member_id
        )
    return card_of(ctx, row, ctx.clock.now())


def card_of(ctx: Context, row: MemberColumns, now: datetime) -> MemberCard:
    rules = ctx.programme()
    state = ctx.state(row.state)
    spend = engine.rolling_spend(state, rules, now)
    tier = rules.tier_for_spend(spend)
    nxt = rules.next_tier(tier)
    exp_points, exp_on = engine.expiring_soon(state.lots, rules, now)
    today = engine.local_date(rules, now)
    bday = engine.birthday_occurrence(rules, state, today)
    spendable = state.spendable(now)
    after_sync = 0
    if row.provisional and not status.offline_status(ctx).online:
        after_sync = spendable - engine.unconfirmed_spendable(state, rules, now)
    progress = tuple(
        CollectionProgress(m.id, m.name_ru, state.collection_progress(m.id), m.target)
        for m in rules.collections
    )
    return MemberCard(
        member_id=row.member_id,
        code=row.code,
        phone_masked=row.phone_masked,
        first_name=row.first_name,
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
        consent_marketing=bool(row.consent_marketing),
        provisional=bool(row.provisional),
        unsynced_events=int(row.unsynced),
        spendable_after_sync=after_sync,
    )


def register(
    ctx: Context,
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
    rules = ctx.programme()
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
    if birthday is not None and not date(1900, 1, 1) <= birthday <= ctx.clock.now().date():
        raise InputError(
            "birthday is not a plausible date", "неверная дата рождения", field="birthday"
        )
    e164 = normalize_phone(phone)
    seal_key = ctx.store.meta("seal_public_key")
    if not seal_key:
        raise StoreError(
            "till has no back office key to protect phone numbers",
            "касса не подключена к программе: нет ключа шифрования",
        )
    sealed = seal_for_backoffice(e164.encode(), load_x25519_public_key(seal_key))
    hashed, legacy = lookup_fingerprints(e164, ctx.hash_key(), rules.phone_hash)
    masked = store_mask(e164)
    version = consent_text_version or rules.consent_text_version
    with ctx.store.write() as conn:
        # The business time under the write lock, as the journal's seq (``sales.commit``).
        now = ctx.clock.now()
        now_iso = now.isoformat()
        member_id = time_ordered_id()
        event_id = time_ordered_id()
        state = MemberState(
            member_id, lots=registration_lots(rules, now, event_id), birthday=birthday
        )
        dup = conn.execute(
            "SELECT code FROM members WHERE phone_hash IN (?, ?)", (hashed, legacy)
        ).fetchone()
        if dup is not None:
            raise ConflictError(
                "a member with this phone already exists",
                "участник с этим телефоном уже зарегистрирован",
                member_code=dup[0],
            )
        code = new_member_code(conn, event_id)
        conn.execute(
            "INSERT INTO members(member_id, code, phone_hash, phone_masked, first_name, "
            "state, balance, available, tier, provisional, consent_programme, "
            "consent_marketing, unsynced, updated_at) VALUES (?,?,?,?,?,?,?,?,?,1,1,?,1,?)",
            (
                member_id,
                code,
                hashed,
                masked,
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
            "fingerprint_v": 2,  # a till before the switch sends v1 without this
            "phone_masked": masked,
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
        ctx.append_event(conn, event_id, "member_registered", payload, now_iso)
    shown = replace(card(ctx, member_id), phone_masked=mask_phone(e164))  # as identify
    return Registration(shown, event_id, rules.welcome_points, code)


def new_member_code(conn: sqlite3.Connection, seed: str) -> str:
    for attempt in range(10):
        digest = hashlib.sha256(f"{seed}:{attempt}".encode()).digest()
        code = make_member_code(int.from_bytes(digest[:8], "big") % 10**12)
        if conn.execute("SELECT 1 FROM members WHERE code = ?", (code,)).fetchone() is None:
            return code
    raise StoreError("could not allocate a member code", "не удалось выдать номер участника")


def find_members(ctx: Context, query: str, limit: int) -> list[MemberMatch]:
    """Members whose first name contains ``query`` (at most ``limit``)."""
    return history.find_by_name(ctx.store, query, limit)


def member_history(ctx: Context, member_id: str) -> list[HistoryEntry]:
    """The member's recent cheques and refunds on this till, newest first."""
    return history.member_history(ctx.store, member_id)


def local_history(ctx: Context, entries: list[HistoryEntry]) -> list[HistoryEntry]:
    """``entries`` with their times in the store's time zone (the programme's), as the
    cashier reads clocks."""
    tz = ctx.programme().tz
    return [replace(e, at=e.at.astimezone(tz)) for e in entries]


def member_page(ctx: Context, member_id: str) -> MemberLookup:
    """The member's card and recent cheques (times in the store's zone)."""
    found = card(ctx, member_id)
    return MemberLookup(found, local_history(ctx, member_history(ctx, member_id)), [])


def look_up(ctx: Context, text: str, limit: int = history.NAME_MATCH_LIMIT) -> MemberLookup:
    """A phone or member code (also a scan) finds one member, with their card and recent
    cheques; text with letters that is neither searches first names (at most ``limit``
    matches). Digits that are neither a phone nor a code are refused with the reason
    (``InputError``)."""
    query = text.strip()
    if not query:
        raise InputError("enter a phone, code or name", "введите телефон, номер или имя")
    try:
        found = identify(ctx, query)
    except InputError:
        if not any(ch.isalpha() for ch in query):
            raise  # digits that are neither a phone nor a code: say why
        # One more than is shown tells "exactly 20" from "20 and more" without counting
        # them all (a name scan of a million members takes ~1 s).
        names = find_members(ctx, query, limit + 1)
        return MemberLookup(None, [], names[:limit], more=len(names) > limit)
    return MemberLookup(found, local_history(ctx, member_history(ctx, found.member_id)), [])


def find_cheque(ctx: Context, text: str) -> ChequeSearch:
    """The refund screen's search: a cheque of this till by its number (whole, short or
    last characters: one found, or several to pick from), or a member (code, card/slip/app
    scan, phone): their purchases on this till to pick from. Neither: ``NotFoundError``;
    nothing typed: ``InputError``."""
    value = text.strip()
    if not value:
        raise InputError("enter a cheque number", "введите номер чека", field="receipt_id")
    found = history.find_cheques(ctx.store, value)
    if len(found) == 1:
        return ChequeSearch(history.cheque(ctx.store, found[0]), [])
    try:
        card = identify(ctx, value)
    except (InputError, NotFoundError):
        card = None  # not a member code or phone either: say the cheque is unknown
    if card is None and found:
        return ChequeSearch(None, local_history(ctx, history.cheque_entries(ctx.store, found)))
    if card is None:
        raise NotFoundError(
            f"no cheque {value} on this till",
            f"чека {value} нет на этой кассе",
            receipt_id=value,
        )
    bought = [e for e in member_history(ctx, card.member_id) if e.kind == "purchase"]
    return ChequeSearch(None, local_history(ctx, bought), card.phone_masked or card.code)


def register_at_till(
    ctx: Context,
    *,
    phone: str,
    first_name: str,
    consent_programme: bool,
    consent_marketing: bool,
    birthday: date | None = None,
    cashier_id: str | None = None,
) -> TillRegistration:
    """``register`` with the programme's current consent text, and whether the till was
    offline when it happened (the member is then provisional)."""
    version = ctx.programme().consent_text_version
    reg = register(
        ctx,
        phone=phone,
        first_name=first_name,
        consent_programme=consent_programme,
        consent_marketing=consent_marketing,
        birthday=birthday,
        cashier_id=cashier_id,
        consent_text_version=version,
    )
    return TillRegistration(reg, not status.offline_status(ctx).online, version)

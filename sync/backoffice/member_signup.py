"""The members' own pages' use cases: signing in with a proven phone, joining the
programme from a store's poster, consents, and the request to erase.

A member session is a random token the phone keeps in a cookie; the table
``member_sessions`` holds only its SHA-256 with the phone's hash, mask and sealed form
(sealed to the back office's own X25519 key, as tills seal it), the card it opened and the
poster it came from. Nothing in a session can sign a QR token: the back office signs the
session's own member's token when asked (``Backoffice.member_tokens``).

Joining creates the member in the ledger as a till's registration would (the programme's
welcome bonus as a lot, the member in the change feed so every till learns the card), with
the store and poster as its source (``member_sources``, with the join's local day and
welcome bonus: a new member of the KPI report and the dashboard, ``rollups.web_join``),
its ``member.registered`` event in the outbox, and each consent as a row of its
own document (``member_consents``: kind, granted or withdrawn, the text's version, the
time; 152-FZ). A phone that already has a card (also one a till registered offline and
synced: the same phone hash) is signed in to that card, never given a second one; a till
that registers the phone offline later is merged into the card joined here by the ledger
(the first registration of a phone wins).

Times are aware UTC datetimes stored as ISO 8601 text; points are integers.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from agent import codec, engine
from agent.errors import AgentError
from agent.identify import make_member_code, mask_phone, normalize_phone
from agent.ids import time_ordered_id
from agent.ledger import registration_lots
from agent.model import MemberState
from agent.phonehash import lookup_fingerprints, strip_mask
from agent.tokens import load_x25519_public_key, seal_for_backoffice
from sync.backoffice import outbox, phones
from sync.backoffice.batch import FLAG_INSERT, flag_row
from sync.backoffice.context import Context
from sync.backoffice.db import Tx
from sync.backoffice.feed import member_records
from sync.backoffice.rollups import web_join

SESSION_TTL = timedelta(days=180)
"""How long a phone stays signed in to its card (the cookie's lifetime too)."""
MARKETING_TEXT_VERSION = "marketing-2026-01"
"""The version of the marketing consent's text the pages show (``CONSENT_TEXTS``)."""
CHANNEL = "members_site"
SOURCE_ID_MAX = 40
NAME_MAX = 60


class SignupError(AgentError):
    code = "signup_refused"
    title_en = "Not accepted"
    title_ru = "Не принято"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in phone: ``member_id`` is None until the phone has joined."""

    phone_hash: str
    phone_masked: str
    member_id: str | None
    store_id: str | None
    poster_id: str | None


@dataclass(frozen=True, slots=True)
class Consent:
    kind: str  # programme | marketing
    granted: bool
    text_version: str
    at: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def source_id(text: str | None) -> str | None:
    """A store or poster id from the poster's address: letters, digits, ``-`` and ``_``,
    at most 40 characters; anything else is dropped (None), never stored."""
    value = (text or "").strip()
    if not value or len(value) > SOURCE_ID_MAX:
        return None
    if not all(ch.isascii() and (ch.isalnum() or ch in "-_") for ch in value):
        return None
    return value


def _live_member(tx: Tx, hashed: str) -> str | None:
    row = tx.one(
        "SELECT member_id FROM members WHERE phone_hash = ? AND merged_into IS NULL "
        "AND erased_at IS NULL",
        (hashed,),
    )
    return None if row is None else str(row[0])


def open_session(
    ctx: Context,
    key: bytes,
    phone_text: str,
    store_id: str | None,
    poster_id: str | None,
    now: datetime,
) -> str:
    """A new session for the phone (its code already checked): the random token for the
    cookie. Signed in to the phone's card when it has one."""
    e164 = normalize_phone(phone_text)
    hashed, legacy = lookup_fingerprints(e164, key, phones.cost(ctx))
    token = secrets.token_urlsafe(32)
    with ctx.db.transaction(feed=True) as tx:
        seal_key = tx.one("SELECT value FROM settings WHERE key = 'seal_public_key'")
        sealed = seal_for_backoffice(e164.encode(), load_x25519_public_key(seal_key[0]))
        member_id = _live_member(tx, hashed)
        old = _live_member(tx, legacy) if member_id is None else None
        if old is not None:
            # A card made before the switch (v1 fingerprint): its phone is confirmed here,
            # so its row takes v2 now, and the tills get it in the feed.
            row = tx.one("SELECT phone_masked FROM members WHERE member_id = ?", (old,))
            tx.execute(
                "UPDATE members SET phone_hash = ?, phone_masked = ?, phone_legacy = 0 "
                "WHERE member_id = ?",
                (hashed, strip_mask(row[0]), old),
            )
            _feed(tx, old, now)
            member_id = old
        tx.execute(
            "INSERT INTO member_sessions(token_hash, phone_hash, phone_masked, phone_sealed, "
            "member_id, store_id, poster_id, created_at, expires_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                _token_hash(token),
                hashed,
                mask_phone(e164),  # the member's own pages show the last digits
                sealed,
                member_id,
                source_id(store_id),
                source_id(poster_id),
                now.isoformat(),
                (now + SESSION_TTL).isoformat(),
            ),
        )
    return token


def session(ctx: Context, token: str, now: datetime) -> Session | None:
    """The live session of ``token`` (None when unknown or expired). A session whose card
    was merged follows it to the surviving card; one whose card was erased is closed."""
    if not token or len(token) > 100:
        return None
    with ctx.db.reading() as tx:
        r = tx.one(
            "SELECT s.phone_hash, s.phone_masked, s.member_id, s.store_id, s.poster_id, "
            "s.expires_at, m.merged_into, m.erased_at FROM member_sessions s "
            "LEFT JOIN members m ON m.member_id = s.member_id WHERE s.token_hash = ?",
            (_token_hash(token),),
        )
        if r is None or datetime.fromisoformat(r[5]) <= now or r[7] is not None:
            return None
        member_id = r[2]
        if r[6] is not None or member_id is None:
            member_id = _live_member(tx, r[0])  # merged away, or joined in another session
    return Session(r[0], r[1], member_id, r[3], r[4])


def close_session(ctx: Context, token: str) -> None:
    with ctx.db.transaction() as tx:
        tx.execute("DELETE FROM member_sessions WHERE token_hash = ?", (_token_hash(token),))


def _first_name(text: str) -> str:
    name = " ".join((text or "").split())
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise SignupError(
            f"first name: 1 to {NAME_MAX} printable characters",
            f"имя: от 1 до {NAME_MAX} печатных символов",
            field="first_name",
        )
    return name


def _birthday(text: str, today: date) -> date | None:
    value = (text or "").strip()
    if not value:
        return None
    try:
        born = date.fromisoformat(value)
    except ValueError:
        born = None
    if born is None or not date(1900, 1, 1) <= born <= today:
        raise SignupError(
            f"birthday: a date from 1900-01-01 to today as YYYY-MM-DD, not {value[:20]!r}",
            f"дата рождения: дата с 01.01.1900 по сегодня (ГГГГ-ММ-ДД), а не {value[:20]!r}",
            field="birthday",
        )
    return born


def _new_code(tx: Tx) -> str:
    for _ in range(10):
        code = make_member_code(secrets.randbelow(10**12))
        if tx.one("SELECT 1 FROM members WHERE code = ?", (code,)) is None:
            return code
    raise SignupError("no free member code was found: try again", "не удалось выдать номер карты")


def _consent(tx: Tx, member_id: str, kind: str, granted: bool, version: str, at: str) -> None:
    tx.execute(
        "INSERT INTO member_consents(member_id, kind, granted, text_version, at, channel) "
        "VALUES (?,?,?,?,?,?)",
        (member_id, kind, int(granted), version, at, CHANNEL),
    )


def _feed(tx: Tx, member_id: str, now: datetime) -> None:
    """The member's current record in the change feed (what tills pull)."""
    tx.execute(
        "INSERT INTO changes(kind, member_id, body, created_at) VALUES (?,?,?,?)",
        (
            "member",
            member_id,
            json.dumps(member_records(tx, {member_id})[member_id], ensure_ascii=False),
            now.isoformat(),
        ),
    )


def join(
    ctx: Context,
    token: str,
    first_name: str,
    birthday: str,
    consent_programme: bool,
    consent_marketing: bool,
    now: datetime,
) -> str:
    """The session's phone joins the programme: the new card's member id (or the card the
    phone has already: signed in, nothing created). ``SignupError`` names what was wrong."""
    name = _first_name(first_name)
    born = _birthday(birthday, now.date())
    if not consent_programme:
        raise SignupError(
            "the programme's consent is required to join",
            "без согласия с правилами программы карту не выдать",
            field="consent_programme",
        )
    at = now.isoformat()
    with ctx.db.transaction(feed=True) as tx:
        s = tx.one(
            "SELECT phone_hash, phone_masked, phone_sealed, store_id, poster_id, expires_at "
            "FROM member_sessions WHERE token_hash = ?",
            (_token_hash(token),),
        )
        if s is None or datetime.fromisoformat(s[5]) <= now:
            raise SignupError(
                "the session has ended: confirm the phone again",
                "сеанс завершён: подтвердите телефон ещё раз",
                field="phone",
            )
        existing = _live_member(tx, s[0])
        if existing is not None:
            tx.execute(
                "UPDATE member_sessions SET member_id = ? WHERE token_hash = ?",
                (existing, _token_hash(token)),
            )
            return existing
        rules = ctx.programmes.get(None, tx)
        assert rules is not None
        member_id, code = time_ordered_id(), _new_code(tx)
        state = MemberState(
            member_id, lots=registration_lots(rules, now, f"{member_id}:join"), birthday=born
        )
        summary = engine.member_summary(state, rules, now)
        tx.execute(
            "INSERT INTO members(member_id, code, phone_hash, phone_masked, phone_sealed, "
            "first_name, birthday, state, balance, available, pending, expiring_points, "
            "expiring_on, tier, consent_programme, consent_marketing, consent_text_version, "
            "registered_at, store_id, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,1,?,?,?,?,?)",
            (
                member_id,
                code,
                s[0],
                strip_mask(s[1]),  # what tills receive: no digit (agent.phonehash)
                s[2],
                name,
                born.isoformat() if born else None,
                codec.dumps(state),
                summary.balance,
                summary.available,
                summary.pending,
                summary.expiring_points,
                summary.expiring_on.isoformat() if summary.expiring_on else None,
                summary.tier,
                int(consent_marketing),
                rules.consent_text_version,
                at,
                s[3],
                at,
            ),
        )
        day = engine.local_date(rules, now).isoformat()
        welcome = sum(lot.points for lot in state.lots)
        tx.execute(
            "INSERT INTO member_sources(member_id, store_id, poster_id, at, day, "
            "welcome_points) VALUES (?,?,?,?,?,?)",
            (member_id, s[3], s[4], at, day, welcome),
        )
        web_join(tx, day, s[3], welcome, state, at)
        _consent(tx, member_id, "programme", True, rules.consent_text_version, at)
        _consent(tx, member_id, "marketing", consent_marketing, MARKETING_TEXT_VERSION, at)
        tx.execute(
            "UPDATE member_sessions SET member_id = ? WHERE token_hash = ?",
            (member_id, _token_hash(token)),
        )
        _feed(tx, member_id, now)
        outbox.emit(
            tx,
            member_id,
            outbox.MEMBER_REGISTERED,
            {
                "code": code,
                "store_id": s[3],
                "terminal_id": None,
                "consent_marketing": consent_marketing,
            },
            now,
            now=now,
        )
    return member_id


def consents(ctx: Context, member_id: str) -> tuple[Consent, ...]:
    """The member's consent documents, newest first."""
    with ctx.db.reading() as tx:
        rows = tx.all(
            "SELECT kind, granted, text_version, at FROM member_consents WHERE member_id = ? "
            "ORDER BY id DESC",
            (member_id,),
        )
    return tuple(Consent(r[0], bool(r[1]), r[2], r[3]) for r in rows)


def withdraw_marketing(ctx: Context, member_id: str, now: datetime) -> bool:
    """The member withdraws the marketing consent (recorded, the tills told); False when
    it was not given (nothing written)."""
    with ctx.db.transaction(feed=True) as tx:
        r = tx.one(
            "SELECT consent_marketing FROM members WHERE member_id = ? AND erased_at IS NULL",
            (member_id,),
        )
        if r is None or not int(r[0]):
            return False
        tx.execute(
            "UPDATE members SET consent_marketing = 0, updated_at = ? WHERE member_id = ?",
            (now.isoformat(), member_id),
        )
        _consent(tx, member_id, "marketing", False, MARKETING_TEXT_VERSION, now.isoformat())
        _feed(tx, member_id, now)
        outbox.emit(
            tx, member_id, outbox.CONSENT_CHANGED, {"consent_marketing": False}, now, now=now
        )
    return True


def request_erase(ctx: Context, member_id: str, now: datetime) -> str:
    """The member asks for their data to be destroyed: recorded once (a second request
    returns the first one's time), flagged ``erase_requested`` on the member so the
    console's members section shows it by the erase action. Nothing is erased here."""
    with ctx.db.transaction() as tx:
        before = tx.one(
            "SELECT requested_at FROM member_erase_requests WHERE member_id = ?", (member_id,)
        )
        if before is not None:
            return str(before[0])
        at = now.isoformat()
        tx.execute(
            "INSERT INTO member_erase_requests(member_id, requested_at, channel) VALUES (?,?,?)",
            (member_id, at, CHANNEL),
        )
        tx.execute(
            FLAG_INSERT, flag_row("erase_requested", None, member_id, None, {"by": CHANNEL}, at)
        )
    return at


def erase_requested(ctx: Context, member_id: str) -> str | None:
    """When the member asked to be erased (None if not)."""
    with ctx.db.reading() as tx:
        r = tx.one(
            "SELECT requested_at FROM member_erase_requests WHERE member_id = ?", (member_id,)
        )
    return None if r is None else str(r[0])


def signups(ctx: Context, store_scope: str | None = None) -> list[dict[str, Any]]:
    """Members who joined on the members' pages, per store and poster (most first)."""
    where, args = ("WHERE store_id = ?", (store_scope,)) if store_scope else ("", ())
    with ctx.db.reading() as tx:
        rows = tx.all(
            f"SELECT store_id, poster_id, count(*) FROM member_sources {where} "
            "GROUP BY store_id, poster_id ORDER BY count(*) DESC, store_id, poster_id",
            args,
        )
    return [{"store_id": r[0], "poster_id": r[1], "members": int(r[2])} for r in rows]


TOKEN_WINDOW_S = 300
"""Seconds each member QR token is valid: tokens are issued for fixed windows of this
length, so the current and the next ones can be kept by the phone ahead of time."""


@dataclass(frozen=True, slots=True)
class WindowToken:
    token: str
    valid_from: datetime
    expires_at: datetime


def token_windows(
    sign: Any, code: str, now: datetime, count: int, window_s: int = TOKEN_WINDOW_S
) -> list[WindowToken]:
    """``count`` member tokens: the one of the window holding ``now``, then the next ones,
    each issued at its window's start and valid ``window_s`` seconds (``sign(code, start,
    window_s)`` signs one). A till accepts a token from its start (less 60 s of clock
    leeway), so a phone shows each only in its own window."""
    epoch = int(now.timestamp())
    first = epoch - epoch % window_s
    out = []
    for k in range(count):
        start = datetime.fromtimestamp(first + k * window_s, now.tzinfo)
        out.append(
            WindowToken(sign(code, start, window_s), start, start + timedelta(seconds=window_s))
        )
    return out


def card_code(ctx: Context, member_id: str) -> str | None:
    """The member code of a live card (None when merged away, erased or unknown)."""
    with ctx.db.reading() as tx:
        r = tx.one(
            "SELECT code FROM members WHERE member_id = ? AND merged_into IS NULL "
            "AND erased_at IS NULL",
            (member_id,),
        )
    return None if r is None else str(r[0])

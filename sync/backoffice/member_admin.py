"""The console's members section, reading: find a member, and their profile.

Search (``search``): one box takes a phone, a card code or a name.

- A phone is normalised and fingerprinted exactly as the tills do (``normalize_phone``
  to E.164, then ``agent.phonehash.lookup_fingerprints`` with the programme's
  ``phone_hash_key`` and cost: v2, then v1 for a member not yet upgraded), so the back
  office looks it up by ``members.phone_hash`` like ``Backoffice.lookup`` does; the phone
  itself is never stored.
- A card code is checked (``check_member_code``: 13 digits, Damm check digit) and looked
  up by ``members.code``.
- Letters are a first-name prefix, case-insensitive, read from an index and cut at
  ``limit`` rows: on PostgreSQL ``lower(first_name) LIKE 'ив%'`` on its
  ``text_pattern_ops`` index; on SQLite (whose ``lower`` folds ASCII only) the prefix is
  walked on the ``first_name`` index one character at a time, each character in both
  cases, keeping only the spellings some name starts with (a few index probes per
  character), then each surviving spelling is one range read. The first ``limit + 1``
  rows in index order are read (no sort of every match: a common name prefix matches a
  hundred thousand members in a million) and shown sorted by name.

A store manager (``store_scope``) sees only the members registered at their store
(``members.store_id``, the till that enrolled the member): a member is the store's
customer where they joined; their purchases elsewhere show on their profile, which only
their registration store's manager opens.

Profile (``profile``): tier and points as of now (the shared engine's summary over the
member's lots), each lot (pending until, expiring on), the history of cheques, refunds,
adjustments and merges newest first (each cheque explained line by line by the rule
that gave its points: the tier's base rate, the campaigns, the bonuses), the consents
with their text version and time, the flags and whether the member is blocked or erased.
Members merged into this one count as this one (their cheques are listed too).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agent import engine
from agent.errors import AgentError, MemberCodeError, PhoneError
from agent.identify import check_member_code, normalize_phone
from agent.model import MemberState
from agent.phonehash import lookup_fingerprints
from agent.rules import Programme
from sync.backoffice import phones
from sync.backoffice.batch import member_state
from sync.backoffice.checks import Rejected
from sync.backoffice.context import Context
from sync.backoffice.db import Tx, marks
from sync.backoffice.effects import cart_and_quote

SEARCH_LIMIT = 20
"""Members shown for one search (one more is read to say there are more)."""
HISTORY_LIMIT = 50
"""Cheques (and refunds, adjustments) shown on a profile, newest first."""
_WALK_MAX = 16
"""The most spellings of a name prefix kept while walking the SQLite index."""
_TOP = "\U0010ffff"


class MemberAdminError(AgentError):
    """A members-section request refused: bad input, or nothing to act on (the message
    says which field and why); nothing was changed."""

    code = "member_admin_refused"
    title_ru = "Действие не выполнено"
    title_en = "Not done"

    def __init__(
        self, message_en: str, message_ru: str, *, code: str = code, **details: Any
    ) -> None:
        """``code``: what was wrong (``not_found``, ``bad_points``, ``no_reason``...)."""
        super().__init__(message_en, message_ru, **details)
        self.code = code


def not_found() -> MemberAdminError:
    """No such member (or one another store's manager may not see: the same answer)."""
    return MemberAdminError(
        "no member with this id", "такого участника нет", code="member_not_found"
    )


# ---------------------------------------------------------------------- search
@dataclass(frozen=True, slots=True)
class MemberHit:
    """One search result: points as last written by the ledger."""

    member_id: str
    code: str
    first_name: str | None
    phone_masked: str | None
    tier: str
    balance: int
    store_id: str | None
    blocked: bool
    erased: bool


@dataclass(frozen=True, slots=True)
class SearchResult:
    """What a search found: ``kind`` is how the query was read (phone, code, name)."""

    kind: str
    hits: list[MemberHit]
    more: bool


_HIT_COLS = "member_id, code, first_name, phone_masked, tier, balance, store_id, blocked, erased_at"


def _hit(r: Any) -> MemberHit:
    return MemberHit(r[0], r[1], r[2], r[3], r[4], int(r[5]), r[6], bool(r[7]), r[8] is not None)


def _scoped(store_scope: str | None) -> tuple[str, tuple[Any, ...]]:
    return ("", ()) if store_scope is None else (" AND store_id = ?", (store_scope,))


def search(
    ctx: Context, query: str, *, store_scope: str | None = None, limit: int = SEARCH_LIMIT
) -> SearchResult:
    """Members matching ``query`` (a phone, a card code or a name prefix, see the module
    docstring); ``MemberAdminError`` for an empty query or a phone or code that cannot be
    one (its message says why)."""
    text = query.strip()
    if not text:
        raise MemberAdminError(
            "type a phone, a card code or a name",
            "введите телефон, номер карты или имя",
            code="empty_query",
        )
    if len(text) > 64:
        raise MemberAdminError(
            "a search is at most 64 characters",
            "в запросе не больше 64 символов",
            code="long_query",
        )
    if any(c.isalpha() for c in text):
        return _by_name(ctx, text, store_scope, limit)
    digits = sum(c.isdigit() for c in text)
    try:
        code = check_member_code(text)
    except MemberCodeError as e:
        if digits == 13:
            raise MemberAdminError(e.message_en, e.message_ru, code="bad_code") from None
        code = None
    if code is not None:
        return _one(ctx, "code", "code = ?", code, store_scope)
    try:
        e164 = normalize_phone(text)
    except PhoneError as e:
        raise MemberAdminError(e.message_en, e.message_ru, code="bad_phone") from None
    key = bytes.fromhex(_setting(ctx, "phone_hash_key"))
    v2, v1 = lookup_fingerprints(e164, key, phones.cost(ctx))
    found = _one(ctx, "phone", "phone_hash = ?", v2, store_scope)
    return found if found.hits else _one(ctx, "phone", "phone_hash = ?", v1, store_scope)


def _setting(ctx: Context, key: str) -> str:
    with ctx.db.reading() as tx:
        return str(tx.one("SELECT value FROM settings WHERE key = ?", (key,))[0])


def _one(ctx: Context, kind: str, where: str, value: str, scope: str | None) -> SearchResult:
    extra, params = _scoped(scope)
    with ctx.db.reading() as tx:
        rows = tx.all(
            f"SELECT {_HIT_COLS} FROM members WHERE {where} AND merged_into IS NULL{extra}",
            (value, *params),
        )
    return SearchResult(kind, [_hit(r) for r in rows], False)


def _by_name(ctx: Context, prefix: str, scope: str | None, limit: int) -> SearchResult:
    extra, params = _scoped(scope)
    with ctx.db.reading() as tx:
        if tx.dialect == "postgresql":
            pattern = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = tx.all(
                f"SELECT {_HIT_COLS} FROM members WHERE lower(first_name) LIKE ? ESCAPE '\\' "
                f"AND merged_into IS NULL{extra} LIMIT ?",
                (pattern + "%", *params, limit + 1),
            )
        else:
            rows = []
            for spelling in _spellings(tx, prefix):
                rows += tx.all(
                    f"SELECT {_HIT_COLS} FROM members WHERE first_name >= ? AND first_name < ? "
                    f"AND merged_into IS NULL{extra} ORDER BY first_name LIMIT ?",
                    (spelling, spelling + _TOP, *params, limit + 1),
                )
    hits = sorted((_hit(r) for r in rows), key=lambda h: ((h.first_name or "").lower(), h.code))
    return SearchResult("name", hits[:limit], len(hits) > limit)


def _spellings(tx: Tx, prefix: str) -> list[str]:
    """The spellings of ``prefix`` (each character in either case) some first name starts
    with, found by walking the ``first_name`` index (SQLite compares text bytewise)."""
    found = [""]
    for ch in prefix:
        grown: list[str] = []
        for start in found:
            for c in dict.fromkeys((ch, ch.lower(), ch.upper())):
                s = start + c
                if tx.one(
                    "SELECT 1 FROM members WHERE first_name >= ? AND first_name < ? LIMIT 1",
                    (s, s + _TOP),
                ):
                    grown.append(s)
        found = grown[:_WALK_MAX]
        if not found:
            break
    return found


def blocked_ids(ctx: Context) -> list[str]:
    """The members whose card is blocked (erased ones too), for the snapshot's header: a
    till loaded from it is behind the feed's ``block`` changes. One scan of the members
    (blocked ones are few and a snapshot is rare)."""
    with ctx.db.reading() as tx:
        rows = tx.all("SELECT member_id FROM members WHERE blocked = 1 AND merged_into IS NULL")
    return sorted(str(r[0]) for r in rows)


# ---------------------------------------------------------------------- profile
@dataclass(frozen=True, slots=True)
class LotView:
    """One lot of points: ``status`` is ``pending`` (spendable from ``available_from``),
    ``available`` (until ``expires_at``) or ``expired``; times ISO 8601 UTC."""

    lot_id: str
    points: int
    source: str
    earned_at: str
    available_from: str
    expires_at: str
    status: str


@dataclass(frozen=True, slots=True)
class LineWhy:
    """Why one cheque line earned what it did: ``rate_bp`` (basis points of what was paid,
    after the coupon and the points spent on it), the tier's base rate and the campaigns
    that raised it, or why it earned nothing (``no_accrual``: ``excluded`` or ``sale``)."""

    line_no: int
    name: str
    qty: int
    paid_kop: int
    rate_bp: int
    base_bp: int
    campaigns: tuple[str, ...]
    points: int
    spent_points: int
    no_accrual: str | None


@dataclass(frozen=True, slots=True)
class ChequeWhy:
    """A cheque explained: its tier then, its lines, its bonuses (Russian and English
    notes, points), points spent and when the earned points became spendable."""

    tier_ru: str
    tier_en: str
    lines: tuple[LineWhy, ...]
    bonuses: tuple[tuple[str, str, int], ...]
    spent: int
    earned: int
    available_from: str
    rules_version: int


@dataclass(frozen=True, slots=True)
class HistoryItem:
    """One row of the member's history: ``kind`` is ``purchase``, ``refund``,
    ``adjustment`` or ``merge``; amounts in kopecks, points in points."""

    kind: str
    at: str
    ref: str
    store_id: str | None
    amount_kop: int
    earned: int
    spent: int
    note: str
    why: ChequeWhy | None = None
    refunded: bool = False


@dataclass(frozen=True, slots=True)
class Consent:
    """A consent the member gave at registration: ``kind`` ``programme`` or
    ``marketing``, whether it holds, the text version read out and when."""

    kind: str
    given: bool
    text_version: str | None
    at: str


@dataclass(frozen=True, slots=True)
class FlagView:
    kind: str
    at: str
    detail: dict[str, Any]
    event_id: str | None


@dataclass(frozen=True, slots=True)
class Profile:
    """Everything the hotline needs about one member on one page."""

    member_id: str
    code: str
    first_name: str | None
    phone_masked: str | None
    birthday: str | None
    registered_at: str
    store_id: str | None
    terminal_id: str | None
    tier: str
    tier_ru: str
    tier_en: str
    balance: int
    available: int
    pending: int
    debt: int
    expiring_points: int
    expiring_on: str | None
    blocked: bool
    erased_at: str | None
    merged_into: str | None
    merged: tuple[str, ...]
    lots: tuple[LotView, ...]
    history: tuple[HistoryItem, ...]
    consents: tuple[Consent, ...]
    flags: tuple[FlagView, ...]
    act_no: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


_PROFILE_COLS = (
    "member_id, code, first_name, phone_masked, birthday, registered_at, store_id, "
    "terminal_id, state, consent_programme, consent_marketing, consent_text_version, "
    "blocked, erased_at, merged_into"
)


def merged_ids(tx: Tx, member_id: str) -> list[str]:
    """The members merged into ``member_id`` (directly or through a chain)."""
    out: list[str] = []
    wanted = [member_id]
    for _ in range(5):
        rows = [
            str(r[0])
            for r in tx.all(
                f"SELECT member_id FROM members WHERE merged_into IN ({marks(len(wanted))})",
                wanted,
            )
        ]
        rows = [r for r in rows if r not in out and r != member_id]
        if not rows:
            break
        out += rows
        wanted = rows
    return out


def profile(
    ctx: Context, member_id: str, *, store_scope: str | None = None, now: datetime | None = None
) -> Profile:
    """The member's profile (``not_found`` when unknown or outside ``store_scope``)."""
    now = now or ctx.clock.now()
    with ctx.db.reading() as tx:
        r = tx.one(f"SELECT {_PROFILE_COLS} FROM members WHERE member_id = ?", (member_id,))
        if r is None or (store_scope is not None and r[6] != store_scope):
            raise not_found()
        rules = ctx.programmes.get(None, tx)
        assert rules is not None
        state = member_state(r[8])
        ids = [member_id, *merged_ids(tx, member_id)]
        history = _history(ctx, tx, ids)
        flags = tx.all(
            f"SELECT kind, created_at, detail, event_id FROM flags "
            f"WHERE member_id IN ({marks(len(ids))}) ORDER BY id DESC LIMIT ?",
            (*ids, HISTORY_LIMIT),
        )
        act = tx.one("SELECT act_no FROM member_erasures WHERE member_id = ?", (member_id,))
    s = engine.member_summary(state, rules, now)
    tier = next((t for t in rules.tiers if t.code == s.tier), rules.tiers[0])
    return Profile(
        member_id=r[0],
        code=r[1],
        first_name=r[2],
        phone_masked=r[3],
        birthday=r[4],
        registered_at=r[5],
        store_id=r[6],
        terminal_id=r[7],
        tier=s.tier,
        tier_ru=tier.name_ru,
        tier_en=tier.name_en,
        balance=s.balance,
        available=s.available,
        pending=s.pending,
        debt=state.debt,
        expiring_points=s.expiring_points,
        expiring_on=s.expiring_on.isoformat() if s.expiring_on else None,
        blocked=bool(r[12]),
        erased_at=r[13],
        merged_into=r[14],
        merged=tuple(ids[1:]),
        lots=_lots(state, now),
        history=history,
        consents=(
            Consent("programme", bool(r[9]), r[11], r[5]),
            Consent("marketing", bool(r[10]), r[11], r[5]),
        ),
        flags=tuple(FlagView(f[0], f[1], json.loads(f[2]) if f[2] else {}, f[3]) for f in flags),
        act_no=None if act is None else int(act[0]),
    )


def _lots(state: MemberState, now: datetime) -> tuple[LotView, ...]:
    out = []
    for lot in sorted(state.lots, key=lambda x: (x.expires_at, x.available_from, x.lot_id)):
        status = (
            "pending"
            if lot.is_pending(now)
            else "available"
            if lot.is_available(now)
            else "expired"
        )
        out.append(
            LotView(
                lot.lot_id,
                lot.points,
                lot.source,
                lot.earned_at.isoformat(),
                lot.available_from.isoformat(),
                lot.expires_at.isoformat(),
                status,
            )
        )
    return tuple(out)


def _history(ctx: Context, tx: Tx, ids: list[str]) -> tuple[HistoryItem, ...]:
    m = marks(len(ids))
    bought = tx.all(
        "SELECT event_id, receipt_id, store_id, occurred_at, amount_kop, earned, bonus, spent, "
        f"refunded FROM purchases WHERE member_id IN ({m}) ORDER BY occurred_at DESC LIMIT ?",
        (*ids, HISTORY_LIMIT),
    )
    payloads = {}
    if bought:
        payloads = dict(
            tx.all(
                f"SELECT event_id, payload FROM events WHERE event_id IN ({marks(len(bought))})",
                [b[0] for b in bought],
            )
        )
    items = [
        HistoryItem(
            "purchase",
            b[3],
            b[1],
            b[2],
            int(b[4]),
            int(b[5]) + int(b[6]),
            int(b[7]),
            "",
            _why(ctx, tx, payloads.get(b[0])),
            refunded=b[8] not in ("{}", ""),
        )
        for b in bought
    ]
    for f in tx.all(
        "SELECT refund_id, store_id, occurred_at, amount_kop, earn_reversed, bonus_reversed, "
        f"returned FROM refunds WHERE member_id IN ({m}) ORDER BY occurred_at DESC LIMIT ?",
        (*ids, HISTORY_LIMIT),
    ):
        items.append(
            HistoryItem(
                "refund", f[2], f[0], f[1], -int(f[3]), -(int(f[4]) + int(f[5])), -int(f[6]), ""
            )
        )
    for a in tx.all(
        "SELECT id, at, points, reason, actor FROM member_adjustments "
        f"WHERE member_id IN ({m}) ORDER BY id DESC LIMIT ?",
        (*ids, HISTORY_LIMIT),
    ):
        points = int(a[2])
        items.append(
            HistoryItem(
                "adjustment",
                a[1],
                f"#{a[0]} · {a[4]}",
                None,
                0,
                max(points, 0),
                max(-points, 0),
                str(a[3]),
            )
        )
    items.sort(key=lambda i: i.at, reverse=True)
    return tuple(items)


def _why(ctx: Context, tx: Tx, payload: str | None) -> ChequeWhy | None:
    """The cheque's points explained by the shared engine's own rules (``engine.accrues``,
    ``engine.line_rate_bp`` over the campaigns active that day), beside what the till
    printed (the quote's per-line points)."""
    if payload is None:
        return None
    try:
        p = json.loads(payload)
        cart, q = cart_and_quote(p)
        occurred = datetime.fromisoformat(p["occurred_at"])
    except (Rejected, KeyError, TypeError, ValueError):
        return None
    rules: Programme | None = ctx.programmes.get(q.rules_version, tx)
    if rules is None:
        return None
    tier = next((t for t in rules.tiers if t.code == q.tier_before.code), rules.tiers[0])
    names = {c.id: c.name_ru for c in rules.campaigns}
    campaigns = engine.active_campaigns(rules, engine.local_date(rules, occurred))
    by_no = {ql.line_no: ql for ql in q.lines}
    lines = []
    for line in cart.lines:
        ql = by_no[line.line_no]
        if engine.accrues(line, rules):
            _, used = engine.line_rate_bp(line, tier, campaigns)
            reason = None
        else:
            used = set()
            reason = "excluded" if line.category in rules.excluded_categories else "sale"
        lines.append(
            LineWhy(
                line.line_no,
                line.name,
                line.qty,
                ql.payable_kop,
                ql.earn_rate_bp,
                tier.accrual_bp if reason is None else 0,
                tuple(names.get(c, c) for c in sorted(used)),
                ql.earn_points,
                ql.redeemed_points,
                reason,
            )
        )
    return ChequeWhy(
        q.tier_before.name_ru,
        q.tier_before.name_en,
        tuple(lines),
        tuple((b.note_ru, b.note_en, b.points) for b in q.bonuses),
        q.redeem_points,
        q.total_earned,
        q.earn_available_from.isoformat(),
        q.rules_version,
    )

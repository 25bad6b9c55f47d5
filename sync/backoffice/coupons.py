"""Coupons issued in the console: the register, redemptions and revocation.

A coupon is the signed ``KC1:`` token tills verify offline (``agent.tokens``: the
back office's Ed25519 key signs, tills hold the public key); this module signs with
``agent.tokens.issue_coupon`` and keeps a register of what it issued (``coupon_batches``,
``coupons``): one coupon (``single``), one personal coupon per member code given
(``members``), or a batch of N codes (``batch``), each issue one transaction with its
audit row, so a refused form issues nothing.

Redemptions are the ledger's: the projector writes ``coupon_redemptions`` (which cheque
used which coupon) with the purchase (``effects.purchase``).

Revocation reaches tills two ways, both offline-safe: a ``coupon_revoked`` change in the
feed (tills pulling changes), and the list of revoked coupons still within their validity
in the snapshot's header (a till loading a snapshot skips older changes). A till refuses a
revoked coupon from its own table (``agent.service.sales``); a till that has not synced
since still takes it, and the register shows such a redemption as after revocation.

Units: ``value`` is basis points for ``percent`` (1000 = 10 %), kopecks for ``fixed``,
points for ``points``; ``min_cheque_kop`` kopecks; times aware UTC.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from agent.errors import AgentError, InputError
from agent.identify import check_member_code
from agent.tokens import Coupon, CouponKind, TokenSigner, issue_coupon, load_ed25519_private_key
from sync.backoffice.context import Context
from sync.backoffice.db import Tx
from sync.backoffice.people import audit

Mode = Literal["single", "members", "batch"]
MODES: tuple[Mode, ...] = ("single", "members", "batch")
KINDS: tuple[CouponKind, ...] = ("percent", "fixed", "points")
MAX_BATCH = 2000
"""The most coupons one issue makes (a printed campaign's flyers)."""
MAX_MEMBERS = 2000
REVOKE_CHUNK = 500
"""Coupon ids per ``coupon_revoked`` change."""
MAX_DAYS = 3660


class CouponIssueError(InputError):
    """A coupon form the back office refuses: ``details["field"]`` names the field."""

    code = "bad_coupon_form"
    title_ru = "Купоны не выпущены"
    title_en = "Coupons not issued"


def _bad(field: str, en: str, ru: str, **details: object) -> CouponIssueError:
    return CouponIssueError(en, ru, field=field, **details)


@dataclass(frozen=True, slots=True)
class Terms:
    """What every coupon of one issue gives: kind, value (see the module's units), the
    validity window ``[valid_from, valid_until)`` (aware UTC) and the minimum cheque."""

    kind: CouponKind
    value: int
    valid_from: datetime
    valid_until: datetime
    min_cheque_kop: int


@dataclass(frozen=True, slots=True)
class Batch:
    """One issue: its id, mode, note, terms, who issued it and when, and its counts
    (coupons, revoked, redeemed cheques)."""

    batch_id: str
    mode: str
    note: str
    terms: Terms
    issued_at: datetime
    issued_by: str
    count: int
    revoked: int = 0
    redeemed: int = 0
    timezone: str = "UTC"
    """The active programme's zone, in which the validity's days are read."""

    def days(self) -> tuple[date, date]:
        """The first and the last day (inclusive) of validity in ``timezone``."""
        tz = ZoneInfo(self.timezone)
        last = self.terms.valid_until.astimezone(tz) - timedelta(seconds=1)
        return self.terms.valid_from.astimezone(tz).date(), last.date()


@dataclass(frozen=True, slots=True)
class Issued:
    """One coupon of the register: its place in its batch (1..), id, token text, the
    member it is personal to, and its revocation (None: in force)."""

    n: int
    coupon_id: str
    token: str
    member_code: str | None
    revoked_at: datetime | None
    revoked_by: str | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Redemption:
    """A cheque that used a coupon (from the ledger): where, when, its discount (kopecks)
    or coupon points, and whether it came after the coupon's revocation (a till that had
    not synced yet)."""

    coupon_id: str
    receipt_id: str
    store_id: str
    terminal_id: str
    member_id: str
    occurred_at: datetime
    discount_kop: int
    points: int
    after_revocation: bool


# ---------------------------------------------------------------------- reading the form


def parse_decimal(text: str, places: int, field: str, en: str, ru: str) -> int:
    """A non-negative decimal typed with at most ``places`` digits after the point
    (``,`` or ``.``) as an integer scaled by 10**places; no floats."""
    t = text.strip().replace(" ", "").replace("\u00a0", "").replace(",", ".")
    whole, dot, frac = t.partition(".")
    ok = whole.isdigit() and len(t) <= 15 and (not dot or (frac.isdigit() and len(frac) <= places))
    if not ok:
        raise _bad(field, en, ru, typed=text[:40])
    scaled: int = int(whole) * 10**places + int((frac + "0" * places)[:places] or 0)
    return scaled


def read_terms(
    kind: str,
    value: str,
    valid_from: str,
    valid_until: str,
    min_cheque: str,
    tz: ZoneInfo,
    today: date,
) -> Terms:
    """The terms as typed in the form: kind; value in percent (``12.5``), rubles or
    points; the first and last day of validity (``YYYY-MM-DD``, the programme's time zone;
    the coupon works from the first day's start to the last day's end); the minimum
    cheque in rubles (empty: none). Raises ``CouponIssueError`` naming the field."""
    if kind not in KINDS:
        raise _bad("kind", "choose the coupon's kind", "выберите вид купона")
    if not value.strip():
        raise _bad("value", "give the coupon's value", "укажите номинал купона")
    if kind == "percent":
        bp = parse_decimal(
            value,
            2,
            "value",
            "percent: a number like 10 or 12.5",
            "процент: число, например 10 или 12,5",
        )
        if not 1 <= bp <= 10_000:
            raise _bad("value", "percent must be 0.01 to 100", "процент — от 0,01 до 100")
        amount = bp
    elif kind == "fixed":
        amount = parse_decimal(
            value,
            2,
            "value",
            "amount: rubles like 500 or 499.90",
            "сумма: рубли, например 500 или 499,90",
        )
        if not 1 <= amount <= 100_000_000:
            raise _bad(
                "value", "amount must be 0.01 to 1 000 000 rubles", "сумма — от 0,01 до 1 000 000 ₽"
            )
    else:
        if not value.strip().isdigit():
            raise _bad("value", "points: a whole number", "бонусы: целое число")
        amount = int(value.strip())
        if not 1 <= amount <= 1_000_000:
            raise _bad("value", "points must be 1 to 1 000 000", "бонусов — от 1 до 1 000 000")
    first = _day(valid_from, "valid_from", today)
    last = _day(valid_until, "valid_until", first)
    if last < first:
        raise _bad(
            "valid_until",
            "the last day of validity is before the first",
            "последний день действия раньше первого",
        )
    if last < today:
        raise _bad(
            "valid_until",
            "the coupon would have expired already",
            "срок действия купона уже закончился",
        )
    if (last - first).days > MAX_DAYS:
        raise _bad(
            "valid_until",
            "a coupon may be valid for at most 10 years",
            "купон может действовать не дольше 10 лет",
        )
    min_kop = 0
    if min_cheque.strip():
        min_kop = parse_decimal(
            min_cheque,
            2,
            "min_cheque",
            "minimum cheque: rubles like 1000 or 999.90",
            "минимальная сумма чека: рубли, например 1000 или 999,90",
        )
    start = datetime.combine(first, time(0), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(0), tz).astimezone(UTC)
    return Terms(kind, amount, start, end, min_kop)


def _day(text: str, field: str, default: date) -> date:
    if not text.strip():
        return default
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise _bad(
            field,
            f"{text!r} is not a date (YYYY-MM-DD)",
            f"«{text}» — не дата (ГГГГ-ММ-ДД)",
        ) from None


def member_codes_of(text: str) -> list[str]:
    """Member codes one a line (or separated by commas or spaces), checked, in order,
    repeats dropped."""
    out: list[str] = []
    for raw in text.replace(",", " ").split():
        try:
            code = check_member_code(raw)
        except AgentError:
            raise _bad(
                "members",
                f"{raw!r} is not a member code",
                f"«{raw}» — не код участника",
                typed=raw[:40],
            ) from None
        if code not in out:
            out.append(code)
    if not out:
        raise _bad("members", "give at least one member code", "укажите хотя бы один код участника")
    if len(out) > MAX_MEMBERS:
        raise _bad(
            "members",
            f"at most {MAX_MEMBERS} members at once",
            f"не больше {MAX_MEMBERS} участников за раз",
        )
    return out


# ---------------------------------------------------------------------- issuing


def _signer(tx: Tx) -> TokenSigner:
    """The back office's signing key (key id 1, as every token it signs)."""
    row = tx.one("SELECT value FROM settings WHERE key = 'token_private_key'")
    assert row is not None, "the back office is initialised with its keys"
    return TokenSigner(1, load_ed25519_private_key(str(row[0])))


def issue(
    ctx: Context,
    mode: str,
    terms: Terms,
    *,
    count: int = 1,
    member_codes: list[str] | None = None,
    note: str = "",
    actor: str,
) -> Batch:
    """Sign and register the coupons of one issue in one transaction with its audit row:
    ``single`` one coupon, ``members`` one personal coupon per code (each must be a
    member of the programme, not merged away), ``batch`` ``count`` codes (1..MAX_BATCH)."""
    if mode not in MODES:
        raise _bad(
            "mode", "choose single, per member or batch", "выберите: один, участникам или партия"
        )
    note = note.strip()
    if len(note) > 120 or not note.isprintable():
        raise _bad(
            "note",
            "the note: at most 120 printable characters",
            "примечание — не больше 120 печатаемых символов",
        )
    codes: list[str | None]
    if mode == "single":
        codes = [None]
    elif mode == "batch":
        if isinstance(count, bool) or not 1 <= count <= MAX_BATCH:
            raise _bad(
                "count",
                f"a batch has 1 to {MAX_BATCH} codes",
                f"в партии от 1 до {MAX_BATCH} кодов",
            )
        codes = [None] * count
    else:
        codes = list(member_codes or [])
        if not codes:
            raise _bad(
                "members", "give at least one member code", "укажите хотя бы один код участника"
            )
    now = ctx.clock.now()
    batch_id = secrets.token_hex(8)
    with ctx.db.transaction() as tx:
        if mode == "members":
            _check_members(tx, [c for c in codes if c is not None])
        signer = _signer(tx)
        rows = []
        for n, code in enumerate(codes, 1):
            coupon = Coupon(
                secrets.token_hex(16),
                terms.kind,
                terms.value,
                terms.valid_from,
                terms.valid_until,
                terms.min_cheque_kop,
                code,
            )
            rows.append((coupon.coupon_id, batch_id, n, issue_coupon(signer, coupon), code))
        tx.execute(
            "INSERT INTO coupon_batches(batch_id, mode, note, kind, value, valid_from, "
            "valid_until, min_cheque_kop, count, issued_at, issued_by) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                batch_id,
                mode,
                note,
                terms.kind,
                terms.value,
                terms.valid_from.isoformat(),
                terms.valid_until.isoformat(),
                terms.min_cheque_kop,
                len(rows),
                now.isoformat(),
                actor,
            ),
        )
        tx.executemany(
            "INSERT INTO coupons(coupon_id, batch_id, n, token, member_code) VALUES (?,?,?,?,?)",
            rows,
        )
        audit.record(
            tx,
            now,
            actor,
            "coupons_issued",
            batch_id,
            {
                "mode": mode,
                "count": len(rows),
                "kind": terms.kind,
                "value": terms.value,
                "valid_from": terms.valid_from.isoformat(),
                "valid_until": terms.valid_until.isoformat(),
                "min_cheque_kop": terms.min_cheque_kop,
            },
        )
    return Batch(batch_id, mode, note, terms, now, actor, len(rows))


def _check_members(tx: Tx, codes: list[str]) -> None:
    found: set[str] = set()
    for i in range(0, len(codes), 400):
        part = codes[i : i + 400]
        marks = ",".join("?" * len(part))
        found |= {
            str(r[0])
            for r in tx.all(
                f"SELECT code FROM members WHERE code IN ({marks}) AND merged_into IS NULL",
                part,
            )
        }
    missing = [c for c in codes if c not in found]
    if missing:
        raise _bad(
            "members",
            f"no member with code {missing[0]}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""),
            f"нет участника с кодом {missing[0]}"
            + (f" (и ещё {len(missing) - 1})" if len(missing) > 1 else ""),
            missing=missing[:20],
        )


# ---------------------------------------------------------------------- the register

_BATCH_COLS = (
    "b.batch_id, b.mode, b.note, b.kind, b.value, b.valid_from, b.valid_until, "
    "b.min_cheque_kop, b.issued_at, b.issued_by, b.count"
)


def _zone(ctx: Context) -> str:
    rules = ctx.programmes.get()
    return rules.timezone if rules is not None else "UTC"


def _batch(row: tuple[object, ...], revoked: int = 0, redeemed: int = 0, tz: str = "UTC") -> Batch:
    terms = Terms(
        str(row[3]),  # type: ignore[arg-type]
        int(str(row[4])),
        datetime.fromisoformat(str(row[5])),
        datetime.fromisoformat(str(row[6])),
        int(str(row[7])),
    )
    return Batch(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        terms,
        datetime.fromisoformat(str(row[8])),
        str(row[9]),
        int(str(row[10])),
        revoked,
        redeemed,
        tz,
    )


def batches(ctx: Context, limit: int = 100) -> list[Batch]:
    """The newest ``limit`` issues with their counts of revoked and redeemed coupons."""
    with ctx.db.reading() as tx:
        rows = tx.all(
            f"SELECT {_BATCH_COLS}, "
            "(SELECT count(*) FROM coupons c WHERE c.batch_id = b.batch_id "
            " AND c.revoked_at IS NOT NULL), "
            "(SELECT count(*) FROM coupon_redemptions r JOIN coupons c "
            " ON c.coupon_id = r.coupon_id WHERE c.batch_id = b.batch_id) "
            "FROM coupon_batches b ORDER BY b.issued_at DESC, b.batch_id LIMIT ?",
            (limit,),
        )
    tz = _zone(ctx)
    return [_batch(r, int(r[11]), int(r[12]), tz) for r in rows]


def batch(ctx: Context, batch_id: str) -> tuple[Batch, list[Issued], list[Redemption]] | None:
    """One issue, its coupons in order and its redemptions (newest first); None when
    there is no such issue."""
    with ctx.db.reading() as tx:
        row = tx.one(
            f"SELECT {_BATCH_COLS} FROM coupon_batches b WHERE b.batch_id = ?", (batch_id,)
        )
        if row is None:
            return None
        items = tx.all(
            "SELECT n, coupon_id, token, member_code, revoked_at, revoked_by, revoke_reason "
            "FROM coupons WHERE batch_id = ? ORDER BY n",
            (batch_id,),
        )
        used = tx.all(
            "SELECT r.coupon_id, r.receipt_id, r.store_id, r.terminal_id, r.member_id, "
            "r.occurred_at, r.discount_kop, r.points, c.revoked_at FROM coupon_redemptions r "
            "JOIN coupons c ON c.coupon_id = r.coupon_id WHERE c.batch_id = ? "
            "ORDER BY r.occurred_at DESC",
            (batch_id,),
        )
    coupons = [
        Issued(
            int(n),
            str(cid),
            str(token),
            code,
            None if at is None else datetime.fromisoformat(at),
            by,
            reason,
        )
        for n, cid, token, code, at, by, reason in items
    ]
    redemptions = [
        Redemption(
            str(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            str(r[4]),
            datetime.fromisoformat(r[5]),
            int(r[6]),
            int(r[7]),
            r[8] is not None and datetime.fromisoformat(r[5]) >= datetime.fromisoformat(r[8]),
        )
        for r in used
    ]
    redeemed = len({r.coupon_id for r in redemptions})
    b = _batch(row, sum(1 for c in coupons if c.revoked_at), redeemed, _zone(ctx))
    return b, coupons, redemptions


def revoke(ctx: Context, batch_id: str, coupon_id: str | None, reason: str, *, actor: str) -> int:
    """Revoke one coupon of ``batch_id`` (or, ``coupon_id`` None, every coupon of it not
    revoked yet) with ``reason``, announced to tills in the change feed in the same
    transaction, with its audit row. Returns how many were revoked (0: all already were)."""
    reason = reason.strip()
    if not reason or len(reason) > 200 or not reason.isprintable():
        raise _bad(
            "reason",
            "give the reason for revoking (up to 200 characters)",
            "укажите причину отзыва (до 200 символов)",
        )
    now = ctx.clock.now()
    with ctx.db.transaction(feed=True) as tx:
        if tx.one("SELECT 1 FROM coupon_batches WHERE batch_id = ?", (batch_id,)) is None:
            raise _bad("batch", "no such issue of coupons", "такого выпуска купонов нет")
        sql = "SELECT coupon_id FROM coupons WHERE batch_id = ? AND revoked_at IS NULL"
        params: tuple[str, ...] = (batch_id,)
        if coupon_id is not None:
            if (
                tx.one(
                    "SELECT 1 FROM coupons WHERE batch_id = ? AND coupon_id = ?",
                    (batch_id, coupon_id),
                )
                is None
            ):
                raise _bad(
                    "coupon", "no such coupon in this issue", "в этом выпуске нет такого купона"
                )
            sql += " AND coupon_id = ?"
            params = (batch_id, coupon_id)
        ids = sorted(str(r[0]) for r in tx.all(sql, params))
        if not ids:
            return 0
        stamp = now.isoformat()
        for i in range(0, len(ids), REVOKE_CHUNK):
            part = ids[i : i + REVOKE_CHUNK]
            marks = ",".join("?" * len(part))
            tx.execute(
                f"UPDATE coupons SET revoked_at = ?, revoked_by = ?, revoke_reason = ? "
                f"WHERE coupon_id IN ({marks})",
                (stamp, actor, reason, *part),
            )
            tx.execute(
                "INSERT INTO changes(kind, member_id, body, created_at) "
                "VALUES ('coupon_revoked', NULL, ?, ?)",
                (json.dumps({"coupon_ids": part, "revoked_at": stamp}), stamp),
            )
        audit.record(
            tx,
            now,
            actor,
            "coupon_revoked",
            batch_id if coupon_id is None else coupon_id,
            {"batch_id": batch_id, "count": len(ids), "reason": reason},
        )
    return len(ids)


def revoked_in_force(ctx: Context, tx: Tx | None = None) -> list[str]:
    """The revoked coupons whose validity has not ended (ids): what a till loading a
    snapshot must refuse. An expired coupon is refused by its own date."""
    now = ctx.clock.now().isoformat()
    sql = (
        "SELECT c.coupon_id FROM coupons c JOIN coupon_batches b ON b.batch_id = c.batch_id "
        "WHERE c.revoked_at IS NOT NULL AND b.valid_until > ? ORDER BY c.coupon_id"
    )
    if tx is not None:
        return [str(r[0]) for r in tx.all(sql, (now,))]
    with ctx.db.reading() as t:
        return [str(r[0]) for r in t.all(sql, (now,))]


def issue_form(
    ctx: Context,
    mode: str,
    kind: str,
    value: str,
    valid_from: str,
    valid_until: str,
    min_cheque: str,
    *,
    count: str = "",
    members: str = "",
    note: str = "",
    actor: str,
) -> Batch:
    """``issue`` from the console's form as typed (dates in the active programme's time
    zone); every field is read before anything is signed, so a bad one issues nothing."""
    rules = ctx.programmes.get()
    assert rules is not None, "the back office is initialised with a programme"
    today = ctx.clock.now().astimezone(rules.tz).date()
    terms = read_terms(kind, value, valid_from, valid_until, min_cheque, rules.tz, today)
    n = 1
    codes: list[str] | None = None
    if mode == "batch":
        if not count.strip().isdigit():
            raise _bad("count", "how many codes: a whole number", "сколько кодов: целое число")
        n = int(count.strip())
    elif mode == "members":
        codes = member_codes_of(members)
    return issue(ctx, mode, terms, count=n, member_codes=codes, note=note, actor=actor)

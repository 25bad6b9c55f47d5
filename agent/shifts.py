"""Cashiers, PIN sign-in, shifts and the shift's X-report (the loyalty side of a shift).

Why here and not in the UI: the PIN check, the one-open-shift-per-till rule and the
report's figures are business rules the POS API and the CLI need too; the Textual app
only calls these functions from a worker.

- A PIN is 4-8 digits, stored as PBKDF2-SHA256 (salted, ``PIN_ITERATIONS`` rounds), never
  in clear. A wrong PIN is a ``PinError``; after ``MAX_PIN_FAILURES`` wrong PINs in a row
  the cashier is locked until a supervisor resets the PIN (``set_pin``): that attempt and
  every one after it, the right PIN too, is a ``PinLockedError`` saying so and how to
  unlock, and the sign-in list marks the cashier (``Cashier.locked``).
- One till has at most one open shift. Opening while another cashier's shift is open is a
  ``ConflictError`` naming that cashier; the same cashier signing in again resumes it.
- The X-report counts what the journal holds for this terminal between the shift's
  opening and its closing (or now): shifts on one till never overlap, so the time window
  is the shift. Members identified by scan vs phone, registrations, points earned, spent,
  reversed and returned by refunds, offline cheques.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from datetime import UTC, datetime

from agent import codec
from agent.errors import ConflictError, InputError, NotFoundError
from agent.money import format_points, format_rub
from agent.results import Cashier, Shift, XReport
from agent.slip import Slip, SlipLine
from agent.store import Store

__all__ = [
    "MAX_PIN_FAILURES",
    "PIN_ITERATIONS",
    "PinError",
    "PinLockedError",
    "add_cashier",
    "cashiers",
    "close_shift",
    "current_shift",
    "get_shift",
    "open_shift",
    "queue_report",
    "report_slip",
    "set_pin",
    "utc_text",
    "verify_pin",
    "x_report",
]


PIN_ITERATIONS = 60_000
"""PBKDF2 rounds: ~30 ms per check on a till CPU; a 4-digit PIN is guarded by the lockout."""

MAX_PIN_FAILURES = 5


class PinError(InputError):
    code = "wrong_pin"
    title_ru = "Неверный PIN"
    title_en = "Wrong PIN"


class PinLockedError(PinError):
    """The cashier is locked (too many wrong PINs): no PIN opens a shift until
    ``set_pin``; ``details``: ``locked=True``, ``tries_left=0``, ``cashier_id``."""

    code = "pin_locked"
    title_ru = "PIN заблокирован"
    title_en = "PIN locked"


def _locked_error(cashier_id: str, failures: int) -> PinLockedError:
    return PinLockedError(
        f"{failures} wrong PINs in a row; the administrator unlocks it: "
        f"kassa cashier set-pin --id {cashier_id}",
        f"{failures} неверных PIN подряд; разблокирует администратор: "
        f"kassa cashier set-pin --id {cashier_id}",
        cashier_id=cashier_id,
        locked=True,
        tries_left=0,
    )


def _hash_pin(pin: str, salt: bytes) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode("ascii"), salt, PIN_ITERATIONS)
    return f"pbkdf2_sha256${PIN_ITERATIONS}${salt.hex()}${digest.hex()}"


def _check_pin_format(pin: str) -> None:
    if not (pin.isascii() and pin.isdigit() and 4 <= len(pin) <= 8):
        raise InputError(
            "PIN must be 4 to 8 digits",
            "PIN — от 4 до 8 цифр",
            field="pin",
        )


def add_cashier(store: Store, cashier_id: str, name: str, pin: str, role: str = "cashier") -> None:
    """Create a cashier (or refuse a duplicate id). ``role``: cashier | supervisor."""
    cid = cashier_id.strip()
    if not cid or len(cid) > 40 or not cid.isprintable():
        raise InputError(
            "cashier id must be 1-40 printable characters", "неверный код кассира", field="id"
        )
    clean = name.strip()
    if not clean or len(clean) > 60 or not clean.isprintable():
        raise InputError(
            "cashier name must be 1-60 printable characters",
            "имя кассира — от 1 до 60 символов",
            field="name",
        )
    if role not in ("cashier", "supervisor"):
        raise InputError(
            f"unknown role {role!r}: cashier or supervisor",
            f"неизвестная роль {role!r}",
            field="role",
        )
    _check_pin_format(pin)
    with store.write() as conn:
        if conn.execute("SELECT 1 FROM cashiers WHERE cashier_id = ?", (cid,)).fetchone():
            raise ConflictError(
                f"cashier {cid} already exists", f"кассир {cid} уже есть", cashier_id=cid
            )
        conn.execute(
            "INSERT INTO cashiers(cashier_id, name, pin_hash, role) VALUES (?,?,?,?)",
            (cid, clean, _hash_pin(pin, secrets.token_bytes(16)), role),
        )


def set_pin(store: Store, cashier_id: str, pin: str) -> None:
    """Set a new PIN and clear the failure count (a supervisor unlocking a cashier)."""
    _check_pin_format(pin)
    with store.write() as conn:
        cur = conn.execute(
            "UPDATE cashiers SET pin_hash = ? WHERE cashier_id = ?",
            (_hash_pin(pin, secrets.token_bytes(16)), cashier_id),
        )
        if cur.rowcount == 0:
            raise NotFoundError(
                f"no cashier {cashier_id}", "такого кассира нет", cashier_id=cashier_id
            )
        Store.set_meta(conn, f"pin_failures:{cashier_id}", "0")


def cashiers(store: Store) -> list[Cashier]:
    """Active cashiers, by name (the sign-in list), each with its PIN lock."""
    with store.read() as conn:
        rows = conn.execute(
            "SELECT c.cashier_id, c.name, c.role, c.active, "
            "COALESCE(CAST(m.value AS INTEGER), 0) FROM cashiers c "
            "LEFT JOIN meta m ON m.key = 'pin_failures:' || c.cashier_id "
            "WHERE c.active = 1 ORDER BY c.name"
        ).fetchall()
    return [
        Cashier(r[0], r[1], r[2], bool(r[3]), locked=int(r[4]) >= MAX_PIN_FAILURES) for r in rows
    ]


def verify_pin(store: Store, cashier_id: str, pin: str) -> Cashier:
    """Check a cashier's PIN; counts failures and locks after ``MAX_PIN_FAILURES``."""
    row = store.one(
        "SELECT cashier_id, name, role, active, pin_hash FROM cashiers WHERE cashier_id = ?",
        (cashier_id,),
    )
    if row is None or not row[3]:
        raise NotFoundError(f"no cashier {cashier_id}", "такого кассира нет", cashier_id=cashier_id)
    failures = int(store.meta(f"pin_failures:{cashier_id}") or 0)
    if failures >= MAX_PIN_FAILURES:
        raise _locked_error(cashier_id, failures)
    scheme, iterations, salt, digest = str(row[4]).split("$")
    ok = scheme == "pbkdf2_sha256" and hmac.compare_digest(
        hashlib.pbkdf2_hmac("sha256", pin.encode("utf-8"), bytes.fromhex(salt), int(iterations)),
        bytes.fromhex(digest),
    )
    with store.write() as conn:
        Store.set_meta(conn, f"pin_failures:{cashier_id}", "0" if ok else str(failures + 1))
    if not ok:
        left = MAX_PIN_FAILURES - failures - 1
        if left <= 0:
            raise _locked_error(cashier_id, failures + 1)
        raise PinError(
            f"cashier {cashier_id}: {left} tries left",  # the title says "wrong PIN"
            f"осталось попыток: {left}",
            cashier_id=cashier_id,
            tries_left=left,
        )
    return Cashier(row[0], row[1], row[2], bool(row[3]))


_SHIFT_SQL = (
    "SELECT s.shift_id, s.cashier_id, c.name, s.terminal_id, s.opened_at, s.closed_at, "
    "(SELECT count(*) FROM shifts p WHERE p.terminal_id = s.terminal_id "
    "AND p.opened_at <= s.opened_at) "
    "FROM shifts s JOIN cashiers c ON c.cashier_id = s.cashier_id"
)


def _shift(row: tuple[object, ...]) -> Shift:
    return Shift(
        str(row[0]),
        str(row[1]),
        str(row[2]),
        str(row[3]),
        datetime.fromisoformat(str(row[4])),
        datetime.fromisoformat(str(row[5])) if row[5] else None,
        int(str(row[6])) if len(row) > 6 else 0,
    )


def current_shift(store: Store) -> Shift | None:
    """The open shift of this till, if any."""
    terminal = store.meta("terminal_id") or ""
    row = store.one(f"{_SHIFT_SQL} WHERE s.terminal_id = ? AND s.closed_at IS NULL", (terminal,))
    return None if row is None else _shift(row)


def get_shift(store: Store, shift_id: str) -> Shift:
    row = store.one(f"{_SHIFT_SQL} WHERE s.shift_id = ?", (shift_id,))
    if row is None:
        raise NotFoundError(f"no shift {shift_id}", "такой смены нет", shift_id=shift_id)
    return _shift(row)


def open_shift(store: Store, cashier_id: str, now: datetime) -> Shift:
    """Open a shift for a signed-in cashier, or resume the cashier's own open shift."""
    terminal = store.meta("terminal_id") or ""
    with store.write() as conn:
        row = conn.execute(
            f"{_SHIFT_SQL} WHERE s.terminal_id = ? AND s.closed_at IS NULL", (terminal,)
        ).fetchone()
        if row is not None:
            if row[1] == cashier_id:
                return _shift(row)
            raise ConflictError(
                f"shift of {row[2]} is still open on this till; close it first",
                f"На кассе открыта смена кассира {row[2]} — сначала закройте её",
                shift_id=row[0],
                cashier_id=row[1],
            )
        shift_id = uuid.uuid4().hex
        conn.execute(
            "INSERT INTO shifts(shift_id, cashier_id, terminal_id, opened_at) VALUES (?,?,?,?)",
            (shift_id, cashier_id, terminal, now.isoformat()),
        )
    return get_shift(store, shift_id)


def close_shift(store: Store, shift_id: str, now: datetime) -> XReport:
    """Close an open shift; returns its final report (a Z-style X-report)."""
    with store.write() as conn:
        cur = conn.execute(
            "UPDATE shifts SET closed_at = ? WHERE shift_id = ? AND closed_at IS NULL",
            (now.isoformat(), shift_id),
        )
        if cur.rowcount == 0:
            raise ConflictError(
                f"shift {shift_id} is not open", "смена уже закрыта", shift_id=shift_id
            )
    return x_report(store, shift_id, now)


def x_report(store: Store, shift_id: str, now: datetime) -> XReport:
    """Aggregate the journal of this terminal over the shift's window (see module doc)."""
    shift = get_shift(store, shift_id)
    end = shift.closed_at or now
    with store.read() as conn:
        rows = conn.execute(
            "SELECT type, payload FROM outbox WHERE terminal_id = ? "
            "AND created_at >= ? AND created_at <= ? ORDER BY seq",
            (shift.terminal_id, shift.opened_at.isoformat(), end.isoformat()),
        ).fetchall()
    figures = dict.fromkeys(
        [
            "cheques",
            "by_scan",
            "by_phone",
            "offline_cheques",
            "sales_kop",
            "discount_kop",
            "points_earned",
            "points_spent",
            "registrations",
            "refunds",
            "refund_kop",
            "points_reversed",
            "points_returned",
            "coupons",
            "coupon_kop",
        ],
        0,
    )
    for kind, payload in rows:
        data = json.loads(payload)
        if kind == "purchase":
            quote = data["quote"]
            figures["cheques"] += 1
            how = str(data.get("identified_by") or "")
            if how.startswith("scan"):
                figures["by_scan"] += 1
            elif how == "phone":
                figures["by_phone"] += 1
            figures["offline_cheques"] += int(bool(data.get("offline")))
            figures["sales_kop"] += int(quote["total_kop"])
            figures["discount_kop"] += sum(
                int(ln["coupon_discount_kop"]) + int(ln["points_discount_kop"])
                for ln in quote["lines"]
            )
            figures["points_earned"] += int(quote["earn_points"]) + sum(
                int(b["points"]) for b in quote["bonuses"]
            )
            figures["points_spent"] += int(quote["redeem_points"])
            coupon_kop = sum(int(ln["coupon_discount_kop"]) for ln in quote["lines"])
            if quote.get("coupon_id") or coupon_kop:
                figures["coupons"] += 1
                figures["coupon_kop"] += coupon_kop
        elif kind == "refund":
            result = data["result"]
            figures["refunds"] += 1
            figures["refund_kop"] += int(result["amount_kop"])
            figures["points_reversed"] += int(result["earn_reversed"]) + int(
                result["bonus_reversed"]
            )
            figures["points_returned"] += int(result["points_returned"])
        elif kind == "member_registered":
            figures["registrations"] += 1
    return XReport(shift=shift, generated_at=now, **figures)


def report_slip(report: XReport, store_name: str, *, training: bool = False) -> Slip:
    """The shift report as a slip for the receipt printer: the X report ("без гашения")
    while the shift is open, the Z report (closing) once it is closed. The layout is the
    renderer's (``drivers.render``: header rows, then sections under their headings)."""
    s = report.shift
    closed = s.closed_at is not None
    header = (
        SlipLine("Касса", s.terminal_id),
        SlipLine("Кассир", s.cashier_name),
        SlipLine("Смена №", str(s.number) if s.number else s.shift_id[:8]),
        SlipLine("Открыта", s.opened_at.strftime("%d.%m.%Y %H:%M")),
        SlipLine(
            "Закрыта" if closed else "Отчёт на",
            (s.closed_at or report.generated_at).strftime("%d.%m.%Y %H:%M"),
        ),
    )
    lines = (
        SlipLine("Продажи", "", "heading"),
        SlipLine("Чеков с картой", str(report.cheques)),
        SlipLine("  по скану", str(report.by_scan)),
        SlipLine("  по телефону", str(report.by_phone)),
        SlipLine("  без связи", str(report.offline_cheques)),
        SlipLine("Сумма чеков", format_rub(report.sales_kop), "total"),
        SlipLine("Скидки", format_rub(report.discount_kop)),
        SlipLine("Возвраты", "", "heading"),
        SlipLine("Возвратов", str(report.refunds)),
        SlipLine("Сумма возвратов", format_rub(report.refund_kop), "total"),
        SlipLine("Бонусы", "", "heading"),
        SlipLine("Начислено", format_points(report.points_earned)),
        SlipLine("Списано", format_points(report.points_spent)),
        SlipLine("Отменено начислений", format_points(report.points_reversed)),
        SlipLine("Возвращено бонусов", format_points(report.points_returned)),
        SlipLine("Купоны", "", "heading"),
        SlipLine("Чеков с купоном", str(report.coupons)),
        SlipLine("Скидка по купонам", format_rub(report.coupon_kop)),
        SlipLine("Участники", "", "heading"),
        SlipLine("Регистраций", str(report.registrations)),
    )
    return Slip(
        kind="z_report" if closed else "x_report",
        store_name=store_name,
        terminal_id=s.terminal_id,
        receipt_id=("Z-" if closed else "X-") + s.shift_id[:8],
        printed_at=report.generated_at,
        member="",
        tier="",
        lines=lines,
        header=header,
        training=training,
    )


def utc_text(moment: datetime) -> str:
    """``moment`` as ISO 8601 in UTC (``+00:00``), as the store's timestamps are kept."""
    return moment.astimezone(UTC).isoformat()


def queue_report(store: Store, report: XReport, store_name: str, *, training: bool = False) -> int:
    """Queue the shift's report on the receipt printer (X while open, Z once closed);
    returns the print job id."""
    slip = report_slip(report, store_name, training=training)
    with store.write() as conn:
        cur = conn.execute(
            "INSERT INTO print_jobs(receipt_id, kind, created_at, slip) VALUES (?,?,?,?)",
            # created_at is UTC like every other row; the slip keeps the local time printed
            (slip.receipt_id, slip.kind, utc_text(report.generated_at), codec.dumps(slip)),
        )
        return int(cur.lastrowid or 0)

"""The loyalty slip as data, and its plain-text preview.

The slip is built from a committed sale or refund and stored with its print job, so a
reprint shows exactly what was printed the first time (marked «КОПИЯ»). The ESC/POS
renderer in ``drivers`` turns the same ``Slip`` into printer bytes; ``slip_text`` is the
preview used by the demo, the CLI and the cashier screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from agent.money import format_points, format_rub


@dataclass(frozen=True, slots=True)
class SlipLine:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Slip:
    """What the member sees on paper. Amounts already formatted for the cashier's language."""

    kind: str  # "sale" | "refund" | "registration"
    store_name: str
    terminal_id: str
    receipt_id: str
    printed_at: datetime
    member: str  # masked phone or member code
    tier: str
    lines: tuple[SlipLine, ...]
    qr_payload: str | None = None
    provisional: bool = False
    copy: bool = False
    training: bool = False
    promo: str | None = None  # one campaign or coupon message, printed boxed under the body


def _dm(day: date) -> str:
    """``DD.MM`` (what ``strftime("%d.%m")`` gives, at a fifth of its cost: a sale slip
    formats up to two dates inside the commit)."""
    return f"{day.day:02d}.{day.month:02d}"


def sale_lines(
    *,
    balance_before: int,
    balance_after: int,
    earned: int,
    pending_until: date | None,
    spent: int,
    discount_kop: int,
    expiring: int,
    expiring_on: date | None,
    to_next_tier_kop: int | None,
    next_tier: str | None,
    collections: list[tuple[str, int, int]],
    notes: list[str],
    coupon_discount_kop: int = 0,
) -> tuple[SlipLine, ...]:
    """The body of a sale slip, in the order members read it (the coupon's discount in
    roubles first, then the points spent and their discount)."""
    out = [SlipLine("Баланс до", format_points(balance_before))]
    if coupon_discount_kop:
        out.append(SlipLine("Скидка по купону", format_rub(coupon_discount_kop)))
    if spent:
        out.append(SlipLine("Списано", format_points(-spent)))
        out.append(SlipLine("Скидка бонусами", format_rub(discount_kop)))
    if earned:
        out.append(SlipLine("Начислено", format_points(earned, sign=True)))
        if pending_until:
            out.append(SlipLine("", f"доступны с {_dm(pending_until)}"))
    out.append(SlipLine("Баланс после", format_points(balance_after)))
    if expiring and expiring_on:
        out.append(SlipLine("", f"{format_points(expiring)} сгорят {_dm(expiring_on)}"))
    if next_tier and to_next_tier_kop is not None:
        out.append(SlipLine("", f"до «{next_tier}» осталось {format_rub(to_next_tier_kop)}"))
    for name, got, target in collections:
        out.append(SlipLine(name, f"собрано {got} из {target}"))
    out.extend(SlipLine("", note) for note in notes)
    return tuple(out)


def slip_text(slip: Slip, width: int = 42) -> str:
    """A fixed-width plain-text rendering (the preview printer)."""

    def row(label: str, value: str) -> str:
        if not label:
            return value.rjust(width) if len(value) <= width else value
        gap = width - len(label) - len(value)
        return f"{label}{' ' * gap}{value}" if gap >= 1 else f"{label}\n{value.rjust(width)}"

    out = []
    if slip.training:
        out.append("*** УЧЕБНЫЙ РЕЖИМ ***".center(width))
    if slip.copy:
        out.append("КОПИЯ".center(width))
    out.append(slip.store_name.center(width))
    out.append("Программа лояльности".center(width))
    out.append("-" * width)
    out.append(row("Чек", slip.receipt_id))
    out.append(row("Дата", slip.printed_at.strftime("%d.%m.%Y %H:%M")))
    out.append(row("Участник", slip.member))
    out.append(row("Уровень", slip.tier))
    out.append("-" * width)
    out.extend(row(line.label, line.value) for line in slip.lines)
    if slip.provisional:
        out.append("-" * width)
        out.append("ПРЕДВАРИТЕЛЬНО".center(width))
        out.append("баланс уточнится после связи".center(width))
    if slip.promo:
        out.append("-" * width)
        out.append(slip.promo.center(width))
    if slip.qr_payload:
        out.append("-" * width)
        out.append(f"[QR] {slip.qr_payload}")
    out.append("=" * width)
    return "\n".join(out).replace("\u00a0", " ")

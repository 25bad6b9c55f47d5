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

SLIP_WIDTHS = (32, 42, 48)
"""Characters a line of a slip rendered as text (``slip_text``): the common roll widths."""


@dataclass(frozen=True, slots=True)
class SlipLine:
    """One label/value row. ``style``: "" (plain), "heading" (a section title of a shift
    report: the label alone, bold) or "total" (bold)."""

    label: str
    value: str
    style: str = ""


@dataclass(frozen=True, slots=True)
class Slip:
    """What the member sees on paper. Amounts already formatted for the cashier's language."""

    kind: str  # "sale" | "refund" | "registration" | "x_report" | "z_report"
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
    header: tuple[SlipLine, ...] = ()
    """Shift reports: the rows under the title (till, cashier, shift number, times)."""


REPORT_TITLES = {
    "x_report": "Сменный отчёт без гашения",
    "z_report": "Отчёт о закрытии смены",
}
"""Shift report kinds and their printed titles (the X report and the closing Z report)."""

KIND_TITLES = {
    "sale": "БОНУСЫ ЗА ПОКУПКУ",
    "refund": "ВОЗВРАТ",
    "registration": "ДОБРО ПОЖАЛОВАТЬ!",
}
"""The line under the programme's name on a cheque slip, by kind."""


def qr_caption(payload: str) -> str:
    """What is printed above a slip's QR: an app link is for the member's phone camera,
    a member code is for the till's scanner."""
    if payload.startswith(("http://", "https://")):
        return "Приложение: наведите камеру"
    return "Покажите этот код на кассе"


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
    """A fixed-width plain-text rendering for consoles without the printer profile (the
    demo's console, ``kassa print-job``, the POS API). The cashier screen shows the
    printer's own lines instead (``drivers.preview``), QR drawn; here the QR is its
    payload."""

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
    if slip.kind in REPORT_TITLES:
        out.append(REPORT_TITLES[slip.kind].center(width))
        out.append("Программа лояльности".center(width))
        out.append("-" * width)
        out.extend(row(line.label, line.value) for line in slip.header)
        for line in slip.lines:
            if line.style == "heading":
                out.append("-" * width)
                out.append(line.label)
            else:
                out.append(row(line.label, line.value))
        out.append("=" * width)
        if slip.kind == "z_report":
            out.append("СМЕНА ЗАКРЫТА".center(width))
        return "\n".join(out).replace("\u00a0", " ")
    out.append("Программа лояльности".center(width))
    if title := KIND_TITLES.get(slip.kind):
        out.append(title.center(width))
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
        out.append(qr_caption(slip.qr_payload).center(width))
        out.append(f"[QR] {slip.qr_payload}")
    out.append("=" * width)
    return "\n".join(out).replace("\u00a0", " ")

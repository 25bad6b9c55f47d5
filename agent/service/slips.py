"""Slips: the sale's and the refund's slip as queued with the operation, and the print
jobs read back, as text for a POS that prints itself, or queued again as a copy."""

from __future__ import annotations

from datetime import datetime

from agent import codec, engine, printq
from agent.errors import InputError, NotFoundError
from agent.model import Quote
from agent.money import format_points, format_rub
from agent.results import RefundResult, Reprint, SlipView
from agent.service.context import Context, MemberColumns
from agent.slip import SLIP_WIDTHS, Slip, SlipLine, sale_lines, slip_text


def sale_slip(
    ctx: Context, q: Quote, member: MemberColumns, now: datetime, *, provisional: bool
) -> Slip:
    """The sale's slip: points before and after, earned, spent, what expires, the next
    tier, collections; offline (``provisional``) for a member the back office has not
    seen, the programme's note on spending before the sync."""
    rules = ctx.programme()
    bonus_notes = [f"{b.note_ru}: +{b.points}" for b in q.bonuses]
    if q.tier_after != q.tier_before:
        bonus_notes.append(f"Новый уровень: «{q.tier_after.name_ru}»")
    if provisional and member.provisional:
        bonus_notes.extend(engine.UNCONFIRMED_SLIP_NOTES[rules.welcome_spend_before_sync])
    return Slip(
        kind="sale",
        store_name=ctx.store_name,
        terminal_id=ctx.terminal_id,
        receipt_id=q.receipt_id,
        printed_at=now.astimezone(rules.tz),
        member=member.phone_masked or member.code,
        tier=q.tier_after.name_ru,
        lines=sale_lines(
            balance_before=q.balance_before,
            balance_after=q.balance_after,
            earned=q.total_earned,
            pending_until=engine.local_date(rules, q.earn_available_from)
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
        qr_payload=member.code,
        provisional=provisional,
    )


def refund_lines(result: RefundResult) -> tuple[SlipLine, ...]:
    """The refund slip's lines: the amount, the accrual reversed, the points returned,
    the balance and any debt."""
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


def print_job(ctx: Context, job_id: int) -> Slip:
    row = ctx.store.one("SELECT slip FROM print_jobs WHERE job_id = ?", (job_id,))
    if row is None:
        raise NotFoundError(f"no print job {job_id}", f"слипа №{job_id} нет")
    return codec.loads(Slip, row[0])


def slip(ctx: Context, job_id: int, width: int = 42) -> SlipView:
    """Print job ``job_id`` as text ``width`` characters wide (``SLIP_WIDTHS``)."""
    if width not in SLIP_WIDTHS:
        raise InputError("width: must be 32, 42 or 48", "ширина: 32, 42 или 48", field="width")
    job = printq.get_job(ctx.store, job_id)
    return SlipView(job_id, job.receipt_id, job.kind, job.status, width, slip_text(job.slip, width))


def reprint(ctx: Context, job_id: int) -> Reprint:
    """Queue a copy of print job ``job_id`` (printed «КОПИЯ»)."""
    return Reprint(printq.enqueue_copy(ctx.store, job_id, ctx.clock.now()), job_id)


def print_queue_depth(ctx: Context) -> int:
    """Slips waiting for the printer."""
    return printq.queue_depth(ctx.store)

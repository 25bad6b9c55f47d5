"""Shifts at the till service: the cashiers, PIN sign-in, a shift opened and closed by the
service's clock, its X-report and the report's print job (the rules themselves are in
``agent.shifts``)."""

from __future__ import annotations

import logging
from dataclasses import replace

from agent import shifts
from agent.errors import InputError
from agent.results import Cashier, Shift, XReport
from agent.service.context import Context

log = logging.getLogger(__name__)


def add_cashier(ctx: Context, cashier_id: str, name: str, pin: str, role: str = "cashier") -> None:
    """Create a cashier who signs in with ``pin`` (``role``: cashier | supervisor); a
    duplicate id is a ``ConflictError``."""
    shifts.add_cashier(ctx.store, cashier_id, name, pin, role)


def set_pin(ctx: Context, cashier_id: str, pin: str) -> None:
    """A new PIN for the cashier, which also unlocks one locked after wrong PINs."""
    shifts.set_pin(ctx.store, cashier_id, pin)


def cashiers(ctx: Context) -> list[Cashier]:
    return shifts.cashiers(ctx.store)


def verify_pin(ctx: Context, cashier_id: str, pin: str) -> Cashier:
    """The cashier if ``pin`` is theirs (``PinError``, ``PinLockedError`` else)."""
    return shifts.verify_pin(ctx.store, cashier_id, pin)


def open_shift(ctx: Context, cashier_id: str) -> Shift:
    """Open a shift for the cashier now, or resume the one they have open."""
    return shifts.open_shift(ctx.store, cashier_id, ctx.clock.now())


def sign_in(ctx: Context, cashier_id: str, pin: str) -> tuple[Cashier, Shift]:
    """Check the PIN (``PinError``, ``PinLockedError``) and open the cashier's shift now,
    or resume the one they have open: the cashier and the shift."""
    cashier = verify_pin(ctx, cashier_id, pin)
    return cashier, open_shift(ctx, cashier.cashier_id)


def close_shift(ctx: Context, shift_id: str) -> XReport:
    """Close the shift now; its final report (Z)."""
    return shifts.close_shift(ctx.store, shift_id, ctx.clock.now())


def x_report(ctx: Context, shift_id: str, *, local: bool = False) -> XReport:
    """The shift's figures so far; ``local``: its times in the store's time zone."""
    report = shifts.x_report(ctx.store, shift_id, ctx.clock.now())
    return local_report(ctx, report) if local else report


def local_report(ctx: Context, report: XReport) -> XReport:
    """The report with its times in the store's time zone (the programme's), as the
    cashier reads clocks and as its slip prints them."""
    tz = ctx.programme().tz
    shift = report.shift
    return replace(
        report,
        generated_at=report.generated_at.astimezone(tz),
        shift=replace(
            shift,
            opened_at=shift.opened_at.astimezone(tz),
            closed_at=shift.closed_at.astimezone(tz) if shift.closed_at else None,
        ),
    )


def close_shift_and_report(
    ctx: Context, shift_id: str, *, training: bool = False
) -> tuple[XReport, int | None]:
    """Close the shift now and queue its Z report for the printer: the report (times in
    the store's zone) and its print job's id, None if it could not be queued (the shift is
    closed whatever happens to its slip). A training shift is not closed by hand: it ends
    with training (``InputError``)."""
    if training:
        raise InputError(
            "in training the shift is not closed: leave training (F9), the training shift "
            "ends with it",
            "в учебном режиме смена не закрывается: выйдите из учебного режима (F9), "
            "учебная смена закроется сама",
        )
    report = local_report(ctx, close_shift(ctx, shift_id))
    try:
        job: int | None = queue_report(ctx, report)
    except Exception:
        log.exception("the closing report could not be queued (the shift is closed)")
        job = None
    return report, job


def print_x_report(ctx: Context, shift_id: str, *, training: bool = False) -> tuple[XReport, int]:
    """The shift's figures so far (times in the store's zone), queued for the printer
    (marked as training on a training till): the report and its print job's id."""
    report = local_report(ctx, x_report(ctx, shift_id))
    return report, queue_report(ctx, report, training=training)


def queue_report(ctx: Context, report: XReport, *, training: bool = False) -> int:
    """Queue ``report`` for the printer; the print job's id."""
    return shifts.queue_report(ctx.store, report, ctx.store_name, training=training)

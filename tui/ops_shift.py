"""Sign-in, shift and X-report ops (see ``tui.ops``): only ``agent.shifts`` and the store,
so the sign-in screen works before the scoring engine is loaded (start-up time)."""

from __future__ import annotations

import logging
from dataclasses import replace

from agent import receipts, shifts
from agent.errors import InputError
from tui.messages import (
    CashiersListed,
    ReceiptStarted,
    ReportQueued,
    ShiftClosed,
    ShiftOpened,
    XReportReady,
)
from tui.services import Services

log = logging.getLogger(__name__)


def list_cashiers(s: Services) -> CashiersListed:
    return CashiersListed(shifts.cashiers(s.store))


def sign_in(s: Services, cashier_id: str, pin: str) -> ShiftOpened:
    """Check the PIN and open (or resume) the cashier's shift on this till."""
    cashier = shifts.verify_pin(s.store, cashier_id, pin)
    shift = shifts.open_shift(s.store, cashier.cashier_id, s.clock.now())
    s.cashier, s.shift = cashier, shift
    return ShiftOpened(cashier, shift)


def _shift_id(s: Services) -> str:
    if s.shift is None:
        raise InputError("no shift is open", "смена не открыта: войдите в систему")
    return s.shift.shift_id


def _local(s: Services, report: shifts.XReport) -> shifts.XReport:
    """The report with its times in the store's time zone (the programme's), as the
    cashier reads clocks."""
    tz = s.agent.programme().tz
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


def x_report(s: Services) -> XReportReady:
    return XReportReady(_local(s, shifts.x_report(s.store, _shift_id(s), s.clock.now())))


def close_shift(s: Services) -> ShiftClosed:
    if s.training:
        raise InputError(
            "in training the shift is not closed: leave training (F9), the training shift "
            "ends with it",
            "в учебном режиме смена не закрывается: выйдите из учебного режима (F9), "
            "учебная смена закроется сама",
        )
    report = _local(s, shifts.close_shift(s.store, _shift_id(s), s.clock.now()))
    s.shift = None
    s.cashier = None
    try:  # the Z report goes to the print queue; the shift is closed whatever happens here
        shifts.queue_report(s.store, report, s.agent.store_name)
    except Exception:
        log.exception("the closing report could not be queued (the shift is closed)")
    else:
        if s.printer is not None:
            s.printer.notify()
    return ShiftClosed(report)


def print_x_report(s: Services) -> ReportQueued:
    report = _local(s, shifts.x_report(s.store, _shift_id(s), s.clock.now()))
    job = shifts.queue_report(s.store, report, s.agent.store_name, training=s.training)
    if s.printer is not None:
        s.printer.notify()
    if s.preview is None:
        return ReportQueued(job)
    from agent.printq import get_job
    from tui.widgets.slip import slip_preview

    return ReportQueued(job, slip_preview(s, get_job(s.store, job).slip))


def new_receipt(s: Services) -> ReceiptStarted:
    """The number the cheque being started will get at its commit (nothing is taken: a
    cheque cancelled before its commit uses no number)."""
    return ReceiptStarted(receipts.upcoming(s.store))

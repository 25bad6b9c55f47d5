"""Sign-in, shift and X-report ops (see ``tui.ops``): the till service's shift methods, and
no import of the scoring engine here, so the sign-in screen module loads at once."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from agent.results import XReport

log = logging.getLogger(__name__)


def list_cashiers(s: Services) -> CashiersListed:
    return CashiersListed(s.agent.cashiers())


def sign_in(s: Services, cashier_id: str, pin: str) -> ShiftOpened:
    """Check the PIN and open (or resume) the cashier's shift on this till."""
    cashier = s.agent.verify_pin(cashier_id, pin)
    shift = s.agent.open_shift(cashier.cashier_id)
    s.cashier, s.shift = cashier, shift
    return ShiftOpened(cashier, shift)


def _shift_id(s: Services) -> str:
    if s.shift is None:
        raise InputError("no shift is open", "смена не открыта: войдите в систему")
    return s.shift.shift_id


def _local(s: Services, report: XReport) -> XReport:
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
    return XReportReady(_local(s, s.agent.x_report(_shift_id(s))))


def close_shift(s: Services) -> ShiftClosed:
    if s.training:
        raise InputError(
            "in training the shift is not closed: leave training (F9), the training shift "
            "ends with it",
            "в учебном режиме смена не закрывается: выйдите из учебного режима (F9), "
            "учебная смена закроется сама",
        )
    report = _local(s, s.agent.close_shift(_shift_id(s)))
    s.shift = None
    s.cashier = None
    try:  # the Z report goes to the print queue; the shift is closed whatever happens here
        s.agent.queue_report(report)
    except Exception:
        log.exception("the closing report could not be queued (the shift is closed)")
    else:
        s.notify_printer()
    return ShiftClosed(report)


def print_x_report(s: Services) -> ReportQueued:
    report = _local(s, s.agent.x_report(_shift_id(s)))
    job = s.agent.queue_report(report, training=s.training)
    s.notify_printer()
    if s.preview is None:
        return ReportQueued(job)
    from tui.widgets.slip import slip_preview

    return ReportQueued(job, slip_preview(s, s.agent.print_job(job)))


def new_receipt(s: Services) -> ReceiptStarted:
    """The number the cheque being started will get at its commit (nothing is taken: a
    cheque cancelled before its commit uses no number)."""
    return ReceiptStarted(s.agent.upcoming_receipt())

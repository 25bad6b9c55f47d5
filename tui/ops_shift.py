"""Sign-in, shift and X-report ops (see ``tui.ops``): the till service's shift methods, and
no import of the scoring engine here, so the sign-in screen module loads at once."""

from __future__ import annotations

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


def list_cashiers(s: Services) -> CashiersListed:
    return CashiersListed(s.agent.cashiers())


def sign_in(s: Services, cashier_id: str, pin: str) -> ShiftOpened:
    """Check the PIN and open (or resume) the cashier's shift on this till."""
    s.cashier, s.shift = s.agent.sign_in(cashier_id, pin)
    return ShiftOpened(s.cashier, s.shift)


def _shift_id(s: Services) -> str:
    if s.shift is None:
        raise InputError("no shift is open", "смена не открыта: войдите в систему")
    return s.shift.shift_id


def x_report(s: Services) -> XReportReady:
    return XReportReady(s.agent.x_report(_shift_id(s), local=True))


def close_shift(s: Services) -> ShiftClosed:
    report, job = s.agent.close_shift_and_report(_shift_id(s), training=s.training)
    s.shift = None
    s.cashier = None
    if job is not None:
        s.notify_printer()
    return ShiftClosed(report)


def print_x_report(s: Services) -> ReportQueued:
    _report, job = s.agent.print_x_report(_shift_id(s), training=s.training)
    s.notify_printer()
    if s.preview is None:
        return ReportQueued(job)
    from tui.widgets.slip import slip_preview

    return ReportQueued(job, slip_preview(s, s.agent.print_job(job)))


def new_receipt(s: Services) -> ReceiptStarted:
    """The number the cheque being started will get at its commit (nothing is taken: a
    cheque cancelled before its commit uses no number)."""
    return ReceiptStarted(s.agent.upcoming_receipt())

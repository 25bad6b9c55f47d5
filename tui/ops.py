"""Core operations run by the App's workers: ``op(services, *args) -> Message``.

Each op is a plain function (no Textual calls apart from building its result message), so
it runs in a thread worker and is the only place the cashier app calls the core. A screen
asks for one with ``self.post_message(CoreRequested(ops.identify, (text, "typed")))``; an
``AgentError`` raised here reaches the screen as ``CoreFailed``.

Screens of other flows keep their ops beside them (``tui/screens/register.py`` may define
``def register_member(services, ...) -> MemberRegistered``); the App runs any callable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from agent import engine, shifts
from agent.errors import InputError
from agent.model import Cart, CartLine
from agent.service import CheckoutRequest
from agent.slip import slip_text
from tui.messages import (
    CashiersListed,
    CatalogItemFound,
    CheckoutCommitted,
    MemberIdentified,
    QuoteReady,
    ReceiptStarted,
    ReportQueued,
    ShiftClosed,
    ShiftOpened,
    XReportReady,
)
from tui.services import Services


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
    report = shifts.close_shift(s.store, _shift_id(s), s.clock.now())
    s.shift = None
    s.cashier = None
    return ShiftClosed(_local(s, report))


def print_x_report(s: Services) -> ReportQueued:
    report = _local(s, shifts.x_report(s.store, _shift_id(s), s.clock.now()))
    job = shifts.queue_report(s.store, report, s.agent.store_name)
    if s.printer is not None:
        s.printer.notify()
    return ReportQueued(job)


def identify(s: Services, text: str, source: str) -> MemberIdentified:
    return MemberIdentified(s.agent.identify(text), source)


def catalog_item(s: Services, sku: str, qty: int, sale: bool) -> CatalogItemFound:
    found = s.agent.catalog_lookup(sku)
    if found is None:
        raise InputError(f"SKU {sku} not in the catalogue", f"артикул {sku} не найден", sku=sku)
    name, category, collection, price = found
    return CatalogItemFound(sku, name, category, collection, price, qty, sale)


def total_line(s: Services, amount_kop: int, category: str | None) -> CatalogItemFound:
    """A cheque entered as one total (a till without POS integration).

    Without a category the line takes the programme's first category that earns points
    (``general`` when the programme lists none)."""
    rules = s.agent.programme()
    if category is None:
        earning = [c for c in rules.categories if c not in rules.excluded_categories]
        category = earning[0] if earning else "general"
    elif rules.categories and category not in rules.categories:
        known = ", ".join(rules.categories)
        raise InputError(
            f"unknown category {category!r}; known: {known}",
            f"неизвестная категория «{category}»; есть: {known}",
            field="category",
        )
    return CatalogItemFound("TOTAL", "Сумма чека", category, None, amount_kop, 1, False)


@dataclass(frozen=True, slots=True)
class Draft:
    """The cheque on the checkout screen, as plain data handed to the workers."""

    member_id: str
    receipt_id: str
    lines: tuple[CartLine, ...]
    redeem: int | Literal["max"] = 0
    coupon: str | None = None
    identified_by: str = "unknown"


def checkout_request(s: Services, d: Draft) -> CheckoutRequest:
    numbered = tuple(replace(ln, line_no=n) for n, ln in enumerate(d.lines, start=1))
    return CheckoutRequest(
        d.member_id,
        Cart(d.receipt_id, numbered),
        d.redeem,
        coupon=d.coupon,
        cashier_id=s.cashier.cashier_id if s.cashier else None,
        shift_id=s.shift.shift_id if s.shift else None,
        identified_by=d.identified_by,
    )


def quote(s: Services, d: Draft, token: int) -> QuoteReady:
    q = s.agent.quote(checkout_request(s, d))
    en = ru = ""
    if q.redeem_limited_by and q.redeem_limited_by != "balance":
        en, ru = engine.redeem_limit_text(q.redeem_limited_by, s.agent.programme())
    return QuoteReady(q, token, en, ru)


def commit(s: Services, d: Draft) -> CheckoutCommitted:
    """Commit the cheque (idempotent by receipt id: a retry after a lost answer returns
    the stored result) and wake the printer; the slip text is the on-screen preview."""
    if s.shift is None:
        raise InputError("no shift is open", "смена не открыта: войдите в систему")
    result = s.agent.commit(checkout_request(s, d))
    if s.printer is not None:
        s.printer.notify()
    text = slip_text(s.agent.print_job(result.print_job_id), s.slip_width)
    return CheckoutCommitted(result, text)


def new_receipt(s: Services) -> ReceiptStarted:
    return ReceiptStarted(shifts.next_receipt_id(s.store))

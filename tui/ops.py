"""Core operations run by the App's workers: ``op(services, *args) -> Message``.

Each op is a plain function (no Textual calls apart from building its result message), so
it runs in a thread worker and is the only place the cashier app calls the core, always
through the till service (``s.agent``, ``agent.service.Agent``: one method per use case,
the commit included), never the core's modules (import-linter's contract). A screen
asks for one with ``self.post_message(CoreRequested(ops.identify, (text, "typed")))``; an
``AgentError`` raised here reaches the screen as ``CoreFailed``.

Sign-in and shift ops live in ``tui.ops_shift`` (light imports: the first screen's module
loads before the scoring engine) and are re-exported here.

Screens of other flows keep their ops beside them (``tui/screens/register.py`` may define
``def register_member(services, ...) -> MemberRegistered``); the App runs any callable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from agent.errors import InputError
from agent.model import Cart, CartLine
from agent.results import CheckoutRequest
from tui.messages import (
    CatalogItemFound,
    CheckoutCommitted,
    CouponRead,
    MemberIdentified,
    QuoteReady,
    SlipReprinted,
)
from tui.ops_shift import (
    close_shift,
    list_cashiers,
    new_receipt,
    print_x_report,
    sign_in,
    x_report,
)
from tui.services import Services

__all__ = [
    "Draft",
    "catalog_item",
    "checkout_request",
    "close_shift",
    "commit",
    "free_line",
    "identify",
    "list_cashiers",
    "member_card",
    "new_receipt",
    "print_x_report",
    "quote",
    "read_coupon",
    "reprint",
    "sign_in",
    "total_line",
    "x_report",
]


def identify(s: Services, text: str, source: str) -> MemberIdentified:
    return MemberIdentified(s.agent.identify(text), source)


def member_card(s: Services, member_id: str) -> MemberIdentified:
    """The member's card as it is now (after a commit: the new balance)."""
    return MemberIdentified(s.agent.card(member_id), "refresh")


def _found(line: CartLine) -> CatalogItemFound:
    return CatalogItemFound(
        line.sku, line.name, line.category, line.collection, line.price_kop, line.qty, line.sale
    )


def catalog_item(
    s: Services, sku: str, qty: int, sale: bool, cheque_kop: int = 0, line_no: int = 1
) -> CatalogItemFound:
    return _found(s.agent.catalog_line(sku, qty, sale, cheque_kop, line_no))


def total_line(
    s: Services, amount_kop: int, category: str | None, cheque_kop: int = 0, line_no: int = 1
) -> CatalogItemFound:
    """A cheque entered as one total (a till without POS integration)."""
    return _found(s.agent.total_line(amount_kop, category, cheque_kop, line_no))


def free_line(
    s: Services,
    sku: str,
    category: str,
    price_kop: int,
    qty: int,
    sale: bool,
    cheque_kop: int = 0,
    line_no: int = 1,
) -> CatalogItemFound:
    """A line typed in full (an item missing from the till's catalogue)."""
    return _found(s.agent.free_line(sku, category, price_kop, qty, sale, cheque_kop, line_no))


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
        en, ru = s.agent.redeem_limit_text(q.redeem_limited_by)
    kind, value = s.agent.coupon_terms(d.coupon) if q.coupon_id else ("", 0)
    return QuoteReady(q, token, en, ru, kind, value)


def read_coupon(s: Services, text: str) -> CouponRead:
    """A coupon scanned or typed before the member: its signature and dates checked now
    (offline, with the programme's key), so a bad one is refused at once with its reason;
    the member, the cheque and single use are checked by the quote."""
    c = s.agent.read_coupon(text)  # CouponError without the programme's key
    return CouponRead(text, c.kind, c.value)


def commit(s: Services, d: Draft) -> CheckoutCommitted:
    """Commit the cheque through the till service (idempotent by receipt id: a retry
    after a lost answer returns the stored result) and wake the printer; the slip text is
    the on-screen preview."""
    if s.shift is None:
        raise InputError("no shift is open", "смена не открыта: войдите в систему")
    result, slip = s.agent.commit_with_slip(checkout_request(s, d))
    s.notify_printer()
    from tui.widgets.slip import slip_preview

    return CheckoutCommitted(result, slip_preview(s, slip))


def reprint(s: Services, job_id: int, receipt_id: str) -> SlipReprinted:
    """Queue a copy of print job ``job_id`` (the cheque ``receipt_id``'s slip, printed
    «КОПИЯ»: the slip as the member got it, balance then) and wake the printer."""
    copy = s.agent.reprint(job_id)
    s.notify_printer()
    return SlipReprinted(copy.job_id, copy.copy_of, receipt_id)

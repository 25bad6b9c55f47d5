"""Messages of the cashier app: past-tense events (``MemberIdentified``) and requests
(``CoreRequested``). All are dataclasses; tests record them with
``run_test(message_hook=...)`` and assert on them.

Flow: a screen posts ``CoreRequested(op, args)``; it bubbles to the App, which runs
``op(services, *args)`` in a thread worker; the op returns a past-tense message (or
raises ``AgentError``, which becomes ``CoreFailed``) and the App posts it back to the
screen that asked. Device threads (scanner, printer, sync status) post their messages
through the App, which forwards them to the active screen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from agent.model import Quote
    from agent.results import Cashier, CommitResult, MemberCard, Shift, XReport
    from tui.services import StatusSnapshot


# ---------------------------------------------------------------------- requests
@dataclass
class CoreRequested(Message):
    """Run ``op(services, *args)`` in a worker; the result message goes to ``reply_to``
    (the requesting screen; None: the App's active screen)."""

    op: Callable[..., Message]
    args: tuple[Any, ...] = ()
    reply_to: Any = None


# ---------------------------------------------------------------------- results
@dataclass
class CoreFailed(Message):
    """A core call raised an ``AgentError`` (or a bug): shown to the cashier."""

    op_name: str
    code: str
    title: str
    message_ru: str
    message_en: str
    title_en: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    """The error's machine-readable context (``AgentError.details``)."""

    def text(self, lang: str) -> str:
        return self.message_en if lang == "en" else self.message_ru

    def heading(self, lang: str) -> str:
        """The title in ``lang`` (``title`` is the Russian one)."""
        return self.title_en if lang == "en" and self.title_en else self.title


@dataclass
class CashiersListed(Message):
    cashiers: list[Cashier]


@dataclass
class ShiftOpened(Message):
    cashier: Cashier
    shift: Shift


@dataclass
class XReportReady(Message):
    report: XReport


@dataclass
class ShiftClosed(Message):
    report: XReport


@dataclass
class ReportQueued(Message):
    job_id: int
    preview: str = ""
    """The report as the screen printer shows it (the printer is the preview), else ""."""


@dataclass
class MemberIdentified(Message):
    card: MemberCard
    source: str  # "typed" | "wedge" | "serial"


@dataclass
class CatalogItemFound(Message):
    sku: str
    name: str
    category: str
    collection: str | None
    price_kop: int
    qty: int
    sale: bool


@dataclass
class QuoteReady(Message):
    quote: Quote
    token: int  # the checkout's request counter: stale quotes are dropped
    limit_en: str = ""
    limit_ru: str = ""
    """Why the most the member may spend is limited (cap, offline policy), or ""."""
    coupon_kind: str = ""
    coupon_value: int = 0
    """The applied coupon's terms ("percent" bp, "fixed" kopecks, "points"), for its label."""


@dataclass
class CouponRead(Message):
    """A coupon read before a member is identified: its signature and dates are good;
    whether it fits the member and the cheque is the quote's answer later."""

    text: str
    kind: str
    value: int


@dataclass
class CheckoutCommitted(Message):
    result: CommitResult
    slip_text: str


@dataclass
class SlipReprinted(Message):
    """A copy of a slip (printed «КОПИЯ») is queued: ``job_id`` the copy's print job,
    ``copy_of`` the job copied, ``receipt_id`` its cheque."""

    job_id: int
    copy_of: int
    receipt_id: str


# ---------------------------------------------------------------------- devices, status
@dataclass
class Scanned(Message, bubble=False):
    """A scan from a keyboard-wedge scanner (any screen) or a serial scanner. It does not
    bubble: the App hands serial scans to the active screen, which may ignore them."""

    text: str
    source: str  # "wedge" | "serial"
    layout_repaired: bool = False
    raw: str = ""
    """The characters as typed, before the layout repair ("": the same as ``text``): a
    form's text field (a name) takes these."""


@dataclass
class PrinterChanged(Message):
    """The print worker reported something (fault, recovered, printed)."""

    kind: str
    fault: str
    message_ru: str
    message_en: str
    job_id: int | None = None


@dataclass
class StatusUpdated(Message):
    snapshot: StatusSnapshot


@dataclass
class LanguageChanged(Message):
    lang: str


@dataclass
class ReceiptStarted(Message):
    receipt_id: str

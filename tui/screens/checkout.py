"""Checkout: identify the member, build the cheque, see the quote, confirm, see the slip.

The most common path is three keys at most: scan the card (no key: the wedge/serial scan
is caught anywhere), Enter (accept the quote), Enter (confirm); the slip preview appears.
The entry line grammar is in ``tui.entry``. F6 toggles spending all / none, ``-N`` spends
N points, F7 takes a coupon, F8 starts a new cheque, Esc clears the member.

State lives here as plain data (``Draft`` parts); every core call is an op in a worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Literal

from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Static

from agent.model import CartLine
from tui import ops
from tui.entry import parse_entry
from tui.i18n import money, points, t
from tui.messages import (
    CatalogItemFound,
    CheckoutCommitted,
    CoreFailed,
    MemberIdentified,
    QuoteReady,
    ReceiptStarted,
    Scanned,
)
from tui.screens.base import KassaScreen
from tui.widgets.member import MemberCardView

if TYPE_CHECKING:
    from agent.model import Quote
    from agent.service import MemberCard

Stage = Literal["entry", "confirm", "done"]


def cheque_view(
    lines: list[CartLine],
    quote: Quote | None,
    redeem: int | Literal["max"],
    coupon: str | None,
    lang: str,
    limit: str = "",
    coupon_terms: tuple[str, int] = ("", 0),
) -> Table:
    """The cheque lines with per-line discount and the quote summary (pure)."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=14)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True, style="green")
    if not lines:
        table.add_row(Text(t(lang, "co.empty"), style="dim"), "", "")
        return table
    qlines = {ql.line_no: ql for ql in quote.lines} if quote else {}
    for n, line in enumerate(lines, start=1):
        # The sale mark goes first: at 80 columns a long name is cut at its end, and the
        # mark (why the line earns less) must stay. Text, not markup: «[sale]» is shown.
        name = Text()
        if line.sale:
            name.append(f"[{t(lang, 'co.sale')}] ", style="yellow")
        name.append(line.name)
        ql = qlines.get(n)
        disc = ""
        if ql is not None and (ql.coupon_discount_kop + ql.points_discount_kop):
            disc = "-" + money(lang, ql.coupon_discount_kop + ql.points_discount_kop)
        # the quantity sits with the amount: a long name is cut at the end, not "×3"
        qty = f"×{line.qty} " if line.qty > 1 else ""
        table.add_row(name, qty + money(lang, line.amount_kop), disc)
    table.add_row("", "", "")
    if quote is None:
        return table
    table.add_row(Text(t(lang, "co.total"), style="bold"), money(lang, quote.total_kop), "")
    table.add_row(t(lang, "co.max"), points(lang, quote.max_redeem_points), "")
    chosen = t(lang, "co.spend.max") if redeem == "max" else ""
    spend = points(lang, quote.redeem_points)
    table.add_row(
        t(lang, "co.spend") + (f" ({chosen})" if chosen else ""),
        Text(spend, style="bold"),
        "",
    )
    if limit:
        table.add_row(Text(limit, style="yellow"))
    if coupon and quote.coupon_id:
        off = quote.coupon_discount_kop
        table.add_row(coupon_label(lang, *coupon_terms), f"-{money(lang, off)}" if off else "", "")
    table.add_row(t(lang, "co.earn"), Text(f"+{points(lang, quote.total_earned)}", "green"), "")
    table.add_row(
        Text(t(lang, "co.payable"), style="bold"),
        Text(money(lang, quote.payable_kop), style="bold"),
        "",
    )
    return table


def coupon_label(lang: str, kind: str, value: int) -> str:
    """A coupon as the cashier names it: «Купон −10 %», «Купон −500,00 ₽», «Купон +200 бонусов»."""
    base = t(lang, "co.coupon")
    if kind == "percent":
        pct = str(value // 100) if value % 100 == 0 else f"{value / 100:.2f}".rstrip("0")
        return f"{base} −{pct.replace('.', ',') if lang == 'ru' else pct} %"
    if kind == "fixed":
        return f"{base} −{money(lang, value)}"
    if kind == "points":
        return f"{base} +{points(lang, value)}"
    return base


class CheckoutScreen(KassaScreen):
    HELP_LINES: ClassVar[tuple[str, ...]] = (
        "help.checkout.1",
        "help.checkout.2",
        "help.checkout.3",
        "help.checkout.4",
        "help.checkout.5",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "bind.back", id="clear_member"),
        Binding("f6", "toggle_redeem", "bind.redeem_toggle", id="redeem_toggle"),
        Binding("f7", "coupon", "bind.coupon", id="coupon"),
        Binding("f8", "new_cheque", "bind.new_cheque", id="new_cheque"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.receipt_id: str | None = None
        self.card: MemberCard | None = None
        self.lines: list[CartLine] = []
        self.redeem: int | Literal["max"] = 0
        self.coupon: str | None = None
        self.quote: Quote | None = None
        self.quote_msg: QuoteReady | None = None
        self.quote_token = 0
        self.stage: Stage = "entry"
        self.committed: CheckoutCommitted | None = None
        self.awaiting_coupon = False
        # Why a coupon or points amount was just dropped: shown instead of the next
        # quote's hint, so the re-quote does not hide the reason.
        self.refusal: CoreFailed | None = None
        self.discard_asked = False  # F8 on a cheque in progress: waiting for F8/Enter or Esc

    # ------------------------------------------------------------------ layout
    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="checkout-body"):
            card = MemberCardView(id="card", classes="panel")
            card.border_title = self._card_title()
            yield card
            with VerticalScroll(id="cheque-box", classes="panel") as box:
                box.border_title = self.t("co.cheque")
                yield Static(id="cheque")
        yield Input(placeholder=self.t("co.entry"), id="entry")

    def _card_title(self) -> str:
        return "Покупатель" if self.lang == "ru" else "Member"

    def on_mount(self) -> None:
        self.request(ops.new_receipt)
        self.render_all()
        self.query_one("#entry", Input).focus()

    def render_all(self) -> None:
        self.query_one("#card", MemberCardView).show(self.card, self.lang)
        box = self.query_one("#cheque-box", VerticalScroll)
        cheque = self.query_one("#cheque", Static)
        title = self.t("co.cheque") + (f" {self.receipt_id}" if self.receipt_id else "")
        box.border_title = title
        if self.stage == "done" and self.committed is not None:
            box.border_title = self.t("slip.preview")
            cheque.update(Text(self.committed.slip_text))
        else:
            terms = ("", 0)
            if self.quote_msg is not None and self.quote_msg.quote is self.quote:
                terms = (self.quote_msg.coupon_kind, self.quote_msg.coupon_value)
            cheque.update(
                cheque_view(self.lines, self.quote, self.redeem, self.coupon, self.lang, "", terms)
            )
        box.set_class(self.stage == "confirm", "-confirm")

    # ------------------------------------------------------------------ state changes
    def draft(self) -> ops.Draft | None:
        if self.card is None or not self.lines or self.receipt_id is None:
            return None
        return ops.Draft(
            self.card.member_id,
            self.receipt_id,
            tuple(self.lines),
            self.redeem,
            self.coupon,
            self.card.identified_by or "unknown",
        )

    def requote(self) -> None:
        self.quote = None
        self.quote_token += 1
        if self.stage == "confirm":
            self.stage = "entry"
        draft = self.draft()
        if draft is not None:
            self.request(ops.quote, draft, self.quote_token)
        self.render_all()

    def reset(self) -> None:
        self.card = None
        self.lines = []
        self.redeem = 0
        self.coupon = None
        self.quote = None
        self.stage = "entry"
        self.committed = None
        self.awaiting_coupon = False
        self.refusal = None
        self.discard_asked = False
        self.receipt_id = None
        self.quote_token += 1
        self.request(ops.new_receipt)
        self.say("")
        self.render_all()

    # ------------------------------------------------------------------ input
    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        entry_box = event.input
        value = event.value
        entry_box.value = ""
        if self.stage == "done" or self.discard_asked:
            self.reset()
            return
        if self.stage == "confirm":
            draft = self.draft()
            if draft is not None and self.quote is not None:
                self.say_t("co.confirm_title")
                self.request(ops.commit, draft)
            return
        if self.awaiting_coupon and value.strip():
            self.awaiting_coupon = False
            self.coupon = value.strip()
            self.requote()
            return
        self.handle_entry(value, "typed")

    def handle_entry(self, value: str, source: str) -> None:
        """One entry (typed or scanned). It replaces whatever the message line said: its
        own answer (or the quote's hint) follows, an old error never stays under it."""
        entry = parse_entry(value)
        self.say("")
        if entry.kind == "empty":
            self.accept()
        elif entry.kind == "identify":
            self.request(ops.identify, entry.text, source)
        elif entry.kind == "coupon":
            self.coupon = entry.text
            self.requote()
        elif entry.kind == "sku":
            self.request(ops.catalog_item, entry.text, entry.qty, entry.sale)
        elif entry.kind == "line":
            assert entry.category is not None
            self.request(
                ops.free_line, entry.text, entry.category, entry.amount_kop, entry.qty, entry.sale
            )
        elif entry.kind == "total":
            self.request(ops.total_line, entry.amount_kop, entry.category)
        elif entry.kind == "redeem":
            if self.card is None:  # points belong to a member: nothing to spend yet
                self.say_t("co.member_first", error=True)
                return
            self.redeem = entry.points
            self.requote()
        else:
            self.say_t("co.bad_entry", error=True, text=entry.text)

    def accept(self) -> None:
        """Enter on an empty line: the quote is accepted, ask to confirm."""
        if self.card is None:
            self.say_t("co.no_member", error=True)
        elif not self.lines:
            self.say_t("co.empty", error=True)
        elif self.quote is not None:
            self.stage = "confirm"
            self.say(lambda: f"{self.t('co.confirm_title')} {self.t('co.confirm_hint')}")
            self.render_all()

    def on_scanned(self, message: Scanned) -> None:
        self.discard_asked = False  # a scan carries on with the cheque
        if self.stage == "done":
            self.reset()
        if message.text.upper().startswith("KC1:"):
            self.awaiting_coupon = False  # the scan answers the F7 prompt
            self.coupon = message.text
            self.requote()
        elif parse_entry(message.text).kind in ("sku", "line"):
            # A product barcode scanned at a till without POS integration: a cheque line.
            self.handle_entry(message.text, message.source)
        else:
            self.request(ops.identify, message.text, message.source)

    # ------------------------------------------------------------------ answers
    def on_receipt_started(self, message: ReceiptStarted) -> None:
        self.receipt_id = message.receipt_id
        self.requote()

    def on_member_identified(self, message: MemberIdentified) -> None:
        if message.source == "refresh":  # the balance after the committed cheque
            if self.card is not None and self.card.member_id == message.card.member_id:
                how = self.card.identified_by
                self.card = message.card if not how else replace(message.card, identified_by=how)
                self.render_all()
            return
        self.card = message.card
        self.say("")
        self.requote()

    def on_catalog_item_found(self, m: CatalogItemFound) -> None:
        amount = m.price_kop * m.qty
        self.lines.append(
            CartLine(
                len(self.lines) + 1,
                m.sku,
                m.name,
                m.category,
                m.price_kop,
                m.qty,
                amount,
                m.sale,
                m.collection,
            )
        )
        self.say("")
        self.requote()

    def on_quote_ready(self, message: QuoteReady) -> None:
        if message.token != self.quote_token:
            return  # an older quote; a newer one is on its way
        self.quote = message.quote
        self.quote_msg = message
        if self.refusal is not None:
            refusal = self.refusal
            self.say(lambda: self.failure_text(refusal), error=True)
            self.refusal = None
        else:
            self.say_t("co.accept")
        self.render_all()

    def on_checkout_committed(self, message: CheckoutCommitted) -> None:
        self.committed = message
        self.stage = "done"
        r = message.result
        key = "co.committed_offline" if r.offline else "co.committed"
        self.say(lambda: f"{self.t(key, r=r.receipt_id)}. {self.t('co.next')}")
        self.render_all()
        self.query_one("#cheque-box", VerticalScroll).scroll_home(animate=False)
        if self.card is not None:
            self.request(ops.member_card, self.card.member_id)

    def on_core_failed(self, message: CoreFailed) -> None:
        if message.op_name == "quote":
            # A refused coupon or points amount is dropped and the cheque quoted again
            # without it; any other refusal just shows (no retry loop).
            changed = False
            if (
                self.coupon is not None and message.code in ("bad_coupon", "bad_token")
            ) or message.code.startswith("token_"):
                self.coupon, changed = None, True
            elif self.redeem != 0 and message.code.startswith("redemption"):
                self.redeem, changed = 0, True
            if changed:
                self.refusal = message
                self.requote()
        elif message.op_name == "commit":
            self.stage = "entry"
            self.render_all()
        super().on_core_failed(message)

    # ------------------------------------------------------------------ actions
    def action_toggle_redeem(self) -> None:
        if self.stage == "done":
            return
        if self.card is None:
            self.say_t("co.member_first", error=True)
            return
        self.redeem = 0 if self.redeem != 0 else "max"
        self.requote()

    def action_coupon(self) -> None:
        if self.stage == "done":
            return
        self.awaiting_coupon = True
        self.say_t("co.coupon_prompt")
        self.query_one("#entry", Input).focus()

    def action_new_cheque(self) -> None:
        """F8: a new cheque; one in progress (lines or a member) is dropped only after F8
        again or Enter (Esc keeps it)."""
        in_progress = self.stage != "done" and (self.lines or self.card is not None)
        if in_progress and not self.discard_asked:
            self.discard_asked = True
            self.say_t("co.discard_ask", error=True)
            return
        self.reset()

    def action_back(self) -> None:
        """Esc: step back (keep the cheque F8 asked about; confirm -> quote), else forget
        the member and the cheque."""
        if self.discard_asked:
            self.discard_asked = False
            self.say_t("co.discard_kept")
        elif self.stage == "confirm":
            self.stage = "entry"
            self.say_t("co.accept")
            self.render_all()
        elif self.awaiting_coupon:
            self.awaiting_coupon = False
            self.say("")
        else:
            self.card = None
            self.requote()

    def relabel(self) -> None:
        self.query_one("#card", MemberCardView).border_title = self._card_title()
        self.query_one("#entry", Input).placeholder = self.t("co.entry")
        self.render_all()
        super().relabel()

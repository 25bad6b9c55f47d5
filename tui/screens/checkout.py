"""Checkout: identify the member, build the cheque, see the quote, confirm, see the slip.

The most common path is three keys at most: scan the card (no key: the wedge/serial scan
is caught anywhere), Enter (accept the quote), Enter (confirm); the slip preview appears.
The entry line grammar is in ``tui.entry``. F6 toggles spending all / none, ``-N`` spends
N points, F7 takes a coupon, F8 starts a new cheque, Up/Down select a line and Del voids
it, Esc steps back (unselect, keep the cheque, leave the confirmation) or clears the member.

No keystroke throws work away: a question (F8's "drop this cheque?", "commit?") is
answered yes only by its own key or an empty Enter; anything typed or scanned there is
taken as what it is. After a commit the next entry starts the next cheque with it. The
entry line is the only focusable widget and keeps the keyboard whatever moved the focus.

State lives here as plain data (``Draft`` parts); every core call is an op in a worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar, Literal

from rich.table import Table
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widget import Widget
from textual.widgets import Input, Static

from agent.model import CartLine
from tui import ops
from tui.entry import MAX_QTY, parse_entry
from tui.i18n import money, points, t
from tui.messages import (
    CatalogItemFound,
    CheckoutCommitted,
    CoreFailed,
    CouponRead,
    MemberIdentified,
    QuoteReady,
    ReceiptStarted,
    Scanned,
    SlipReprinted,
)
from tui.screens import checkout_text  # noqa: F401  (registers the strings)
from tui.screens.base import KassaScreen
from tui.widgets.keybar import KeyBar
from tui.widgets.member import MemberCardView
from tui.widgets.slip import hide_slip, scroll_slip, show_slip

if TYPE_CHECKING:
    from agent.model import Quote
    from agent.results import MemberCard

Stage = Literal["entry", "confirm", "done"]


def cheque_view(
    lines: list[CartLine],
    quote: Quote | None,
    redeem: int | Literal["max"],
    coupon: str | None,
    lang: str,
    limit: str = "",
    coupon_terms: tuple[str, int] = ("", 0),
    selected: int | None = None,
) -> Table:
    """The cheque lines with per-line discount and the quote summary (pure).

    ``selected``: the 0-based line the cashier picked (shown reversed, Del voids it). A
    coupon with known ``coupon_terms`` but no quote yet (no member) is shown as waiting;
    with no quote the total is the lines' sum (kopecks, before loyalty).
    Every discount carries the one minus sign of money (``agent.money``, as on paper)."""
    table = Table.grid(padding=(0, 1), expand=True)
    table.add_column(ratio=1, no_wrap=True, overflow="ellipsis", min_width=14)
    table.add_column(justify="right", no_wrap=True)
    table.add_column(justify="right", no_wrap=True, style="green")
    waiting = ""
    if coupon and quote is None and coupon_terms[0]:
        waiting = f"{coupon_label(lang, *coupon_terms)} ({t(lang, 'co.coupon_pending')})"
    if not lines:
        table.add_row(Text(t(lang, "co.empty"), style="dim"), "", "")
        if waiting:
            table.add_row(Text(waiting, style="yellow"), "", "")
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
        row_style = "reverse" if selected == n - 1 else None
        table.add_row(name, qty + money(lang, line.amount_kop), disc, style=row_style)
    table.add_row("", "", "")
    if quote is None:
        # No member yet: the lines' sum before loyalty, so the cashier can name it.
        total = sum(line.amount_kop for line in lines)
        table.add_row(Text(t(lang, "co.total"), style="bold"), money(lang, total), "")
        if waiting:
            table.add_row(Text(waiting, style="yellow"), "", "")
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
    """A coupon as the cashier names it: «Купон -10 %», «Купон -500,00 ₽», «Купон +200 бонусов»
    (the minus of the amounts beside it and of the slip)."""
    base = t(lang, "co.coupon")
    if kind == "percent":
        pct = str(value // 100) if value % 100 == 0 else f"{value / 100:.2f}".rstrip("0")
        return f"{base} -{pct.replace('.', ',') if lang == 'ru' else pct} %"
    if kind == "fixed":
        return f"{base} -{money(lang, value)}"
    if kind == "points":
        return f"{base} +{points(lang, value)}"
    return base


class CheckoutScreen(KassaScreen):
    HELP_LINES: ClassVar[tuple[str, ...]] = (
        "help.checkout.1",
        "help.checkout.2",
        "help.checkout.3",
        "help.checkout.4",
        "help.checkout.keys",  # F8, the line void, Esc
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "bind.back", id="clear_member"),
        Binding("f6", "toggle_redeem", "bind.redeem_toggle", id="redeem_toggle"),
        Binding("f7", "coupon", "bind.coupon", id="coupon"),
        Binding("f8", "new_cheque", "bind.new_cheque", id="new_cheque"),
        # Offered while the committed cheque's slip is on screen (``check_action``).
        Binding("f12", "reprint", "bind.reprint", id="reprint"),
        Binding("up", "select_line(-1)", show=False, id="line_up"),
        Binding("down", "select_line(1)", show=False, id="line_down"),
        # Priority: the entry line's own Del (delete right) would take it first. Offered
        # only with a line selected and nothing typed, so Del still edits a typed entry.
        Binding("delete", "void_line", "bind.void_line", id="void_line", priority=True),
        Binding("pageup", "scroll_cheque(-1)", show=False, id="cheque_up"),
        Binding("pagedown", "scroll_cheque(1)", show=False, id="cheque_down"),
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
        self.selected: int | None = None  # the 0-based line Up/Down picked (Del voids it)
        self.coupon_terms: tuple[str, int] = ("", 0)  # of a coupon read before the member
        # What the message line says once the next quote is in, instead of its hint (a
        # voided line): the re-quote must not hide it.
        self.notice: Callable[[], str] | None = None
        self.quote_failure: CoreFailed | None = None  # why the cheque has no quote

    # ------------------------------------------------------------------ layout
    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="checkout-body"):
            card = MemberCardView(id="card", classes="panel")
            card.border_title = self._card_title()
            yield card
            with VerticalScroll(id="cheque-box", classes="panel") as box:
                box.border_title = self.t("co.cheque")
                box.can_focus = False  # PageUp/PageDown scroll it; the keyboard stays below
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
            show_slip(box, cheque, self.committed.slip_text, self.lang)
        else:
            hide_slip(box)
            terms = self.coupon_terms if self.coupon else ("", 0)
            if self.quote_msg is not None and self.quote_msg.quote is self.quote:
                terms = (self.quote_msg.coupon_kind, self.quote_msg.coupon_value)
            cheque.update(
                cheque_view(
                    self.lines,
                    self.quote,
                    self.redeem,
                    self.coupon,
                    self.lang,
                    "",
                    terms,
                    self.selected,
                )
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
        self.quote_failure = None
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
        self.selected = None
        self.coupon_terms = ("", 0)
        self.notice = None
        self.quote_failure = None
        self.receipt_id = None
        self.quote_token += 1
        self.request(ops.new_receipt)
        self.say("")
        self.render_all()
        self.keys_changed()

    # ------------------------------------------------------------------ input
    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter. Only an empty Enter answers a question (drop the cheque, commit it, start
        the next one); anything typed closes the question and is taken as the entry it is."""
        event.stop()
        entry_box = event.input
        value = event.value.strip()
        entry_box.value = ""
        self.set_selected(None)
        if self.discard_asked:
            self.discard_asked = False
            if not value:
                self.reset()
                return
        if self.stage == "done":
            self.reset()  # the next cheque, starting with what was typed
            if value:
                self.handle_entry(value, "typed")
            return
        if self.stage == "confirm":
            if value:  # not a yes: one more entry on the cheque, asked again later
                self.stage = "entry"
                self.render_all()
                self.handle_entry(value, "typed")
                return
            draft = self.draft()
            if draft is not None and self.quote is not None:
                self.say_t("co.confirm_title")
                self.request(ops.commit, draft)
            return
        if self.awaiting_coupon:
            self.awaiting_coupon = False
            if not value:
                self.say("")
            elif parse_entry(value).kind in ("coupon", "invalid"):
                self.take_coupon(value)  # refused with what is wrong with it, if it is
            else:  # a SKU, a phone, =total: the prompt is closed, the entry taken as it is
                self.handle_entry(value, "typed")
            return
        self.handle_entry(value, "typed")

    def take_coupon(self, text: str) -> None:
        """A coupon typed or scanned: with a member the quote applies or refuses it; with
        none yet its signature and dates are read now and it waits for the member."""
        self.awaiting_coupon = False
        self.coupon = text
        self.coupon_terms = ("", 0)
        if self.card is None:
            self.request(ops.read_coupon, text)
        self.requote()

    def cheque_kop(self) -> int:
        """The lines so far (kopecks), for the ceiling check of the next line."""
        return sum(line.amount_kop for line in self.lines)

    def handle_entry(self, value: str, source: str) -> None:
        """One entry (typed or scanned). It replaces whatever the message line said: its
        own answer (or the quote's hint) follows, an old error never stays under it."""
        entry = parse_entry(value)
        self.say("")
        self.notice = None
        if entry.kind == "empty":
            self.accept()
        elif entry.kind == "identify":
            self.request(ops.identify, entry.text, source)
        elif entry.kind == "coupon":
            self.take_coupon(entry.text)
        elif entry.kind == "sku":
            self.request(
                ops.catalog_item,
                entry.text,
                entry.qty,
                entry.sale,
                self.cheque_kop(),
                len(self.lines) + 1,
            )
        elif entry.kind == "line":
            assert entry.category is not None
            self.request(
                ops.free_line,
                entry.text,
                entry.category,
                entry.amount_kop,
                entry.qty,
                entry.sale,
                self.cheque_kop(),
                len(self.lines) + 1,
            )
        elif entry.kind == "total":
            self.request(
                ops.total_line,
                entry.amount_kop,
                entry.category,
                self.cheque_kop(),
                len(self.lines) + 1,
            )
        elif entry.kind == "redeem":
            if self.card is None:  # points belong to a member: nothing to spend yet
                self.say_t("co.member_first", error=True)
                return
            self.redeem = entry.points
            self.requote()
        elif entry.kind == "bad_qty":
            self.say_t("co.bad_qty", error=True, text=entry.text, most=MAX_QTY)
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
        elif self.quote_failure is not None:  # the quote was refused: say why again
            failure = self.quote_failure
            self.say(lambda: self.failure_text(failure), error=True)
        else:  # the quote is on its way: Enter is not lost without a word
            self.say_t("co.quoting")

    def on_scanned(self, message: Scanned) -> None:
        self.discard_asked = False  # a scan carries on with the cheque
        self.awaiting_coupon = False  # and answers F7's prompt, whatever it scanned
        self.set_selected(None)
        if self.stage == "done":
            self.reset()
        elif self.stage == "confirm":  # a scan is no yes: the cheque goes on
            self.stage = "entry"
            self.render_all()
        if message.text.upper().startswith("KC1:"):
            self.take_coupon(message.text)  # the scan answers the F7 prompt
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
        if message.source == "refresh":  # the balance after a commit, or a refund on F3
            if self.card is not None and self.card.member_id == message.card.member_id:
                how = self.card.identified_by
                card = message.card if not how else replace(message.card, identified_by=how)
                # the typed phone's mask stays: the store's has no digit (agent.phonehash)
                card = replace(card, phone_masked=self.card.phone_masked)
                changed = card != self.card
                self.card = card
                if changed and self.stage != "done":
                    self.requote()  # what may be spent moved with the balance
                else:
                    self.render_all()
            return
        if self.card is None or self.card.member_id != message.card.member_id:
            self.redeem = 0  # points chosen for one member are never spent from another's
        self.card = message.card
        if message.source in ("registration", "phone"):  # opened from F2 (tui.screens.register)
            self.card = replace(message.card, identified_by=message.source)
        self.say("")
        self.requote()

    def on_catalog_item_found(self, m: CatalogItemFound) -> None:
        if self.stage == "done":  # typed while the last cheque was committing: the next one
            self.reset()
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

    def on_coupon_read(self, message: CouponRead) -> None:
        if message.text != self.coupon:
            return  # another coupon came since
        self.coupon_terms = (message.kind, message.value)
        if self.card is None:
            kind, value = message.kind, message.value
            self.say(lambda: self.t("co.coupon_waits", coupon=coupon_label(self.lang, kind, value)))
        self.render_all()

    def on_quote_ready(self, message: QuoteReady) -> None:
        if message.token != self.quote_token:
            return  # an older quote; a newer one is on its way
        self.quote = message.quote
        self.quote_msg = message
        if self.refusal is not None:
            refusal = self.refusal
            self.say(lambda: self.failure_text(refusal), error=True)
            self.refusal = None
        elif self.notice is not None:
            self.say(self.notice)
            self.notice = None
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
        self.keys_changed()  # F12: a copy of this slip
        if self.card is not None:
            self.request(ops.member_card, self.card.member_id)

    def action_reprint(self) -> None:
        """F12 with the committed cheque's slip on screen: queue a copy of it («КОПИЯ»),
        e.g. when the paper jammed or the member asks for another."""
        done = self.committed
        if self.stage != "done" or done is None:
            self.app.bell()
            return
        self.request(ops.reprint, done.result.print_job_id, done.result.receipt_id)

    def on_slip_reprinted(self, message: SlipReprinted) -> None:
        self.say(lambda: f"{self.t('co.reprinted', r=message.receipt_id)}. {self.t('co.next')}")

    def on_core_failed(self, message: CoreFailed) -> None:
        original = message
        if message.op_name == "read_coupon":
            message = coupon_refusal(message)
            self.coupon, self.coupon_terms = None, ("", 0)
            self.render_all()
        elif message.op_name == "quote":
            # A refused coupon or points amount is dropped and the cheque quoted again
            # without it; any other refusal just shows (no retry loop).
            changed = False
            if (
                self.coupon is not None and message.code in ("bad_coupon", "bad_token")
            ) or message.code.startswith("token_"):
                message = coupon_refusal(message)
                self.coupon, self.coupon_terms, changed = None, ("", 0), True
            elif self.redeem != 0 and message.code.startswith("redemption"):
                self.redeem, changed = 0, True
            if changed:
                self.refusal = message
                self.requote()
            else:
                self.quote_failure = message
        elif message.op_name == "commit":
            self.stage = "entry"
            self.render_all()
        super().on_core_failed(message)
        # Textual would call the base handler too, with the refusal as it came (a coupon
        # headed as a refused QR): this one has said it.
        original.prevent_default()

    # ------------------------------------------------------------------ actions
    def close_prompt(self) -> None:
        """Another key after F8's question: the question is closed (its empty Enter would
        otherwise still drop the cheque under the new prompt)."""
        self.discard_asked = False

    def action_toggle_redeem(self) -> None:
        self.close_prompt()
        if self.stage == "done":  # the spend choice belongs to the next cheque's member
            self.say(lambda: self.t("co.next"), error=True)
            return
        if self.card is None:
            self.say_t("co.member_first", error=True)
            return
        self.redeem = 0 if self.redeem != 0 else "max"
        self.requote()

    def action_coupon(self) -> None:
        self.close_prompt()
        if self.stage == "done":
            self.reset()  # the coupon opens the next cheque
        self.awaiting_coupon = True
        self.say_t("co.coupon_prompt")
        self.focus_entry()

    def action_new_cheque(self) -> None:
        """F8: a new cheque; one in progress (lines or a member) is dropped only after F8
        again or Enter (Esc keeps it)."""
        self.focus_entry()
        self.set_selected(None)
        if self.open_work() is not None and not self.discard_asked:
            self.discard_asked = True
            self.say_t("co.discard_ask", error=True)
            return
        self.reset()

    def open_work(self) -> str | None:
        """What leaving now would throw away (an i18n key), or None: the app's quit asks
        first when a screen has some (``tui.app``)."""
        if self.stage != "done" and (self.lines or self.card is not None):
            return "quit.what.cheque"
        return None

    def action_back(self) -> None:
        """Esc: step back (keep the cheque F8 asked about; unselect the line; confirm ->
        quote), else forget the member (the lines stay)."""
        self.focus_entry()
        if self.discard_asked:
            self.discard_asked = False
            self.say_t("co.discard_kept")
        elif self.selected is not None:
            self.set_selected(None)
            self.say("")
        elif self.stage == "confirm":
            self.stage = "entry"
            self.say_t("co.accept")
            self.render_all()
        elif self.awaiting_coupon:
            self.awaiting_coupon = False
            self.say("")
        else:
            self.card = None
            self.redeem = 0  # the points chosen were that member's
            self.requote()

    # ------------------------------------------------------------------ lines
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Del voids only a selected line with nothing typed (else it edits the entry);
        Up/Down select only while there are lines to pick."""
        if action == "void_line":
            typed = self.query_one("#entry", Input).value
            return self.selected is not None and not typed and self.stage != "done"
        if action == "select_line":
            return bool(self.lines) and self.stage != "done"
        if action == "reprint":
            return self.stage == "done" and self.committed is not None
        return True

    def set_selected(self, index: int | None) -> None:
        """Select the 0-based line ``index`` (None: no line); the key bar follows."""
        if index == self.selected:
            return
        self.selected = index
        self.render_all()
        self.keys_changed()

    def keys_changed(self) -> None:
        """The keys on offer changed (``check_action``): the key bar follows."""
        self.refresh_bindings()
        for keys in self.query(KeyBar):
            keys.refresh_keys()

    def action_select_line(self, step: int) -> None:
        """Up/Down: Up from the entry picks the last line, Down the first; Down past the
        last line goes back to the entry."""
        self.close_prompt()
        n = len(self.lines)
        if self.selected is None:
            index: int | None = n - 1 if step < 0 else 0
        else:
            index = max(0, self.selected + step)
            if index >= n:
                index = None
        self.set_selected(index)
        if index is None:
            self.say("")
        else:
            self.say_t("co.line_selected", n=index + 1)

    def action_void_line(self) -> None:
        """Del: the selected line leaves the cheque; the others are numbered again and the
        cheque is quoted anew (the message says which line went)."""
        index = self.selected
        if index is None or index >= len(self.lines):
            return
        gone = self.lines[index]
        rest = self.lines[:index] + self.lines[index + 1 :]
        self.lines = [replace(line, line_no=n) for n, line in enumerate(rest, start=1)]
        self.set_selected(None)
        self.notice = lambda: self.t("co.line_voided", n=index + 1, name=gone.name)
        self.say(self.notice)
        self.requote()

    def action_scroll_cheque(self, pages: int) -> None:
        """PageUp/PageDown: scroll the cheque or the slip preview (the focus stays)."""
        box = self.query_one("#cheque-box", VerticalScroll)
        if self.stage == "done":  # the slip: a page that crosses the QR stops at it
            scroll_slip(box, pages)
        elif pages < 0:
            box.scroll_page_up(animate=False)
        else:
            box.scroll_page_down(animate=False)

    # ------------------------------------------------------------------ focus
    def focus_entry(self) -> None:
        entry = self.query_one("#entry", Input)
        if self.focused is not entry:
            entry.focus()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        """Nothing but the entry line keeps the focus here (Tab, a click, a screen's
        leftovers): typing always lands in it."""
        if event.widget.id != "entry":
            self.call_after_refresh(self.focus_entry)

    async def on_key(self, event: events.Key) -> None:
        """A key that reached the screen with no focus on the entry (focus cleared): give
        it to the entry line as if it had the focus."""
        entry = self.query_one("#entry", Input)
        if self.focused is entry:
            return
        entry.focus()
        if event.is_printable and event.character is not None:
            event.stop()
            entry.insert_text_at_cursor(event.character)
        elif event.key == "backspace":
            event.stop()
            entry.action_delete_left()
        elif event.key == "enter":
            event.stop()
            await entry.action_submit()

    def on_screen_resume(self) -> None:
        """Back from another screen: the keyboard is the entry's again, an old message does
        not come back over the cheque, and the member's balance is read again (a refund
        or a registration there may have moved it). ``KassaScreen``'s handler runs too."""
        self.focus_entry()
        if self.stage == "done":
            return
        if self.stage == "confirm":
            self.say(lambda: f"{self.t('co.confirm_title')} {self.t('co.confirm_hint')}")
        elif self.quote is not None:
            self.say_t("co.accept")
        else:
            self.say("")
        if self.card is not None:
            self.request(ops.member_card, self.card.member_id)

    def relabel(self) -> None:
        self.query_one("#card", MemberCardView).border_title = self._card_title()
        self.query_one("#entry", Input).placeholder = self.t("co.entry")
        self.render_all()
        super().relabel()


def coupon_refusal(message: CoreFailed) -> CoreFailed:
    """A coupon's refusal headed as one («Купон не принят»), not as a refused app QR: the
    token checks are shared by both kinds of code, their reason says what was wrong."""
    return CoreFailed(
        message.op_name,
        message.code,
        t("ru", "co.coupon_refused"),
        message.message_ru,
        message.message_en,
        t("en", "co.coupon_refused"),
        dict(message.details),
    )

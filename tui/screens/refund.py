"""Refund (F3): find the purchase, pick the lines, see what the points will do, confirm.

Finding: type the cheque number as printed on the slip («Чек …»): whole, or only its
short number after the till's id (``7`` or ``000007``), or its last characters (several
recent cheques ending the same way are listed to pick from; ``agent.receipts``); or scan
the slip's QR or the member's card/app (the slip's QR carries the member code): a
member's recent cheques on this till are listed. Pick with the arrows and Enter; the
entry line keeps the typing all along (a new number typed there is a new search).

Picking: the entry line takes ``2`` (all that is left of line 2), ``2*1`` (one unit of
line 2), ``*`` (everything left), ``-2`` (drop line 2). After each change the core's
refund is run dry (the till service's ``refund_preview``: the same ledger function, nothing
written) and the screen shows the accrual reversed and the spent points returned. F12
refunds (``Agent.refund``, idempotent by the refund id made when the cheque was picked);
the slip is queued on the same print path as a sale and shown as a preview.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar, Literal

from rich.table import Table
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from agent.errors import InputError
from agent.results import Cheque, HistoryEntry, RefundOutcome, RefundResult
from tui.i18n import money, points, register_strings
from tui.messages import Scanned
from tui.screens.base import KassaScreen
from tui.services import Services
from tui.widgets.slip import hide_slip, scroll_slip, show_slip, slip_preview

register_strings(
    {
        "refund.drop_ask": (
            "Бросить выбранные строки возврата? Enter — да, Esc — нет",
            "Drop the lines chosen for this refund? Enter - yes, Esc - no",
        ),
        "refund.confirm_ask": (
            "Провести возврат? Enter или F12 — да, Esc — нет",
            "Make the refund? Enter or F12 - yes, Esc - no",
        ),
        "refund.confirm_kept": (
            "Возврат не проведён: строки на месте",
            "No refund made: the lines are kept",
        ),
        "refund.drop_kept": (
            "Строки возврата на месте",
            "The refund's lines are kept",
        ),
        "refund.title": ("Возврат", "Refund"),
        "refund.find": (
            "Номер чека (или последние цифры), скан слипа или карты участника",
            "Cheque number (or its last digits), scan of the slip or member card",
        ),
        "refund.help.1": (
            "Номер чека: целиком, короткий (7, 000007) или последние цифры; Enter",
            "Cheque number: whole, short (7, 000007) or last digits; Enter",
        ),
        "refund.help.scan": (
            "Или скан слипа или карты: чеки участника на этой кассе, ↑↓ Enter",
            "Or scan the slip or card: the member's cheques here, ↑↓ Enter",
        ),
        "refund.help.3": (
            "F12 или Enter на пустой строке — провести возврат; Esc — назад",
            "F12 or Enter on an empty line: make the refund; Esc: back",
        ),
        "refund.pick_cheque": (
            "Чеки участника на этой кассе — выберите (↑↓ Enter)",
            "The member's cheques on this till: pick one (↑↓ Enter)",
        ),
        "refund.matched": (
            "Несколько чеков оканчиваются на «{text}» — выберите (↑↓ Enter)",
            "Several cheques end with «{text}»: pick one (↑↓ Enter)",
        ),
        "refund.busy": (
            "Сначала проведите этот возврат (F12) или отмените его (Esc)",
            "Finish this refund first (F12) or cancel it (Esc)",
        ),
        "refund.no_cheques": (
            "У участника нет чеков на этой кассе",
            "The member has no cheques on this till",
        ),
        "refund.entry": (
            "2 — вся строка 2, 2*1 — 1 шт., * — всё, -2 — убрать",
            "2: all of line 2, 2*1: one unit, *: everything, -2: drop",
        ),
        "refund.lines": ("Строки чека {r}", "Cheque {r} lines"),
        "refund.col.line": ("№", "#"),
        "refund.col.name": ("Товар", "Item"),
        "refund.col.bought": ("Куплено", "Bought"),
        "refund.col.back": ("Возвр.", "Back"),
        "refund.col.sum": ("Сумма", "Amount"),
        "refund.was": ("(уже {n})", "(done {n})"),
        "refund.amount": ("Возврат на сумму", "Refund amount"),
        "refund.reversed": ("Начисление отменяется", "Accrual reversed"),
        "refund.returned": ("Бонусы вернутся", "Points returned"),
        "refund.balance": ("Баланс: {a} → {b}", "Balance: {a} → {b}"),
        "refund.debt": ("Задолженность после: {p}", "Debt after: {p}"),
        "refund.none": ("Выберите строки для возврата", "Pick lines to refund"),
        "refund.confirm_hint": (
            "F12 или Enter — провести возврат",
            "F12 or Enter: make the refund",
        ),
        "refund.done": ("Возврат {r} проведён", "Refund {r} done"),
        "refund.next": ("Enter — новый возврат", "Enter: next refund"),
        "refund.bad_entry": ("Не понял «{text}»", "Cannot read «{text}»"),
        "refund.nothing_left": (
            "По чеку {r} всё уже возвращено",
            "Everything on cheque {r} is already refunded",
        ),
        "refund.member": ("Участник {m}", "Member {m}"),
        "bind.refund_confirm": ("Провести возврат", "Make refund"),
    }
)

Stage = Literal["find", "pick", "lines", "done"]


# ---------------------------------------------------------------------- messages
@dataclass
class ChequeFound(Message):
    cheque: Cheque


@dataclass
class MemberCheques(Message):
    member_label: str
    entries: list[HistoryEntry]


@dataclass
class ChequesMatched(Message):
    """Several cheques of this till end with what was typed: the cashier picks one."""

    text: str
    entries: list[HistoryEntry]


@dataclass
class RefundPreviewed(Message):
    request: dict[int, int]
    result: RefundResult
    token: int


@dataclass
class RefundMade(Message):
    outcome: RefundOutcome
    slip_text: str


# ---------------------------------------------------------------------- ops (workers)
def find_cheque(s: Services, text: str) -> ChequeFound | MemberCheques | ChequesMatched:
    """A cheque of this till by its number (whole, short or last characters: one found, or
    several to pick from), or a member (code, card/slip/app scan, phone): their purchases
    on this till to pick from."""
    found = s.agent.find_cheque(text)
    if found.cheque is not None:
        return ChequeFound(found.cheque)
    if found.member_label is not None:
        return MemberCheques(found.member_label, found.entries)
    return ChequesMatched(text.strip(), found.entries)


def load_cheque(s: Services, receipt_id: str) -> ChequeFound:
    return ChequeFound(s.agent.cheque(receipt_id))


def preview_refund(
    s: Services, receipt_id: str, request: dict[int, int], token: int
) -> RefundPreviewed:
    result = s.agent.refund_preview(receipt_id, request)
    return RefundPreviewed(dict(request), result, token)


def make_refund(
    s: Services, refund_id: str, receipt_id: str, request: dict[int, int]
) -> RefundMade:
    """The refund (idempotent by ``refund_id``), then wake the printer; the slip text is
    the preview of the job just queued."""
    if s.shift is None:
        raise InputError("no shift is open", "смена не открыта: войдите в систему")
    outcome, slip = s.agent.refund_with_slip(
        refund_id,
        receipt_id,
        request,
        cashier_id=s.cashier.cashier_id if s.cashier else None,
        shift_id=s.shift.shift_id,
    )
    s.notify_printer()
    return RefundMade(outcome, slip_preview(s, slip))


_ENTRY = re.compile(r"^\s*(-)?\s*(\d+)\s*(?:[*xх×]\s*(\d+))?\s*$", re.IGNORECASE)


def apply_entry(entry: str, cheque: Cheque, chosen: dict[int, int]) -> dict[int, int] | None:
    """The selection after one entry (pure); None when the entry is not understood.
    Quantities are not checked against what is left here: the core's dry run does that
    and names the line."""
    text = entry.strip()
    if text == "*":
        return {ln.line_no: ln.left for ln in cheque.lines if ln.left > 0}
    m = _ENTRY.match(text)
    if m is None:
        return None
    line_no = int(m.group(2))
    out = dict(chosen)
    if m.group(1):
        out.pop(line_no, None)
        return out
    line = next((ln for ln in cheque.lines if ln.line_no == line_no), None)
    qty = int(m.group(3)) if m.group(3) else (line.left if line else 1)
    if qty == 0:
        out.pop(line_no, None)
    else:
        out[line_no] = qty
    return out


# ---------------------------------------------------------------------- screen
class RefundScreen(KassaScreen):
    DEFAULT_CSS = """
    #refund-box { height: 1fr; }
    #refund-cheques { height: auto; max-height: 12; border: none; }
    """
    HELP_LINES: ClassVar[tuple[str, ...]] = (
        "refund.help.1",
        "refund.help.scan",
        "help.refund.2",
        "refund.help.3",
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f12", "confirm", "bind.refund_confirm", id="refund_confirm"),
        Binding("up", "pick(-1)", show=False),
        Binding("down", "pick(1)", show=False),
        Binding("pageup", "scroll_box(-1)", show=False),  # the slip preview; the focus stays
        Binding("pagedown", "scroll_box(1)", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._stage: Stage = "find"
        self.cheque: Cheque | None = None
        self.chosen: dict[int, int] = {}
        self.preview: RefundResult | None = None
        self.token = 0
        self.refund_id = ""
        self.made: RefundMade | None = None
        self.drop_asked = False
        """Esc asked whether to drop the chosen lines: an empty Enter drops them; Esc or
        any typed entry keeps them (and a typed entry is taken as what it is)."""
        self.confirm_asked = False
        """An empty Enter asked whether to make the refund (as the checkout asks before a
        commit): a second Enter or F12 makes it; Esc or a typed entry does not."""
        self.member_label = ""
        self.entries: list[HistoryEntry] = []
        self._pick_key, self._pick_text = "refund.pick_cheque", ""

    @property
    def stage(self) -> Stage:
        return self._stage

    @stage.setter
    def stage(self, stage: Stage) -> None:
        """Where the flow is; the key bar follows (F12 is offered only with lines to pick)."""
        self._stage = stage
        if self.is_mounted:
            self.refresh_bindings()
            self.refresh_chrome()  # the key bar reads the bindings enabled now

    def action_scroll_box(self, pages: int) -> None:
        scroll_slip(self.query_one("#refund-box", VerticalScroll), pages)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "confirm" and self._stage != "lines":
            return None
        return True

    def compose_body(self) -> Iterable[Widget]:
        with VerticalScroll(id="refund-box", classes="panel") as box:
            box.border_title = self.t("refund.title")
            cheques = OptionList(id="refund-cheques")
            cheques.can_focus = False  # the arrows move it from the entry line (``action_pick``)
            yield cheques
            yield Static("", id="refund-body")
        # Focus coming back (``on_key``) must not select the text: the next key would
        # replace what was typed.
        yield Input(placeholder=self.t("refund.find"), id="refund-entry", select_on_focus=False)

    def on_mount(self) -> None:
        self.query_one("#refund-cheques", OptionList).display = False
        self.query_one("#refund-entry", Input).focus()
        self.render_all()

    # ------------------------------------------------------------------ rendering
    def render_all(self) -> None:
        box = self.query_one("#refund-box", VerticalScroll)
        body = self.query_one("#refund-body", Static)
        entry = self.query_one("#refund-entry", Input)
        entry.placeholder = self.t("refund.entry" if self.stage == "lines" else "refund.find")
        box.border_title = self.t("refund.title")
        hide_slip(box)
        if self.stage == "done" and self.made is not None:
            show_slip(box, body, self.made.slip_text, self.lang)
        elif self.stage == "lines" and self.cheque is not None:
            box.border_title = self.t("refund.lines", r=self.cheque.receipt_id)
            body.update(self._lines_view(self.cheque))
        elif self.stage == "pick" and self.member_label:
            body.update(Text(self.t("refund.member", m=self.member_label), style="dim"))
        else:
            body.update("")

    def _lines_view(self, cheque: Cheque) -> Table:
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(justify="right", no_wrap=True)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column(justify="right", no_wrap=True)
        table.add_column(justify="right", no_wrap=True, style="bold yellow")
        table.add_column(justify="right", no_wrap=True)
        table.add_row(
            *(
                Text(self.t(k), style="dim")
                for k in (
                    "refund.col.line",
                    "refund.col.name",
                    "refund.col.bought",
                    "refund.col.back",
                    "refund.col.sum",
                )
            )
        )
        for ln in cheque.lines:
            bought = str(ln.qty)
            if ln.refunded:
                bought += " " + self.t("refund.was", n=ln.refunded)
            back = self.chosen.get(ln.line_no, 0)
            table.add_row(
                str(ln.line_no),
                ln.name,
                bought,
                str(back) if back else "",
                money(self.lang, ln.payable_kop),
            )
        table.add_row("", "", "", "", "")
        p = self.preview
        if p is None or not self.chosen:
            table.add_row("", Text(self.t("refund.none"), style="dim"), "", "", "")
            return table
        lang = self.lang
        table.add_row(
            "", Text(self.t("refund.amount"), style="bold"), "", "", money(self.lang, p.amount_kop)
        )
        reversed_ = p.earn_reversed + p.bonus_reversed
        table.add_row(
            "", self.t("refund.reversed"), "", "", Text(f"-{points(lang, reversed_)}", "red")
        )
        table.add_row(
            "",
            self.t("refund.returned"),
            "",
            "",
            Text(f"+{points(lang, p.points_returned)}", "green"),
        )
        balance = self.t(
            "refund.balance", a=points(lang, p.balance_before), b=points(lang, p.balance_after)
        )
        table.add_row("", Text(balance, style="bold"), "", "", "")
        if p.debt_after:
            table.add_row("", Text(self.t("refund.debt", p=points(lang, p.debt_after)), "yellow"))
        return table

    # ------------------------------------------------------------------ input
    def on_key(self, event: events.Key) -> None:
        """Typing always reaches the entry line: a character typed while the focus is
        elsewhere (a Tab to the panel) moves the focus back and is kept."""
        entry = self.query_one("#refund-entry", Input)
        if self.focused is entry or not event.is_printable or not event.character:
            return
        event.stop()
        event.prevent_default()
        entry.focus()
        entry.insert_text_at_cursor(event.character)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value
        event.input.value = ""
        if self.drop_asked:
            self.drop_asked = False
            if not value.strip():  # Enter at the question: yes, the lines go
                self.reset()
                return
        asked, self.confirm_asked = self.confirm_asked, False
        if self.stage == "done":  # Enter: the next refund; a typed number: its search
            self.reset()
            if value.strip():
                self.request(find_cheque, value)
            return
        if self.stage == "pick" and not value.strip():
            self._pick_highlighted()
            return
        if self.stage == "lines" and self.cheque is not None:
            if not value.strip():
                if asked or not self.chosen or self.preview is None:
                    self.action_confirm()  # yes; or it says what is missing
                else:
                    self.confirm_asked = True
                    self.say_t("refund.confirm_ask", error=True)
                return
            chosen = apply_entry(value, self.cheque, self.chosen)
            if chosen is None:
                self.say_t("refund.bad_entry", text=value, error=True)
                return
            self.requote(chosen)
            return
        self.request(find_cheque, value)

    def on_scanned(self, message: Scanned) -> None:
        if self.stage == "lines" and self.chosen:  # never drop a chosen refund unasked
            self.say_t("refund.busy", error=True)
            return
        self.reset()
        self.request(find_cheque, message.text)

    def _pick_highlighted(self) -> None:
        options = self.query_one("#refund-cheques", OptionList)
        index = options.highlighted
        if index is None:
            self.say(lambda: self.t(self._pick_key, text=self._pick_text))
            return
        option_id = options.get_option_at_index(index).id
        if option_id:
            self.request(load_cheque, option_id)

    def action_pick(self, step: int) -> None:
        """Up/Down: move through the listed cheques (the entry line keeps the focus)."""
        options = self.query_one("#refund-cheques", OptionList)
        if self.stage != "pick" or not options.option_count:
            return
        index = options.highlighted
        index = 0 if index is None else min(max(index + step, 0), options.option_count - 1)
        options.highlighted = index

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.request(load_cheque, event.option.id)

    def requote(self, chosen: dict[int, int]) -> None:
        """Ask the core for a dry run of ``chosen``; the selection changes only when the
        core accepts it (a refund of more than was bought is refused, nothing kept)."""
        assert self.cheque is not None
        self.token += 1
        if not chosen:
            self.chosen, self.preview = {}, None
            self.render_all()
            return
        self.request(preview_refund, self.cheque.receipt_id, chosen, self.token)

    # ------------------------------------------------------------------ answers
    def on_member_cheques(self, message: MemberCheques) -> None:
        self.member_label = message.member_label
        self._list(message.entries, "refund.pick_cheque", "")

    def on_cheques_matched(self, message: ChequesMatched) -> None:
        self.member_label = ""
        self._list(message.entries, "refund.matched", message.text)

    def _list(self, entries: list[HistoryEntry], key: str, text: str) -> None:
        """Show ``entries`` to pick from, under the message ``key`` (with ``text``)."""
        self.entries = entries
        self._pick_key, self._pick_text = key, text
        options = self.query_one("#refund-cheques", OptionList)
        options.clear_options()
        if not entries:
            options.display = False
            self.stage = "find"
            self.say_t("refund.no_cheques", error=True)
            self.render_all()
            return
        self._fill_cheques(0)
        options.display = True
        self.query_one("#refund-entry", Input).focus()
        self.stage = "pick"
        self.say_t(key, text=text)
        self.render_all()

    def _fill_cheques(self, highlighted: int | None) -> None:
        """The member's cheques as options (amounts in the current language)."""
        options = self.query_one("#refund-cheques", OptionList)
        options.clear_options()
        for e in self.entries:
            amount = money(self.lang, e.amount_kop)
            label = f"{e.receipt_id}  {e.at.strftime('%d.%m %H:%M')}  {amount}"
            options.add_option(Option(label, id=e.receipt_id))
        options.highlighted = highlighted

    def on_cheque_found(self, message: ChequeFound) -> None:
        cheque = message.cheque
        self.query_one("#refund-cheques", OptionList).display = False
        if not cheque.refundable:
            self.say_t("refund.nothing_left", r=cheque.receipt_id, error=True)
            self.stage = "find"
            self.render_all()
            self.query_one("#refund-entry", Input).focus()
            return
        self.cheque = cheque
        self.chosen, self.preview = {}, None
        self.refund_id = f"RF-{cheque.receipt_id}-{uuid.uuid4().hex[:8]}"
        self.stage = "lines"
        self.say_t("refund.member", m=cheque.member_label)
        self.render_all()
        self.query_one("#refund-entry", Input).focus()

    def on_refund_previewed(self, message: RefundPreviewed) -> None:
        if message.token != self.token:
            return
        self.chosen = message.request
        self.preview = message.result
        self.say_t("refund.confirm_hint")
        self.render_all()

    def on_refund_made(self, message: RefundMade) -> None:
        self.made = message
        self.stage = "done"
        rid = message.outcome.refund_id
        self.say(lambda: f"{self.t('refund.done', r=rid)}. {self.t('refund.next')}")
        self.render_all()

    # ------------------------------------------------------------------ actions
    def action_confirm(self) -> None:
        self.drop_asked = self.confirm_asked = False
        if self.stage != "lines" or self.cheque is None:
            return
        if not self.chosen or self.preview is None:
            self.say_t("refund.none", error=True)
            return
        self.request(make_refund, self.refund_id, self.cheque.receipt_id, dict(self.chosen))

    def reset(self) -> None:
        self.stage = "find"
        self.cheque, self.chosen, self.preview, self.made = None, {}, None, None
        self.refund_id = ""
        self.query_one("#refund-cheques", OptionList).display = False
        self.query_one("#refund-entry", Input).focus()
        self.say("")
        self.render_all()

    def action_back(self) -> None:
        """Esc: from the lines back to finding a cheque (asking first when lines are
        chosen: Esc again drops them); from finding, leave the flow."""
        if self.confirm_asked:  # Esc at "make the refund?": no, the lines stay
            self.confirm_asked = False
            self.say_t("refund.confirm_kept")
            return
        if self.drop_asked:  # Esc at "drop the lines?": no
            self.drop_asked = False
            self.say_t("refund.drop_kept")
            return
        if self.stage == "lines" and self.chosen:
            self.drop_asked = True
            self.say_t("refund.drop_ask", error=True)
            return
        if self.stage in ("lines", "pick"):
            self.reset()
        else:
            super().action_back()

    def relabel(self) -> None:
        super().relabel()
        if self.stage == "pick":
            self._fill_cheques(self.query_one("#refund-cheques", OptionList).highlighted)
        self.render_all()

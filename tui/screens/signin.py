"""Sign-in: the cashier picks their name and types the PIN; the shift opens (or resumes).

Enter on a name, or the PIN's first digit, moves to the PIN; Enter on the PIN asks the
core (``ops.sign_in``). On ``ShiftOpened`` the App switches to checkout.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui import ops_shift as ops
from tui.messages import CashiersListed, CoreFailed, ShiftOpened
from tui.screens.base import KassaScreen


class SignInScreen(KassaScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "bind.back", show=False),
    ]

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(id="signin", classes="panel") as box:
            box.border_title = self.t("signin.title")
            yield Label(self.t("signin.pick"), id="signin-hint")
            yield OptionList(id="cashiers")
            yield Input(
                placeholder=self.t("signin.pin"),
                password=True,
                id="pin",
                max_length=8,
                select_on_focus=False,
            )
        if self.kassa.hints:
            text = Text("\n".join(self.kassa.hints), overflow="fold")
            hints = Static(text, id="hints", classes="panel")
            hints.border_title = "Демо / Demo"
            yield hints

    def on_mount(self) -> None:
        self.request(ops.list_cashiers)

    def on_cashiers_listed(self, message: CashiersListed) -> None:
        options = self.query_one("#cashiers", OptionList)
        options.clear_options()
        options.add_options(Option(c.name, id=c.cashier_id) for c in message.cashiers)
        if message.cashiers:
            options.highlighted = 0
            options.focus()
        else:
            self.say(self.t("signin.no_cashiers"), error=True)

    def on_key(self, event: events.Key) -> None:
        """A digit typed on the name list starts the PIN (the highlighted name is taken)."""
        if (
            event.character is not None
            and event.character.isdigit()
            and isinstance(self.focused, OptionList)
        ):
            pin = self.query_one("#pin", Input)
            pin.focus()
            pin.insert_text_at_cursor(event.character)
            event.stop()
            event.prevent_default()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#pin", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one("#cashiers", OptionList)
        idx = options.highlighted
        if idx is None:
            self.say(self.t("signin.pick_first"), error=True)
            return
        cashier_id = options.get_option_at_index(idx).id
        assert cashier_id is not None
        self.say(self.t("signin.checking"))
        self.request(ops.sign_in, cashier_id, event.value)

    def on_core_failed(self, message: CoreFailed) -> None:
        pin = self.query_one("#pin", Input)
        pin.value = ""
        pin.focus()
        super().on_core_failed(message)

    def on_shift_opened(self, message: ShiftOpened) -> None:
        self.query_one("#pin", Input).value = ""
        self.say("")
        self.kassa.signed_in(message)

    def action_clear(self) -> None:
        self.query_one("#pin", Input).value = ""
        self.query_one("#cashiers", OptionList).focus()

    def relabel(self) -> None:
        self.query_one("#signin", Vertical).border_title = self.t("signin.title")
        self.query_one("#signin-hint", Label).update(self.t("signin.pick"))
        self.query_one("#pin", Input).placeholder = self.t("signin.pin")
        super().relabel()

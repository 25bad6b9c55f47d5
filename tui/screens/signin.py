"""Sign-in: the cashier picks their name and types the PIN; the shift opens (or resumes).

Enter on a name, or the PIN's first digit, moves to the PIN; Enter on the PIN asks the
core (``ops.sign_in``). On ``ShiftOpened`` the App switches to checkout. A cashier locked
by wrong PINs is marked in the list, and the refusal says what unlocks it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from tui import ops_shift as ops
from tui.i18n import register_strings
from tui.messages import CashiersListed, CoreFailed, Scanned, ShiftOpened
from tui.screens.base import KassaScreen

register_strings(
    {
        # After the heading «PIN заблокирован: » (the core's title), so not said twice.
        "signin.locked_how": (
            "{name}. Другой кассир — ↑↓; разблокирует администратор: "
            "kassa cashier set-pin --id {cashier_id}",
            "{name}. Another cashier: Up/Down (↑↓); the administrator unlocks it: "
            "kassa cashier set-pin --id {cashier_id}",
        ),
        "signin.locked_how_demo": (
            "{name}. Другой кассир — ↑↓; в демо блокировку снимает перезапуск: "
            "Ctrl+Q, затем make demo",
            "{name}. Another cashier: Up/Down (↑↓); in the demo a restart unlocks it: "
            "Ctrl+Q, then make demo",
        ),
        "signin.locked_mark": ("PIN заблокирован", "PIN locked"),
        "bind.clear_pin": ("Стереть PIN", "Clear PIN"),
        "signin.scan_first": (
            "Сначала войдите: выберите себя и введите PIN; сканируйте после входа",
            "Sign in first: pick your name and type your PIN; scan after signing in",
        ),
    }
)


class SignInScreen(KassaScreen):
    HELP_LINES: ClassVar[tuple[str, ...]] = ("help.signin.1", "help.signin.2", "help.signin.3")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear", "bind.clear_pin", show=False),  # nothing to go back to
    ]

    def __init__(self) -> None:
        super().__init__()
        self.names: dict[str, str] = {}  # cashier id -> display name
        self.pending: str | None = None  # the cashier whose PIN is being checked
        self.locked: set[str] = set()  # cashier ids locked by wrong PINs (marked in the list)

    def compose_body(self) -> Iterable[Widget]:
        with Vertical(id="signin", classes="panel") as box:
            box.border_title = self.t("signin.title")
            yield Label(self.t("signin.pick"), id="signin-hint")
            yield OptionList(id="cashiers")
            with Horizontal(id="pin-row"):
                yield Input(
                    placeholder=self.t("signin.pin"),
                    password=True,
                    id="pin",
                    max_length=8,
                    select_on_focus=False,
                )
                # Whose PIN this is, shown while it is typed (the placeholder is gone
                # with the first digit, and a PIN is checked for this cashier only).
                yield Label("", id="pin-for")
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
        self.names = {c.cashier_id: c.name for c in message.cashiers}
        self.locked = {c.cashier_id for c in message.cashiers if c.locked}
        options.add_options(Option(f"  {c.name}", id=c.cashier_id) for c in message.cashiers)
        if message.cashiers:
            options.highlighted = 0
            options.focus()
        else:
            self.say_t("signin.no_cashiers", error=True)

    def on_key(self, event: events.Key) -> None:
        """A digit typed on the name list starts the PIN (the highlighted name is taken);
        Up/Down in the PIN field move along the names (the PIN typed so far is dropped)."""
        if event.key in ("up", "down") and isinstance(self.focused, Input):
            options = self.query_one("#cashiers", OptionList)
            if event.key == "up":
                options.action_cursor_up()
            else:
                options.action_cursor_down()
            self.focused.value = ""
            event.stop()
            event.prevent_default()
        elif (
            event.character is not None
            and event.character.isdigit()
            and isinstance(self.focused, OptionList)
        ):
            pin = self.query_one("#pin", Input)
            pin.focus()
            pin.insert_text_at_cursor(event.character)
            event.stop()
            event.prevent_default()

    def on_scanned(self, message: Scanned) -> None:
        """A card or code scanned before anyone signed in: its digits went into the PIN
        field (a digit on the list starts the PIN), where the next PIN typed would be
        refused and cost a try. They are wiped (after the burst's keys still queued for
        the field) and the cashier is told to sign in first."""
        pin = self.query_one("#pin", Input)

        def wipe() -> None:
            pin.value = ""
            self.query_one("#cashiers", OptionList).focus()

        pin.call_later(wipe)
        self.say_t("signin.scan_first", error=True)

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_whose_pin()

    def _selected_name(self) -> str:
        options = self.query_one("#cashiers", OptionList)
        idx = options.highlighted
        if idx is None:
            return ""
        return self.names.get(options.get_option_at_index(idx).id or "", "")

    def _show_whose_pin(self) -> None:
        """The selected name is marked ▸ (also without colours), a locked one says so, and
        the label beside the PIN field names the selected cashier."""
        options = self.query_one("#cashiers", OptionList)
        for i in range(options.option_count):
            cashier_id = options.get_option_at_index(i).id or ""
            name = self.names.get(cashier_id, "")
            mark = "▸ " if i == options.highlighted else "  "
            if cashier_id in self.locked:
                name += f" — {self.t('signin.locked_mark')}"
            options.replace_option_prompt_at_index(i, mark + name)
        self.query_one("#pin", Input).placeholder = self.t("signin.pin")
        name = self._selected_name()
        label = self.query_one("#pin-for", Label)
        label.update(Text.assemble(self.t("signin.pin_for"), (name, "bold")) if name else "")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#pin", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        options = self.query_one("#cashiers", OptionList)
        idx = options.highlighted
        if idx is None:
            self.say_t("signin.pick_first", error=True)
            return
        cashier_id = options.get_option_at_index(idx).id
        assert cashier_id is not None
        self.say_t("signin.checking")
        self.pending = cashier_id
        self.request(ops.sign_in, cashier_id, event.value)

    def on_core_failed(self, message: CoreFailed) -> None:
        pin = self.query_one("#pin", Input)
        pin.value = ""
        pin.focus()
        who = message.details.get("cashier_id") or self.pending
        name = self.names.get(str(who), "")
        if message.code in ("wrong_pin", "pin_locked") and name:
            # the core's text names the cashier by id; the cashier reads their name
            left = message.details.get("tries_left", "?")
            key = "signin.wrong_pin"
            if message.details.get("locked") or left == 0:
                # No timeout unlocks a PIN (agent.shifts): say what does, mark the list.
                key = "signin.locked_how_demo" if self.kassa.hints else "signin.locked_how"
                self.locked.add(str(who))
                self._show_whose_pin()
            self.say(
                lambda: (
                    f"{message.heading(self.lang)}: "
                    f"{self.t(key, name=name, left=left, cashier_id=who)}"
                ),
                error=True,
            )
            message.prevent_default()  # Textual would call the base's handler as well
            return
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
        self._show_whose_pin()
        super().relabel()

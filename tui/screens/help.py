"""Help (F1 on any screen): the keys that work on the screen underneath and what to do there.

A modal over the screen the cashier was on; Esc or F1 closes it and that screen is exactly
as it was (it is only covered, never rebuilt). The key list is read from the live bindings
of that screen (its focused widget, the screen, the App: what the key bar shows, plus
hidden bindings whose description is an i18n key), so it cannot drift from the key map.
The lines on top are the screen's ``HELP_LINES`` (i18n keys, ``KassaScreen.HELP_LINES``),
or a general text when it has none. F10 switches the language here too.

While help is open:

- a scan (keyboard wedge or serial) closes help and goes to the screen underneath, as if
  help had not been open (the customer at the till is waiting for it);
- a function key or a letter key listed for the screen underneath (F2-F12, P on the
  shift screen, in either layout and case) closes help and does what it does there; other
  keys only scroll the help.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from tui.i18n import STRINGS, t
from tui.keys import key_twins, with_layout_twins
from tui.messages import Scanned
from tui.widgets.keybar import key_label, key_order

if TYPE_CHECKING:
    from tui.app import KassaApp

GENERAL_HELP = ("help.general.1", "help.general.2")
"""The lines for a screen without its own ``HELP_LINES``."""

_OWN_KEYS = frozenset({"escape", "f1", "f10"})
"""Keys help itself answers (close, close, language); the rest of the F-keys pass through."""


def _is_function_key(key: str) -> bool:
    return key.startswith("f") and key[1:].isdigit()


def _passes_through(key: str) -> bool:
    """Keys help hands to the screen underneath: F-keys and letters (help scrolls with
    the arrows and pages, and never takes typing)."""
    return _is_function_key(key) or (len(key) == 1 and key.isalpha())


def help_bindings(screen: Screen[Any]) -> list[ActiveBinding]:
    """The keys that work on ``screen`` now, in key-bar order: enabled, with a description,
    and either shown in the key bar or described by an i18n key (hidden widget internals
    such as the Input's cursor keys are left out)."""
    out = [
        ab
        for ab in screen.active_bindings.values()
        if ab.enabled
        and ab.binding.description
        and (ab.binding.show or ab.binding.description in STRINGS)
    ]
    return sorted(out, key=lambda ab: key_order(ab.binding.key))


def help_text(lang: str, lines: Iterable[str], bindings: Iterable[ActiveBinding]) -> Group:
    """The help body (pure): the screen's lines, a blank line, then key and description."""
    about = Text("\n".join(t(lang, key) for key in lines))
    keys = Table.grid(padding=(0, 2))
    keys.add_column(no_wrap=True, min_width=5, style="reverse bold")
    keys.add_column(ratio=1)
    for ab in bindings:
        keys.add_row(f" {key_label(ab.binding.key)} ", t(lang, ab.binding.description))
    return Group(about, Text(""), keys)


class HelpScreen(ModalScreen[None]):
    """See the module docstring. ``under`` is the screen help was opened over."""

    BINDINGS: ClassVar[list[BindingType]] = with_layout_twins(
        [
            Binding("escape", "close", "bind.close", id="help_close"),
            Binding("f1", "close", "bind.close", id="help_close_f1", show=False),
            # A modal screen hides the App's bindings: the language switch is repeated here.
            Binding("f10", "app.toggle_language", "bind.language", id="help_language"),
        ]
    )

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under
        self.keys: list[ActiveBinding] = help_bindings(under)

    @property
    def kassa(self) -> KassaApp:
        from tui.app import KassaApp

        assert isinstance(self.app, KassaApp)
        return self.app

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(getattr(self.under, "HELP_LINES", ())) or GENERAL_HELP

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box", classes="panel"):
            yield Static(id="help-text")

    def on_mount(self) -> None:
        self.relabel()
        self.query_one("#help-box", VerticalScroll).focus()

    def relabel(self) -> None:
        """Render in the App's current language (called by the App on F10)."""
        lang = self.kassa.lang
        box = self.query_one("#help-box", VerticalScroll)
        box.border_title = t(lang, "bind.help")
        box.border_subtitle = t(lang, "help.close")
        self.query_one("#help-text", Static).update(help_text(lang, self.lines, self.keys))

    def action_close(self) -> None:
        self.dismiss()

    def on_scanned(self, message: Scanned) -> None:
        """A scan is for the screen underneath: close help and hand it on."""
        message.stop()
        self.dismiss()
        self.under.post_message(Scanned(message.text, message.source, message.layout_repaired))

    def on_key(self, event: events.Key) -> None:
        """A function or letter key of the screen underneath: close help, then do what it
        does (a letter in the other layout or case too)."""
        if event.key in _OWN_KEYS or not _passes_through(event.key):
            return
        target = next(
            (
                ab
                for ab in self.keys
                if _passes_through(ab.binding.key)
                and event.key in (ab.binding.key, *key_twins(ab.binding.key))
            ),
            None,
        )
        if target is None:
            return
        event.stop()
        event.prevent_default()
        self.dismiss()
        self.app.call_later(self.app.run_action, target.binding.action, target.node)

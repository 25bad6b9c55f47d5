"""The frame every cashier screen shares: status bar on top, key bar at the bottom, a
message line above it, and helpers to ask the core (``request``) and translate (``t``).

Subclasses implement ``compose_body()`` and, for a language switch, ``relabel()``.
Every letter key in a subclass's ``BINDINGS`` works in both cases and under the Russian
layout too (``tui.keys``): the class does nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Static

from tui.i18n import t
from tui.keys import with_layout_twins
from tui.messages import CoreFailed, CoreRequested
from tui.widgets.keybar import KeyBar
from tui.widgets.status import StatusBar

if TYPE_CHECKING:
    from tui.app import KassaApp


class KassaScreen(Screen[Any]):
    """Base of the app's screens (status bar, body, message line, key bar)."""

    BINDINGS: ClassVar[list[BindingType]] = with_layout_twins(
        [Binding("escape", "back", "bind.back", id="back")]
    )

    HELP_LINES: ClassVar[tuple[str, ...]] = ()
    """i18n keys of the lines F1 help shows above this screen's keys (what to do here);
    empty: a general text (``tui.screens.help``)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A screen's letter keys get their other-case and Russian-layout twins before
        Textual merges the bindings (``p`` also answers ``P``, ``з``, ``З``)."""
        own = cls.__dict__.get("BINDINGS")
        if own is not None:
            cls.BINDINGS = with_layout_twins(own)
        super().__init_subclass__(**kwargs)

    _said: tuple[Callable[[], str], bool] | None = None
    """The message line as a renderer (and its error flag): a language switch calls it
    again, so the line is never left in the other language."""

    @property
    def kassa(self) -> KassaApp:
        from tui.app import KassaApp

        assert isinstance(self.app, KassaApp)
        return self.app

    @property
    def lang(self) -> str:
        return self.kassa.lang

    def t(self, key: str, **fields: object) -> str:
        return t(self.lang, key, **fields)

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        yield from self.compose_body()
        yield Static("", id="say", classes="say")
        yield KeyBar(id="keys")

    def compose_body(self) -> Iterable[Widget]:
        return ()

    def request(self, op: Callable[..., Message], *args: Any) -> None:
        """Ask the App to run ``op(services, *args)`` in a worker; the answer comes back
        to this screen as a message (or ``CoreFailed``)."""
        self.post_message(CoreRequested(op, args, reply_to=self))

    def say(self, text: Callable[[], str] | Literal[""], *, error: bool = False) -> None:
        """One line of feedback for the cashier above the key bar (wrapped onto a second
        line when long); ``""`` clears it.

        The text is given as a function that renders it in the current language
        (``lambda: self.t(key, **fields)``; ``say_t`` is the short form), never as text
        rendered once: ``relabel()`` calls it again after a language switch (F10). The
        type allows no other string, so a message cannot be stored in one language."""
        line = self.query_one("#say", Static)
        line.update(text() if callable(text) else "")
        line.set_class(error, "-error")
        self._said = (text, error) if callable(text) else None

    def say_t(self, key: str, *, error: bool = False, **fields: object) -> None:
        """``say`` an i18n string with its fields."""
        self.say(lambda: self.t(key, **fields), error=error)

    def failure_text(self, message: CoreFailed) -> str:
        """A refusal as the cashier reads it: title and reason."""
        return f"{message.heading(self.lang)}: {message.text(self.lang)}"

    def on_core_failed(self, message: CoreFailed) -> None:
        self.say(lambda: self.failure_text(message), error=True)

    def on_screen_resume(self) -> None:
        self.refresh_chrome()

    def refresh_chrome(self) -> None:
        """Re-read status and bindings (screen resumed, language switched)."""
        for bar in self.query(StatusBar):
            bar.refresh_from_app()
        for keys in self.query(KeyBar):
            keys.refresh_keys()

    def relabel(self) -> None:
        """Re-render texts in the current language; subclasses extend."""
        self.refresh_chrome()
        if self._said is not None:
            text, error = self._said
            self.say(text, error=error)

    def action_back(self) -> None:
        """Esc: leave this flow, back to the screen below (checkout)."""
        self.app.pop_screen()

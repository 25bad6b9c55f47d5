"""The key bar: every active binding with its label in the current language.

Textual's ``Footer`` shows binding descriptions as written; ours are i18n keys
(``"bind.refund"``), translated here, so switching language (F10) re-labels the keys.
Wraps to two lines at 80 columns when a screen has many bindings.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tui.i18n import t

_KEY_NAMES = {"escape": "Esc", "enter": "Enter", "delete": "Del", "tab": "Tab"}


def key_label(key: str) -> str:
    if key.startswith("ctrl+"):
        return "^" + key[5:].upper()
    return _KEY_NAMES.get(key, key.upper() if len(key) <= 3 else key)


class KeyBar(Static):
    DEFAULT_CLASSES = "key-bar"

    def on_mount(self) -> None:
        self.refresh_keys()

    def refresh_keys(self) -> None:
        app = self.app
        lang = getattr(app, "lang", "ru")
        width = self.size.width or self.app.size.width or 80
        bindings: list[tuple[str, str]] = []
        seen: set[str] = set()
        for binding in sorted(
            (
                b.binding
                for b in self.screen.active_bindings.values()
                if b.binding.show and b.enabled
            ),
            key=lambda b: key_order(b.key),
        ):
            if binding.key in seen or not binding.description:
                continue
            seen.add(binding.key)
            bindings.append((binding.key, t(lang, binding.description)))
        self.update(fit_keys(bindings, width, MAX_LINES))


MAX_LINES = 2
"""Rows the key bar has (``.key-bar`` in kassa.tcss): at 80 columns a screen's keys
may need a third, which would be cut off at its end (Esc, the contextual keys)."""

GIVE_WAY = ("f10", "f9", "f5", "f4", "f3", "f2")
"""Keys whose labels leave the bar first when it is full, rarest first: they still work,
and F1 help lists them. Esc, the screen's own keys, F1 and Ctrl+Q stay."""


def fit_keys(bindings: list[tuple[str, str]], width: int, max_lines: int) -> Text:
    """The bar's text for ``(key, label)`` pairs in order: every pair when they fit in
    ``max_lines`` rows of ``width``; else the ``GIVE_WAY`` keys leave, one at a time."""
    shown = list(bindings)
    for key in GIVE_WAY:
        text, lines = _layout(shown, width)
        if lines <= max_lines:
            return text
        shown = [b for b in shown if b[0] != key]
    return _layout(shown, width)[0]


def _layout(bindings: list[tuple[str, str]], width: int) -> tuple[Text, int]:
    text = Text(no_wrap=True, overflow="crop")
    line, lines = 0, 1
    for key_name, label in bindings:
        key = f" {key_label(key_name)} "
        size = len(key) + len(label) + (1 if line else 0)
        if line and line + size > width:
            text.append("\n")
            line = 0
            lines += 1
            size -= 1
        elif line:
            text.append(" ")
        text.append(key, style="reverse bold")
        text.append(label)
        line += size
    return text, lines


def key_order(key: str) -> tuple[int, str]:
    """F-keys in number order first, then Esc, then the rest."""
    if key.startswith("f") and key[1:].isdigit():
        return (int(key[1:]), key)
    return (100 if key == "escape" else 50, key)

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
        text = Text(no_wrap=True, overflow="crop")
        line = 0
        seen: set[str] = set()
        bindings = sorted(
            (
                b.binding
                for b in self.screen.active_bindings.values()
                if b.binding.show and b.enabled
            ),
            key=lambda b: key_order(b.key),
        )
        for binding in bindings:
            if binding.key in seen or not binding.description:
                continue
            seen.add(binding.key)
            key = f" {key_label(binding.key)} "
            label = t(lang, binding.description)
            size = len(key) + len(label) + (1 if line else 0)
            if line and line + size > width:
                text.append("\n")
                line = 0
                size -= 1
            elif line:
                text.append(" ")
            text.append(key, style="reverse bold")
            text.append(label)
            line += size
        self.update(text)


def key_order(key: str) -> tuple[int, str]:
    """F-keys in number order first, then Esc, then the rest."""
    if key.startswith("f") and key[1:].isdigit():
        return (int(key[1:]), key)
    return (100 if key == "escape" else 50, key)

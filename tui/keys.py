"""Letter keys that work whatever layout and case the till keyboard is in.

Russian tills sit in the ЙЦУКЕН layout, and Caps Lock or Shift is often on: the key
labelled ``P`` then types ``з``, ``З`` or ``P``, and a binding on ``"p"`` alone would do
nothing. :func:`with_layout_twins` gives every single-letter binding its three twins (the
other case, and both cases of the Russian letter on the same key, from the same key table
that repairs scans: :func:`agent.layout.russian_layout_char`). The twins are hidden and
carry no description, so the key bar and F1 help show the binding once, as written.

``ctrl+<letter>`` gets the Russian letter's twin too: a terminal speaking the kitty
keyboard protocol (Textual asks for it) reports Ctrl+Й, not Ctrl+Q, under ЙЦУКЕН.

``KassaScreen`` applies it to every screen's ``BINDINGS`` when the class is created, so a
screen added later gets it without doing anything; the App and modal screens call it on
their own ``BINDINGS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from textual.binding import Binding, BindingType

from agent.layout import russian_layout_char

__all__ = ["key_twins", "with_layout_twins"]


def _latin_letter(key: str) -> bool:
    return len(key) == 1 and key.isascii() and key.isalpha()


def key_twins(key: str) -> tuple[str, ...]:
    """The other keys that mean ``key``: ``"p"`` -> ``("P", "з", "З")``, ``"ctrl+q"`` ->
    ``("ctrl+й",)``; ``()`` for other keys (F-keys and digits are the same in every
    layout)."""
    modifier, _, letter = key.rpartition("+")
    if modifier == "ctrl" and _latin_letter(letter):
        return (f"ctrl+{russian_layout_char(letter.lower())}",)
    if not _latin_letter(key):
        return ()
    lower, upper = key.lower(), key.upper()
    forms = (lower, upper, russian_layout_char(lower), russian_layout_char(upper))
    return tuple(dict.fromkeys(k for k in forms if k != key))


def with_layout_twins(bindings: Iterable[BindingType]) -> list[BindingType]:
    """``bindings`` as Textual reads them (one ``Binding`` per key), each single-letter
    binding followed by its hidden twins (same action, id and priority)."""
    out: list[BindingType] = []
    seen: set[tuple[str, str]] = set()  # a list that already has twins gets none again
    for binding in Binding.make_bindings(bindings):
        if (binding.key, binding.action) in seen:
            continue
        out.append(binding)
        seen.add((binding.key, binding.action))
        for twin in key_twins(binding.key):
            if (twin, binding.action) not in seen:
                seen.add((twin, binding.action))
                out.append(replace(binding, key=twin, description="", show=False, key_display=None))
    return out

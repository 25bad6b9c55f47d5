"""The Russian keyboard layout: what a key typed under ЙЦУКЕН meant under US-QWERTY.

Russian tills sit in the ЙЦУКЕН layout. A keyboard-wedge scanner sends key presses, not
characters, so its codes arrive in Cyrillic; a cashier typing a SKU or a coupon by the
Latin key labels does the same. One key table serves every place that has to undo it:
the wedge scanner's scans (``drivers.wedge``), a SKU or coupon typed at checkout
(``tui.entry``), token decoding (``agent.tokens``), and the cashier app's letter keys,
which are bound under both layouts (``tui.keys``).

Pure: no I/O, nothing of ours imported.
"""

from __future__ import annotations

import re

__all__ = ["has_cyrillic", "repair_layout", "russian_layout_char"]

_US_KEYS = (
    "`1234567890-=qwertyuiop[]\\asdfghjkl;'zxcvbnm,./"
    '~!@#$%^&*()_+QWERTYUIOP{}|ASDFGHJKL:"ZXCVBNM<>?'
)
_RU_KEYS = (
    "ё1234567890-=йцукенгшщзхъ\\фывапролджэячсмитьбю."
    'Ё!"№;%:?*()_+ЙЦУКЕНГШЩЗХЪ/ФЫВАПРОЛДЖЭЯЧСМИТЬБЮ,'
)
"""The same physical keys, unshifted then with Shift, under US-QWERTY and the standard
Russian (ЙЦУКЕН, PC) layout of Windows and Linux."""

_RU_TO_US = str.maketrans({ru: us for ru, us in zip(_RU_KEYS, _US_KEYS, strict=True) if ru != us})

_CYRILLIC_RE = re.compile("[\u0400-\u04ff]")


def has_cyrillic(text: str) -> bool:
    """True if ``text`` has a Cyrillic character (what a Russian-layout slip leaves)."""
    return _CYRILLIC_RE.search(text) is not None


_US_TO_RU = {us: ru for ru, us in zip(_RU_KEYS, _US_KEYS, strict=True)}


def russian_layout_char(char: str) -> str:
    """The character the same key (same Shift state) types under ЙЦУКЕН: ``p`` -> ``з``,
    ``P`` -> ``З``, ``.`` -> ``ю``; a character not on the US-QWERTY table is returned as
    it is. The inverse of :func:`repair_layout` for one key (the cashier app binds a letter
    key under both layouts with it)."""
    return _US_TO_RU.get(char, char)


def repair_layout(text: str) -> str:
    """Undo a keyboard-wedge scan typed while the PC keyboard was in the Russian layout.

    The scanner sends key presses, not characters: under ЙЦУКЕН ``KM1:`` arrives as
    ``ЛЬ1Ж``. Each character is mapped back to the US-QWERTY character on the same key
    (with the same Shift state): letters, ``Ж``->``:``, ``ж``->``;``, ``Б``->``<``,
    ``ю``->``.``, ``Х``->``{``, ``ё``->`` ` ``, and the punctuation that the Russian
    layout puts elsewhere: ``"``->``@``, ``№``->``#``, ``;``->``$``, ``:``->``^``,
    ``?``->``&``, ``/``->``|``, ``.``->``/``, ``,``->``?``.

    Only text containing Cyrillic is transformed; other text is returned unchanged.

    Limits (punctuation is ambiguous because both layouts share ASCII symbols):

    - a scan with no letters at all is not detectable: ``@1`` typed under ЙЦУКЕН is
      ``"1`` and stays ``"1``. Digits, space, ``-``, ``=``, ``!``, ``%``, ``*``, ``(``,
      ``)``, ``_``, ``+`` and ``\\`` are the same on both layouts and need no repair;
    - text mixing layouts (a genuine Cyrillic word next to ASCII punctuation, or a layout
      switch in the middle of a scan) is mapped as a whole, so its ASCII ``. , ; : ? " /``
      are rewritten too;
    - Caps Lock inverts letter case; other layouts (Ukrainian, Kazakh, the "typewriter"
      Russian variant, macOS "Russian" rather than "Russian - PC") are not handled.
    """
    if not _CYRILLIC_RE.search(text):
        return text
    return text.translate(_RU_TO_US)

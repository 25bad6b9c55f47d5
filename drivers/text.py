"""Text for the printer: sanitise to what the code page can print, then encode strictly.

Why our own encoder (notes/drivers.md): python-escpos turns ``₽`` into a silent ``?``,
hops to CP437 for ``«»``, switches a whole line to GB18030 for one CJK character, and
passes control bytes from data straight to the printer (a member name holding ``ESC p``
opens the drawer, ``GS V`` cuts the paper). Here every field goes through
:func:`sanitise` (controls removed, characters outside the code page substituted by a
fixed table) and then :func:`encode`, which is strict: anything the sanitiser did not make
printable raises :class:`UnprintableText` instead of becoming ``?`` on paper.

Two code pages are supported, by their Python codec names: ``cp866`` (the default on
Russian tills) and ``cp1251``. The printer slot (``ESC t n``) that holds each one differs
by model and lives in the printer profile, not here.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache

ENCODINGS = ("cp866", "cp1251")
"""Code pages we print in (Python codec names)."""

NBSP = "\u00a0"
"""Non-breaking space: the layout keeps "1 250,00 руб." on one line; printed as a space."""

REPLACEMENT = "?"
"""What a character with no substitute becomes (a CJK name, an emoji). Deliberate and
visible: the strict encoder never produces it on its own."""

SUBSTITUTES: dict[str, str] = {
    "₽": "руб.",
    "«": '"',
    "»": '"',
    "„": '"',
    "“": '"',
    "”": '"',
    "‟": '"',
    "‹": "'",
    "›": "'",
    "‘": "'",
    "’": "'",
    "‚": "'",
    "—": "-",
    "–": "-",
    "‒": "-",
    "―": "-",
    "−": "-",
    "‐": "-",
    "‑": "-",
    "…": "...",
    "•": "*",
    "×": "x",
    "€": "EUR",
    "№": "N",
    "і": "i",
    "І": "I",
    "ґ": "г",
    "Ґ": "Г",
    "\u202f": NBSP,  # narrow no-break space (French/Russian locales group digits with it)
    "\u2007": NBSP,  # figure space
}
"""Fixed substitutions, used only for characters the code page lacks (CP1251 keeps «»)."""


class UnprintableText(ValueError):
    """Text reached :func:`encode` with a character or byte the printer must not get.

    A programming error: every field must pass through :func:`sanitise` first.
    """


def _printable_in(encoding: str) -> frozenset[str]:
    """Characters that encode to exactly one non-control byte in ``encoding``."""
    out = {chr(c) for c in range(0x20, 0x7F)}
    for byte in range(0x80, 0x100):
        try:
            ch = bytes([byte]).decode(encoding)
        except UnicodeDecodeError:
            continue
        if unicodedata.category(ch) not in {"Cc", "Cf", "Cs", "Co", "Cn"}:
            out.add(ch)
    return frozenset(out)


@cache
def _tables(encoding: str) -> tuple[frozenset[str], re.Pattern[str]]:
    """The printable set of ``encoding`` and a regex matching any character outside it."""
    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported code page {encoding!r} (use one of {ENCODINGS})")
    printable = _printable_in(encoding)
    # NBSP stays in the text for the layout even where the page lacks it; render prints it
    # as a plain space.
    keep = printable | {NBSP}
    cls = "".join(re.escape(ch) for ch in sorted(keep))
    return printable, re.compile(f"[^{cls}]")


@lru_cache(maxsize=4096)
def _substitute(ch: str, encoding: str) -> str:
    """What one character outside ``encoding``'s printable set becomes ("" = dropped)."""
    printable, _ = _tables(encoding)
    if ch in "\t\n\r\v\f" or unicodedata.category(ch) in {"Zs", "Zl", "Zp"}:
        return " "
    sub = SUBSTITUTES.get(ch)
    if sub is not None and all(c in printable or c == NBSP for c in sub):
        return sub
    category = unicodedata.category(ch)
    if category in {"Cc", "Cf", "Cs", "Co", "Mn", "Me"}:
        return ""  # controls, format chars (bidi overrides, soft hyphen), stray accents
    # Latin letters with accents print without them (é -> e); the rest has no substitute.
    base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c))
    if base and all(c in printable for c in base):
        return base
    return REPLACEMENT


def sanitise(text: str, encoding: str) -> str:
    """``text`` reduced to characters ``encoding`` prints: the one gate for data to paper.

    NFC-normalises (a decomposed "й" stays one letter), turns tabs, newlines and other
    spaces into a plain space, drops control and format characters (C0, DEL, C1, bidi
    overrides, zero-width), substitutes characters the code page lacks by
    :data:`SUBSTITUTES` (``₽`` -> ``руб.``), strips accents the page lacks, and puts
    :data:`REPLACEMENT` for anything else. NBSP is kept for the layout. Idempotent.
    """
    _, outside = _tables(encoding)
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return outside.sub(lambda m: _substitute(m.group(), encoding), text)


_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")


def encode(text: str, encoding: str) -> bytes:
    """Strictly encode sanitised ``text``: one byte per character, never a control byte.

    Raises :class:`UnprintableText` if ``text`` holds a character the page cannot print
    (it was not sanitised) instead of letting a silent ``?`` reach the paper. NBSP must be
    replaced by the caller (the renderer prints it as a space).
    """
    try:
        data = text.encode(encoding, errors="strict")
    except UnicodeEncodeError as e:
        raise UnprintableText(
            f"{text[e.start : e.end]!r} at {e.start} is not printable in {encoding}"
        ) from None
    if bad := _CONTROL_BYTES.search(data):
        raise UnprintableText(f"control byte 0x{bad.group()[0]:02x} at {bad.start()} in text")
    return data


def printable_text(text: str, encoding: str) -> bytes:
    """``sanitise`` then ``encode``, NBSP as a space: a data field ready for the printer."""
    return encode(sanitise(text, encoding).replace(NBSP, " "), encoding)

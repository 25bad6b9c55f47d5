"""What the cashier typed in the checkout's one entry line (pure, unit-tested).

One line takes everything, so the hands stay on the keyboard:

- ``8 916 124-24-86``, ``+7 (916) ...``, a 13-digit member code, an app QR ``KM1:...``
  -> identify the member (10+ digits and only phone punctuation, or a token);
- ``KC1:...`` -> a coupon;
- ``OW-4001``, ``OW-4001*2``, ``OW-4001 x2``, ``SH-2001!`` (``!`` = sale item) -> a
  catalogue line with quantity;
- ``X-1 shirts 3499.00*2!`` -> a line not in the catalogue: SKU, category, unit price in
  roubles, quantity, sale flag;
- ``=4999`` / ``=4999.50`` / ``=4999,50 shirts`` -> the cheque as a total (roubles, optional
  category) for a till without POS integration;
- ``-500`` -> spend 500 points; ``-`` alone -> spend none; ``-*`` -> spend all allowed.

Typed under the Russian layout by the Latin key labels (``ВК-1001`` for ``DR-1001``,
``ЛС1Ж…`` for a coupon), an entry is repaired with the same key table as a wedge scan
(:func:`agent.layout.repair_layout`), but only when it means nothing as typed and the
repaired text can be nothing else: a token prefix, a total, or a SKU with letters and
digits. A Cyrillic word (a name) is not turned into a Latin SKU.

Money is parsed to integer kopecks without floats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from agent.layout import has_cyrillic, repair_layout

Kind = Literal[
    "empty", "identify", "coupon", "sku", "line", "total", "redeem", "bad_qty", "invalid"
]


@dataclass(frozen=True, slots=True)
class Entry:
    kind: Kind
    text: str = ""
    qty: int = 1
    sale: bool = False
    amount_kop: int = 0
    category: str | None = None
    points: int | Literal["max"] = 0


_PHONE_CHARS = re.compile(r"^[+\d\s()\-]+$")
_SKU = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,39})\s*(?:[*xXхХ]\s*(\d{1,3}))?\s*(!)?$")
_TOTAL = re.compile(r"^=\s*(\d{1,9})(?:[.,](\d{1,2}))?(?:\s+([a-z_]{1,40}))?$")
_LINE = re.compile(
    r"^([A-Za-z0-9][A-Za-z0-9_.\-]{0,39})\s+([a-z_]{1,40})\s+(\d{1,9})(?:[.,](\d{1,2}))?"
    r"\s*(?:[*xXхХ]\s*(\d{1,3}))?\s*(!)?$"
)
_REDEEM = re.compile(r"^-\s*(\d{1,9}|\*)?$")
_QTY_TRIED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}(?:\s+\S+)*\s*[*xXхХ]\s*(\d+)\s*!?$")
"""A SKU (or free line) with a quantity of any size: to name the limit when it is out."""
MAX_QTY = 999


def parse_entry(raw: str) -> Entry:
    """What one typed or scanned line means (see the module docstring)."""
    entry = _parse(raw)
    if entry.kind != "invalid" or not has_cyrillic(raw):
        return entry
    # A Cyrillic «х» before the quantity is meant as "times", not as the key it sits on.
    repaired = _parse(repair_layout(_CYRILLIC_TIMES.sub(r"*\1", raw)))
    if repaired.kind in ("invalid", "empty"):
        return entry
    if repaired.kind in ("sku", "line") and not _CODE_SHAPED.match(repaired.text):
        return entry
    return repaired


_CYRILLIC_TIMES = re.compile(r"\s*[хХ]\s*(\d{1,3}\s*!?\s*)$")

_CODE_SHAPED = re.compile(r"^(?=.*[A-Z])(?=.*\d)")
"""A SKU that has both letters and digits (``DR-1001``): a Russian-layout slip, where a
word of letters only could be a name typed in Russian on purpose."""


def _parse(raw: str) -> Entry:
    text = raw.strip()
    if not text:
        return Entry("empty")
    upper = text.upper()
    if upper.startswith("KC1:"):
        return Entry("coupon", text)
    if upper.startswith("KM1:") or upper.startswith("]Q"):
        return Entry("identify", text)
    if m := _REDEEM.match(text):
        value = m.group(1)
        if value is None:
            return Entry("redeem", points=0)
        return Entry("redeem", points="max" if value == "*" else int(value))
    if m := _TOTAL.match(text):
        rub, kop, category = m.groups()
        amount = int(rub) * 100 + int((kop or "0").ljust(2, "0"))
        if amount <= 0:
            return Entry("invalid", text)
        return Entry("total", amount_kop=amount, category=category)
    if m := _LINE.match(text):
        sku, category, rub, kop, qty, sale = m.groups()
        price = int(rub) * 100 + int((kop or "0").ljust(2, "0"))
        n = int(qty) if qty else 1
        if price <= 0:
            return Entry("invalid", text)
        if not 1 <= n <= MAX_QTY:
            return Entry("bad_qty", text)
        return Entry(
            "line", sku.upper(), qty=n, sale=bool(sale), amount_kop=price, category=category
        )
    digits = sum(ch.isdigit() for ch in text)
    if _PHONE_CHARS.match(text) and digits >= 10:
        return Entry("identify", text)
    if m := _SKU.match(text):
        sku, qty, sale = m.groups()
        n = int(qty) if qty else 1
        if not 1 <= n <= MAX_QTY:
            return Entry("bad_qty", text)
        return Entry("sku", sku.upper(), qty=n, sale=bool(sale))
    if (m := _QTY_TRIED.match(text)) and not 1 <= int(m.group(1)) <= MAX_QTY:
        return Entry("bad_qty", text)  # the cashier meant a quantity: say its limits
    return Entry("invalid", text)

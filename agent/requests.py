"""Turn JSON requests (CLI, POS API) into core objects, naming the bad field on error.

Amounts must be integers in kopecks: ``"price_kop": 1999.0`` is refused, not rounded.
An error in a cheque line names the line the same way in both languages: 1-based for the
cashier and as the JSON path for the integrator, e.g. ``line 2 (lines[1].qty)`` /
``позиция 2 (lines[1].qty)``, with ``details`` ``{"field": "qty", "line": 2}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any, Literal

from agent.errors import CartError, CatalogError, InputError
from agent.model import Cart, CartLine
from agent.money import MAX_CHEQUE_KOP

CatalogLookup = Callable[[str], tuple[str, str, str | None, int] | None]
"""sku -> (name, category, collection, price_kop) or None when the SKU is unknown."""


CHECKOUT_FIELDS = frozenset(
    {
        "member_id",
        "identify",
        "identified_by",
        "receipt_id",
        "lines",
        "redeem_points",
        "coupon",
        "cashier_id",
        "shift_id",
    }
)
"""Top-level fields of a quote / commit request (a hold adds ``ttl_s``, a POS API commit
``hold_id``)."""
LINE_FIELDS = frozenset(
    {"line_no", "sku", "name", "category", "collection", "price_kop", "qty", "amount_kop", "sale"}
)
REFUND_FIELDS = frozenset({"refund_id", "receipt_id", "lines", "cashier_id", "shift_id"})
REFUND_LINE_FIELDS = frozenset({"line_no", "qty"})
REGISTER_FIELDS = frozenset(
    {"phone", "first_name", "birthday", "consent_programme", "consent_marketing", "cashier_id"}
)
IDENTIFY_FIELDS = frozenset({"input"})


BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""Characters that reorder the text shown after them (U+202E makes ``gpj.exe`` read as
``exe.jpg``): refused in every text field, as they would be echoed to terminals and slips."""

MAX_REQUEST_DEPTH = 32
"""How deeply a JSON request may nest (objects and lists); a request is a few levels."""

MAX_REQUEST_INT = 2**62
"""Largest magnitude of any JSON number in a request: beyond it SQLite's 64-bit integers
and sums of them overflow (real amounts are far below: ``MAX_CHEQUE_KOP``)."""


def text_fault(value: str) -> tuple[str, str] | None:
    """Why ``value`` cannot be stored or shown as a text field, as ``(en, ru)``, or None
    when it can. Refused: control characters (NUL, BEL, ESC, line breaks, tab: category
    Cc), line and paragraph separators, bidi controls (``BIDI_CONTROLS``) and lone
    surrogates (``"\\ud800"`` from JSON, which no UTF-8 file or terminal can hold)."""
    for index, ch in enumerate(value):
        code = ord(ch)
        if 0xD800 <= code <= 0xDFFF:
            return (
                f"has a lone surrogate U+{code:04X} at position {index + 1} (not valid Unicode)",
                f"содержит недопустимый символ U+{code:04X} в позиции {index + 1} "
                "(половина суррогатной пары, не Unicode)",
            )
        if code < 0x20 or 0x7F <= code < 0xA0 or ch in "\u2028\u2029":
            return (
                f"has a control character U+{code:04X} at position {index + 1}",
                f"содержит управляющий символ U+{code:04X} в позиции {index + 1}",
            )
        if ch in BIDI_CONTROLS:
            return (
                f"has a text-direction control U+{code:04X} at position {index + 1}",
                f"содержит символ смены направления текста U+{code:04X} в позиции {index + 1}",
            )
    return None


def check_request_json(value: Any, where: str = "", depth: int = 0) -> None:
    """Refuse a parsed JSON request that no field of it could be right with, naming the
    path: a key or string with a ``text_fault``, nesting deeper than ``MAX_REQUEST_DEPTH``,
    a number beyond ``MAX_REQUEST_INT``. Every front door taking JSON (CLI, POS API, back
    office) runs it before reading fields, so a hostile value never reaches a message,
    the terminal or the store. ``InputError`` with ``details.field`` the JSON path."""
    name = where or "request"
    if depth > MAX_REQUEST_DEPTH:
        raise InputError(
            f"{name}: nested too deeply", f"{name}: слишком глубокая вложенность", field=name
        )
    if isinstance(value, str):
        fault = text_fault(value)
        if fault:
            raise InputError(f"{name}: {fault[0]}", f"{name}: {fault[1]}", field=name)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) >= MAX_REQUEST_INT:
            raise InputError(
                f"{name}: number out of range (at most {MAX_REQUEST_INT - 1} in magnitude)",
                f"{name}: слишком большое число",
                field=name,
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            label = f"{where}.{key}" if where else str(key)
            if not isinstance(key, str) or text_fault(key):
                shown = ascii(key)[:40]
                raise InputError(
                    f"{where or 'request'}: bad field name {shown}",
                    f"{where or 'запрос'}: неверное имя поля {shown}",
                    field=where or "request",
                )
            check_request_json(item, label, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_request_json(item, f"{where}[{index}]", depth + 1)


def request_object(data: Any) -> dict[str, Any]:
    """``data`` if it is a JSON object; else ``InputError`` "must be an object"."""
    if not isinstance(data, dict):
        raise InputError(
            f"request must be a JSON object {{...}}, got {_json_kind(data)}",
            f"запрос должен быть объектом JSON {{...}}, а не {_json_kind_ru(data)}",
            field="request",
        )
    return data


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool) or value is None:
        return "true/false/null"
    return "a number"


def _json_kind_ru(value: Any) -> str:
    if isinstance(value, list):
        return "список"
    if isinstance(value, str):
        return "строка"
    if isinstance(value, bool) or value is None:
        return "true/false/null"
    return "число"


def optional_text(data: Mapping[str, Any], field: str, *, max_len: int = 128) -> str | None:
    """A top-level optional text field: None when absent or null; refused naming the field
    when it is not a string, is longer than ``max_len`` or has a ``text_fault``."""
    return _str(data, field, "", max_len=max_len, error=InputError)


def required_text(data: Mapping[str, Any], field: str, *, max_len: int = 128) -> str:
    """A top-level text field that must be given (empty text is the callee's to judge)."""
    value = _str(data, field, "", max_len=max_len, error=InputError)
    if value is None:
        raise InputError(f"{field}: is required", f"{field}: обязательное поле", field=field)
    return value


def _labels(path: str, line: int | None) -> tuple[str, str]:
    """How an error names a field: its JSON path, and for a cheque line also the line's
    1-based number (the same in both languages)."""
    if line is None:
        return path, path
    return f"line {line} ({path})", f"позиция {line} ({path})"


def check_fields(
    data: Mapping[str, Any], allowed: Iterable[str], where: str = "", *, line: int | None = None
) -> None:
    """Refuse a field the request shape does not have (a typo such as ``redeem_point``
    must not silently mean "spend nothing"): ``InputError`` naming the first one.
    ``line``: the 1-based cheque line ``data`` is (named in the message)."""
    known = frozenset(allowed)
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        name = unknown[0][:64]
        en, ru = _labels(f"{where}{name}", line)
        raise InputError(
            f"{en}: unknown field (known: {', '.join(sorted(known))})",
            f"{ru}: неизвестное поле (допустимы: {', '.join(sorted(known))})",
            field=f"{where}{name}",
            unknown=[u[:64] for u in unknown[:10]],
        )


def _field_error(where: str, field: str, en: str, ru: str, line: int | None = None) -> CartError:
    label_en, label_ru = _labels(f"{where}{field}", line)
    details: dict[str, Any] = {"field": field}
    if line is not None:
        details["line"] = line
    return CartError(f"{label_en}: {en}", f"{label_ru}: {ru}", **details)


def _int(
    data: Mapping[str, Any],
    field: str,
    where: str,
    *,
    default: int | None = None,
    lo: int = 0,
    hi: int = MAX_CHEQUE_KOP,
    line: int | None = None,
) -> int:
    value = data.get(field, default)
    if value is None:
        raise _field_error(where, field, "is required", "обязательное поле", line)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _field_error(
            where,
            field,
            "must be a whole number (kopecks/units)",
            "должно быть целым числом (копейки/штуки)",
            line,
        )
    if not lo <= value <= hi:
        raise _field_error(
            where, field, f"must be between {lo} and {hi}", f"должно быть от {lo} до {hi}", line
        )
    return value


def _str(
    data: Mapping[str, Any],
    field: str,
    where: str,
    default: str | None = None,
    max_len: int = 128,
    line: int | None = None,
    error: type[InputError] = CartError,
) -> str | None:
    value = data.get(field, default)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        kind = "must be a string" if not isinstance(value, str) else "is too long"
        kind_ru = "должно быть строкой" if not isinstance(value, str) else "слишком длинное"
        fail = _field_error(
            where,
            field,
            f"{kind} (text up to {max_len} characters)",
            f"{kind_ru} (текст до {max_len} символов)",
            line,
        )
        raise error(fail.message_en, fail.message_ru, **fail.details)
    fault = text_fault(value)
    if fault:
        fail = _field_error(where, field, *fault, line)
        raise error(fail.message_en, fail.message_ru, **fail.details)
    return value


def cart_from_json(data: Any, catalog: CatalogLookup | None = None) -> Cart:
    """Parse ``{"receipt_id": ..., "lines": [...]}``; a line without a category is looked up
    in the till's catalogue by SKU (unknown SKU -> ``CatalogError``)."""
    if not isinstance(data, Mapping):
        raise CartError("request must be a JSON object", "запрос должен быть объектом JSON")
    receipt_id = _str(data, "receipt_id", "", max_len=64)
    if not receipt_id:
        raise _field_error("", "receipt_id", "is required", "обязательное поле")
    raw_lines = data.get("lines")
    if not isinstance(raw_lines, list):
        raise _field_error(
            "", "lines", "must be a list of cheque lines", "должно быть списком позиций"
        )
    lines = []
    for index, raw in enumerate(raw_lines):
        where, n = f"lines[{index}].", index + 1
        if not isinstance(raw, Mapping):
            en, ru = _labels(f"lines[{index}]", n)
            raise CartError(f"{en}: must be an object", f"{ru}: должна быть объектом JSON", line=n)
        check_fields(raw, LINE_FIELDS, where, line=n)
        sku = _str(raw, "sku", where, max_len=64, line=n) or ""
        if not sku:
            raise _field_error(
                where, "sku", "is required (1-64 characters)", "обязательное поле", n
            )
        category = _str(raw, "category", where, max_len=64, line=n)
        name = _str(raw, "name", where, line=n)
        collection = _str(raw, "collection", where, max_len=64, line=n)
        price = raw.get("price_kop")
        if category is None:
            found = catalog(sku) if catalog and sku else None
            if found is None:
                en, ru = _labels(f"{where}sku", n)
                raise CatalogError(
                    f"{en}: unknown SKU {sku!r} and no category given (a till without "
                    "this SKU in its catalogue needs category and price_kop)",
                    f"{ru}: неизвестный артикул «{sku}»; укажите категорию и цену "
                    "(category и price_kop)",
                    field="sku",
                    line=n,
                    sku=sku,
                )
            name = name or found[0]
            category = found[1]
            collection = collection if collection is not None else found[2]
            price = price if price is not None else found[3]
        qty = _int(raw, "qty", where, default=1, lo=1, hi=10_000, line=n)
        price_kop = _int({"price_kop": price}, "price_kop", where, line=n)
        amount = _int(
            raw, "amount_kop", where, default=price_kop * qty, hi=MAX_CHEQUE_KOP * 10, line=n
        )
        sale = raw.get("sale", False)
        if not isinstance(sale, bool):
            raise _field_error(where, "sale", "must be true or false", "должно быть true/false", n)
        lines.append(
            CartLine(
                line_no=_int(raw, "line_no", where, default=n, lo=1, hi=100_000, line=n),
                sku=sku,
                name=name or sku,
                category=category,
                price_kop=price_kop,
                qty=qty,
                amount_kop=amount,
                sale=sale,
                collection=collection,
            )
        )
    return Cart(receipt_id, tuple(lines))


def redeem_from_json(data: Mapping[str, Any]) -> int | Literal["max"]:
    value = data.get("redeem_points", 0)
    if value == "max":
        return "max"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(
            'redeem_points: must be a whole number or "max"',
            'списание бонусов: целое число или "max"',
            field="redeem_points",
        )
    return value


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def iso_date(text: str) -> date | None:
    """``text`` as a ``YYYY-MM-DD`` date; None when it is not of that form (on Python 3.11
    ``date.fromisoformat`` alone also takes ``19900228`` and week dates like
    ``1990-W09-3``); ``ValueError`` when it is but names no day (``1990-02-31``)."""
    if not _ISO_DATE.fullmatch(text):
        return None
    return date.fromisoformat(text)


def birthday_from_json(value: Any) -> date | None:
    """A ``birthday`` field: ``"YYYY-MM-DD"``, or absent/empty for none.

    A value in the right format that is no date in the calendar (``1990-02-31``) is
    refused as such, not as a format error; anything else names the format. (Whether the
    date is plausible for a member is the service's check.)"""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            day = iso_date(value)
        except ValueError:
            raise InputError(
                f"birthday {value}: no such date in the calendar",
                f"дата рождения {value}: такой даты нет в календаре",
                field="birthday",
            ) from None
        if day is not None:
            return day
    shown = repr(value)[:40]
    raise InputError(
        f"birthday must be text YYYY-MM-DD (e.g. 1990-02-28), got {shown}",
        f"дата рождения: нужен формат ГГГГ-ММ-ДД (например 1990-02-28), получено {shown}",
        field="birthday",
    )


def flag_from_json(data: Mapping[str, Any], field: str) -> bool:
    """A true/false field (absent: false); ``"yes"``, ``1`` or ``"true"`` are refused
    naming the field, never read as a missing consent."""
    value = data.get(field, False)
    if not isinstance(value, bool):
        raise InputError(
            f"{field}: must be true or false (JSON boolean), got {repr(value)[:40]}",
            f"{field}: должно быть true или false (логическое значение JSON)",
            field=field,
        )
    return value


def refund_lines_from_json(data: Any) -> dict[int, int]:
    """``{"1": 2, "3": 1}`` or ``[{"line_no": 1, "qty": 2}]`` -> {line_no: qty}."""
    pairs: list[tuple[Any, Any]]
    if isinstance(data, Mapping):
        pairs = list(data.items())
    elif isinstance(data, list) and all(isinstance(x, Mapping) for x in data):
        for index, x in enumerate(data):
            check_fields(x, REFUND_LINE_FIELDS, f"lines[{index}].")
        pairs = [(x.get("line_no"), x.get("qty", 1)) for x in data]
    else:
        raise InputError(
            "lines: must map line numbers to quantities",
            "строки возврата указаны неверно",
            field="lines",
        )
    out: dict[int, int] = {}
    for k, v in pairs:
        try:
            line_no = int(k)
        except (TypeError, ValueError):
            raise InputError(
                f"lines: bad line number {k!r}", f"неверный номер строки {k!r}", field="lines"
            ) from None
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(
                f"lines: bad quantity for line {line_no}",
                f"неверное количество для строки {line_no}",
                field="lines",
            )
        out[line_no] = out.get(line_no, 0) + v
    return out

"""Turn JSON requests (CLI, POS API) into core objects, naming the bad field on error.

Amounts must be integers in kopecks: ``"price_kop": 1999.0`` is refused, not rounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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


def check_fields(data: Mapping[str, Any], allowed: Iterable[str], where: str = "") -> None:
    """Refuse a field the request shape does not have (a typo such as ``redeem_point``
    must not silently mean "spend nothing"): ``InputError`` naming the first one."""
    known = frozenset(allowed)
    unknown = [str(k) for k in data if k not in known]
    if unknown:
        name = unknown[0][:64]
        raise InputError(
            f"{where}{name}: unknown field (known: {', '.join(sorted(known))})",
            f"{where}{name}: неизвестное поле (допустимы: {', '.join(sorted(known))})",
            field=f"{where}{name}",
            unknown=[u[:64] for u in unknown[:10]],
        )


def _field_error(where: str, field: str, en: str, ru: str) -> CartError:
    return CartError(f"{where}{field}: {en}", f"{where}{field}: {ru}", field=field)


def _int(
    data: Mapping[str, Any],
    field: str,
    where: str,
    *,
    default: int | None = None,
    lo: int = 0,
    hi: int = MAX_CHEQUE_KOP,
) -> int:
    value = data.get(field, default)
    if value is None:
        raise _field_error(where, field, "is required", "обязательное поле")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _field_error(
            where,
            field,
            "must be a whole number (kopecks/units)",
            "должно быть целым числом (копейки/штуки)",
        )
    if not lo <= value <= hi:
        raise _field_error(
            where, field, f"must be between {lo} and {hi}", f"должно быть от {lo} до {hi}"
        )
    return value


def _str(
    data: Mapping[str, Any], field: str, where: str, default: str | None = None, max_len: int = 128
) -> str | None:
    value = data.get(field, default)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_len:
        raise _field_error(
            where,
            field,
            f"must be text up to {max_len} characters",
            f"должно быть строкой до {max_len} символов",
        )
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
        where = f"lines[{index}]."
        if not isinstance(raw, Mapping):
            raise CartError(
                f"lines[{index}] must be an object", f"позиция {index + 1}: неверный формат"
            )
        check_fields(raw, LINE_FIELDS, where)
        sku = _str(raw, "sku", where, max_len=64) or ""
        if not sku:
            raise _field_error(where, "sku", "is required (1-64 characters)", "обязательное поле")
        category = _str(raw, "category", where, max_len=64)
        name = _str(raw, "name", where)
        collection = _str(raw, "collection", where, max_len=64)
        price = raw.get("price_kop")
        if category is None:
            found = catalog(sku) if catalog and sku else None
            if found is None:
                raise CatalogError(
                    f"{where}sku: unknown SKU {sku!r} and no category given",
                    f"позиция {index + 1}: неизвестный артикул «{sku}»",
                    field="sku",
                    sku=sku,
                )
            name = name or found[0]
            category = found[1]
            collection = collection if collection is not None else found[2]
            price = price if price is not None else found[3]
        qty = _int(raw, "qty", where, default=1, lo=1, hi=10_000)
        price_kop = _int({"price_kop": price}, "price_kop", where)
        amount = _int(raw, "amount_kop", where, default=price_kop * qty, hi=MAX_CHEQUE_KOP * 10)
        sale = raw.get("sale", False)
        if not isinstance(sale, bool):
            raise _field_error(where, "sale", "must be true or false", "должно быть true/false")
        lines.append(
            CartLine(
                line_no=_int(raw, "line_no", where, default=index + 1, lo=1, hi=100_000),
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

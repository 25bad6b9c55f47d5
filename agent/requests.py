"""Turn JSON requests (CLI, POS API) into the till service's requests, naming the bad
field on error.

One function per request, called by both front doors: ``checkout_request``,
``hold_request``, ``commit_request``, ``identify_input``, ``register_args``,
``refund_args``. Each decodes the parsed JSON into its model of ``agent.api_models``
(msgspec: types, bounds, unknown fields), then does what a model cannot (the member from
a scan, a line's catalogue data). A refusal by msgspec (a path like ``$.lines[1].qty``
and a reason) is worded as the till's errors are: bilingual, naming the field, and in a
cheque line the line the same way in both languages: 1-based for the cashier and as the
JSON path for the integrator, e.g. ``line 2 (lines[1].qty)`` / ``позиция 2
(lines[1].qty)``, with ``details`` ``{"field": "qty", "line": 2}``. Amounts must be
integers in kopecks: ``"price_kop": 1999.0`` is refused, not rounded.

Both front doors read the request text with ``read_request_json``, which parses it and
runs ``check_request_json`` on the whole document first: text faults, deep nesting,
huge numbers and numbers with a point or an exponent are refused there, before any field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, TypeVar

import msgspec
import msgspec.inspect as mi
from msgspec import UnsetType

from agent.api_models import (
    Checkout,
    CheckoutLine,
    CommitRequest,
    HoldRef,
    HoldRequest,
    Hook,
    IdentifyRequest,
    JobId,
    RefundRequest,
    RegisterRequest,
    Request,
    Required,
    Says,
    SlipQuery,
)
from agent.errors import AgentError, CartError, CatalogError, InputError, NotFoundError
from agent.model import Cart, CartLine
from agent.results import CheckoutRequest
from agent.slip import SLIP_WIDTHS

if TYPE_CHECKING:  # pragma: no cover - types only
    from agent.results import MemberCard

CatalogLookup = Callable[[str], tuple[str, str, str | None, int] | None]
"""sku -> (name, category, collection, price_kop) or None when the SKU is unknown."""


class Till(Protocol):
    """What a checkout request needs of the till service: the member behind a scan and
    the catalogue (``agent.service.Agent`` is one)."""

    def identify(self, text: str) -> MemberCard: ...

    def catalog_lookup(self, sku: str) -> tuple[str, str, str | None, int] | None: ...


REFUND_LINE_FIELDS = frozenset({"line_no", "qty"})


BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
"""Characters that reorder the text shown after them (U+202E makes ``gpj.exe`` read as
``exe.jpg``): refused in every text field, as they would be echoed to terminals and slips."""

INVISIBLE_CHARACTERS = frozenset("\u180e\u200b\u200c\u200d\u2060\ufeff")
"""Zero-width characters (space, non-joiner, joiner, word joiner, byte-order mark,
Mongolian vowel separator): they make two names that look the same different texts (a
search for "Анна" misses "Ан\u200bна"), so every text field refuses them too; a joiner
inside an emoji sequence (👩‍👩‍👧) is part of the picture and passes."""

MAX_REQUEST_DEPTH = 8
"""How deeply a JSON request may nest (objects and lists); a request is a few levels
(``lines[0].sku`` is three)."""

MAX_REQUEST_INT = 2**62
"""Largest magnitude of any JSON number in a request: beyond it SQLite's 64-bit integers
and sums of them overflow (real amounts are far below: ``MAX_CHEQUE_KOP``)."""

MAX_REQUEST_TEXT = 4096
"""Longest text (characters) of any string in a request; no field holds more."""


class NotJsonError(InputError):
    """A request that is not JSON text (syntax, encoding, NaN or Infinity, a number too
    long to read): nothing of it could be read."""

    code = "bad_json"
    title_ru = "Запрос не является JSON"
    title_en = "Request is not JSON"


class TooDeepError(InputError):
    """A request nested deeper than ``MAX_REQUEST_DEPTH``."""

    code = "too_deep"
    title_ru = "Запрос слишком глубоко вложен"
    title_en = "Request nested too deeply"


class BadTextError(InputError):
    """A string or key of a request with a ``text_fault`` or over ``MAX_REQUEST_TEXT``."""

    code = "bad_text"
    title_ru = "Недопустимый текст в запросе"
    title_en = "Bad text in request"


class BadNumberError(InputError):
    """A number of a request beyond ``MAX_REQUEST_INT`` or written with a decimal point
    or an exponent (every number of a request is whole: kopecks, points, quantities)."""

    code = "bad_number"
    title_ru = "Недопустимое число в запросе"
    title_en = "Bad number in request"


def _pictographic(ch: str) -> bool:
    """An emoji or a symbol an emoji sequence is made of (a rough test: the pictograph
    planes, the miscellaneous symbols and dingbats, the emoji variation selector)."""
    code = ord(ch)
    return code >= 0x1F000 or 0x2600 <= code < 0x2800 or ch == "\ufe0f"


def _joins_emoji(value: str, index: int) -> bool:
    """Whether the character at ``index`` is a zero-width joiner inside an emoji sequence
    (👩‍👩‍👧 is three emoji joined by U+200D), where it is part of the picture."""
    return (
        value[index] == "\u200d"
        and 0 < index < len(value) - 1
        and _pictographic(value[index - 1])
        and _pictographic(value[index + 1])
    )


def text_fault(value: str) -> tuple[str, str] | None:
    """Why ``value`` cannot be stored or shown as a text field, as ``(en, ru)``, or None
    when it can. Refused: control characters (NUL, BEL, ESC, line breaks, tab: category
    Cc), line and paragraph separators, bidi controls (``BIDI_CONTROLS``), zero-width
    characters (``INVISIBLE_CHARACTERS``) and lone surrogates (``"\\ud800"`` from JSON,
    which no UTF-8 file or terminal can hold)."""
    if value.isprintable():  # each refused character is unprintable (Cc, Zl, Zp, Cf, Cs)
        return None
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
        if ch in INVISIBLE_CHARACTERS and not _joins_emoji(value, index):
            return (
                f"has an invisible zero-width character U+{code:04X} at position {index + 1}",
                f"содержит невидимый символ нулевой ширины U+{code:04X} в позиции {index + 1}",
            )
    return None


class _JsonConstant(ValueError):
    """NaN, Infinity or -Infinity in a request (Python's json accepts them)."""


def _reject_constant(name: str) -> Any:
    raise _JsonConstant(f"{name} is not valid JSON")


def read_request_json(
    raw: str | bytes, *, not_json: type[InputError] = NotJsonError, floats_to_fields: bool = False
) -> Any:
    """The one reader of a JSON request (the POS API's body, the JSON CLI's stdin or
    ``--json``): parse ``raw`` (bytes as UTF-8, -16 or -32; NaN and Infinity refused),
    then ``check_request_json``. A document that is not JSON raises ``not_json`` (the
    front door's documented class: the POS API's ``bad_json``, the CLI's ``bad_input``)
    with ``details.field`` ``"json"`` and, for a syntax error, its ``line``, ``column``
    and Python's ``reason``. ``floats_to_fields``: a number with a point or an exponent
    is left for the field's model to refuse (the CLI's documented ``bad_cart`` for a
    line's ``"price_kop": 10.5``) instead of ``bad_number`` (the POS API's)."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise TooDeepError(
            f"request: more than {MAX_REQUEST_DEPTH} levels of brackets, nested too deeply to read",
            f"запрос: больше {MAX_REQUEST_DEPTH} уровней вложенности, его не прочитать",
            field="request",
        ) from None
    except json.JSONDecodeError as e:
        # Python's reason is English: it goes to message_en and details, message_ru says
        # where the error is.
        raise not_json(
            f"request is not valid JSON: {e}",
            f"запрос не является JSON: ошибка в строке {e.lineno}, столбце {e.colno}",
            field="json",
            line=e.lineno,
            column=e.colno,
            reason=e.msg,
        ) from None
    except UnicodeDecodeError as e:
        raise not_json(
            f"request is not UTF-8 text: byte {e.start + 1} is {e.object[e.start]:#04x}",
            f"запрос не в кодировке UTF-8: неверный байт {e.start + 1}",
            field="json",
        ) from None
    except _JsonConstant as e:
        raise not_json(f"request: {e}", "в запросе недопустимое число", field="json") from None
    except ValueError as e:  # a number of over 4300 digits (Python's int limit)
        raise not_json(
            f"request has a number too long to read: {e}",
            "в запросе слишком длинное число",
            field="json",
        ) from None
    check_request_json(data, floats_to_fields=floats_to_fields)
    return data


def check_request_json(
    value: Any, where: str = "", depth: int = 0, *, floats_to_fields: bool = False
) -> None:
    """Refuse a parsed JSON request that no field of it could be right with, naming the
    path (``details.field``), before any field is read, so a hostile value never reaches
    a message, the terminal or the store: nesting deeper than ``MAX_REQUEST_DEPTH``
    (``TooDeepError``); a key or string with a ``text_fault`` or over
    ``MAX_REQUEST_TEXT`` characters (``BadTextError``); a number beyond
    ``MAX_REQUEST_INT`` or written with a point or an exponent (``BadNumberError``;
    with ``floats_to_fields`` the latter is left for the field's model)."""
    name = where or "request"
    if depth > MAX_REQUEST_DEPTH:
        raise TooDeepError(
            f"{name}: nested too deeply", f"{name}: слишком глубокая вложенность", field=name
        )
    if isinstance(value, str):
        fault = text_fault(value) or (
            ("text too long", "слишком длинный текст") if len(value) > MAX_REQUEST_TEXT else None
        )
        if fault:
            raise BadTextError(f"{name}: {fault[0]}", f"{name}: {fault[1]}", field=name)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) >= MAX_REQUEST_INT:
            raise BadNumberError(
                f"{name}: number out of range (at most {MAX_REQUEST_INT - 1} in magnitude)",
                f"{name}: слишком большое число",
                field=name,
            )
    elif isinstance(value, float) and not floats_to_fields:
        # JSON has one number type; a number written with a decimal point or an exponent
        # (2.0, 1e2, 1e400) is parsed as a float even when its value is whole.
        raise BadNumberError(
            f"{name}: must be a whole number written with digits only, without a decimal "
            "point or exponent (2.0 and 1e2 are not accepted; amounts are integer kopecks)",
            f"{name}: нужно целое число, записанное только цифрами, без точки и экспоненты "
            "(2.0 и 1e2 не принимаются; суммы в копейках)",
            field=name,
        )
    elif isinstance(value, dict):
        for key, item in value.items():
            label = f"{where}.{key}" if where else str(key)
            if not isinstance(key, str) or text_fault(key) or len(key) > MAX_REQUEST_TEXT:
                shown = ascii(key)[:40]
                raise BadTextError(
                    f"{name}: bad field name {shown}",
                    f"{where or 'запрос'}: неверное имя поля {shown}",
                    field=name,
                )
            check_request_json(item, label, depth + 1, floats_to_fields=floats_to_fields)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_request_json(
                item, f"{where}[{index}]", depth + 1, floats_to_fields=floats_to_fields
            )


def hold_id_of(text: str) -> str:
    """A hold's id written as text (the POS API's path, the CLI's argument), decoded as
    ``HoldRef``: 1-64 characters none of which a till refuses; else ``InputError``
    naming ``hold_id``."""
    data = {"hold_id": text}
    check_request_json(data)
    return decode(data, HoldRef).hold_id


def job_id_of(text: str) -> int:
    """A print job's number written as text (the POS API's path, the CLI's argument):
    not a positive whole number written with digits, ``InputError`` naming ``job_id``;
    more digits than ``JobId`` allows, ``NotFoundError`` (no job has that number)."""
    if not (text.isascii() and text.isdecimal()) or not text.lstrip("0"):
        raise InputError(
            f"job_id: must be a positive print job number (print_job_id of a commit or "
            f"refund), got {text[:32]!r}",
            "job_id: нужен номер задания печати: целое число больше нуля "
            "(print_job_id продажи или возврата)",
            field="job_id",
        )
    try:
        msgspec.convert(text, JobId)
    except msgspec.ValidationError:
        raise NotFoundError(f"no print job {text[:32]!r}", "такого слипа нет") from None
    return int(text)


def slip_width_of(text: str | None) -> int:
    """``SlipQuery.width`` (None: its default) as characters per line, one of
    ``SLIP_WIDTHS``; anything else is ``InputError`` naming ``width``, as the service
    words it."""
    width = SlipQuery().width if text is None else text
    allowed = [str(w) for w in SLIP_WIDTHS]
    if width not in allowed:
        raise InputError(
            f"width: must be {', '.join(allowed[:-1])} or {allowed[-1]}",
            f"width: ширина {', '.join(allowed[:-1])} или {allowed[-1]}",
            field="width",
        )
    return int(width)


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


M = TypeVar("M", bound=Request)


def decode(data: Any, model: type[M]) -> M:
    """``data`` (parsed JSON) as a ``model``; refused as the till's errors are worded
    (``InputError`` or ``CartError``, bilingual, ``details.field`` naming the field)."""
    try:
        return msgspec.convert(data, model)
    except msgspec.ValidationError:
        pass
    try:  # again in the order the fields are declared: the first fault in that order
        msgspec.convert(_in_order(model, data), model)
    except msgspec.ValidationError as e:
        raise _explain(model, data, str(e)) from None
    raise AssertionError("msgspec refused a request and then took it")  # pragma: no cover


def _in_order(cls: type[Request], data: Any) -> Any:
    """``data`` with the fields of each object (the request, its cheque lines) in the
    order ``cls`` declares them; unknown ones last."""
    if not isinstance(data, dict):
        return data
    shape = _shape(cls)
    out = {name: data[name] for name in shape if name in data}
    for name, value in out.items():
        kind = _leaf(shape[name])
        if isinstance(kind, mi.ListType) and isinstance(value, list):
            item = _leaf(kind.item_type)
            if isinstance(item, mi.StructType) and issubclass(item.cls, Request):
                out[name] = [_in_order(item.cls, x) for x in value]
    return out | {k: v for k, v in data.items() if k not in shape}


def checkout_request(till: Till, data: Any) -> CheckoutRequest:
    """A quote's (or a commit's without a hold) request; ``redeem_points`` absent: none."""
    return _checkout(till, decode(data, Checkout), 0)


def hold_request(till: Till, data: Any, ttl_s: int) -> tuple[CheckoutRequest, int]:
    """A hold's cheque and its time to live in seconds (``ttl_s`` when not given)."""
    req = decode(data, HoldRequest)
    return _checkout(till, req, 0), ttl_s if isinstance(req.ttl_s, UnsetType) else req.ttl_s


def commit_request(till: Till, data: Any) -> tuple[CheckoutRequest, str | None]:
    """A commit's cheque and its ``hold_id`` (None: no hold). With a hold and no
    ``redeem_points``, the request's ``redeem_points`` is None: what the hold reserved."""
    req = decode(data, CommitRequest)
    return _checkout(till, req, None if req.hold_id is not None else 0), req.hold_id


def identify_input(data: Any) -> str:
    """The scan or phone of an identify request."""
    return decode(data, IdentifyRequest).input


class RegisterArgs(TypedDict):
    """The keyword arguments of ``Agent.register`` a registration request gives."""

    phone: str
    first_name: str
    birthday: date | None
    consent_programme: bool
    consent_marketing: bool
    cashier_id: str | None


def register_args(data: Any) -> RegisterArgs:
    """A registration request; an absent phone or name is empty (the service names it)."""
    req = decode(data, RegisterRequest)
    return RegisterArgs(
        phone=req.phone or "",
        first_name=req.first_name or "",
        birthday=birthday_from_json(req.birthday),
        consent_programme=req.consent_programme,
        consent_marketing=req.consent_marketing,
        cashier_id=req.cashier_id,
    )


class RefundArgs(TypedDict):
    """The arguments of ``Agent.refund`` a refund request gives (lines: line_no -> qty)."""

    refund_id: str
    receipt_id: str
    lines: dict[int, int]
    cashier_id: str | None
    shift_id: str | None


def refund_args(data: Any) -> RefundArgs:
    """A refund request; absent ids are empty (the service names them)."""
    req = decode(data, RefundRequest)
    return RefundArgs(
        refund_id=req.refund_id or "",
        receipt_id=req.receipt_id or "",
        lines=refund_lines_from_json(data.get("lines")),
        cashier_id=req.cashier_id,
        shift_id=req.shift_id,
    )


def _checkout(till: Till, req: Checkout, redeem_default: int | None) -> CheckoutRequest:
    member_id, identified_by = req.member_id, req.identified_by or "api"
    if member_id is None and req.identify is not None:
        card = till.identify(req.identify)
        member_id, identified_by = card.member_id, card.identified_by
    if member_id is None:
        raise InputError(
            "member_id (or identify) is required", "не указан участник", field="member_id"
        )
    redeem = req.redeem_points
    return CheckoutRequest(
        member_id,
        _cart(req, till.catalog_lookup),
        redeem_default if isinstance(redeem, UnsetType) else redeem,
        req.coupon,
        req.cashier_id,
        req.shift_id,
        identified_by,
    )


def cart_from_json(data: Any, catalog: CatalogLookup | None = None) -> Cart:
    """Parse ``{"receipt_id": ..., "lines": [...]}`` (the cart fields of a checkout
    request); a line without a category is looked up in the till's catalogue by SKU
    (unknown SKU -> ``CatalogError``)."""
    if not isinstance(data, Mapping):
        raise CartError("request must be a JSON object", "запрос должен быть объектом JSON")
    cart = {"receipt_id": data.get("receipt_id"), "lines": data.get("lines")}
    return _cart(decode(cart, Checkout), catalog)


def _cart(req: Checkout, catalog: CatalogLookup | None) -> Cart:
    lines = []
    for index, raw in enumerate(req.lines):
        where, n = f"lines[{index}].", index + 1
        sku, category, name, collection = raw.sku, raw.category, raw.name, raw.collection
        price = raw.price_kop
        if category is None:
            found = catalog(sku) if catalog else None
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
        if price is None:
            raise _field_error(
                f"{where}price_kop", "price_kop", "is required", "обязательное поле", n
            )
        amount = raw.amount_kop
        if isinstance(amount, UnsetType):
            amount = price * raw.qty
            hi = _bounds(CheckoutLine, "amount_kop")[1]
            if amount > hi:
                raise _field_error(
                    f"{where}amount_kop",
                    "amount_kop",
                    f"must be between 0 and {hi}",
                    f"должно быть от 0 до {hi}",
                    n,
                )
        lines.append(
            CartLine(
                line_no=n if isinstance(raw.line_no, UnsetType) else raw.line_no,
                sku=sku,
                name=name or sku,
                category=category,
                price_kop=price,
                qty=raw.qty,
                amount_kop=amount,
                sale=raw.sale,
                collection=collection,
            )
        )
    return Cart(req.receipt_id, tuple(lines))


# ---------------------------------------------------------------- msgspec's refusals told

_AT = re.compile(r"(.*?)(?: - at `\$(.*)`)?", re.S)
_SEGMENT = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")
_NAMED = re.compile(r"Object (?:missing required|contains unknown) field `(.*)`")


@cache
def _shape(cls: type[Request]) -> dict[str, mi.Type]:
    """Field name -> the field's type, as msgspec describes it (constraints included)."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return {f.name: f.type for f in info.fields}


@cache
def _required(cls: type[Request]) -> tuple[str, ...]:
    """The fields ``cls`` requires, in their declared order."""
    info = mi.type_info(cls)
    assert isinstance(info, mi.StructType)
    return tuple(f.name for f in info.fields if f.required)


def _leaf(t: mi.Type) -> mi.Type:
    """The type a value of ``t`` has when it is given (no Meta wrapper, not None; msgspec
    leaves an unset default out of the union)."""
    while True:
        if isinstance(t, mi.Metadata):
            t = t.type
        elif isinstance(t, mi.UnionType):
            t = next(m for m in t.types if not isinstance(m, mi.NoneType))
        else:
            return t


def _bounds(cls: type[Request], name: str) -> tuple[int, int]:
    t = _leaf(_shape(cls)[name])
    assert isinstance(t, mi.IntType) and t.ge is not None and t.le is not None
    return t.ge, t.le


def _field_error(
    path: str, field: str, en: str, ru: str, line: int | None, error: type[InputError] = CartError
) -> InputError:
    label_en, label_ru = _labels(path, line)
    details: dict[str, Any] = {"field": field}
    if line is not None:
        details["line"] = line
    return error(f"{label_en}: {en}", f"{label_ru}: {ru}", **details)


def _explain(model: type[Request], data: Any, reason_at: str) -> AgentError:
    """The till's error for msgspec's refusal ``reason_at`` (``"<reason> - at
    `$.lines[1].qty`"``) of ``data`` as a ``model``."""
    match = _AT.fullmatch(reason_at)
    assert match is not None
    reason, at = match.group(1), match.group(2) or ""
    path: list[str | int] = [
        name or (-1 if index == "..." else int(index)) for name, index in _SEGMENT.findall(at)
    ]
    return _explain_at(model, request_object(data), "", None, reason, path)


def _explain_at(
    cls: type[Request],
    raw: dict[str, Any],
    where: str,
    line: int | None,
    reason: str,
    path: list[str | int],
) -> AgentError:
    """Walk down ``path`` from the object ``raw`` (a ``cls`` at ``where``): an unknown
    field of any object on the way is named first (a typo is worse than a bad value),
    then the faulty field with its own wording (``cls.faults``) or the generic one of
    its type and bounds."""
    check_fields(raw, _shape(cls), f"{where}." if where else "", line=line)
    if not path:  # the object itself: a required field is missing
        named = _NAMED.fullmatch(reason)
        if named is None:
            return _unexplained(where, reason)
        name = named.group(1)
        return _field_fault(cls, name, f"{where}.{name}" if where else name, line, reason)
    name, rest = path[0], path[1:]
    if not isinstance(name, str):
        return _unexplained(where, reason)
    for before in _required(cls):  # msgspec names a missing field last, the order first
        if before == name:
            break
        if before not in raw:
            missing = f"{where}.{before}" if where else before
            return _field_fault(cls, before, missing, line, "Object missing required field")
    field_path = f"{where}.{name}" if where else name
    rule = cls.faults.get(name)
    if isinstance(rule, Hook):
        _hook(rule, raw, name)
    if not rest:
        return _field_fault(cls, name, field_path, line, reason)
    index, rest = rest[0], rest[1:]
    kind = _leaf(_shape(cls)[name])
    struct = _leaf(kind.item_type) if isinstance(kind, mi.ListType) else None
    if not (
        isinstance(index, int)
        and index >= 0
        and isinstance(struct, mi.StructType)
        and issubclass(struct.cls, Request)
    ):
        return _unexplained(field_path, reason)
    item, item_path = raw[name][index], f"{field_path}[{index}]"
    item_line = index + 1 if struct.cls.numbered else None
    if not isinstance(item, dict):
        en, ru = _labels(item_path, item_line)
        return CartError(
            f"{en}: must be an object", f"{ru}: должна быть объектом JSON", line=item_line
        )
    return _explain_at(struct.cls, item, item_path, item_line, reason, rest)


def _field_fault(
    cls: type[Request], name: str, path: str, line: int | None, reason: str
) -> AgentError:
    """The error for the field ``name`` of a ``cls`` msgspec refused with ``reason``."""
    rule = cls.faults.get(name)
    if isinstance(rule, Says):
        if not rule.labelled:
            return rule.error(rule.en, rule.ru, field=name)
        return _field_error(path, name, rule.en, rule.ru, line, rule.error)
    error = rule if isinstance(rule, type) else cls.error
    kind = _leaf(_shape(cls)[name])
    if (
        reason.startswith("Object missing")
        or reason.endswith("got `null`")
        or "length >=" in reason
    ):
        missing = (
            rule if isinstance(rule, Required) else Required("is required", "обязательное поле")
        )
        en, ru = missing.en, missing.ru
    elif isinstance(kind, mi.IntType):
        if re.match(r"Expected `int` [<>]", reason):
            en, ru = (
                f"must be between {kind.ge} and {kind.le}",
                f"должно быть от {kind.ge} до {kind.le}",
            )
        else:
            en, ru = (
                "must be a whole number (kopecks/units)",
                "должно быть целым числом (копейки/штуки)",
            )
    elif isinstance(kind, mi.StrType):
        size = kind.max_length
        if "length <=" in reason:
            en, ru = (
                f"is too long (text up to {size} characters)",
                f"слишком длинное (текст до {size} символов)",
            )
        else:
            en, ru = (
                f"must be a string (text up to {size} characters)",
                f"должно быть строкой (текст до {size} символов)",
            )
    else:
        return _unexplained(path, reason)
    return _field_error(path, name, en, ru, line, error)


def _hook(rule: Hook, raw: dict[str, Any], name: str) -> None:
    """Let the field's own parser refuse the raw value (it raises when it does)."""
    if rule.name == "flag":
        flag_from_json(raw, name)
    elif rule.name == "birthday":
        birthday_from_json(raw.get(name))
    else:
        refund_lines_from_json(raw.get(name))


def _unexplained(where: str, reason: str) -> InputError:
    """A refusal no wording above covers: msgspec's reason, in English."""
    name = where or "request"
    return InputError(f"{name}: {reason}", f"{where or 'запрос'}: неверное значение", field=name)


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

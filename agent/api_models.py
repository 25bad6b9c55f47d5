"""The JSON requests of the till's front doors (POS API, CLI), declared once as msgspec
Structs: field names, types, bounds and defaults here are both what ``agent.requests``
decodes and what the POS API's OpenAPI document says (``msgspec.json.schema_components``).

Units: ``*_kop`` integer kopecks, points integer points, ``ttl_s`` whole seconds.

A bound a field carries with ``Meta(ge=..., le=..., max_length=...)`` is enforced when
decoding; one given only in ``extra_json_schema`` documents a rule the till service
checks itself, with its own error (a line dearer than ``LINE_MAX_KOP`` is a
``cheque_limit``, a programme consent of ``false`` a ``consent_required``), so the
decoder stays as permissive as that rule needs. ``faults`` (a class variable) says how
a refused field is explained when the generic wording (``agent.requests``) is not it:
``Says`` a fixed text, ``Hook`` a parser that explains its own field, ``Required`` the
words for a missing value, an error class the class to raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from agent.errors import CartError, InputError
from agent.limits import LINE_MAX_KOP, MAX_LINES
from agent.money import MAX_CHEQUE_KOP
from agent.results import MAX_TTL_S, MIN_TTL_S
from agent.slip import SLIP_WIDTHS


@dataclass(frozen=True, slots=True)
class Says:
    """A refused field explained by a fixed text: ``label: en`` / ``label: ru`` when
    ``labelled`` (the label names the field and, in a cheque line, the line), else the
    texts as they are."""

    en: str
    ru: str
    error: type[InputError] = InputError
    labelled: bool = True


@dataclass(frozen=True, slots=True)
class Hook:
    """A refused field explained by a parser of ``agent.requests`` that reads the raw
    value and raises the field's own error: ``name`` is one of ``flag``, ``birthday``,
    ``refund_lines``."""

    name: str


@dataclass(frozen=True, slots=True)
class Required:
    """A field's own wording for "missing" (absent, null, empty); its other faults have
    the generic wording."""

    en: str
    ru: str


Fault = Says | Hook | Required | type[InputError]


class Request(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of the request objects: an unknown field is refused, naming it (a typo such
    as ``redeem_point`` must not silently mean "spend nothing"). Fields are declared in
    the order they are checked: of a request with several faults, the first one in that
    order is named."""

    faults: ClassVar[dict[str, Fault]] = {}
    error: ClassVar[type[InputError]] = InputError
    """The class of a refused field's error when ``faults`` does not say."""
    numbered: ClassVar[bool] = False
    """True for a cheque line: errors name the line's 1-based number too."""


Id = Annotated[str, Meta(max_length=64)]
Text = Annotated[str, Meta(max_length=128)]
LongText = Annotated[str, Meta(max_length=4096)]
"""A scan or a typed entry (app token, coupon): longer than any id."""

IDENTIFY_INPUT = {
    "description": "app QR token, 13-digit member code, or phone (a scan typed in the "
    "Russian keyboard layout is repaired)",
    "anyOf": [
        # an app QR token (``KM1:...``), optionally after an AIM prefix such as ``]Q1``
        {"maxLength": 256, "pattern": r"^\s*(\][A-Za-z][0-9A-Za-z])?\s*[Kk][A-Za-z][0-9]:\S+\s*$"},
        # a member code: 13 digits, spaces or dashes between groups
        {
            "maxLength": 40,
            "pattern": r"^\s*(\][A-Za-z][0-9A-Za-z])?\s*([0-9][ \-]?){12}[0-9]\s*$",
        },
        # a phone: +E.164 up to 15 digits, or a Russian number of at most 11 digits
        {
            "maxLength": 32,
            "pattern": r"^\s*(\+[\s\-.()]*([0-9][\s\-.()]*){4,15}"
            r"|[\s\-.()]*([0-9][\s\-.()]*){4,11})$",
        },
    ],
}
"""What a scan or a typed entry may look like (``agent.identify``). A phone that is not a
valid number, a code with a wrong check digit or an expired token fit the schema and get
a 400 naming the reason."""

MONEY = (
    "kopecks; price x qty at most 1 000 000 ₽ a line and the lines at most 10 000 000 ₽ a "
    "cheque (400 cheque_limit)"
)


class CheckoutLine(Request, frozen=True, kw_only=True):
    """One cheque line. A line without ``category`` is looked up in the till's catalogue
    by ``sku`` (name, category, collection and price from there)."""

    sku: Annotated[
        str,
        Meta(
            min_length=1,
            max_length=64,
            description="article; a line without category must name a SKU of the till "
            "catalogue (else 400 unknown SKU)",
        ),
    ]
    category: Id | None = None
    name: Text | None = None
    collection: Id | None = None
    qty: Annotated[int, Meta(ge=1, le=10_000)] = 1
    price_kop: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=MAX_CHEQUE_KOP,
                description=f"unit price, {MONEY}",
                extra_json_schema={"maximum": LINE_MAX_KOP},
            ),
        ]
        | None
    ) = None
    amount_kop: (
        Annotated[
            int,
            Meta(
                ge=0,
                le=MAX_CHEQUE_KOP * 10,
                description="line total after POS discounts, kopecks (default price*qty)",
                extra_json_schema={"maximum": LINE_MAX_KOP},
            ),
        ]
        | UnsetType
    ) = UNSET
    sale: bool = False
    line_no: Annotated[int, Meta(ge=1, le=100_000)] | UnsetType = UNSET
    """Default: the line's 1-based position."""

    faults: ClassVar[dict[str, Fault]] = {
        "sku": Required("is required (1-64 characters)", "обязательное поле"),
        "sale": Says("must be true or false", "должно быть true/false", CartError),
    }
    error: ClassVar[type[InputError]] = CartError
    numbered: ClassVar[bool] = True


class Checkout(Request, frozen=True, kw_only=True):
    """A cheque to quote (and, with the extras of ``HoldRequest`` / ``CommitRequest``, to
    hold points for or to commit). The member is ``member_id``, or found from
    ``identify`` (a scan or a phone)."""

    member_id: Id | None = None
    identified_by: Annotated[str, Meta(max_length=32)] | None = None
    identify: Annotated[str, Meta(max_length=4096, extra_json_schema=IDENTIFY_INPUT)] | None = None
    receipt_id: Annotated[str, Meta(min_length=1, max_length=64, description="the POS cheque id")]
    lines: Annotated[
        list[CheckoutLine], Meta(extra_json_schema={"minItems": 1, "maxItems": MAX_LINES})
    ]
    """At least one line, at most ``MAX_LINES`` (checked by ``agent.engine.validate_cart``,
    which names the limit in its ``CartError``)."""
    redeem_points: (
        Annotated[int, Meta(extra_json_schema={"minimum": 0})] | Literal["max"] | UnsetType
    ) = UNSET
    """Points to spend, or ``"max"`` (more than spendable: 400); default none (with a
    hold: what the hold reserved)."""
    coupon: LongText | None = None
    cashier_id: Id | None = None
    shift_id: Id | None = None

    faults: ClassVar[dict[str, Fault]] = {
        "receipt_id": CartError,
        "lines": Says("must be a list of cheque lines", "должно быть списком позиций", CartError),
        "redeem_points": Says(
            'redeem_points: must be a whole number or "max"',
            'списание бонусов: целое число или "max"',
            labelled=False,
        ),
    }


class HoldRequest(Checkout, frozen=True, kw_only=True):
    """A cheque to reserve points for while the customer pays, for ``ttl_s`` seconds."""

    ttl_s: Annotated[int, Meta(ge=MIN_TTL_S, le=MAX_TTL_S)] | UnsetType = UNSET

    faults: ClassVar[dict[str, Fault]] = {
        **Checkout.faults,
        "ttl_s": Says(
            f"ttl_s: must be a whole number of seconds from {MIN_TTL_S} to {MAX_TTL_S}",
            f"срок резерва: целое число секунд от {MIN_TTL_S} до {MAX_TTL_S}",
            labelled=False,
        ),
    }


class CommitRequest(Checkout, frozen=True, kw_only=True):
    """A cheque to commit, idempotent by ``receipt_id``; with ``hold_id`` the hold's
    points are spent (the cheque must be the held one, else 409)."""

    hold_id: (
        Annotated[str, Meta(min_length=1, max_length=64, description="from POST /v1/holds")] | None
    ) = None

    faults: ClassVar[dict[str, Fault]] = {
        **Checkout.faults,
        "hold_id": Says(
            "hold_id: must be the hold id text from POST /v1/holds",
            "hold_id: номер резерва из POST /v1/holds",
            labelled=False,
        ),
    }


class IdentifyRequest(Request, frozen=True, kw_only=True):
    """A scan or a phone to find a member by."""

    input: Annotated[str, Meta(max_length=4096, extra_json_schema=IDENTIFY_INPUT)]


class RegisterRequest(Request, frozen=True, kw_only=True):
    """A new member with the programme consent (``consent_programme`` must be true:
    else 400 consent_required)."""

    phone: Annotated[str, Meta(max_length=64, extra_json_schema={"minLength": 1})] | None = None
    first_name: Annotated[str, Meta(max_length=128, extra_json_schema={"minLength": 1})] | None = (
        None
    )
    birthday: Annotated[str, Meta(extra_json_schema={"format": "date"})] | None = None
    consent_programme: Annotated[
        bool,
        Meta(
            description="the member's consent to the programme: required, must be true",
            extra_json_schema={"const": True},
        ),
    ] = False
    consent_marketing: bool = False
    cashier_id: Id | None = None

    faults: ClassVar[dict[str, Fault]] = {
        "birthday": Hook("birthday"),
        "consent_programme": Hook("flag"),
        "consent_marketing": Hook("flag"),
    }


class RefundLineRequest(Request, frozen=True, kw_only=True):
    """A refunded line in the list form of ``RefundRequest.lines``."""

    line_no: int | str
    """A line number, or its digits as text."""
    qty: int = 1


RefundQty = Annotated[int, Meta(extra_json_schema={"minimum": 0, "maximum": 10_000})]
"""Units of a line returned (the refund checks them against the cheque)."""

REFUND_LINES = {
    "minProperties": 1,
    "propertyNames": {"pattern": "^[1-9][0-9]{0,5}$"},
    "description": 'line number -> quantity returned, e.g. {"2": 1} (a line or quantity the '
    "cheque does not have: 400)",
}


class RefundRequest(Request, frozen=True, kw_only=True):
    """Lines of a committed cheque returned, idempotent by ``refund_id``."""

    refund_id: Annotated[str, Meta(max_length=64, description="the POS refund id")] | None = None
    receipt_id: Id | None = None
    lines: (
        Annotated[dict[str, RefundQty], Meta(extra_json_schema=REFUND_LINES)]
        | list[RefundLineRequest]
        | None
    ) = None
    cashier_id: Id | None = None
    shift_id: Id | None = None

    faults: ClassVar[dict[str, Fault]] = {"lines": Hook("refund_lines")}


class ErrorBody(msgspec.Struct):
    """Every refusal of the JSON CLI (``AgentError.to_dict``): a stable ``error`` code, a
    title, the message in both languages and machine-readable ``details`` (the field, the
    line, limits). The POS API's problem document (``agent.problem.Problem``) carries
    these same fields beside RFC 9457's."""

    error: str
    message_ru: str
    message_en: str
    title: str = ""
    details: dict[str, Any] = {}


HoldId = Annotated[str, Meta(min_length=1, max_length=64)]
"""A hold's id (``hold_id`` of ``POST /v1/holds``): the path parameter of
``/v1/holds/{hold_id}`` and the argument of ``kassa hold show|cancel``."""


class HoldRef(Request, frozen=True, kw_only=True):
    """A hold named by its id alone (a path or a command-line argument)."""

    hold_id: HoldId
    faults: ClassVar[dict[str, Fault]] = {
        "hold_id": Says("must be 1-64 characters", "от 1 до 64 символов"),
    }


JOB_ID_DIGITS = 12
"""Digits of the largest print job number (``print_job_id`` of a commit or refund)."""

JobId = Annotated[str, Meta(pattern=f"^[0-9]{{1,{JOB_ID_DIGITS}}}$")]
"""A print job's number as text: the path parameter of ``/v1/slips/{job_id}`` and the
argument of ``kassa slip|reprint``."""


class SlipQuery(msgspec.Struct):
    """``GET /v1/slips/{job_id}``'s query (and ``kassa slip --width``): ``width``, the
    slip's characters per line as text, one of ``SLIP_WIDTHS``."""

    width: Annotated[str, Meta(extra_json_schema={"enum": [str(w) for w in SLIP_WIDTHS]})] = "42"

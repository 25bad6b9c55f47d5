"""agent.requests: the JSON request parsers shared by the CLI and the POS API (msgspec
models of agent.api_models, their refusals worded as the till's errors)."""

import json
from datetime import date
from pathlib import Path

import pytest

from agent.errors import AgentError, CartError, CatalogError, InputError, NotFoundError
from agent.requests import (
    birthday_from_json,
    cart_from_json,
    checkout_request,
    commit_request,
    flag_from_json,
    hold_request,
    identify_input,
    refund_args,
    register_args,
)


def test_birthday_format_and_calendar_errors_are_told_apart():
    assert birthday_from_json("1990-02-28") == date(1990, 2, 28)
    assert birthday_from_json(None) is None and birthday_from_json("") is None
    with pytest.raises(InputError) as missing_day:
        birthday_from_json("1990-02-31")
    assert "no such date" in missing_day.value.message_en
    assert "такой даты нет" in missing_day.value.message_ru
    # date.fromisoformat alone takes the last two on Python 3.11 (basic and week forms)
    for bad in ("31.02.1990", "1990-2-3", 19900228, ["1990-02-28"], "19900228", "1990-W09-3"):
        with pytest.raises(InputError) as wrong:
            birthday_from_json(bad)
        assert "YYYY-MM-DD" in wrong.value.message_en and "ГГГГ-ММ-ДД" in wrong.value.message_ru
        assert wrong.value.details["field"] == "birthday"


def test_flags_must_be_json_booleans():
    assert flag_from_json({"x": True}, "x") is True and flag_from_json({}, "x") is False
    for bad in ("yes", "true", 1, 0, None):
        with pytest.raises(InputError) as e:
            flag_from_json({"x": bad}, "x")
        assert e.value.details == {"field": "x"} and "true" in e.value.message_ru


def test_line_errors_carry_the_line_number_and_path_in_both_languages():
    with pytest.raises(CatalogError) as e:
        cart_from_json({"receipt_id": "R", "lines": [{"sku": "NOPE"}]}, lambda sku: None)
    assert e.value.message_en.startswith("line 1 (lines[0].sku): unknown SKU 'NOPE'")
    assert e.value.message_ru.startswith("позиция 1 (lines[0].sku): неизвестный артикул «NOPE»")
    assert e.value.details == {"field": "sku", "line": 1, "sku": "NOPE"}
    lines = [{"sku": "A", "category": "c", "price_kop": 100}, {"sku": "B", "category": "c"}]
    with pytest.raises(CartError) as missing_price:
        cart_from_json({"receipt_id": "R", "lines": lines})
    assert missing_price.value.message_en.startswith("line 2 (lines[1].price_kop): ")
    assert missing_price.value.message_ru.startswith("позиция 2 (lines[1].price_kop): ")
    assert missing_price.value.details == {"field": "price_kop", "line": 2}


class FakeTill:
    """The two things a checkout request asks the till: who a scan is, what a SKU is."""

    def identify(self, text):
        if text == "unknown":
            raise NotFoundError("no such member", "участника нет")
        return type("Card", (), {"member_id": "M-1", "identified_by": "code"})()

    def catalog_lookup(self, sku):
        return ("Платье", "dresses", None, 1000) if sku.startswith("DR") else None


CHEQUE = {"identify": "0001000000018", "receipt_id": "R", "lines": [{"sku": "DR-1"}]}


@pytest.mark.parametrize(
    ("body", "error", "en", "ru", "details"),
    [
        (
            CHEQUE | {"lines": [{"sku": "DR-1"}, {"sku": "DR-1", "qty": 0}]},
            CartError,
            "line 2 (lines[1].qty): must be between 1 and 10000",
            "позиция 2 (lines[1].qty): должно быть от 1 до 10000",
            {"field": "qty", "line": 2},
        ),
        (
            CHEQUE | {"lines": [{"sku": "DR-1", "qty": "2"}]},
            CartError,
            "line 1 (lines[0].qty): must be a whole number (kopecks/units)",
            "позиция 1 (lines[0].qty): должно быть целым числом (копейки/штуки)",
            {"field": "qty", "line": 1},
        ),
        (
            CHEQUE | {"lines": [{"sku": ""}]},
            CartError,
            "line 1 (lines[0].sku): is required (1-64 characters)",
            "позиция 1 (lines[0].sku): обязательное поле",
            {"field": "sku", "line": 1},
        ),
        (
            CHEQUE | {"lines": [{"sku": "DR-1"}, "DR-2"]},
            CartError,
            "line 2 (lines[1]): must be an object",
            "позиция 2 (lines[1]): должна быть объектом JSON",
            {"line": 2},
        ),
        (
            CHEQUE | {"lines": {}},
            CartError,
            "lines: must be a list of cheque lines",
            "lines: должно быть списком позиций",
            {"field": "lines"},
        ),
        (
            {"identify": "x", "lines": [{"sku": "DR-1"}]},
            CartError,
            "receipt_id: is required",
            "receipt_id: обязательное поле",
            {"field": "receipt_id"},
        ),
        (
            CHEQUE | {"cashier_id": "x" * 65},
            InputError,
            "cashier_id: is too long (text up to 64 characters)",
            "cashier_id: слишком длинное (текст до 64 символов)",
            {"field": "cashier_id"},
        ),
        (
            CHEQUE | {"coupon": 5},
            InputError,
            "coupon: must be a string (text up to 4096 characters)",
            "coupon: должно быть строкой (текст до 4096 символов)",
            {"field": "coupon"},
        ),
        (
            CHEQUE | {"redeem_points": "all"},
            InputError,
            'redeem_points: must be a whole number or "max"',
            'списание бонусов: целое число или "max"',
            {"field": "redeem_points"},
        ),
        (
            {"receipt_id": "R", "lines": [{"sku": "DR-1"}]},
            InputError,
            "member_id (or identify) is required",
            "не указан участник",
            {"field": "member_id"},
        ),
    ],
)
def test_msgspec_refusals_are_worded_as_the_tills_errors(body, error, en, ru, details):
    """msgspec says ``Expected `int` >= 1 - at `$.lines[1].qty```; the till says which
    line and field, in both languages, with the same details as ever."""
    with pytest.raises(error) as e:
        checkout_request(FakeTill(), body)
    assert type(e.value) is error
    assert (e.value.message_en, e.value.message_ru, e.value.details) == (en, ru, details)


def test_the_first_fault_in_the_declared_order_is_named():
    """An unknown field before any bad value (a typo is the likelier cause), and of two bad
    fields the one declared first (as the hand-written parsers checked them), whatever
    order the JSON has them in."""
    line = {"qty": 0, "colour": "red", "sku": "DR-1"}
    with pytest.raises(InputError) as e:
        checkout_request(FakeTill(), CHEQUE | {"lines": [line]})
    assert e.value.details == {"field": "lines[0].colour", "unknown": ["colour"]}
    assert e.value.message_en.startswith("line 1 (lines[0].colour): unknown field (known: ")
    with pytest.raises(CartError) as e:
        checkout_request(FakeTill(), CHEQUE | {"lines": [{"price_kop": "x", "category": "c"}]})
    assert e.value.details == {"field": "sku", "line": 1}
    with pytest.raises(InputError) as e:
        checkout_request(FakeTill(), {"lines": [{"sku": "DR-1"}], "receipt_id": 5, "identify": 1})
    assert e.value.details == {"field": "identify"}


def test_hold_and_commit_requests_carry_their_extras():
    till = FakeTill()
    req, ttl = hold_request(till, CHEQUE | {"redeem_points": "max"}, 900)
    assert (req.member_id, req.identified_by, req.redeem_points, ttl) == ("M-1", "code", "max", 900)
    assert hold_request(till, CHEQUE | {"ttl_s": 60}, 900)[1] == 60
    with pytest.raises(InputError) as e:
        hold_request(till, CHEQUE | {"ttl_s": 5}, 900)
    assert e.value.details == {"field": "ttl_s"} and "10 to 86400" in e.value.message_en
    with pytest.raises(InputError) as e:  # a quote has no ttl_s
        checkout_request(till, CHEQUE | {"ttl_s": 60})
    assert e.value.details["field"] == "ttl_s" and "unknown field" in e.value.message_en
    # a commit naming a hold spends what it reserved unless it says otherwise
    assert commit_request(till, CHEQUE | {"hold_id": "H"})[0].redeem_points is None
    assert commit_request(till, CHEQUE | {"hold_id": "H", "redeem_points": 5})[0].redeem_points == 5
    assert commit_request(till, CHEQUE) == (checkout_request(till, CHEQUE), None)
    with pytest.raises(InputError) as e:
        commit_request(till, CHEQUE | {"hold_id": ""})
    assert e.value.message_en == "hold_id: must be the hold id text from POST /v1/holds"
    cart = checkout_request(till, CHEQUE | {"member_id": "M-9"}).cart
    assert (cart.lines[0].name, cart.lines[0].price_kop, cart.lines[0].line_no) == (
        "Платье",
        1000,
        1,
    )


def test_identify_register_and_refund_requests():
    assert identify_input({"input": " 8 916 "}) == " 8 916 "
    with pytest.raises(InputError) as e:
        identify_input({})
    assert (e.value.message_en, e.value.details) == ("input: is required", {"field": "input"})
    args = register_args({"phone": "+7", "consent_programme": True, "birthday": "1990-02-28"})
    assert args == {
        "phone": "+7",
        "first_name": "",
        "birthday": date(1990, 2, 28),
        "consent_programme": True,
        "consent_marketing": False,
        "cashier_id": None,
    }
    refund = refund_args(
        {"refund_id": "F", "receipt_id": "R", "lines": [{"line_no": 2}, {"line_no": "2", "qty": 2}]}
    )
    assert refund == {
        "refund_id": "F",
        "receipt_id": "R",
        "lines": {2: 3},
        "cashier_id": None,
        "shift_id": None,
    }
    for bad, says in (
        ({"x": 1}, "bad line number 'x'"),
        ({"1": -1}, "bad quantity for line 1"),
        (None, "must map"),
    ):
        with pytest.raises(InputError) as e:
            refund_args({"refund_id": "F", "receipt_id": "R", "lines": bad})
        assert says in e.value.message_en and e.value.details == {"field": "lines"}
    with pytest.raises(InputError) as e:
        refund_args({"lines": [{"line_no": 1, "qty": 1, "why": "x"}]})
    assert e.value.details == {"field": "lines[0].why", "unknown": ["why"]}


def test_the_models_are_the_schema():
    """What the decoder enforces is what the generated schema says."""
    import msgspec

    from agent.api_models import Checkout, CheckoutLine

    _, schemas = msgspec.json.schema_components([Checkout])
    line = schemas["CheckoutLine"]
    assert line["additionalProperties"] is False and line["required"] == ["sku"]
    assert (
        line["properties"]["sku"]["minLength"] == 1 and line["properties"]["sku"]["maxLength"] == 64
    )
    assert schemas["Checkout"]["required"] == ["receipt_id", "lines"]
    assert set(schemas["CheckoutLine"]["properties"]) == set(CheckoutLine.__struct_fields__)


ODD = [None, 0, -1, 1, 10001, 1.5, True, False, "", "x", "DR-1", "x" * 65, "x" * 200, "x" * 5000]
ODD += [[], {}, "max", {"1": 1}, [{"line_no": 1}], [{"sku": "DR-1"}], ["s"], {"a": 1}, 10**12]
CHECKOUT_KEYS = ["member_id", "identify", "identified_by", "receipt_id", "lines"]
CHECKOUT_KEYS += ["redeem_points", "coupon", "cashier_id", "shift_id"]
LINE_KEYS = ["line_no", "sku", "name", "category", "collection", "price_kop", "qty"]
LINE_KEYS += ["amount_kop", "sale"]


def variants(base: dict, keys: list[str]) -> list[dict]:
    """``base`` with each of ``keys`` set to each odd value, or left out; and with a
    field it does not have."""
    out = [base | {k: v} for k in keys for v in ODD]
    out += [{k: v for k, v in base.items() if k != gone} for gone in keys]
    return [*out, base | {"zzz": 1}]


def request_variants() -> list[tuple[str, object]]:
    """Requests of one fault each (and some good ones), in a fixed order: every field of
    every request kind given every odd value, left out, or joined by an unknown field."""
    cheque = {"identify": "x", "receipt_id": "R", "lines": [{"sku": "DR-1"}]}
    cheque["lines"].append({"sku": "X", "category": "c", "price_kop": 5})
    out: list[tuple[str, object]] = [("checkout", c) for c in variants(cheque, CHECKOUT_KEYS)]
    for line in variants({"sku": "X", "category": "c", "price_kop": 5}, LINE_KEYS):
        out.append(("checkout", cheque | {"lines": [{"sku": "DR-1"}, line]}))
    out += [("checkout", x) for x in ([], "s", 5, None)]
    reg = {"phone": "+7", "first_name": "A", "consent_programme": True}
    keys = ["phone", "first_name", "birthday", "consent_programme", "consent_marketing"]
    out += [("register", c) for c in variants(reg, [*keys, "cashier_id"])]
    ref = {"refund_id": "F", "receipt_id": "R", "lines": {"1": 1}}
    keys = ["refund_id", "receipt_id", "lines", "cashier_id", "shift_id"]
    out += [("refund", c) for c in variants(ref, keys)]
    for lines in (
        {"x": 1},
        {"1": -1},
        {"1": True},
        {"1": "2"},
        {" 1": 1},
        [{"line_no": 1, "qty": 2}],
        [{"line_no": "1"}],
        [{"qty": 1}],
        [{"line_no": 1, "z": 1}],
        [1],
        [{"line_no": 1}, 5],
    ):
        out.append(("refund", ref | {"lines": lines}))
    out += [("identify", c) for c in variants({"input": "x"}, ["input"])]
    return out


def parse_variant(kind: str, body: object) -> list[object]:
    """What the parser makes of ``body``: ``["ok", repr]`` or the error's code, texts and
    details."""
    till = FakeTill()
    try:
        if kind == "checkout":
            made: object = checkout_request(till, body)
        elif kind == "register":
            made = sorted(register_args(body).items())
        elif kind == "refund":
            made = sorted(refund_args(body).items())
        else:
            made = identify_input(body)
    except AgentError as e:
        return [e.code, e.message_en, e.message_ru, e.details]
    return ["ok", repr(made)]


def test_every_single_fault_is_told_as_the_hand_written_parsers_told_it():
    """The oracle: what the hand-written parsers (before the msgspec models) answered to
    each of these requests, recorded in snapshots/request_errors.json (``cases``: an
    index into ``answers`` per request); the models and their wording answer every one
    the same: code, both texts and details, or the same request made."""
    path = Path(__file__).parent / "snapshots/request_errors.json"
    recorded = json.loads(path.read_text(encoding="utf-8"))
    cases = request_variants()
    assert len(cases) == len(recorded["cases"]) == 740
    for (kind, body), answer in zip(cases, recorded["cases"], strict=True):
        assert parse_variant(kind, body) == recorded["answers"][answer], (kind, body)


def test_the_one_request_reader_checks_the_whole_document_first():
    """read_request_json: depth up to MAX_REQUEST_DEPTH, then too_deep; a number with a
    point is bad_number unless the door leaves it to the field (the CLI's bad_cart);
    NaN and a syntax error are the door's not-JSON class, naming line and column."""
    from agent.requests import (
        MAX_REQUEST_DEPTH,
        BadNumberError,
        NotJsonError,
        TooDeepError,
        read_request_json,
    )

    deep = "[" * (MAX_REQUEST_DEPTH + 1) + "]" * (MAX_REQUEST_DEPTH + 1)  # depths 0..8
    assert read_request_json(deep.encode()) == json.loads(deep)
    with pytest.raises(TooDeepError):
        read_request_json("[" + deep + "]")
    with pytest.raises(TooDeepError):
        read_request_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BadNumberError) as point:
        read_request_json('{"qty": 2.0}')
    assert point.value.details["field"] == "qty"
    assert read_request_json('{"qty": 2.0}', floats_to_fields=True) == {"qty": 2.0}
    with pytest.raises(NotJsonError) as nan:
        read_request_json(b'{"a": NaN}')
    assert nan.value.details["field"] == "json"
    with pytest.raises(InputError) as syntax:
        read_request_json('{"a":\n 1,, }', not_json=InputError)
    assert type(syntax.value) is InputError and syntax.value.code == "bad_input"
    assert (syntax.value.details["line"], syntax.value.details["column"]) == (2, 4)


def test_hold_and_job_ids_and_widths_are_read_from_their_declarations():
    """hold_id_of decodes HoldRef (1-64 characters, no refused character); job_id_of
    reads JobId (digits, a positive number; more digits than any job: not found);
    slip_width_of one of SLIP_WIDTHS, SlipQuery's default when absent."""
    from agent.requests import hold_id_of, job_id_of, slip_width_of

    assert hold_id_of("h-1") == "h-1" and hold_id_of("x" * 64) == "x" * 64
    for bad in ("", "x" * 65, "a\x07b"):
        with pytest.raises(InputError) as caught:
            hold_id_of(bad)
        assert caught.value.details["field"] == "hold_id"
    assert job_id_of("0042") == 42 and job_id_of("9" * 12) == 10**12 - 1
    for bad in ("0", "-1", "1.5", "abc", "", "١٢"):
        with pytest.raises(InputError) as caught:
            job_id_of(bad)
        assert caught.value.details["field"] == "job_id" and "больше нуля" in (
            caught.value.message_ru
        )
    with pytest.raises(NotFoundError):
        job_id_of("1" * 13)
    assert slip_width_of(None) == 42 and slip_width_of("32") == 32
    for bad in ("7", "33", "042", " 42", ""):
        with pytest.raises(InputError) as caught:
            slip_width_of(bad)
        assert caught.value.details["field"] == "width"

"""Identification: phones as cashiers type them, member codes, layout repair, routing."""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.errors import (
    AgentError,
    InputError,
    MemberCodeError,
    PhoneError,
    TokenError,
    TokenExpired,
    TokenForged,
    TokenMalformed,
)
from agent.identify import (
    MEMBER_CODE_LENGTH,
    Identifier,
    check_member_code,
    damm_check_digit,
    looks_like_member_code,
    make_member_code,
    mask_phone,
    normalize_phone,
    parse_identifier,
    phone_hash,
    repair_layout,
)
from agent.tokens import (
    Coupon,
    TokenSigner,
    TokenVerifier,
    issue_coupon,
    issue_member_token,
)

PROPERTY = settings(database=None, max_examples=300, deadline=None)  # CPU-bound: no load flakes
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
KEY = b"programme-secret-key-32-bytes!!!"

_SIGNING_KEY = Ed25519PrivateKey.generate()
SIGNER = TokenSigner(1, _SIGNING_KEY)
VERIFIER = TokenVerifier({1: _SIGNING_KEY.public_key()})


def assert_cashier_readable(error: AgentError) -> None:
    """Every error speaks Russian to the cashier and English to the log."""
    assert re.search("[а-яА-ЯёЁ]", error.message_ru), error.message_ru
    assert error.message_en and str(error) == error.message_en
    assert not re.search("[а-яА-ЯёЁ]", error.message_en), error.message_en
    assert isinstance(error.details.get("reason"), str)


# --------------------------------------------------------------------------------------
# Phones
# --------------------------------------------------------------------------------------

PHONE_FORMS = [
    ("8 916 123-45-67", "+79161234567"),
    ("+7 (916) 123-45-67", "+79161234567"),
    ("89161234567", "+79161234567"),
    ("9161234567", "+79161234567"),
    ("7 916 1234567", "+79161234567"),
    ("79161234567", "+79161234567"),
    ("+79161234567", "+79161234567"),
    ("8(916)123-45-67", "+79161234567"),
    ("8.916.123.45.67", "+79161234567"),
    ("+7-916-123-45-67", "+79161234567"),
    ("  8 916 123 45 67  ", "+79161234567"),
    ("8\u00a0916\u00a0123\u00a045\u00a067", "+79161234567"),  # pasted with NBSP
    ("8 – 916 – 123 – 45 – 67", "+79161234567"),  # pasted with en dashes
    ("+8 916 123-45-67", "+79161234567"),  # stray plus before the trunk 8
    ("8 (495) 123-45-67", "+74951234567"),  # Moscow landline
    ("+375 29 123-45-67", "+375291234567"),  # Belarus
    ("+7 701 234 56 78", "+77012345678"),  # Kazakhstan shares +7
    ("8 701 234 56 78", "+77012345678"),
    ("8 10 375 29 123 45 67", "+375291234567"),  # Russian international prefix
    ("+1 650 253 0000", "+16502530000"),
    ("+81 3 1234 5678", "+81312345678"),  # a real +8x number is not "repaired"
]


@pytest.mark.parametrize(("typed", "e164"), PHONE_FORMS)
def test_normalize_phone_accepts_what_cashiers_type(typed: str, e164: str) -> None:
    assert normalize_phone(typed) == e164


@PROPERTY
@given(st.integers(min_value=9_000_000_000, max_value=9_999_999_999))
def test_every_written_form_of_a_mobile_gives_one_e164(n: int) -> None:
    d = str(n)
    # A few 9xx blocks are unallocated (e.g. 9300...): those are refused in every form.
    assume(phonenumbers.is_valid_number(phonenumbers.parse("+7" + d, None)))
    forms = [
        d,
        "8" + d,
        "7" + d,
        "+7" + d,
        f"8 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
        f"+7 {d[:3]} {d[3:6]} {d[6:8]} {d[8:]}",
        f"8.{d[:3]}.{d[3:6]}.{d[6:8]}.{d[8:]}",
    ]
    assert {normalize_phone(f) for f in forms} == {"+7" + d}


BAD_PHONES = [
    ("", "empty"),
    ("   ", "empty"),
    ("( ) -", "empty"),
    ("abc", "invalid_characters"),
    ("8916abc4567", "invalid_characters"),
    ("8 916 123-45-67 доб. 12", "invalid_characters"),
    ("8 916 123#45#67", "invalid_characters"),
    ("7+9161234567", "invalid_characters"),
    ("+8-800-FLOWERS", "invalid_characters"),
    ("8", "too_short"),
    ("916 12", "too_short"),
    ("916123456", "too_short"),
    ("+7916123456", "too_short"),
    ("8916123456789", "too_long"),
    ("+7 916 123 45 678", "too_long"),
    ("+375 29 123 45 678", "too_long"),
    ("123456789012345678901", "too_long"),
    ("+999 12345678", "unknown_country_code"),
    ("1234567890", "invalid_number"),
    ("+7 000 123 45 67", "invalid_number"),
]


@pytest.mark.parametrize(("typed", "reason"), BAD_PHONES)
def test_bad_phone_reasons(typed: str, reason: str) -> None:
    with pytest.raises(PhoneError) as info:
        normalize_phone(typed)
    error = info.value
    assert error.details["reason"] == reason
    assert error.code == "bad_phone"
    assert_cashier_readable(error)


def test_bad_phone_english_message_carries_no_digits_of_the_number() -> None:
    """English goes to the logs: it must not carry what was typed."""
    with pytest.raises(PhoneError) as info:
        normalize_phone("8 916 123 45 678 9")
    assert "916" not in info.value.message_en
    assert "916 123 45 678 9" in info.value.message_ru  # the cashier sees what was typed
    assert "не распознан" not in info.value.message_ru  # the title says it, not twice


def test_unallocated_mobile_block_is_refused_in_every_form() -> None:
    for typed in ("9300000000", "89300000000", "+7 930 000 00 00"):
        with pytest.raises(PhoneError) as info:
            normalize_phone(typed)
        assert info.value.details["reason"] == "invalid_number"


def test_normalize_phone_unknown_region_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="region"):
        normalize_phone("9161234567", region="XX")


def test_normalize_phone_other_default_region() -> None:
    assert normalize_phone("029 123-45-67", region="BY") == "+375291234567"


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+79161234567", "+7 *** ***-45-67"),
        ("+74951234567", "+7 *** ***-45-67"),
        ("+375291234567", "+375 ** ***-45-67"),
        ("+16502530000", "+1 *** ***-00-00"),
        ("+442079460958", "+44 *** ***-09-58"),
        ("+3545511234", "+354 ** ***-34"),  # short national number: last two kept
    ],
)
def test_mask_phone(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


@PROPERTY
@given(st.integers(min_value=9_000_000_000, max_value=9_999_999_999))
def test_mask_keeps_only_country_code_and_last_four(n: int) -> None:
    d = str(n)
    masked = mask_phone("+7" + d)
    assert masked == f"+7 *** ***-{d[6:8]}-{d[8:]}"
    assert sum(ch.isdigit() for ch in masked) == 5


@pytest.mark.parametrize("bad", ["89161234567", "+7 916 123 45 67", "", "+", "+0123456"])
def test_mask_and_hash_refuse_non_e164(bad: str) -> None:
    with pytest.raises(ValueError):
        mask_phone(bad)
    with pytest.raises(ValueError):
        phone_hash(bad, KEY)


def test_phone_hash_is_keyed_hmac_sha256_truncated() -> None:
    h = phone_hash("+79161234567", KEY)
    assert re.fullmatch("[0-9a-f]{32}", h)
    # The back office computes the same value with any HMAC implementation.
    assert h == hmac.new(KEY, b"+79161234567", hashlib.sha256).hexdigest()[:32]
    assert phone_hash("+79161234567", KEY) == h
    assert phone_hash("+79161234567", KEY[:-1] + b"?") != h
    assert phone_hash("+79161234568", KEY) != h
    # An unkeyed hash of the number is not what is stored.
    assert h != hashlib.sha256(b"+79161234567").hexdigest()[:32]


@PROPERTY
@given(st.integers(min_value=9_000_000_000, max_value=9_999_999_999), st.binary(min_size=16))
def test_phone_hash_never_contains_the_number(n: int, key: bytes) -> None:
    e164 = f"+7{n}"
    h = phone_hash(e164, key)
    assert str(n) not in h
    assert phone_hash(e164, key) == h
    other_key = bytes([key[0] ^ 1]) + key[1:]
    assert phone_hash(e164, other_key) != h


def test_phone_hash_same_for_every_typed_form() -> None:
    hashes = {phone_hash(normalize_phone(typed), KEY) for typed, _ in PHONE_FORMS[:14]}
    assert len(hashes) == 1


def test_phone_hash_refuses_short_key() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        phone_hash("+79161234567", b"short-key-15byt")
    assert len(phone_hash("+79161234567", b"k" * 16)) == 32


# --------------------------------------------------------------------------------------
# Member codes
# --------------------------------------------------------------------------------------

PAYLOADS = st.integers(min_value=0, max_value=10**12 - 1)


def test_damm_reference_values() -> None:
    # The worked example from Damm's algorithm: 572 -> check digit 4, 5724 is valid.
    assert damm_check_digit("572") == 4
    assert damm_check_digit("5724") == 0
    assert make_member_code(0) == "0000000000000"
    assert make_member_code(123456789012) == "1234567890123"
    assert make_member_code(572) == "0000000005724"


def test_damm_table_is_weakly_totally_antisymmetric() -> None:
    """The algebraic property behind 'every adjacent transposition is detected'.

    Exhaustive: for every interim digit c and distinct x, y, c*x*y != c*y*x.
    """
    for c in range(10):
        for x in range(10):
            for y in range(10):
                if x != y:
                    assert damm_check_digit(f"{c}{x}{y}") != damm_check_digit(f"{c}{y}{x}")


@PROPERTY
@given(PAYLOADS)
def test_member_code_roundtrip(n: int) -> None:
    code = make_member_code(n)
    assert len(code) == MEMBER_CODE_LENGTH
    assert code.isdigit()
    assert int(code[:-1]) == n
    assert check_member_code(code) == code
    assert looks_like_member_code(code)


@PROPERTY
@given(PAYLOADS, st.integers(0, MEMBER_CODE_LENGTH - 1), st.integers(1, 9))
def test_any_single_digit_error_is_detected(n: int, pos: int, delta: int) -> None:
    code = make_member_code(n)
    wrong = code[:pos] + str((int(code[pos]) + delta) % 10) + code[pos + 1 :]
    assert wrong != code
    with pytest.raises(MemberCodeError) as info:
        check_member_code(wrong)
    assert info.value.details["reason"] == "bad_check_digit"
    assert not looks_like_member_code(wrong)


@PROPERTY
@given(PAYLOADS, st.integers(0, MEMBER_CODE_LENGTH - 2))
def test_any_adjacent_transposition_is_detected(n: int, pos: int) -> None:
    code = make_member_code(n)
    assume(code[pos] != code[pos + 1])
    swapped = code[:pos] + code[pos + 1] + code[pos] + code[pos + 2 :]
    with pytest.raises(MemberCodeError) as info:
        check_member_code(swapped)
    assert info.value.details["reason"] == "bad_check_digit"


def test_member_code_separators_are_ignored() -> None:
    code = make_member_code(987654321098)
    spaced = f"{code[:4]} {code[4:8]}-{code[8:12]} {code[12]}"
    assert check_member_code(spaced) == code
    assert looks_like_member_code(spaced)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "wrong_length"),
        ("123", "wrong_length"),
        ("12345678901234", "wrong_length"),
        ("12345678901a3", "not_digits"),
        ("I234567890123", "not_digits"),
        ("１２３４５６７８９０１２３", "not_digits"),  # full-width digits
        ("1234567890124", "bad_check_digit"),
    ],
)
def test_member_code_errors(text: str, reason: str) -> None:
    with pytest.raises(MemberCodeError) as info:
        check_member_code(text)
    assert info.value.details["reason"] == reason
    assert_cashier_readable(info.value)
    assert not looks_like_member_code(text)


@pytest.mark.parametrize("bad", [-1, 10**12, True])
def test_make_member_code_range(bad: int) -> None:
    with pytest.raises(ValueError):
        make_member_code(bad)


# --------------------------------------------------------------------------------------
# Keyboard layout repair
# --------------------------------------------------------------------------------------

# The test's own copy of the keyboard, row by row (US key -> what ЙЦУКЕН types on it),
# used to garble text the way a wedge scanner does under a Russian layout.
_ROWS = [
    ("`1234567890-=", "ё1234567890-="),
    ("~!@#$%^&*()_+", 'Ё!"№;%:?*()_+'),
    ("qwertyuiop[]\\", "йцукенгшщзхъ\\"),
    ("QWERTYUIOP{}|", "ЙЦУКЕНГШЩЗХЪ/"),
    ("asdfghjkl;'", "фывапролджэ"),
    ('ASDFGHJKL:"', "ФЫВАПРОЛДЖЭ"),
    ("zxcvbnm,./", "ячсмитьбю."),
    ("ZXCVBNM<>?", "ЯЧСМИТЬБЮ,"),
]
US_TO_RU = {us: ru for us_row, ru_row in _ROWS for us, ru in zip(us_row, ru_row, strict=True)}


def garble(text: str) -> str:
    """What a wedge scanner types for ``text`` while Windows is in the Russian layout."""
    return "".join(US_TO_RU.get(ch, ch) for ch in text)


@pytest.mark.parametrize(
    ("ru", "us"),
    [
        ("Ж", ":"),
        ("ж", ";"),
        ("Б", "<"),
        ("б", ","),
        ("Ю", ">"),
        ("ю", "."),
        ("Э", '"'),
        ("э", "'"),
        ("Х", "{"),
        ("х", "["),
        ("Ъ", "}"),
        ("ъ", "]"),
        ("ё", "`"),
        ("Ё", "~"),
        ("Й", "Q"),
        ("й", "q"),
        ("Л", "K"),
        ("Ь", "M"),
        ('"', "@"),
        ("№", "#"),
        (";", "$"),
        (":", "^"),
        ("?", "&"),
        (".", "/"),
        (",", "?"),
        ("/", "|"),
    ],
)
def test_repair_layout_single_keys(ru: str, us: str) -> None:
    # A Cyrillic letter in the text marks it as typed under ЙЦУКЕН.
    assert repair_layout("Ф" + ru) == "A" + us


def test_repair_layout_known_scan() -> None:
    assert repair_layout("ДЩНФДЖ7700123") == "LOYAL:7700123"
    assert repair_layout("ЛЬ1Ж") == "KM1:"
    assert repair_layout("ъЙ1") == "]Q1"


@PROPERTY
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126)))
def test_repair_layout_leaves_ascii_untouched(text: str) -> None:
    assert repair_layout(text) == text


@PROPERTY
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1))
def test_repair_undoes_any_garbled_ascii_that_shows_cyrillic(text: str) -> None:
    garbled = garble(text)
    assume(re.search("[а-яА-ЯёЁ]", garbled))
    assert repair_layout(garbled) == text


def test_repair_layout_documented_limit_no_letters() -> None:
    """Text without letters typed under ЙЦУКЕН cannot be detected, so it stays as is."""
    assert garble("@1") == '"1'
    assert repair_layout('"1') == '"1'


def test_repair_of_a_real_garbled_token_verifies() -> None:
    token = issue_member_token(SIGNER, make_member_code(31337), NOW)
    garbled = garble(token)
    assert garbled.startswith("ЛЬ1Ж")
    assert garbled != token
    repaired = repair_layout(garbled)
    assert repaired == token
    assert VERIFIER.verify_member_token(repaired, NOW).member_code == make_member_code(31337)


# --------------------------------------------------------------------------------------
# parse_identifier
# --------------------------------------------------------------------------------------


def test_parse_member_code() -> None:
    code = make_member_code(4242)
    ident = parse_identifier(f" {code[:6]} {code[6:]} ", VERIFIER, NOW)
    assert ident == Identifier(kind="code", member_code=code, phone_e164=None)


def test_parse_member_code_with_aim_prefix() -> None:
    code = make_member_code(4242)
    ident = parse_identifier(f"]C0{code}\r\n", None, NOW)
    assert ident.kind == "code"
    assert ident.member_code == code
    assert ident.symbology == "]C0"


def test_parse_member_code_bad_check_digit() -> None:
    code = make_member_code(4242)  # "0000000042427"
    i = next(i for i in range(MEMBER_CODE_LENGTH - 1) if code[i] != code[i + 1])
    typo = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
    with pytest.raises(MemberCodeError) as info:
        parse_identifier(typo, VERIFIER, NOW)
    assert info.value.details["reason"] == "bad_check_digit"


@pytest.mark.parametrize("digits", ["123456789012", "12345678901234", "4600000000000000"])
def test_parse_long_bare_digits_are_member_codes_of_wrong_length(digits: str) -> None:
    with pytest.raises(MemberCodeError) as info:
        parse_identifier(digits, VERIFIER, NOW)
    assert info.value.details["reason"] == "wrong_length"


def test_parse_phone() -> None:
    ident = parse_identifier("8 (916) 123-45-67", VERIFIER, NOW)
    assert ident == Identifier(kind="phone", member_code=None, phone_e164="+79161234567")


def test_parse_phone_dialled_abroad_with_810() -> None:
    ident = parse_identifier("810375291234567", None, NOW)
    assert ident.kind == "phone"
    assert ident.phone_e164 == "+375291234567"


def test_parse_phone_typed_with_russian_layout_dots() -> None:
    # The "." key of a Russian keyboard types "ю": the number still comes through.
    ident = parse_identifier("8ю916ю123ю45ю67", None, NOW)
    assert ident.phone_e164 == "+79161234567"
    assert ident.layout_repaired


def test_parse_bad_phone_raises_phone_error() -> None:
    with pytest.raises(PhoneError) as info:
        parse_identifier("8 916 12", VERIFIER, NOW)
    assert info.value.details["reason"] == "too_short"


def test_parse_token() -> None:
    code = make_member_code(777)
    token = issue_member_token(SIGNER, code, NOW - timedelta(seconds=30))
    ident = parse_identifier(token, VERIFIER, NOW)
    assert ident.kind == "token"
    assert ident.member_code == code
    assert ident.phone_e164 is None
    assert ident.token_expires_at == NOW.replace(microsecond=0) + timedelta(seconds=270)
    assert not ident.layout_repaired
    assert ident.symbology is None


def test_parse_garbled_token_with_aim_prefix() -> None:
    code = make_member_code(777)
    scan = garble("]Q1" + issue_member_token(SIGNER, code, NOW)) + "\n"
    assert scan.startswith("ъЙ1ЛЬ1Ж")
    ident = parse_identifier(scan, VERIFIER, NOW)
    assert ident.kind == "token"
    assert ident.member_code == code
    assert ident.symbology == "]Q1"
    assert ident.layout_repaired


def test_parse_token_errors_stay_distinct() -> None:
    code = make_member_code(777)
    old = issue_member_token(SIGNER, code, NOW - timedelta(hours=1))
    with pytest.raises(TokenExpired):
        parse_identifier(old, VERIFIER, NOW)

    stranger = TokenSigner(1, Ed25519PrivateKey.generate())
    with pytest.raises(TokenForged):
        parse_identifier(issue_member_token(stranger, code, NOW), VERIFIER, NOW)

    good = issue_member_token(SIGNER, code, NOW)
    with pytest.raises(TokenMalformed) as info:
        parse_identifier(good[:-5], VERIFIER, NOW)
    assert info.value.details["reason"] == "wrong_length"


def test_parse_coupon_at_member_prompt_is_refused_as_wrong_kind() -> None:
    coupon = Coupon("0f" * 16, "percent", 1000, NOW, NOW + timedelta(days=1))
    with pytest.raises(TokenMalformed) as info:
        parse_identifier(issue_coupon(SIGNER, coupon), VERIFIER, NOW)
    assert info.value.details["reason"] == "wrong_kind"
    assert_cashier_readable(info.value)


def test_parse_token_without_verifier() -> None:
    token = issue_member_token(SIGNER, make_member_code(1), NOW)
    with pytest.raises(TokenError) as info:
        parse_identifier(token, None, NOW)
    assert type(info.value) is TokenError
    assert info.value.details["reason"] == "no_verifier"
    assert_cashier_readable(info.value)


@pytest.mark.parametrize("text", ["HELLO WORLD", "привет", "LOYAL:12", "#$%"])
def test_parse_unrecognised_input(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_identifier(text, VERIFIER, NOW)
    assert type(info.value) is InputError
    assert info.value.details["input_kind"] == "unknown"
    assert_cashier_readable(info.value)


@pytest.mark.parametrize("text", ["", "  \r\n"])
def test_parse_empty_input(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_identifier(text, VERIFIER, NOW)
    assert info.value.details["input_kind"] == "empty"

"""Signed member/coupon tokens and sealed phones: real Ed25519/X25519 keys, no mocks."""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import (
    AgentError,
    CouponError,
    MemberCodeError,
    TokenError,
    TokenExpired,
    TokenForged,
    TokenMalformed,
)
from agent.identify import make_member_code
from agent.tokens import (
    COUPON_CODEC,
    COUPON_PREFIX,
    MEMBER_TOKEN_CODEC,
    MEMBER_TOKEN_PREFIX,
    SEALED_PREFIX,
    Coupon,
    MemberToken,
    TokenCodec,
    TokenSigner,
    TokenVerifier,
    dump_key,
    issue_coupon,
    issue_member_token,
    load_ed25519_private_key,
    load_ed25519_public_key,
    load_x25519_private_key,
    load_x25519_public_key,
    open_sealed,
    seal_for_backoffice,
    verify_coupon,
    verify_member_token,
)

PROPERTY = settings(database=None, max_examples=200)
NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
CODE = make_member_code(123_456_789)

_KEY_1 = Ed25519PrivateKey.generate()
_KEY_2 = Ed25519PrivateKey.generate()
SIGNER = TokenSigner(1, _KEY_1)
SIGNER_2 = TokenSigner(2, _KEY_2)
VERIFIER = TokenVerifier({1: _KEY_1.public_key()})
BACKOFFICE_X = X25519PrivateKey.generate()


def assert_cashier_readable(error: AgentError) -> None:
    assert re.search("[а-яА-ЯёЁ]", error.message_ru), error.message_ru
    assert error.message_en and str(error) == error.message_en
    assert not re.search("[а-яА-ЯёЁ]", error.message_en), error.message_en
    assert isinstance(error.details.get("reason"), str)


def body_bytes(token: str, prefix: str) -> bytes:
    body = token[len(prefix) :]
    return base64.b32decode(body + "=" * (-len(body) % 8))


def rebuild(prefix: str, body: bytes) -> str:
    return prefix + base64.b32encode(body).decode("ascii").rstrip("=")


# --------------------------------------------------------------------------------------
# Member tokens
# --------------------------------------------------------------------------------------


def test_member_token_roundtrip() -> None:
    token = issue_member_token(SIGNER, CODE, NOW, ttl_seconds=300)
    assert token.startswith(MEMBER_TOKEN_PREFIX)
    # QR alphanumeric mode: upper-case letters, digits and ":" only.
    assert re.fullmatch(r"KM1:[A-Z2-7]+", token)
    assert len(token) == MEMBER_TOKEN_CODEC.text_size
    got = verify_member_token(VERIFIER, token, NOW + timedelta(seconds=10))
    issued = NOW.replace(microsecond=0)
    assert got == MemberToken(CODE, issued, issued + timedelta(seconds=300))
    assert got.issued_at.tzinfo is not None


@PROPERTY
@given(
    st.integers(0, 10**12 - 1),
    st.integers(1, 86_400),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
)
def test_member_token_roundtrip_property(number: int, ttl: int, now: datetime) -> None:
    code = make_member_code(number)
    token = issue_member_token(SIGNER, code, now, ttl_seconds=ttl)
    got = verify_member_token(VERIFIER, token, now)
    assert got.member_code == code
    assert got.expires_at - got.issued_at == timedelta(seconds=ttl)
    assert got.issued_at == now.replace(microsecond=0)


def test_member_token_accepts_lower_case_scan() -> None:
    """Caps Lock flips the case of a wedge scan; the signature is over bytes, not text."""
    token = issue_member_token(SIGNER, CODE, NOW)
    assert verify_member_token(VERIFIER, token.lower(), NOW).member_code == CODE
    assert VERIFIER.verify_member_token(f"  {token}\r\n", NOW).member_code == CODE


def test_member_token_expiry_with_leeway() -> None:
    token = issue_member_token(SIGNER, CODE, NOW, ttl_seconds=300)
    expires = NOW.replace(microsecond=0) + timedelta(seconds=300)
    assert verify_member_token(VERIFIER, token, expires + timedelta(seconds=60)).member_code
    with pytest.raises(TokenExpired) as info:
        verify_member_token(VERIFIER, token, expires + timedelta(seconds=61))
    assert info.value.details["reason"] == "expired"
    assert info.value.details["seconds_late"] == 61
    assert info.value.code == "token_expired"
    assert_cashier_readable(info.value)
    with pytest.raises(TokenExpired):
        verify_member_token(VERIFIER, token, expires + timedelta(seconds=1), leeway_seconds=0)


def test_member_token_from_the_future() -> None:
    token = issue_member_token(SIGNER, CODE, NOW)
    # Till clock 60 s behind: still fine.
    assert verify_member_token(VERIFIER, token, NOW - timedelta(seconds=60)).member_code == CODE
    with pytest.raises(TokenMalformed) as info:
        verify_member_token(VERIFIER, token, NOW - timedelta(seconds=61))
    assert info.value.details["reason"] == "issued_in_future"
    assert "часы" in info.value.message_ru or "время" in info.value.message_ru


def test_member_token_issue_validation() -> None:
    with pytest.raises(MemberCodeError):
        issue_member_token(SIGNER, "1234567890124", NOW)
    for ttl in (0, -1, 86_401):
        with pytest.raises(ValueError):
            issue_member_token(SIGNER, CODE, NOW, ttl_seconds=ttl)
    with pytest.raises(ValueError, match="timezone-aware"):
        issue_member_token(SIGNER, CODE, datetime(2025, 1, 1))
    token = issue_member_token(SIGNER, CODE, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_member_token(VERIFIER, token, datetime(2025, 1, 1))
    with pytest.raises(ValueError):
        verify_member_token(VERIFIER, token, NOW, leeway_seconds=-1)


# --------------------------------------------------------------------------------------
# Forgery
# --------------------------------------------------------------------------------------


def test_flipped_signature_byte_is_forged() -> None:
    token = issue_member_token(SIGNER, CODE, NOW)
    body = bytearray(body_bytes(token, MEMBER_TOKEN_PREFIX))
    body[-1] ^= 0x01
    with pytest.raises(TokenForged) as info:
        verify_member_token(VERIFIER, rebuild(MEMBER_TOKEN_PREFIX, bytes(body)), NOW)
    assert info.value.details["reason"] == "bad_signature"
    assert info.value.code == "token_forged"
    assert_cashier_readable(info.value)


@PROPERTY
@given(st.data())
def test_any_bit_flip_in_a_token_is_forged(data: st.DataObject) -> None:
    token = issue_member_token(SIGNER, CODE, NOW)
    body = bytearray(body_bytes(token, MEMBER_TOKEN_PREFIX))
    pos = data.draw(st.integers(0, len(body) - 1))
    bit = data.draw(st.integers(0, 7))
    body[pos] ^= 1 << bit
    with pytest.raises(TokenForged) as info:
        verify_member_token(VERIFIER, rebuild(MEMBER_TOKEN_PREFIX, bytes(body)), NOW)
    # Byte 0 is the key id: a flipped id names a key the till does not know.
    assert info.value.details["reason"] == ("unknown_key" if pos == 0 else "bad_signature")


def test_payload_changed_to_another_member_is_forged() -> None:
    token = issue_member_token(SIGNER, CODE, NOW)
    body = bytearray(body_bytes(token, MEMBER_TOKEN_PREFIX))
    other = make_member_code(1)
    body[1:9] = struct.pack(">Q", int(other))
    with pytest.raises(TokenForged):
        verify_member_token(VERIFIER, rebuild(MEMBER_TOKEN_PREFIX, bytes(body)), NOW)


def test_signed_with_another_key_under_a_known_id_is_forged() -> None:
    impostor = TokenSigner(1, Ed25519PrivateKey.generate())
    with pytest.raises(TokenForged) as info:
        verify_member_token(VERIFIER, issue_member_token(impostor, CODE, NOW), NOW)
    assert info.value.details["reason"] == "bad_signature"


def test_unknown_key_id_is_forged() -> None:
    with pytest.raises(TokenForged) as info:
        verify_member_token(VERIFIER, issue_member_token(SIGNER_2, CODE, NOW), NOW)
    assert info.value.details["reason"] == "unknown_key"
    assert info.value.details["key_id"] == 2
    assert info.value.details["known_key_ids"] == [1]


def test_key_rotation_accepts_old_and_new_ids() -> None:
    both = TokenVerifier({1: _KEY_1.public_key(), 2: _KEY_2.public_key()})
    for signer in (SIGNER, SIGNER_2):
        assert verify_member_token(both, issue_member_token(signer, CODE, NOW), NOW).member_code
    assert both.key_ids == frozenset({1, 2})


def test_prefix_is_covered_by_the_signature() -> None:
    """Two kinds of the same payload size: moving a body to the other prefix fails."""
    kind_x = TokenCodec("KX1:", 8, "x token", "x-код")
    kind_y = TokenCodec("KY1:", 8, "y token", "y-код")
    token = kind_x.encode(SIGNER, b"12345678")
    assert kind_x.decode(VERIFIER, token) == (1, b"12345678")
    with pytest.raises(TokenForged) as info:
        kind_y.decode(VERIFIER, "KY1:" + token[4:])
    assert info.value.details["reason"] == "bad_signature"


# --------------------------------------------------------------------------------------
# Malformed
# --------------------------------------------------------------------------------------


def _member_token() -> str:
    return issue_member_token(SIGNER, CODE, NOW)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t[:-1], "wrong_length"),
        (lambda t: t[:-8], "wrong_length"),
        (lambda t: t[:40], "wrong_length"),
        (lambda t: t[:4], "wrong_length"),
        (lambda t: t + "A", "wrong_length"),
        (lambda t: t[4:], "wrong_prefix"),
        (lambda t: "KM2:" + t[4:], "wrong_prefix"),
        (lambda t: "XX1:" + t[4:], "wrong_prefix"),
        (lambda t: "", "wrong_prefix"),
        (lambda t: "hello", "wrong_prefix"),
        (lambda t: t[:10] + "0" + t[11:], "bad_encoding"),
        (lambda t: t[:10] + "1" + t[11:], "bad_encoding"),
        (lambda t: t[:10] + "8" + t[11:], "bad_encoding"),
        (lambda t: t[:10] + "=" + t[11:], "bad_encoding"),
        (lambda t: t[:10] + "Ж" + t[11:], "bad_encoding"),
        (lambda t: t[:10] + " " + t[11:], "bad_encoding"),
    ],
)
def test_malformed_member_tokens(mangle: Callable[[str], str], reason: str) -> None:
    text = mangle(_member_token())
    with pytest.raises(TokenMalformed) as info:
        verify_member_token(VERIFIER, text, NOW)
    assert info.value.details["reason"] == reason
    assert info.value.code == "token_malformed"
    assert_cashier_readable(info.value)


def test_non_canonical_base32_tail_is_malformed() -> None:
    token = _member_token()
    # 89 body bytes -> 143 chars; the last char carries 2 data bits and 3 zero fill bits.
    last = token[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    bumped = alphabet[alphabet.index(last) ^ 1]
    with pytest.raises(TokenMalformed) as info:
        verify_member_token(VERIFIER, token[:-1] + bumped, NOW)
    assert info.value.details["reason"] == "bad_encoding"


def test_member_token_presented_as_coupon() -> None:
    with pytest.raises(TokenMalformed) as info:
        verify_coupon(VERIFIER, _member_token(), NOW)
    assert info.value.details["reason"] == "wrong_kind"
    assert info.value.details["got"] == MEMBER_TOKEN_PREFIX
    assert_cashier_readable(info.value)


def test_member_body_behind_coupon_prefix_is_refused() -> None:
    with pytest.raises(TokenMalformed) as info:
        verify_coupon(VERIFIER, COUPON_PREFIX + _member_token()[4:], NOW)
    assert info.value.details["reason"] == "wrong_length"


def _signed_member_payload(code: int, issued: int, expires: int) -> str:
    return MEMBER_TOKEN_CODEC.encode(SIGNER, struct.pack(">QQQ", code, issued, expires))


def test_genuine_signature_over_nonsense_is_malformed() -> None:
    now_s = int(NOW.timestamp())
    bad_check = int(CODE[:-1] + str((int(CODE[-1]) + 1) % 10))
    cases = [
        (_signed_member_payload(bad_check, now_s, now_s + 60), "bad_member_code"),
        (_signed_member_payload(10**13, now_s, now_s + 60), "bad_member_code"),
        (_signed_member_payload(int(CODE), now_s, now_s), "bad_lifetime"),
        (_signed_member_payload(int(CODE), now_s, 2**64 - 1), "bad_lifetime"),
    ]
    for text, reason in cases:
        with pytest.raises(TokenMalformed) as info:
            verify_member_token(VERIFIER, text, NOW)
        assert info.value.details["reason"] == reason


def test_codec_rejects_wrong_payload_size_and_bad_prefix() -> None:
    with pytest.raises(ValueError):
        MEMBER_TOKEN_CODEC.encode(SIGNER, b"short")
    for prefix in ("KM1", "km1:", "QQ1:", "KMX:"):
        with pytest.raises(ValueError):
            TokenCodec(prefix, 8, "x", "x")


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------


def test_key_helpers_roundtrip() -> None:
    text = dump_key(_KEY_1)
    assert len(base64.b64decode(text)) == 32
    loaded = load_ed25519_private_key(text)
    pub = load_ed25519_public_key(dump_key(_KEY_1.public_key()))
    token = issue_member_token(TokenSigner(7, loaded), CODE, NOW)
    assert verify_member_token(TokenVerifier({7: pub}), token, NOW).member_code == CODE

    x_priv = load_x25519_private_key(dump_key(BACKOFFICE_X))
    x_pub = load_x25519_public_key(dump_key(BACKOFFICE_X.public_key()))
    assert open_sealed(seal_for_backoffice(b"+79161234567", x_pub), x_priv) == b"+79161234567"


@pytest.mark.parametrize(
    "text", ["", "not base64!", base64.b64encode(b"x" * 31).decode(), "QUJD" * 20]
)
def test_key_helpers_refuse_bad_text(text: str) -> None:
    for load in (
        load_ed25519_public_key,
        load_ed25519_private_key,
        load_x25519_public_key,
        load_x25519_private_key,
    ):
        with pytest.raises(ValueError):
            load(text)


def test_signer_and_verifier_validation() -> None:
    for bad in (-1, 256, True):
        with pytest.raises(ValueError):
            TokenSigner(bad, _KEY_1)
        with pytest.raises(ValueError):
            TokenVerifier({bad: _KEY_1.public_key()})
    with pytest.raises(ValueError):
        TokenVerifier({})
    assert repr(SIGNER) == "TokenSigner(key_id=1)"
    assert dump_key(_KEY_1) not in repr(SIGNER)
    assert SIGNER.public_key.public_bytes_raw() == _KEY_1.public_key().public_bytes_raw()


# --------------------------------------------------------------------------------------
# Coupons
# --------------------------------------------------------------------------------------

FROM = datetime(2025, 3, 1, tzinfo=UTC)
UNTIL = datetime(2025, 4, 1, tzinfo=UTC)


def coupon(**changes: object) -> Coupon:
    fields: dict[str, object] = {
        "coupon_id": "0123456789abcdef0123456789abcdef",
        "kind": "percent",
        "value": 1500,
        "valid_from": FROM,
        "valid_until": UNTIL,
    }
    fields.update(changes)
    return Coupon(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "c",
    [
        coupon(),
        coupon(kind="fixed", value=50_000, min_cheque_kop=300_000),
        coupon(kind="points", value=200, member_code=CODE),
        coupon(kind="percent", value=10_000, member_code=make_member_code(0)),
        coupon(kind="fixed", value=2**32 - 1, min_cheque_kop=2**63),
    ],
)
def test_coupon_roundtrip(c: Coupon) -> None:
    text = issue_coupon(SIGNER, c)
    assert re.fullmatch(r"KC1:[A-Z2-7]+", text)
    assert len(text) == COUPON_CODEC.text_size
    got = verify_coupon(VERIFIER, text, NOW)
    assert got == c
    assert got.personal == (c.member_code is not None)


def test_coupon_times_normalised_to_utc_seconds() -> None:
    msk = timezone(timedelta(hours=3))
    c = coupon(
        valid_from=datetime(2025, 3, 1, 3, 0, 0, 999_999, tzinfo=msk),
        valid_until=datetime(2025, 4, 1, 3, 0, tzinfo=msk),
        coupon_id="0123456789ABCDEF0123456789ABCDEF",
        member_code=f"{CODE[:6]} {CODE[6:]}",
    )
    assert c.valid_from == FROM
    assert c.valid_from.utcoffset() == timedelta(0)
    assert c.coupon_id == "0123456789abcdef0123456789abcdef"
    assert c.member_code == CODE
    assert verify_coupon(VERIFIER, issue_coupon(SIGNER, c), NOW) == c


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"kind": "percent", "value": 0}, "value_out_of_range"),
        ({"kind": "percent", "value": 10_001}, "value_out_of_range"),
        ({"kind": "percent", "value": -5}, "value_out_of_range"),
        ({"kind": "fixed", "value": 0}, "value_out_of_range"),
        ({"kind": "fixed", "value": -100}, "value_out_of_range"),
        ({"kind": "fixed", "value": 2**32}, "value_out_of_range"),
        ({"kind": "points", "value": 0}, "value_out_of_range"),
        ({"kind": "points", "value": True}, "value_out_of_range"),
        ({"kind": "fixed", "value": 10.5}, "value_out_of_range"),
        ({"kind": "gift"}, "bad_kind"),
        ({"coupon_id": "abc"}, "bad_id"),
        ({"coupon_id": "z" * 32}, "bad_id"),
        ({"min_cheque_kop": -1}, "min_cheque_out_of_range"),
        ({"valid_from": datetime(2025, 3, 1)}, "naive_datetime"),
        ({"valid_until": FROM}, "bad_validity"),
        ({"valid_until": FROM - timedelta(days=1)}, "bad_validity"),
        ({"valid_from": datetime(1960, 1, 1, tzinfo=UTC)}, "bad_validity"),
        ({"member_code": "1234567890124"}, "bad_member_code"),
        ({"member_code": "12"}, "bad_member_code"),
    ],
)
def test_coupon_validation(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(CouponError) as info:
        coupon(**changes)
    assert info.value.details["reason"] == reason
    assert_cashier_readable(info.value)


@pytest.mark.parametrize(("kind", "lo", "hi"), [("percent", 1, 10_000), ("fixed", 1, 2**32 - 1)])
def test_coupon_value_bounds_are_inclusive(kind: str, lo: int, hi: int) -> None:
    assert coupon(kind=kind, value=lo).value == lo
    assert coupon(kind=kind, value=hi).value == hi


def test_coupon_validity_window() -> None:
    text = issue_coupon(SIGNER, coupon())
    assert verify_coupon(VERIFIER, text, FROM).value == 1500
    assert verify_coupon(VERIFIER, text, UNTIL - timedelta(seconds=1)).value == 1500

    with pytest.raises(CouponError) as early:
        verify_coupon(VERIFIER, text, FROM - timedelta(seconds=1))
    assert early.value.details["reason"] == "not_yet_valid"
    assert "01.03.2025" in early.value.message_ru
    assert_cashier_readable(early.value)

    with pytest.raises(TokenExpired) as late:
        verify_coupon(VERIFIER, text, UNTIL)
    assert late.value.details["reason"] == "expired"
    assert_cashier_readable(late.value)


def test_coupon_forged_and_presented_as_member_token() -> None:
    text = issue_coupon(SIGNER, coupon())
    body = bytearray(body_bytes(text, COUPON_PREFIX))
    body[20] ^= 0x40  # inside the value field: 15 % becomes something else
    with pytest.raises(TokenForged):
        verify_coupon(VERIFIER, rebuild(COUPON_PREFIX, bytes(body)), NOW)
    with pytest.raises(TokenForged):
        verify_coupon(VERIFIER, issue_coupon(SIGNER_2, coupon()), NOW)
    with pytest.raises(TokenMalformed) as info:
        verify_member_token(VERIFIER, text, NOW)
    assert info.value.details["reason"] == "wrong_kind"


def _signed_coupon(**fields: int) -> str:
    values = {
        "kind": 1,
        "flags": 0,
        "value": 1500,
        "valid_from": int(FROM.timestamp()),
        "valid_until": int(UNTIL.timestamp()),
        "min_cheque": 0,
        "member": 0,
    }
    values.update(fields)
    payload = struct.pack(">16sBBIQQQQ", b"\x01" * 16, *values.values())
    return COUPON_CODEC.encode(SIGNER, payload)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"kind": 0}, "bad_kind"),
        ({"kind": 9}, "bad_kind"),
        ({"flags": 0x80}, "bad_flags"),
        ({"flags": 0, "member": int(CODE)}, "bad_flags"),
        ({"flags": 1, "member": 10**13}, "bad_member_code"),
        ({"flags": 1, "member": int(CODE) + 1}, "bad_member_code"),
        ({"value": 0}, "value_out_of_range"),
        ({"value": 10_001}, "value_out_of_range"),
        ({"valid_until": int(FROM.timestamp())}, "bad_validity"),
        ({"valid_until": 2**64 - 1}, "bad_validity"),
    ],
)
def test_genuinely_signed_coupon_with_impossible_contents(
    fields: dict[str, int], problem: str
) -> None:
    with pytest.raises(TokenMalformed) as info:
        verify_coupon(VERIFIER, _signed_coupon(**fields), NOW)
    assert info.value.details["reason"] == "bad_content"
    assert info.value.details["problem"] == problem
    assert_cashier_readable(info.value)


def test_signed_coupon_helper_is_itself_valid() -> None:
    """Guards the test above: with no changes the hand-packed coupon verifies."""
    got = verify_coupon(VERIFIER, _signed_coupon(), NOW)
    assert (got.kind, got.value, got.member_code) == ("percent", 1500, None)
    personal = verify_coupon(VERIFIER, _signed_coupon(flags=1, member=int(CODE)), NOW)
    assert personal.member_code == CODE


# --------------------------------------------------------------------------------------
# Sealing phones for the back office
# --------------------------------------------------------------------------------------


def test_seal_roundtrip_hides_the_phone() -> None:
    sealed = seal_for_backoffice(b"+79161234567", BACKOFFICE_X.public_key())
    assert sealed.startswith(SEALED_PREFIX)
    assert "9161234567" not in sealed
    assert b"9161234567" not in base64.b64decode(sealed[3:])
    assert open_sealed(sealed, BACKOFFICE_X) == b"+79161234567"
    again = seal_for_backoffice(b"+79161234567", BACKOFFICE_X.public_key())
    assert again != sealed  # fresh ephemeral key each time: equal phones are unlinkable
    assert open_sealed(again, BACKOFFICE_X) == b"+79161234567"


@PROPERTY
@given(st.binary(max_size=300))
def test_seal_roundtrip_property(plaintext: bytes) -> None:
    sealed = seal_for_backoffice(plaintext, BACKOFFICE_X.public_key())
    assert open_sealed(sealed, BACKOFFICE_X) == plaintext


@PROPERTY
@given(st.data())
def test_any_tampered_byte_in_sealed_data_is_forged(data: st.DataObject) -> None:
    raw = bytearray(
        base64.b64decode(seal_for_backoffice(b"+79161234567", BACKOFFICE_X.public_key())[3:])
    )
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    with pytest.raises(TokenForged) as info:
        open_sealed(SEALED_PREFIX + base64.b64encode(bytes(raw)).decode(), BACKOFFICE_X)
    assert info.value.details["reason"] == "bad_tag"


def test_sealed_for_another_back_office_is_forged() -> None:
    sealed = seal_for_backoffice(b"+79161234567", X25519PrivateKey.generate().public_key())
    with pytest.raises(TokenForged) as info:
        open_sealed(sealed, BACKOFFICE_X)
    assert_cashier_readable(info.value)


def test_sealed_with_low_order_ephemeral_point_is_forged() -> None:
    # The all-zero public key makes the X25519 shared secret zero: must not decrypt.
    raw = bytes(32) + bytes(28)
    with pytest.raises(TokenForged):
        open_sealed(SEALED_PREFIX + base64.b64encode(raw).decode(), BACKOFFICE_X)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "wrong_prefix"),
        ("+79161234567", "wrong_prefix"),
        ("S2:" + base64.b64encode(bytes(60)).decode(), "wrong_prefix"),
        ("S1:***", "bad_encoding"),
        ("S1:QUJD=X", "bad_encoding"),
        ("S1:" + base64.b64encode(bytes(47)).decode(), "wrong_length"),
        ("S1:", "wrong_length"),
    ],
)
def test_sealed_garbage_is_malformed(text: str, reason: str) -> None:
    with pytest.raises(TokenMalformed) as info:
        open_sealed(text, BACKOFFICE_X)
    assert info.value.details["reason"] == reason
    assert_cashier_readable(info.value)


@pytest.mark.parametrize("damage", ["cut", "forged", "unknown_key", "garbled"])
def test_a_refused_coupon_is_headed_as_a_coupon_and_says_it_once(damage: str) -> None:
    """A coupon read wrong is "Купон не принят: <why>", never "QR-код не принят" (the
    cashier scanned a coupon), and the reason does not name the coupon again."""
    text = issue_coupon(SIGNER, coupon())
    if damage == "cut":
        text = text[:-3]
    elif damage == "forged":  # one bit of the signature: parses, does not verify
        body = bytearray(body_bytes(text, COUPON_PREFIX))
        body[-1] ^= 0x01
        text = rebuild(COUPON_PREFIX, bytes(body))
    elif damage == "unknown_key":
        text = issue_coupon(SIGNER_2, coupon())
    else:  # a character outside base32 in the middle
        text = text[:10] + "1" + text[11:]
    with pytest.raises(TokenError) as caught:
        verify_coupon(VERIFIER, text, NOW)
    shown = caught.value.to_dict()
    assert (shown["title"], caught.value.title_en) == ("Купон не принят", "Coupon refused")
    assert "купон" not in shown["message_ru"].lower()

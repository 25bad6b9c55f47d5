"""Signed short-lived tokens (member app QR, coupons) and phones sealed for the back office.

Why signatures and not a member secret: a till is a shared PC in a shop; anything stored
on it must be assumed stolen. So the back office signs with Ed25519 and the till holds
only public keys: it can check a member's app QR or a coupon offline but cannot mint one.
Each token names the signing key (1-byte key id), so keys can rotate while old tokens
are still in circulation.

Wire format of a token (contract)::

    text    = PREFIX + base32(body)      RFC 4648 alphabet, upper case, no "=" padding
    body    = key_id (1 byte) | payload (fixed size per kind) | Ed25519 signature (64 bytes)
    signed  = PREFIX (ASCII) | key_id | payload

Base32 keeps the text inside the QR alphanumeric character set (A-Z, 2-7, ":"), which
makes the QR smaller than byte mode and survives a wedge scanner under a Russian layout
(``agent.layout.repair_layout`` maps the Cyrillic back; decoding does it too, so a token
typed under ЙЦУКЕН is read as well). The prefix is signed, so a coupon body cannot be
replayed as a member token or vice versa. Decoding is case-insensitive (Caps Lock flips
the case of wedge scans); signatures are over bytes, so this opens no forgery.

Payloads (big-endian, times as unix seconds UTC)::

    member  KM1:  member_code u64 | issued_at u64 | expires_at u64                (24 bytes)
    coupon  KC1:  coupon_id 16B | kind u8 | flags u8 | value u32 | valid_from u64 |
                  valid_until u64 | min_cheque_kop u64 | member_code u64          (54 bytes)

Errors: :class:`TokenMalformed` (not ours, truncated, bad encoding, nonsense inside),
:class:`TokenForged` (signature fails, unknown key id), :class:`TokenExpired` (genuine but
past its lifetime). Each carries ``details["reason"]``.

Sealing (:func:`seal_for_backoffice`): a registration event must carry the phone to the
back office, but the till keeps only a hash and a mask. So the phone is encrypted to the
back office's X25519 public key (ephemeral X25519 + HKDF-SHA256 + ChaCha20-Poly1305); the
till can write the sealed text to its journal and cannot read it back.

No I/O, no clock reads: ``now`` is always passed in as an aware UTC ``datetime``.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, NoReturn

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from agent.errors import (
    CouponError,
    MemberCodeError,
    TokenError,
    TokenExpired,
    TokenForged,
    TokenMalformed,
)
from agent.identify import MEMBER_CODE_LENGTH, TOKEN_PREFIX_RE, check_member_code
from agent.layout import repair_layout

__all__ = [
    "COUPON_CODEC",
    "COUPON_PREFIX",
    "MEMBER_TOKEN_CODEC",
    "MEMBER_TOKEN_PREFIX",
    "SEALED_PREFIX",
    "Coupon",
    "CouponKind",
    "MemberToken",
    "TokenCodec",
    "TokenSigner",
    "TokenVerifier",
    "dump_key",
    "issue_coupon",
    "issue_member_token",
    "load_ed25519_private_key",
    "load_ed25519_public_key",
    "load_x25519_private_key",
    "load_x25519_public_key",
    "open_sealed",
    "seal_for_backoffice",
    "verify_coupon",
    "verify_member_token",
]

MEMBER_TOKEN_PREFIX = "KM1:"  # noqa: S105 (a format tag, not a secret)
COUPON_PREFIX = "KC1:"
SEALED_PREFIX = "S1:"

SIGNATURE_SIZE = 64
"""Bytes in an Ed25519 signature."""

MAX_MEMBER_TOKEN_TTL = 86_400
"""Longest member-token lifetime the signer accepts, in seconds (one day): app QR codes
are meant to be refreshed every few minutes so a screenshot is worth little."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_UNIX = 253_402_300_799
"""9999-12-31T23:59:59Z, the last second a ``datetime`` can hold."""

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_BASE32_RE = re.compile(r"[A-Z2-7]*")


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------

AnyKey = Ed25519PrivateKey | Ed25519PublicKey | X25519PrivateKey | X25519PublicKey


def dump_key(key: AnyKey) -> str:
    """A key as standard base64 of its 32 raw bytes: the form used in config files."""
    if isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
        raw = key.private_bytes_raw()
    else:
        raw = key.public_bytes_raw()
    return base64.b64encode(raw).decode("ascii")


def generate_programme_keys() -> dict[str, str]:
    """Fresh back office key material: the Ed25519 pair that signs app QR tokens and
    coupons, the X25519 pair tills seal phone numbers to, and the phone-hash key
    (32 random bytes, hex). Private halves never leave the back office."""
    sign = Ed25519PrivateKey.generate()
    seal = X25519PrivateKey.generate()
    return {
        "token_private_key": dump_key(sign),
        "token_public_key": dump_key(sign.public_key()),
        "seal_private_key": dump_key(seal),
        "seal_public_key": dump_key(seal.public_key()),
        "phone_hash_key": secrets.token_hex(32),
    }


def _raw_key(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"{what}: not base64") from e
    if len(raw) != 32:
        raise ValueError(f"{what}: expected 32 raw bytes, got {len(raw)}")
    return raw


def load_ed25519_public_key(text: str) -> Ed25519PublicKey:
    """Back-office signing public key from base64 (config). ``ValueError`` if unusable."""
    return Ed25519PublicKey.from_public_bytes(_raw_key(text, "Ed25519 public key"))


def load_ed25519_private_key(text: str) -> Ed25519PrivateKey:
    """Back-office signing private key from base64. Never configured on a till."""
    return Ed25519PrivateKey.from_private_bytes(_raw_key(text, "Ed25519 private key"))


def load_x25519_public_key(text: str) -> X25519PublicKey:
    """Back-office sealing public key from base64 (the till seals phones to it)."""
    return X25519PublicKey.from_public_bytes(_raw_key(text, "X25519 public key"))


def load_x25519_private_key(text: str) -> X25519PrivateKey:
    """Back-office sealing private key from base64. Never configured on a till."""
    return X25519PrivateKey.from_private_bytes(_raw_key(text, "X25519 private key"))


def _check_key_id(key_id: int) -> int:
    if isinstance(key_id, bool) or not 0 <= key_id <= 255:
        raise ValueError(f"key id must be 0..255, got {key_id!r}")
    return key_id


class TokenSigner:
    """The back office's signing key and its 1-byte id (0..255), written into every token."""

    __slots__ = ("_key", "key_id")

    def __init__(self, key_id: int, private_key: Ed25519PrivateKey) -> None:
        self.key_id = _check_key_id(key_id)
        self._key = private_key

    def __repr__(self) -> str:  # never show key material
        return f"TokenSigner(key_id={self.key_id})"

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The matching public key, to hand to tills' :class:`TokenVerifier`."""
        return self._key.public_key()

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature (64 bytes) of ``message``."""
        return self._key.sign(message)


class TokenVerifier:
    """The public keys a till trusts, by key id. Old ids stay listed while rotating."""

    __slots__ = ("_keys",)

    def __init__(self, public_keys: Mapping[int, Ed25519PublicKey]) -> None:
        if not public_keys:
            raise ValueError("TokenVerifier needs at least one public key")
        self._keys = {_check_key_id(k): v for k, v in public_keys.items()}

    def __repr__(self) -> str:
        return f"TokenVerifier(key_ids={sorted(self._keys)})"

    @property
    def key_ids(self) -> frozenset[int]:
        return frozenset(self._keys)

    def public_key(self, key_id: int) -> Ed25519PublicKey | None:
        return self._keys.get(key_id)

    def verify_member_token(
        self, text: str, now: datetime, leeway_seconds: int = 60
    ) -> MemberToken:
        """Same as :func:`verify_member_token`; lets callers hold only a verifier."""
        return verify_member_token(self, text, now, leeway_seconds)


# --------------------------------------------------------------------------------------
# The generic codec
# --------------------------------------------------------------------------------------


def _malformed(reason: str, en: str, ru: str, **details: object) -> TokenMalformed:
    return TokenMalformed(en, ru, reason=reason, **details)


@dataclass(frozen=True, slots=True)
class TokenCodec:
    """Sign/verify and text encoding shared by every token kind.

    ``prefix`` names the kind and format version (signed, so kinds cannot be swapped);
    ``payload_size`` is the fixed payload length in bytes; ``name_en``/``name_ru`` are
    used in cashier messages ("coupon" / "купон").
    """

    prefix: str
    payload_size: int
    name_en: str
    name_ru: str

    def __post_init__(self) -> None:
        if not TOKEN_PREFIX_RE.fullmatch(self.prefix) or self.prefix != self.prefix.upper():
            raise ValueError(f"token prefix {self.prefix!r} must look like 'KX1:'")

    @property
    def body_size(self) -> int:
        """Decoded bytes after the prefix: key id + payload + signature."""
        return 1 + self.payload_size + SIGNATURE_SIZE

    @property
    def text_size(self) -> int:
        """Characters of a token of this kind, prefix included."""
        return len(self.prefix) + (self.body_size * 8 + 4) // 5

    def encode(self, signer: TokenSigner, payload: bytes) -> str:
        """Sign ``payload`` and return the token text."""
        if len(payload) != self.payload_size:
            raise ValueError(f"payload must be {self.payload_size} bytes, got {len(payload)}")
        head = bytes([signer.key_id]) + payload
        signature = signer.sign(self.prefix.encode("ascii") + head)
        body = base64.b32encode(head + signature).decode("ascii").rstrip("=")
        return self.prefix + body

    def decode(self, verifier: TokenVerifier, text: str) -> tuple[int, bytes]:
        """Check ``text`` and return ``(key_id, payload)``; the payload is authentic.

        Order of checks: prefix, characters, length, base32, key id, signature. So
        anything not shaped like our token is ``TokenMalformed`` and only a well-formed
        token with a bad signature or unknown key is ``TokenForged``.
        """
        text = text.strip()
        if text[: len(self.prefix)].upper() != self.prefix:
            # Base32 has no Cyrillic: a token in Cyrillic was typed or scanned under ЙЦУКЕН.
            text = repair_layout(text)
        head = text[: len(self.prefix)].upper()
        if head != self.prefix:
            self._wrong_prefix(text)
        body_text = text[len(self.prefix) :].upper()
        if not _BASE32_RE.fullmatch(body_text):
            raise _malformed(
                "bad_encoding",
                f"{self.name_en} contains characters outside base32",
                "В коде недопустимые символы: отсканируйте ещё раз",
                kind=self.prefix,
            )
        expected = self.text_size - len(self.prefix)
        if len(body_text) != expected:
            raise _malformed(
                "wrong_length",
                f"{self.name_en} has {len(body_text)} characters, expected {expected}: "
                "truncated or not ours",
                "Код прочитан не полностью: отсканируйте ещё раз",
                kind=self.prefix,
                length=len(body_text),
                expected=expected,
            )
        try:
            body = base64.b32decode(body_text + "=" * (-len(body_text) % 8))
        except binascii.Error as e:
            raise _malformed(
                "bad_encoding",
                f"{self.name_en}: invalid base32 ({e})",
                "Код повреждён: отсканируйте ещё раз",
                kind=self.prefix,
            ) from e
        if base64.b32encode(body).decode("ascii").rstrip("=") != body_text:
            raise _malformed(
                "bad_encoding",
                f"{self.name_en}: non-canonical base32",
                "Код повреждён: отсканируйте ещё раз",
                kind=self.prefix,
            )
        key_id = body[0]
        payload = body[1 : 1 + self.payload_size]
        signature = body[1 + self.payload_size :]
        public_key = verifier.public_key(key_id)
        if public_key is None:
            raise TokenForged(
                f"{self.name_en} is signed with unknown key id {key_id}",
                "Код подписан неизвестным ключом. Если ключи недавно менялись, "
                "дождитесь связи с офисом",
                reason="unknown_key",
                kind=self.prefix,
                key_id=key_id,
                known_key_ids=sorted(verifier.key_ids),
            )
        try:
            public_key.verify(signature, self.prefix.encode("ascii") + body[: 1 + len(payload)])
        except InvalidSignature as e:
            raise TokenForged(
                f"{self.name_en}: signature does not verify",
                "Код не прошёл проверку подписи: подделан или повреждён",
                reason="bad_signature",
                kind=self.prefix,
                key_id=key_id,
            ) from e
        return key_id, payload

    def _wrong_prefix(self, text: str) -> NoReturn:
        for other in _CODECS:
            if other is not self and text[: len(other.prefix)].upper() == other.prefix:
                raise _malformed(
                    "wrong_kind",
                    f"expected a {self.name_en}, got a {other.name_en}",
                    f"Это {other.name_ru}, а нужен {self.name_ru}",
                    kind=self.prefix,
                    got=other.prefix,
                )
        raise _malformed(
            "wrong_prefix",
            f"not a {self.name_en}: prefix {self.prefix!r} missing",
            f"Это не {self.name_ru}",
            kind=self.prefix,
        )


MEMBER_TOKEN_CODEC = TokenCodec(MEMBER_TOKEN_PREFIX, 24, "member app QR code", "QR-код участника")
COUPON_CODEC = TokenCodec(COUPON_PREFIX, 54, "coupon", "купон")
_CODECS = (MEMBER_TOKEN_CODEC, COUPON_CODEC)


# --------------------------------------------------------------------------------------
# Times
# --------------------------------------------------------------------------------------


def _unix(dt: datetime, what: str = "now") -> int:
    """Whole unix seconds (floor) of an aware datetime; ``ValueError`` if naive or < 1970."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware UTC datetime")
    seconds = (dt - _EPOCH) // timedelta(seconds=1)
    if seconds < 0:
        raise ValueError(f"{what} is before 1970")
    return seconds


def _from_unix(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def _fmt(dt: datetime) -> str:
    """A time for a cashier message: ``31.12.2025 18:00 UTC`` (the core knows no local zone)."""
    return dt.strftime("%d.%m.%Y %H:%M UTC")


# --------------------------------------------------------------------------------------
# Member app token
# --------------------------------------------------------------------------------------

_MEMBER_STRUCT = struct.Struct(">QQQ")
assert _MEMBER_STRUCT.size == MEMBER_TOKEN_CODEC.payload_size


@dataclass(frozen=True, slots=True)
class MemberToken:
    """A verified member app QR: who (13-digit ``member_code``) and its lifetime (aware UTC)."""

    member_code: str
    issued_at: datetime
    expires_at: datetime


def issue_member_token(
    signer: TokenSigner, member_code: str, now: datetime, ttl_seconds: int = 300
) -> str:
    """Back office: a member app QR token valid from ``now`` for ``ttl_seconds`` seconds.

    ``member_code`` is checked (:class:`MemberCodeError`); ``ttl_seconds`` must be in
    1..86400 (``ValueError``). Times are truncated to whole seconds.
    """
    code = check_member_code(member_code)
    if isinstance(ttl_seconds, bool) or not 1 <= ttl_seconds <= MAX_MEMBER_TOKEN_TTL:
        raise ValueError(f"ttl_seconds must be 1..{MAX_MEMBER_TOKEN_TTL}")
    issued = _unix(now)
    payload = _MEMBER_STRUCT.pack(int(code), issued, issued + ttl_seconds)
    return MEMBER_TOKEN_CODEC.encode(signer, payload)


def verify_member_token(
    verifier: TokenVerifier, text: str, now: datetime, leeway_seconds: int = 60
) -> MemberToken:
    """Till: check a scanned member app QR offline and return who it names.

    ``leeway_seconds`` (>= 0) absorbs clock drift between the till and the back office, on
    both ends of the lifetime. Raises :class:`TokenMalformed`, :class:`TokenForged` or
    :class:`TokenExpired` (``now > expires_at + leeway``). A token issued more than
    ``leeway_seconds`` after ``now`` is :class:`TokenMalformed` with reason
    ``"issued_in_future"``: a genuine token cannot come from the future, so one of the two
    clocks is wrong and the message tells the cashier to check the till's clock.
    """
    if isinstance(leeway_seconds, bool) or leeway_seconds < 0:
        raise ValueError("leeway_seconds must be >= 0")
    now_s = _unix(now)
    _, payload = MEMBER_TOKEN_CODEC.decode(verifier, text)
    code_int, issued, expires = _MEMBER_STRUCT.unpack(payload)
    if code_int >= 10**MEMBER_CODE_LENGTH:
        raise _malformed(
            "bad_member_code",
            "member app QR code carries an impossible member code",
            "QR-код участника содержит неверный код участника",
            member_code_int=code_int,
        )
    code = f"{code_int:0{MEMBER_CODE_LENGTH}d}"
    try:
        check_member_code(code)
    except MemberCodeError as e:
        raise _malformed(
            "bad_member_code",
            "member app QR code carries a member code with a bad check digit",
            "QR-код участника содержит неверный код участника",
            member_code_reason=e.details.get("reason"),
        ) from e
    if not issued < expires <= _MAX_UNIX:
        raise _malformed(
            "bad_lifetime",
            "member app QR code has an impossible lifetime",
            "QR-код участника повреждён: неверный срок действия",
            issued_at=issued,
            expires_at=expires,
        )
    issued_at, expires_at = _from_unix(issued), _from_unix(expires)
    if issued > now_s + leeway_seconds:
        raise _malformed(
            "issued_in_future",
            f"member app QR code issued {issued - now_s} s in the future: a clock is wrong",
            "QR-код участника выдан «в будущем»: проверьте дату и время на кассе",
            issued_at=issued_at.isoformat(),
            seconds_ahead=issued - now_s,
        )
    if now_s > expires + leeway_seconds:
        raise TokenExpired(
            f"member app QR code expired {now_s - expires} s ago",
            "QR-код участника устарел. Попросите обновить код в приложении",
            reason="expired",
            expires_at=expires_at.isoformat(),
            seconds_late=now_s - expires,
        )
    return MemberToken(member_code=code, issued_at=issued_at, expires_at=expires_at)


# --------------------------------------------------------------------------------------
# Coupons
# --------------------------------------------------------------------------------------

CouponKind = Literal["percent", "fixed", "points"]

_COUPON_KIND_CODES: dict[str, int] = {"percent": 1, "fixed": 2, "points": 3}
_COUPON_KINDS_BY_CODE: dict[int, CouponKind] = {1: "percent", 2: "fixed", 3: "points"}
_COUPON_VALUE_RANGE: dict[str, tuple[int, int]] = {
    "percent": (1, 10_000),  # basis points: 1 = 0.01 %, 10000 = 100 %
    "fixed": (1, _U32_MAX),  # kopecks
    "points": (1, _U32_MAX),  # points
}
_FLAG_PERSONAL = 0x01
_COUPON_STRUCT = struct.Struct(">16sBBIQQQQ")
assert _COUPON_STRUCT.size == COUPON_CODEC.payload_size
_HEX32_RE = re.compile(r"[0-9a-f]{32}")


def _coupon_error(reason: str, en: str, ru: str, **details: object) -> CouponError:
    return CouponError(en, ru, reason=reason, **details)  # the title says "refused"


@dataclass(frozen=True, slots=True)
class Coupon:
    """A coupon as the back office signed it.

    Units: ``value`` is basis points for ``"percent"`` (1..10000, 1 bp = 0.01 %), kopecks for
    ``"fixed"`` (> 0), points for ``"points"`` (> 0); the wire field is 32-bit, so fixed and
    points values are at most 4 294 967 295. ``min_cheque_kop`` is the smallest cheque (kopecks)
    it applies to. Valid for ``valid_from <= now < valid_until`` (aware datetimes, stored
    at one-second resolution: they are converted to UTC and microseconds dropped, so an
    issued coupon decodes equal to itself). ``member_code`` set = personal coupon.
    ``coupon_id`` is 32 hex digits (16 bytes), lower-cased; single use is enforced by the
    ledger, not here.

    Raises :class:`CouponError` (``details["reason"]``) when a field is out of range.
    """

    coupon_id: str
    kind: CouponKind
    value: int
    valid_from: datetime
    valid_until: datetime
    min_cheque_kop: int = 0
    member_code: str | None = None

    def __post_init__(self) -> None:
        coupon_id = self.coupon_id.lower() if isinstance(self.coupon_id, str) else ""
        if not _HEX32_RE.fullmatch(coupon_id):
            raise _coupon_error(
                "bad_id",
                "coupon id must be 32 hex digits",
                "неверный номер купона",
            )
        object.__setattr__(self, "coupon_id", coupon_id)
        if self.kind not in _COUPON_VALUE_RANGE:
            raise _coupon_error(
                "bad_kind",
                f"unknown coupon kind {self.kind!r}",
                "неизвестный вид купона",
                kind=str(self.kind),
            )
        lo, hi = _COUPON_VALUE_RANGE[self.kind]
        if not _is_int(self.value) or not lo <= self.value <= hi:
            raise _coupon_error(
                "value_out_of_range",
                f"{self.kind} coupon value must be {lo}..{hi}, got {self.value!r}",
                "неверный номинал купона",
                kind=self.kind,
                value=self.value,
                min=lo,
                max=hi,
            )
        if not _is_int(self.min_cheque_kop) or not 0 <= self.min_cheque_kop <= _U64_MAX:
            raise _coupon_error(
                "min_cheque_out_of_range",
                f"min_cheque_kop must be >= 0, got {self.min_cheque_kop!r}",
                "неверная минимальная сумма чека",
                min_cheque_kop=self.min_cheque_kop,
            )
        for name in ("valid_from", "valid_until"):
            value: datetime = getattr(self, name)
            if value.tzinfo is None or value.utcoffset() is None:
                raise _coupon_error(
                    "naive_datetime",
                    f"coupon {name} must be timezone-aware",
                    "неверный срок действия",
                    field=name,
                )
            value = value.astimezone(UTC).replace(microsecond=0)
            if not _EPOCH <= value <= _from_unix(_MAX_UNIX):
                raise _coupon_error(
                    "bad_validity",
                    f"coupon {name} out of range",
                    "неверный срок действия",
                    field=name,
                )
            object.__setattr__(self, name, value)
        if self.valid_until <= self.valid_from:
            raise _coupon_error(
                "bad_validity",
                "coupon valid_until must be after valid_from",
                "неверный срок действия",
                valid_from=self.valid_from.isoformat(),
                valid_until=self.valid_until.isoformat(),
            )
        if self.member_code is not None:
            try:
                code = check_member_code(self.member_code)
            except MemberCodeError as e:
                raise _coupon_error(
                    "bad_member_code",
                    "personal coupon names an invalid member code",
                    "неверный код участника в купоне",
                    member_code_reason=e.details.get("reason"),
                ) from e
            object.__setattr__(self, "member_code", code)

    @property
    def personal(self) -> bool:
        """True if only the member named in ``member_code`` may use it."""
        return self.member_code is not None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def issue_coupon(signer: TokenSigner, coupon: Coupon) -> str:
    """Back office: the signed ``KC1:`` text to print as a QR or send to the app."""
    flags = _FLAG_PERSONAL if coupon.member_code is not None else 0
    payload = _COUPON_STRUCT.pack(
        bytes.fromhex(coupon.coupon_id),
        _COUPON_KIND_CODES[coupon.kind],
        flags,
        coupon.value,
        _unix(coupon.valid_from, "valid_from"),
        _unix(coupon.valid_until, "valid_until"),
        coupon.min_cheque_kop,
        int(coupon.member_code) if coupon.member_code is not None else 0,
    )
    return COUPON_CODEC.encode(signer, payload)


def verify_coupon(verifier: TokenVerifier, text: str, now: datetime) -> Coupon:
    """Till: check a scanned coupon offline and return it, valid at ``now`` (aware UTC).

    Its errors are headed as a coupon's ("Купон не принят"), whatever their class: the
    cashier typed or scanned a coupon, not a member's QR code.
    """
    try:
        return _verify_coupon(verifier, text, now)
    except TokenError as e:
        e.title_ru, e.title_en = CouponError.title_ru, CouponError.title_en
        raise


def _verify_coupon(verifier: TokenVerifier, text: str, now: datetime) -> Coupon:
    """Check a scanned coupon offline and return it, valid at ``now`` (aware UTC).

    Raises :class:`TokenMalformed` (also when a genuinely signed coupon has impossible
    contents: unknown kind, unknown flags, a value out of range; reason ``"bad_content"``
    and the coupon's own reason in ``details["problem"]``), :class:`TokenForged`,
    :class:`TokenExpired` (``now >= valid_until``) or :class:`CouponError` with reason
    ``"not_yet_valid"`` (``now < valid_from``). No leeway: coupon windows are days long.
    Whether this cheque may use it (member, minimum, single use) is for the rules engine.
    """
    now_s = _unix(now)
    _, payload = COUPON_CODEC.decode(verifier, text)
    raw_id, kind_code, flags, value, v_from, v_until, min_cheque, code_int = _COUPON_STRUCT.unpack(
        payload
    )
    kind = _COUPON_KINDS_BY_CODE.get(kind_code)
    personal = bool(flags & _FLAG_PERSONAL)
    problem = None
    if kind is None:
        problem = "bad_kind"
    elif flags & ~_FLAG_PERSONAL or (not personal and code_int != 0):
        problem = "bad_flags"
    elif personal and code_int >= 10**MEMBER_CODE_LENGTH:
        problem = "bad_member_code"
    elif v_from > _MAX_UNIX or v_until > _MAX_UNIX:
        problem = "bad_validity"
    if problem is not None:
        raise _malformed(
            "bad_content",
            f"coupon contents are invalid ({problem})",
            "Купон повреждён или выпущен с ошибкой. Обратитесь в офис",
            problem=problem,
        )
    assert kind is not None
    try:
        coupon = Coupon(
            coupon_id=raw_id.hex(),
            kind=kind,
            value=value,
            valid_from=_from_unix(v_from),
            valid_until=_from_unix(v_until),
            min_cheque_kop=min_cheque,
            member_code=f"{code_int:0{MEMBER_CODE_LENGTH}d}" if personal else None,
        )
    except CouponError as e:
        raise _malformed(
            "bad_content",
            f"coupon contents are invalid ({e.details.get('reason')})",
            "Купон повреждён или выпущен с ошибкой. Обратитесь в офис",
            problem=e.details.get("reason"),
        ) from e
    if now_s < v_from:
        raise _coupon_error(
            "not_yet_valid",
            f"coupon is valid from {coupon.valid_from.isoformat()}",
            f"купон действует с {_fmt(coupon.valid_from)}",
            coupon_id=coupon.coupon_id,
            valid_from=coupon.valid_from.isoformat(),
        )
    if now_s >= v_until:
        raise TokenExpired(
            f"coupon expired at {coupon.valid_until.isoformat()}",
            f"Срок действия купона истёк {_fmt(coupon.valid_until)}",
            reason="expired",
            coupon_id=coupon.coupon_id,
            valid_until=coupon.valid_until.isoformat(),
        )
    return coupon


# --------------------------------------------------------------------------------------
# Sealing for the back office
# --------------------------------------------------------------------------------------

_SEAL_INFO = b"kassa/sealed/v1"
_X25519_SIZE = 32
_TAG_SIZE = 16


def _seal_keys(shared: bytes, ephemeral_pub: bytes, recipient_pub: bytes) -> tuple[bytes, bytes]:
    """ChaCha20-Poly1305 key (32 B) and nonce (12 B), both bound to the two public keys.

    The ephemeral key is new for every message, so each key/nonce pair is used once.
    """
    okm = HKDF(
        algorithm=hashes.SHA256(),
        length=32 + 12,
        salt=ephemeral_pub + recipient_pub,
        info=_SEAL_INFO,
    ).derive(shared)
    return okm[:32], okm[32:]


def seal_for_backoffice(plaintext: bytes, recipient: X25519PublicKey) -> str:
    """Encrypt ``plaintext`` (e.g. an E.164 phone) so only the back office can read it.

    Output: ``"S1:" + base64(ephemeral_public_key (32 B) | ciphertext | tag (16 B))``.
    The till forgets the ephemeral private key at once, so it cannot decrypt its own
    journal: a stolen till database yields no phone numbers.
    """
    ephemeral = X25519PrivateKey.generate()
    ephemeral_pub = ephemeral.public_key().public_bytes_raw()
    key, nonce = _seal_keys(
        ephemeral.exchange(recipient), ephemeral_pub, recipient.public_bytes_raw()
    )
    sealed = ChaCha20Poly1305(key).encrypt(nonce, plaintext, SEALED_PREFIX.encode("ascii"))
    return SEALED_PREFIX + base64.b64encode(ephemeral_pub + sealed).decode("ascii")


def open_sealed(text: str, private_key: X25519PrivateKey) -> bytes:
    """Back office: decrypt :func:`seal_for_backoffice` output.

    Raises :class:`TokenMalformed` (wrong prefix, not base64, too short) or
    :class:`TokenForged` (altered in transit, or sealed to another key).
    """
    text = text.strip()
    if not text.startswith(SEALED_PREFIX):
        raise _malformed(
            "wrong_prefix",
            f"sealed data must start with {SEALED_PREFIX!r}",
            "Зашифрованные данные не распознаны",
            kind=SEALED_PREFIX,
        )
    try:
        raw = base64.b64decode(text[len(SEALED_PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as e:
        raise _malformed(
            "bad_encoding",
            "sealed data is not valid base64",
            "Зашифрованные данные повреждены",
            kind=SEALED_PREFIX,
        ) from e
    if len(raw) < _X25519_SIZE + _TAG_SIZE:
        raise _malformed(
            "wrong_length",
            f"sealed data too short ({len(raw)} bytes)",
            "Зашифрованные данные повреждены",
            kind=SEALED_PREFIX,
            length=len(raw),
        )
    ephemeral_pub, sealed = raw[:_X25519_SIZE], raw[_X25519_SIZE:]
    forged = TokenForged(
        "sealed data fails authentication: altered, or sealed to another key",
        "Зашифрованные данные изменены или предназначены для другого ключа",
        reason="bad_tag",
        kind=SEALED_PREFIX,
    )
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_pub))
    except ValueError as e:  # low-order point: the all-zero shared secret is refused
        raise forged from e
    key, nonce = _seal_keys(shared, ephemeral_pub, private_key.public_key().public_bytes_raw())
    try:
        return ChaCha20Poly1305(key).decrypt(nonce, sealed, SEALED_PREFIX.encode("ascii"))
    except InvalidTag as e:
        raise forged from e

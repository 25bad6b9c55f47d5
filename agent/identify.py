"""Who is at the till: phone numbers, member codes, repaired scans and the routing between them.

Why this module exists: a cashier identifies a member in one input field, by typing a
phone number (in any of the half-dozen ways Russians write one), by typing or scanning a
printed member code, or by scanning the member app's QR code, which is a short-lived
token signed by the back office (see ``agent.tokens``). ``parse_identifier`` turns that
one field into an :class:`Identifier`.

Privacy: the till keeps only :func:`phone_hash` (keyed, so it cannot be reversed by
hashing all 10^10 Russian mobile numbers without the key) and :func:`mask_phone`, never
the raw number. English error messages go to the logs, so they never contain the typed
phone; the Russian message echoes the input back to the cashier who typed it.

Member codes are digits only (13 = 12 payload digits + 1 Damm check digit) because digits
are the only characters a keyboard-wedge scanner types identically under every keyboard
layout. Everything else a wedge scanner types under a Russian layout comes out in
Cyrillic; :func:`agent.layout.repair_layout` maps it back.

No I/O, no clock reads: the current time is passed in as an aware UTC ``datetime``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

import phonenumbers

from agent.errors import InputError, MemberCodeError, PhoneError, TokenError
from agent.layout import repair_layout

__all__ = [
    "MEMBER_CODE_LENGTH",
    "TOKEN_PREFIX_RE",
    "Identifier",
    "IdentifierKind",
    "MemberTokenVerifier",
    "VerifiedMemberToken",
    "check_member_code",
    "damm_check_digit",
    "looks_like_member_code",
    "make_member_code",
    "mask_phone",
    "normalize_phone",
    "parse_identifier",
    "phone_hash",
    "repair_layout",
]

# --------------------------------------------------------------------------------------
# Phone numbers
# --------------------------------------------------------------------------------------

_DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2212"
"""Hyphen-minus and the Unicode dashes that arrive when a number is pasted from a document."""

_PHONE_ALLOWED_RE = re.compile(rf"\+?[0-9\s{re.escape(_DASHES)}.()]*")
"""What a typed phone may contain: digits, whitespace, dashes, dots, parentheses and one
leading ``+``. Anything else (letters, ``#``, ``*``, ``ext.``) is refused up front, because
``phonenumbers`` would otherwise read letters as a vanity number ("8-800-FLOWERS")."""

_MAX_PHONE_DIGITS = 17
"""E.164 allows 15 digits; 17 leaves room for a Russian trunk "8" or the "8 10" IDD."""

_E164_RE = re.compile(r"\+[1-9][0-9]{4,14}")

_POSSIBLE_REASON = {
    phonenumbers.ValidationResult.TOO_SHORT: "too_short",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "too_short",
    phonenumbers.ValidationResult.TOO_LONG: "too_long",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown_country_code",
    phonenumbers.ValidationResult.INVALID_LENGTH: "invalid_number",
}

_PARSE_REASON = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown_country_code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "too_short",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too_short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too_short",
    phonenumbers.NumberParseException.TOO_LONG: "too_long",
}

_PHONE_TEXT = {
    # reason: (English, Russian hint)
    "too_short": ("too few digits", "слишком мало цифр"),
    "too_long": ("too many digits", "слишком много цифр"),
    "unknown_country_code": ("unknown country code", "неизвестный код страны"),
    "invalid_number": (
        "no such number in the numbering plan",
        "такого номера не бывает, проверьте цифры",
    ),
}


def _shown(text: str, limit: int = 40) -> str:
    """The input as echoed back to the cashier: trimmed, at most ``limit`` characters."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _phone_error(reason: str, text: str, digits: int, **details: object) -> PhoneError:
    en, ru = _PHONE_TEXT[reason]
    # The title (``PhoneError``) already says "not recognised": the message says why.
    return PhoneError(
        f"{en} ({digits} digits)",
        f"{_shown(text)} — {ru}",
        reason=reason,
        digits=digits,
        **details,
    )


def normalize_phone(text: str, region: str = "RU") -> str:
    """Any way a cashier types a phone number -> E.164 (``"+79161234567"``).

    Accepted for ``region="RU"``: ``8 916 123-45-67``, ``+7 (916) 123-45-67``,
    ``89161234567``, ``79161234567``, ``9161234567`` (ten digits: +7 assumed),
    ``8 10 375 ...`` (the Russian international prefix), and any foreign number written
    with ``+`` (``+375 29 ...``, ``+7 701 ...`` for Kazakhstan, which shares +7). The common
    slip ``+8 916 ...`` is read as ``8 916 ...`` when it is not a valid number as typed.
    Separators: whitespace, dashes, dots, parentheses.

    The number must be valid in the numbering plan (``phonenumbers.is_valid_number``), not
    merely of a possible length: a typo in the operator code is caught here, at the till.

    Raises :class:`PhoneError` with ``details["reason"]`` one of ``"empty"``,
    ``"invalid_characters"``, ``"too_short"``, ``"too_long"``, ``"unknown_country_code"``,
    ``"invalid_number"``. Raises ``ValueError`` for an unknown ``region`` (a configuration
    bug, not a cashier's typo).
    """
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {region!r}")
    stripped = text.strip()
    digits = sum(ch.isascii() and ch.isdigit() for ch in stripped)
    if digits == 0 and (not stripped or _PHONE_ALLOWED_RE.fullmatch(stripped)):
        raise PhoneError(
            "Phone number is empty",
            "Введите номер телефона",
            reason="empty",
            digits=0,
        )
    if not _PHONE_ALLOWED_RE.fullmatch(stripped):
        bad = sorted({ch for ch in stripped if not _PHONE_ALLOWED_RE.fullmatch(ch)} - {"+"})
        if not bad:  # only a misplaced "+"
            bad = ["+"]
        raise PhoneError(
            "characters other than digits, separators and a leading +",
            f"{_shown(text)} — лишние символы: {' '.join(bad)}; "
            "можно только цифры, пробелы, дефисы, скобки и + в начале",
            reason="invalid_characters",
            digits=digits,
            bad_chars=len(bad),
        )
    if digits > _MAX_PHONE_DIGITS:
        raise _phone_error("too_long", text, digits)

    number = _parse_valid(stripped, region, text, digits)
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _parse_valid(stripped: str, region: str, text: str, digits: int) -> phonenumbers.PhoneNumber:
    """Parse with ``phonenumbers`` and insist on a valid number; map failures to reasons."""
    reason = _phone_problem(stripped, region)
    if reason is None:
        return phonenumbers.parse(stripped, region)
    # "+8 916 123-45-67": a Russian trunk 8 with a stray plus. Only tried after the
    # number failed as typed, so real +8x numbers (Japan +81, China +86) are unaffected.
    stray_plus = region == "RU" and stripped.startswith("+8") and digits == 11
    if stray_plus and _phone_problem(stripped[1:], region) is None:
        return phonenumbers.parse(stripped[1:], region)
    raise _phone_error(reason, text, digits)


def _phone_problem(stripped: str, region: str) -> str | None:
    """None if ``stripped`` is a valid number, else the ``PhoneError`` reason."""
    try:
        number = phonenumbers.parse(stripped, region)
    except phonenumbers.NumberParseException as e:
        return _PARSE_REASON.get(e.error_type, "invalid_number")
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASON and _POSSIBLE_REASON[possible] != "invalid_number":
        return _POSSIBLE_REASON[possible]
    if possible == phonenumbers.ValidationResult.IS_POSSIBLE and phonenumbers.is_valid_number(
        number
    ):
        return None
    # Possible length but not a real number (Russia allows 14-digit service numbers, so
    # "+7 916 123 45 678" is "possible"): judge the length against subscriber numbers.
    lengths = _subscriber_lengths(number.country_code or 0)
    nsn = len(phonenumbers.national_significant_number(number))
    if lengths and nsn > max(lengths):
        return "too_long"
    if lengths and nsn < min(lengths):
        return "too_short"
    return "invalid_number"


def _subscriber_lengths(country_code: int) -> set[int]:
    """National number lengths of fixed-line and mobile numbers for ``country_code``."""
    lengths: set[int] = set()
    for region in phonenumbers.region_codes_for_country_code(country_code):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if meta is None:
            continue
        for desc in (meta.fixed_line, meta.mobile):
            if desc is not None and desc.possible_length:
                lengths.update(n for n in desc.possible_length if n > 0)
    return lengths


def mask_phone(e164: str) -> str:
    """The form shown on screens and slips: ``"+79161234567"`` -> ``"+7 *** ***-45-67"``.

    Keeps the country code and the last four digits (the last two when the national
    number is shorter than eight digits); the masked digits are grouped in threes from
    the right, so ``+375291234567`` becomes ``"+375 ** ***-45-67"``.

    ``e164`` must come from :func:`normalize_phone`; anything else is a programming error
    and raises ``ValueError``.
    """
    number = _parse_e164(e164)
    cc = str(number.country_code)
    nsn = e164[1 + len(cc) :]
    keep = 4 if len(nsn) >= 8 else 2
    stars = len(nsn) - keep
    groups: list[str] = []
    while stars > 0:
        groups.insert(0, "*" * min(3, stars))
        stars -= 3
    tail = f"{nsn[-4:-2]}-{nsn[-2:]}" if keep == 4 else nsn[-2:]
    return f"+{cc} {' '.join(groups)}-{tail}"


def phone_hash(e164: str, key: bytes) -> str:
    """Keyed, non-reversible phone fingerprint: HMAC-SHA256, first 32 hex chars (128 bits).

    Why keyed: there are only ~10^10 Russian numbers, so a plain hash is reversed by
    brute force in minutes. With the programme's secret key (>= 16 bytes, never on
    a slip or in a log) the till can look a member up by phone without storing it.
    Hashing the E.164 form makes every typed variant of one number hash the same.

    Raises ``ValueError`` for a short key or a non-E.164 ``e164``.
    """
    if len(key) < 16:
        raise ValueError("phone hash key must be at least 16 bytes")
    _parse_e164(e164)
    return hmac.new(key, e164.encode("ascii"), hashlib.sha256).hexdigest()[:32]


def _parse_e164(e164: str) -> phonenumbers.PhoneNumber:
    if not _E164_RE.fullmatch(e164):
        raise ValueError("expected an E.164 phone number such as +79161234567")
    try:
        return phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as e:
        raise ValueError(f"not an E.164 phone number: {e}") from e


# --------------------------------------------------------------------------------------
# Member codes (Damm check digit)
# --------------------------------------------------------------------------------------

MEMBER_CODE_LENGTH = 13
"""Digits in a member code: 12 payload digits + 1 Damm check digit."""

_MEMBER_PAYLOAD_LIMIT = 10 ** (MEMBER_CODE_LENGTH - 1)

_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)
"""Damm's totally anti-symmetric quasigroup of order 10 (H. M. Damm, 2004).

Why Damm and not Luhn or EAN: it catches every single-digit error and every adjacent
transposition (Luhn misses 09<->90, EAN-13 misses transpositions of digits differing by 5),
and the check digit is a single digit 0-9 (no "X" as in ISBN-10)."""


def damm_check_digit(digits: str) -> int:
    """The Damm interim digit of ``digits`` (ASCII 0-9): the check digit to append.

    A code whose full string gives 0 is valid.
    """
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return interim


def make_member_code(number: int) -> str:
    """The 13-digit member code for the back office's member number ``number``.

    ``0 <= number < 10**12``; zero-padded to 12 digits, then the Damm check digit.
    Raises ``ValueError`` outside that range (a programming error).
    """
    if isinstance(number, bool) or not 0 <= number < _MEMBER_PAYLOAD_LIMIT:
        raise ValueError(f"member number must be in 0..{_MEMBER_PAYLOAD_LIMIT - 1}")
    payload = f"{number:0{MEMBER_CODE_LENGTH - 1}d}"
    return payload + str(damm_check_digit(payload))


def _compact_code(text: str) -> str:
    """Drop the whitespace and dashes people and printed cards put between digit groups."""
    return "".join(ch for ch in text if not ch.isspace() and ch not in _DASHES)


def check_member_code(text: str) -> str:
    """Validate a typed or scanned member code; return its canonical 13-digit form.

    Spaces and dashes are ignored ("1234 5678 9012-3"). Raises :class:`MemberCodeError`
    with ``details["reason"]``: ``"not_digits"``, ``"wrong_length"`` or
    ``"bad_check_digit"`` (a typo: one wrong digit or two swapped neighbours).
    """
    # Under the title «Неверный код участника» the messages say what is wrong, not again.
    code = _compact_code(text)
    if not code:
        raise MemberCodeError(
            "Member code is empty",
            "Введите код участника",
            reason="wrong_length",
            length=0,
            expected=MEMBER_CODE_LENGTH,
        )
    if not (code.isascii() and code.isdigit()):
        raise MemberCodeError(
            "digits only, please",
            f"{_shown(text)} — в коде только цифры",
            reason="not_digits",
            length=len(code),
        )
    if len(code) != MEMBER_CODE_LENGTH:
        raise MemberCodeError(
            f"{len(code)} digits, expected {MEMBER_CODE_LENGTH}",
            f"{_shown(text)} — нужно {MEMBER_CODE_LENGTH} цифр, введено {len(code)}",
            reason="wrong_length",
            length=len(code),
            expected=MEMBER_CODE_LENGTH,
        )
    if damm_check_digit(code) != 0:
        raise MemberCodeError(
            "the check digit does not match: a digit is mistyped or two are swapped",
            f"{code} — ошибка в цифре или переставлены соседние цифры, проверьте",
            reason="bad_check_digit",
            length=len(code),
        )
    return code


def looks_like_member_code(text: str) -> bool:
    """True if ``text`` is a valid member code (length, digits and check digit).

    The check digit is part of "looks like" on purpose: an EAN-13 product barcode is also
    13 digits, and nine in ten of them fail the Damm check, so a product scanned into the
    member field is told apart from a card.
    """
    try:
        check_member_code(text)
    except MemberCodeError:
        return False
    return True


# --------------------------------------------------------------------------------------
# One input field -> Identifier
# --------------------------------------------------------------------------------------

TOKEN_PREFIX_RE = re.compile(r"K[A-Z][0-9]:", re.IGNORECASE)
"""Shape of every signed Kassa token prefix: "K", a kind letter, a format version, ":".

``agent.tokens`` defines the concrete prefixes (``KM1:`` member, ``KC1:`` coupon) and
checks at import that they match this shape, so the router here needs no crypto import.
Case-insensitive because Caps Lock on the till keyboard flips the case of wedge scans."""

_AIM_RE = re.compile(r"\][A-Za-z][0-9A-Za-z]")
"""AIM symbology identifier a scanner may prepend: ``]Q1`` QR, ``]C0`` Code 128, ``]E0`` EAN."""

IdentifierKind = Literal["code", "token", "phone"]


@dataclass(frozen=True, slots=True)
class Identifier:
    """A recognised member identification from the cashier's input field.

    ``kind`` says what was given: a printed/typed member ``code``, an app ``token`` (signed,
    verified; ``member_code`` is the one inside it) or a ``phone`` (``phone_e164`` set,
    ``member_code`` unknown until the cache or back office is asked).

    What the source text was like: ``layout_repaired`` is True when the text arrived in
    Cyrillic from a wedge scanner and was mapped back; ``symbology`` is the AIM prefix
    (``"]Q1"``) a scanner sent, None for typed input; ``token_expires_at`` (aware UTC) is
    set for tokens so the UI can tell the member to refresh an about-to-expire QR.
    """

    kind: IdentifierKind
    member_code: str | None
    phone_e164: str | None
    layout_repaired: bool = False
    symbology: str | None = None
    token_expires_at: datetime | None = None


class VerifiedMemberToken(Protocol):
    """What :func:`parse_identifier` needs from a verified app token."""

    @property
    def member_code(self) -> str: ...

    @property
    def expires_at(self) -> datetime: ...


class MemberTokenVerifier(Protocol):
    """Checks a member app token offline; ``agent.tokens.TokenVerifier`` is the real one.

    A protocol rather than an import keeps the dependency one-way (``tokens`` uses the
    member-code check from here; this module needs no crypto).
    """

    def verify_member_token(self, text: str, now: datetime) -> VerifiedMemberToken: ...


def _is_phone_shaped(text: str) -> bool:
    return bool(_PHONE_ALLOWED_RE.fullmatch(text))


def parse_identifier(
    text: str,
    verifier: MemberTokenVerifier | None,
    now: datetime,
    region: str = "RU",
) -> Identifier:
    """Route one input (typed or scanned) to member code, app token or phone.

    Steps: repair a Russian-layout scan (only if the text has Cyrillic); strip surrounding
    whitespace and an AIM prefix (``]Q1``); then

    1. a member-token prefix (``KM1:``) -> the token is verified with ``verifier`` at
       ``now`` (aware UTC); ``TokenMalformed``/``TokenForged``/``TokenExpired`` propagate.
       Without a ``verifier`` a :class:`TokenError` with reason ``"no_verifier"`` is raised;
    2. exactly 13 digits (spaces and dashes ignored) -> member code, check digit verified
       (:class:`MemberCodeError`);
    3. for region RU, more than 11 bare digits not dialled as ``810...`` -> member code
       too (it cannot be a Russian phone), so the cashier hears "wrong length" rather than
       "phone not recognised";
    4. phone-shaped text (digits, separators, leading ``+``) -> :func:`normalize_phone`
       (:class:`PhoneError`);
    5. anything else -> :class:`InputError` with ``details["input_kind"] == "unknown"``.
    """
    if not text.strip():
        raise InputError(
            "Nothing to identify: the input is empty",
            "Отсканируйте QR-код или карту участника либо введите телефон",
            reason="empty",
            input_kind="empty",
        )
    repaired = repair_layout(text)
    layout_repaired = repaired != text
    body = repaired.strip()
    symbology = None
    aim = _AIM_RE.match(body)
    if aim:
        symbology = aim.group(0)
        body = body[aim.end() :].strip()

    if TOKEN_PREFIX_RE.match(body):
        if verifier is None:
            raise TokenError(
                "Cannot check app QR codes: no back-office public key is configured",
                "Касса не может проверить QR-код приложения: не настроен ключ. "
                "Введите телефон участника",
                reason="no_verifier",
                input_kind="token",
            )
        token = verifier.verify_member_token(body, now)
        return Identifier(
            kind="token",
            member_code=token.member_code,
            phone_e164=None,
            layout_repaired=layout_repaired,
            symbology=symbology,
            token_expires_at=token.expires_at,
        )

    compact = _compact_code(body)
    bare_digits = compact.isascii() and compact.isdigit()
    if bare_digits and (
        len(compact) == MEMBER_CODE_LENGTH
        or (region == "RU" and len(compact) > 11 and not compact.startswith("810"))
    ):
        return Identifier(
            kind="code",
            member_code=check_member_code(compact),
            phone_e164=None,
            layout_repaired=layout_repaired,
            symbology=symbology,
        )

    if _is_phone_shaped(body):
        return Identifier(
            kind="phone",
            member_code=None,
            phone_e164=normalize_phone(body, region),
            layout_repaired=layout_repaired,
            symbology=symbology,
        )

    raise InputError(
        "Input is neither a member QR code, a member code nor a phone number",
        f"Не удалось распознать: {_shown(body)}. Нужен QR-код приложения, "
        "карта участника или номер телефона",
        reason="unrecognised",
        input_kind="unknown",
        layout_repaired=layout_repaired,
        length=len(body),
    )

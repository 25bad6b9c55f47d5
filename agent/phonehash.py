"""A phone fingerprint that a stolen till cannot cheaply turn back into the number.

Why this module exists (docs/threat-model.md, "A stolen till: phone numbers"): a till
store holds the programme's phone hash key, every member's fingerprint and a masked
phone. With :func:`agent.identify.phone_hash` (HMAC-SHA256, about 1.5 us) and a mask that
shows the last four digits, the number is one of about 10^5 candidates: seconds of work.
Whatever the till computes offline from a typed phone, a thief with the till's disk can
compute too, so the defence is arithmetic: (candidates consistent with what the store
reveals) x (CPU cost of one fingerprint) >= 10^6 CPU-seconds, while one fingerprint at the
till stays well under the 100 ms a phone lookup may take.

- :func:`hard_phone_hash` (fingerprint v2, the one every side computes): scrypt
  (memory-hard: 8 MiB per guess at :data:`TILL_COST`, so a GPU or ASIC gains little over a
  CPU core) of the v1 fingerprint (:func:`agent.identify.phone_hash`, the keyed HMAC) with
  the programme key as the salt, 16 bytes as 32 hex digits: the same shape as the v1
  ``phone_hash`` column, so the columns, the sync payload check (32 hex digits) and the
  indexes stay as they are. Layered over v1 so that a stored v1 fingerprint is upgraded
  without the phone (:func:`upgrade_fingerprint`): the back office upgrades its members
  and an older till's registrations that way.
- :func:`lookup_fingerprints`: what a lookup by phone matches, v2 then v1, while rows made
  before the switch (v1) remain.
- :func:`store_mask`: what a store keeps to show a member found by card or QR: the
  country code only, no digit of the number. Each digit shown divides the candidates by
  ten; with 2 digits shown the bound fails by a factor of 20 (see :func:`attack_bound`).
  A member found by phone is shown the typed number's :func:`agent.identify.mask_phone`,
  which the till knows without storing it.
- :func:`candidates` and :func:`attack_bound`: the attacker's arithmetic, from the
  parameters (not from a timing), used by the attack test and the bench.

No I/O, no clock reads.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import phonenumbers

from agent.identify import phone_hash

__all__ = [
    "ATTACK_GOAL_CPU_S",
    "SALSA_CORE_FLOOR_NS",
    "TILL_COST",
    "AttackBound",
    "ScryptCost",
    "attack_bound",
    "candidates",
    "cost_from_dict",
    "cost_to_dict",
    "hard_phone_hash",
    "lookup_fingerprints",
    "store_mask",
    "strip_mask",
    "upgrade_fingerprint",
    "upgrader",
]

ATTACK_GOAL_CPU_S = 10**6
"""CPU-seconds that recovering one member's phone from a stolen till store must cost."""

SALSA_CORE_FLOOR_NS = 20.0
"""Lower bound, in nanoseconds, of one Salsa20/8 core (64 bytes) on one CPU core.

Why 20: Salsa20/8 is 8 rounds of 16 add-rotate-xor quarter steps, about 2.5 cycles per
byte with SIMD on current x86 (eBACS figures for Salsa20/8), i.e. ~160 cycles, 32 ns at
5 GHz; 20 ns leaves a 1.6x margin for a faster core. OpenSSL's scrypt measures 3-10x
slower than this floor (memory latency on the random reads of ROMix), so the bound derived
from it is pessimistic for the defender, as a bound should be."""


@dataclass(frozen=True, slots=True)
class ScryptCost:
    """scrypt parameters: ``n`` (CPU/memory cost, a power of 2), ``r`` (block size in
    128-byte units), ``p`` (parallel lanes)."""

    n: int
    r: int
    p: int

    def __post_init__(self) -> None:
        if self.n < 2 or self.n & (self.n - 1):
            raise ValueError(f"scrypt n must be a power of 2 >= 2, got {self.n}")
        if self.r < 1 or self.p < 1:
            raise ValueError(f"scrypt r and p must be >= 1, got r={self.r} p={self.p}")

    @property
    def memory_bytes(self) -> int:
        """Bytes of the ROMix table one guess must hold (128 * n * r)."""
        return 128 * self.n * self.r

    @property
    def salsa_cores(self) -> int:
        """Salsa20/8 core invocations per fingerprint: ROMix runs 2n BlockMix, each 2r
        cores, in each of the p lanes (the two PBKDF2-SHA256 rounds are negligible)."""
        return 4 * self.n * self.r * self.p

    @property
    def floor_s(self) -> float:
        """Lower bound of one fingerprint's CPU time, seconds (:data:`SALSA_CORE_FLOOR_NS`)."""
        return self.salsa_cores * SALSA_CORE_FLOOR_NS * 1e-9


TILL_COST = ScryptCost(n=2**13, r=8, p=1)
"""Tuned for the till: 8 MiB, 262,144 Salsa20/8 cores, >= 5.2 ms on any core (the floor);
measured ~25-50 ms on this project's 2-core machine (bench/phonehash.py), so a lookup by
phone stays under 100 ms. n=2^14 doubles both and would leave too little of the 100 ms
on a slow till PC."""

_DOMAIN = b"kassa phone v2\x00"


def hard_phone_hash(e164: str, key: bytes, cost: ScryptCost = TILL_COST) -> str:
    """Memory-hard keyed fingerprint (v2) of an E.164 phone: 32 hex digits (128 bits).

    ``key`` is the programme's phone hash key (>= 16 bytes), used as the v1 HMAC's key and
    as scrypt's salt behind a domain prefix, so a fingerprint says nothing without it and
    differs from the v1 fingerprint for the same key. ``cost``: the programme's
    (``Programme.phone_hash``; :data:`TILL_COST` unless a demo programme says less).
    Raises ``ValueError`` for a short key or a non-E.164 ``e164`` (a programming error:
    callers normalise first).
    """
    _parse(e164)
    return upgrade_fingerprint(phone_hash(e164, key), key, cost)


def upgrade_fingerprint(v1: str, key: bytes, cost: ScryptCost = TILL_COST) -> str:
    """The v2 fingerprint of the phone whose v1 fingerprint (HMAC, 32 hex digits) is
    ``v1``: what :func:`hard_phone_hash` of that phone gives, computed without the phone.
    Raises ``ValueError`` for a short key or a ``v1`` that is not 32 hex digits."""
    if len(v1) != 32 or any(c not in "0123456789abcdef" for c in v1):
        raise ValueError("a v1 phone fingerprint is 32 lowercase hex digits")
    return upgrader(key, cost)(bytes.fromhex(v1))


def upgrader(key: bytes, cost: ScryptCost = TILL_COST) -> Callable[[bytes], str]:
    """The v1 -> v2 step for one key and cost, taking the v1 fingerprint's 16 raw bytes:
    the definition :func:`upgrade_fingerprint` uses, bound once for a bulk load
    (``agent.seed``) that makes a row in a few microseconds at a demo cost."""
    if len(key) < 16:
        raise ValueError("phone hash key must be at least 16 bytes")
    scrypt = functools.partial(
        hashlib.scrypt,
        salt=_DOMAIN + key,
        n=cost.n,
        r=cost.r,
        p=cost.p,
        maxmem=2 * cost.memory_bytes * cost.p + (1 << 20),
        dklen=16,
    )

    def step(v1: bytes) -> str:
        return scrypt(v1).hex()

    return step


def lookup_fingerprints(e164: str, key: bytes, cost: ScryptCost = TILL_COST) -> tuple[str, str]:
    """``(v2, v1)``: the fingerprints a lookup by phone matches, in that order. A row made
    before the switch holds v1 until it is upgraded (the back office's upgrade pass, a
    till's next snapshot or feed record of the member); v1 costs ~2 us beside v2's scrypt."""
    v1 = phone_hash(e164, key)
    return upgrade_fingerprint(v1, key, cost), v1


def strip_mask(mask: str | None) -> str | None:
    """A stored mask with its shown digits hidden: ``"+7 *** ***-45-67"`` ->
    ``"+7 *** ***-**-**"`` (the country code kept): what :func:`store_mask` gives for the
    same phone when the mask came from :func:`agent.identify.mask_phone`, computed without
    the phone, to re-mask rows made before the switch. None stays None."""
    if mask is None or " " not in mask:
        return mask
    cc, rest = mask.split(" ", 1)
    return f"{cc} " + "".join("*" if ch.isdigit() else ch for ch in rest)


def cost_to_dict(cost: ScryptCost) -> dict[str, int]:
    """The programme document's ``[phone_hash]`` table (``agent.rules``)."""
    return {"n": cost.n, "r": cost.r, "p": cost.p}


def cost_from_dict(data: Any) -> ScryptCost:
    """The inverse of :func:`cost_to_dict`; ``ValueError`` names what is wrong (the
    programme parser turns it into its ``RulesError``)."""
    if not isinstance(data, dict) or set(data) != {"n", "r", "p"}:
        raise ValueError("phone_hash must be a table of exactly n, r and p")
    values = [data[k] for k in ("n", "r", "p")]
    if any(type(v) is not int for v in values):
        raise ValueError("phone_hash n, r and p must be integers")
    n, r, p = values
    if not (2 <= n <= 2**20 and 1 <= r <= 32 and 1 <= p <= 16):
        raise ValueError("phone_hash: n 2..2^20 (a power of 2), r 1..32, p 1..16")
    return ScryptCost(n=n, r=r, p=p)


def store_mask(e164: str) -> str:
    """The masked phone a store keeps: ``"+79161234567"`` -> ``"+7 *** ***-**-**"``.

    The country code and the shape of the number, no digit of it (each shown digit cuts
    the attacker's work tenfold). Raises ``ValueError`` for a non-E.164 ``e164``.
    """
    number = _parse(e164)
    cc = str(number.country_code)
    stars = len(e164) - 1 - len(cc)
    keep_tail = min(4, stars)
    head = stars - keep_tail
    groups: list[str] = []
    while head > 0:
        groups.insert(0, "*" * min(3, head))
        head -= 3
    tail = "**-**" if keep_tail == 4 else "*" * keep_tail
    return f"+{cc} {' '.join(groups)}-{tail}" if groups else f"+{cc} {tail}"


def candidates(mask: str) -> int:
    """How many mobile numbers are consistent with ``mask`` (as stored on a till): what
    an attacker must try, at most, for one member.

    Reads the country code and the shown trailing digits (``*`` hides a digit, ``-`` and
    spaces separate). Counted over the country's mobile numbering plan at the mask's
    length: each 3-digit leading block that holds valid mobile numbers counts
    10^(hidden digits - 3). Mobile only because members register with mobiles: a
    smaller space is the attacker's best case. Raises ``ValueError`` for a mask of
    another shape or a country without mobile numbers of that length.
    """
    if not mask.startswith("+") or " " not in mask:
        raise ValueError(f"not a masked phone: {mask!r}")
    cc_text, rest = mask[1:].split(" ", 1)
    body = rest.replace(" ", "").replace("-", "")
    if not cc_text.isdigit() or not body or any(ch not in "*0123456789" for ch in body):
        raise ValueError(f"not a masked phone: {mask!r}")
    hidden = len(body) - len(body.lstrip("*"))
    if "*" in body[hidden:]:
        raise ValueError(f"only trailing digits may be shown: {mask!r}")
    if hidden < 3:
        raise ValueError(f"fewer than 3 hidden digits: {mask!r}")
    blocks = _mobile_blocks(int(cc_text), len(body))
    if not blocks:
        raise ValueError(f"no mobile numbers of {len(body)} digits for +{cc_text}")
    return int(blocks * 10 ** (hidden - 3))


@lru_cache(maxsize=64)
def _mobile_blocks(country_code: int, nsn_length: int) -> int:
    """3-digit leading blocks (000-999) of national numbers of ``nsn_length`` digits that
    hold valid mobile numbers: each block is probed with three fillers of the rest."""
    count = 0
    rest = nsn_length - 3
    fillers = ("0" * rest, "5" * rest, "1234567890"[:rest]) if rest > 0 else ("",)
    for block in range(1000):
        for filler in fillers:
            try:
                number = phonenumbers.parse(f"+{country_code}{block:03d}{filler}", None)
            except phonenumbers.NumberParseException:
                continue
            kind = phonenumbers.number_type(number)
            if phonenumbers.is_valid_number(number) and kind in (
                phonenumbers.PhoneNumberType.MOBILE,
                phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
            ):
                count += 1
                break
    return count


@dataclass(frozen=True, slots=True)
class AttackBound:
    """The attacker's cost for one member, from the parameters: ``candidates`` numbers
    consistent with the store, at least ``floor_s`` CPU-seconds each; ``total_cpu_s``
    to try them all, ``expected_cpu_s`` (half) on average."""

    candidates: int
    floor_s: float

    @property
    def total_cpu_s(self) -> float:
        return self.candidates * self.floor_s

    @property
    def expected_cpu_s(self) -> float:
        return self.total_cpu_s / 2


def attack_bound(mask: str, cost: ScryptCost = TILL_COST) -> AttackBound:
    """The lower bound of recovering the phone behind ``mask`` from a till store."""
    return AttackBound(candidates(mask), cost.floor_s)


def _parse(e164: str) -> phonenumbers.PhoneNumber:
    if not (e164.startswith("+") and e164[1:].isascii() and e164[1:].isdigit()):
        raise ValueError("expected an E.164 phone number such as +79161234567")
    try:
        return phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException as e:
        raise ValueError(f"not an E.164 phone number: {e}") from e

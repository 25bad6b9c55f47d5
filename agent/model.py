"""Plain immutable data shared by the till, the drivers and the back office.

Units everywhere: amounts in integer kopecks (``*_kop``), points as integers, times as
timezone-aware UTC datetimes, calendar dates in the programme's time zone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime
from typing import Any, Literal

from agent.money import Kopecks, Points

LotSource = Literal[
    "purchase", "welcome", "birthday", "coupon", "collection", "returned", "server", "adjustment"
]


@dataclass(frozen=True, slots=True)
class CartLine:
    """One receipt line as the POS sends it.

    ``amount_kop`` is what the line costs before loyalty (price x qty minus the POS's own
    discounts); ``sale`` marks marked-down goods.
    """

    line_no: int
    sku: str
    name: str
    category: str
    price_kop: Kopecks
    qty: int
    amount_kop: Kopecks
    sale: bool = False
    collection: str | None = None


@dataclass(frozen=True, slots=True)
class Cart:
    """A cheque in progress, keyed by the POS receipt id (idempotency key of the commit)."""

    receipt_id: str
    lines: tuple[CartLine, ...]

    @property
    def total_kop(self) -> Kopecks:
        return sum(line.amount_kop for line in self.lines)


@dataclass(frozen=True, slots=True)
class PointLot:
    """Points earned together: spendable from ``available_from``, gone at ``expires_at``."""

    lot_id: str
    points: Points
    earned_at: datetime
    available_from: datetime
    expires_at: datetime
    source: LotSource

    def is_available(self, now: datetime) -> bool:
        return self.available_from <= now < self.expires_at

    def is_pending(self, now: datetime) -> bool:
        return now < self.available_from and now < self.expires_at


@dataclass(frozen=True, slots=True)
class MemberState:
    """Everything the rules engine needs to know about a member, nothing more.

    ``spend`` is paid amounts by local calendar day (ISO date, kopecks) within the tier
    window; ``debt`` is points owed after a refund clawed back points already spent (a
    negative balance, kept visible and repaid from later accruals); ``collections`` maps a
    collection mechanic id to the units collected toward its next reward.
    """

    member_id: str
    lots: tuple[PointLot, ...] = ()
    spend: tuple[tuple[str, Kopecks], ...] = ()
    debt: Points = 0
    birthday: date | None = None
    birthday_bonus_year: int | None = None
    collections: tuple[tuple[str, int], ...] = ()

    def available_points(self, now: datetime) -> Points:
        """Spendable now, before debt."""
        return sum(lot.points for lot in self.lots if lot.is_available(now))

    def pending_points(self, now: datetime) -> Points:
        return sum(lot.points for lot in self.lots if lot.is_pending(now))

    def balance(self, now: datetime) -> Points:
        """Available + pending - debt; negative when a refund left the member owing."""
        return self.available_points(now) + self.pending_points(now) - self.debt

    def spendable(self, now: datetime) -> Points:
        return max(0, self.available_points(now) - self.debt)

    def collection_progress(self, mechanic_id: str) -> int:
        return dict(self.collections).get(mechanic_id, 0)


@dataclass(frozen=True, slots=True)
class QuoteLine:
    """The loyalty outcome of one receipt line (what the fiscal receipt needs per line)."""

    line_no: int
    amount_kop: Kopecks
    coupon_discount_kop: Kopecks
    points_discount_kop: Kopecks
    redeemed_points: Points
    earn_points: Points
    earn_rate_bp: int
    qty: int

    @property
    def discount_kop(self) -> Kopecks:
        return self.coupon_discount_kop + self.points_discount_kop

    @property
    def payable_kop(self) -> Kopecks:
        return self.amount_kop - self.discount_kop


@dataclass(frozen=True, slots=True)
class Bonus:
    """Points granted by the cheque besides line accrual (birthday, coupon, collection)."""

    kind: LotSource
    points: Points
    ref: str
    note_ru: str
    note_en: str


@dataclass(frozen=True, slots=True)
class TierInfo:
    code: str
    name_ru: str
    name_en: str


@dataclass(frozen=True, slots=True)
class CollectionProgress:
    mechanic_id: str
    name_ru: str
    collected: int
    target: int
    rewards: int = 0


@dataclass(frozen=True, slots=True)
class Quote:
    """The full loyalty answer for a cheque: what the till shows, commits and prints."""

    receipt_id: str
    member_id: str
    lines: tuple[QuoteLine, ...]
    total_kop: Kopecks
    balance_before: Points
    available_before: Points
    pending_before: Points
    max_redeem_points: Points
    redeem_points: Points
    point_value_kop: Kopecks
    earn_points: Points
    bonuses: tuple[Bonus, ...]
    earn_available_from: datetime
    tier_before: TierInfo
    tier_after: TierInfo
    spend_before_kop: Kopecks
    spend_after_kop: Kopecks
    next_tier: TierInfo | None
    to_next_tier_kop: Kopecks | None
    expiring_points: Points
    expiring_on: date | None
    collections: tuple[CollectionProgress, ...]
    campaigns: tuple[str, ...]
    coupon_id: str | None
    rules_version: int
    redeem_limited_by: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def coupon_discount_kop(self) -> Kopecks:
        return sum(line.coupon_discount_kop for line in self.lines)

    @property
    def points_discount_kop(self) -> Kopecks:
        return sum(line.points_discount_kop for line in self.lines)

    @property
    def discount_kop(self) -> Kopecks:
        return self.coupon_discount_kop + self.points_discount_kop

    @property
    def payable_kop(self) -> Kopecks:
        return self.total_kop - self.discount_kop

    @property
    def bonus_points(self) -> Points:
        return sum(b.points for b in self.bonuses)

    @property
    def total_earned(self) -> Points:
        return self.earn_points + self.bonus_points

    @property
    def balance_after(self) -> Points:
        return self.balance_before - self.redeem_points + self.total_earned


def replacer(cls: type, *names: str) -> Callable[..., Any]:
    """A fast ``dataclasses.replace`` for the fields ``names`` of ``cls``:
    ``replacer(Quote, "a", "b")(q, a, b) == replace(q, a=a, b=b)``.

    ``replace`` looks the fields up and builds keyword arguments on every call (about
    10 us for the 27 fields of a ``Quote``, on a sale's commit path); this compiles the
    constructor call once, every other field copied from the original. Falls back to
    ``replace`` for a class with fields outside ``__init__``.
    """
    all_fields = fields(cls)
    unknown = set(names) - {f.name for f in all_fields}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    params = ", ".join(f"v{i}" for i in range(len(names)))
    if not all(f.init for f in all_fields):
        return lambda obj, *values: replace(obj, **dict(zip(names, values, strict=True)))
    args = ", ".join(
        f"v{names.index(f.name)}" if f.name in names else f"o.{f.name}" for f in all_fields
    )
    scope: dict[str, Any] = {"cls": cls}
    exec(f"def replaced(o, {params}):\n    return cls({args})", scope)  # noqa: S102
    fn: Callable[..., Any] = scope["replaced"]
    fn.__qualname__ = f"replace_{cls.__name__}_{'_'.join(names)}"
    return fn

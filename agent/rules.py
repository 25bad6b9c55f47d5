"""The loyalty programme's rules: versioned, loaded from JSON or TOML, validated strictly.

The programme is edited at the centre and distributed to tills; a till keeps every
version it has seen (see ``agent.store``) and quotes with the active one. A bad file is
refused whole with the key path and the reason (``RulesError``): a till never runs on
half a programme.

Units: amounts in kopecks (``*_kop``), rates in basis points (``*_bp``, 100 bp = 1 %),
multipliers in percent (200 = x2), durations in days or hours as named.
"""

from __future__ import annotations

import itertools
import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.errors import RulesError
from agent.money import Kopecks, Points
from agent.phonehash import TILL_COST, ScryptCost, cost_from_dict, cost_to_dict


@dataclass(frozen=True, slots=True)
class Tier:
    """A tier reached when the rolling spend is at least ``threshold_kop``."""

    code: str
    name_ru: str
    name_en: str
    threshold_kop: Kopecks
    accrual_bp: int


@dataclass(frozen=True, slots=True)
class Campaign:
    """Extra accrual on matching lines between ``starts`` and ``ends`` (local dates, inclusive).

    A line matches when its category, collection or SKU is listed. ``multiplier_pct`` scales
    the tier rate (200 = double points); ``extra_bp`` adds on top. Of several matching
    campaigns the largest multiplier applies and all extras add up.
    """

    id: str
    name_ru: str
    starts: date
    ends: date
    categories: frozenset[str]
    collections: frozenset[str]
    skus: frozenset[str]
    multiplier_pct: int
    extra_bp: int


@dataclass(frozen=True, slots=True)
class CollectionMechanic:
    """ "Собери коллекцию": every ``target`` units bought from ``collection`` earn a reward."""

    id: str
    name_ru: str
    collection: str
    target: int
    reward_points: Points


@dataclass(frozen=True, slots=True)
class OfflinePolicy:
    """Bounds on spending points while the back office cannot confirm the balance.

    Accrual always works offline. Spending is allowed only if the member's cached data is
    at most ``max_cache_age_hours`` old, the cheque spends at most ``per_transaction_points``,
    the member has spent at most ``per_member_points`` offline since the till last heard
    from the back office, the till stays within ``terminal_budget_points`` since last
    contact, and this is at most the ``consecutive_limit``-th offline cheque in a row.
    ``online_grace_seconds`` is how long after the last contact the till counts as online.
    """

    max_cache_age_hours: int
    per_transaction_points: Points
    per_member_points: Points
    terminal_budget_points: Points
    consecutive_limit: int
    online_grace_seconds: int


EVENT_EXPIRING_DAYS = 14
"""``[events] expiring_days``'s default: ``points.expiring`` looks this many days ahead."""
EVENT_BIRTHDAY_DAYS = 7
"""``[events] birthday_days``'s default: ``birthday.soon`` this many days before."""
EVENT_LAPSED_DAYS = 90
"""``[events] lapsed_days``'s default: ``member.lapsed`` after this many days without a
purchase."""


_RESCORE_POINTS: Points = 100  # the defaults of ``[rescore]``
_RESCORE_BP = 0


@dataclass(frozen=True, slots=True)
class Programme:
    """One version of a loyalty programme."""

    version: int
    name: str
    timezone: str
    point_value_kop: Kopecks
    tiers: tuple[Tier, ...]
    tier_window_days: int
    accrue_on_sale_items: bool
    redeem_on_sale_items: bool
    categories: frozenset[str]
    excluded_categories: frozenset[str]
    redeem_cap_bp: int
    min_payable_line_kop: Kopecks
    pending_days: int
    expiry_days: int
    expiry_warning_days: int
    welcome_points: Points
    welcome_expiry_days: int
    welcome_spend_before_sync: bool
    """``[welcome] spend_before_sync``: a member who joined at a till while it is offline
    may spend the welcome bonus there before the back office has seen the registration,
    within the offline caps (``OfflinePolicy``); false (the default): the bonus waits for
    the back office. Only the welcome bonus: nothing else such a member holds is spent."""
    birthday_points: Points
    birthday_days_before: int
    birthday_days_after: int
    birthday_expiry_days: int
    campaigns: tuple[Campaign, ...]
    collections: tuple[CollectionMechanic, ...]
    offline: OfflinePolicy
    consent_text_version: str
    phone_hash: ScryptCost = TILL_COST
    """``[phone_hash] n, r, p``: the scrypt cost of the members' phone fingerprint
    (``agent.phonehash.hard_phone_hash``), the same on every till and the back office. The
    default is the strong production cost; only a demo or test programme says less (the
    demo loads thousands of members at ~20 ms a hash otherwise). The back office refuses a
    new version that changes it: every stored fingerprint would stop matching."""
    events_expiring_days: int = EVENT_EXPIRING_DAYS
    """``[events] expiring_days``: the back office's ``points.expiring`` event names the
    points that burn within this many local days (the till slip's horizon is
    ``expiry_warning_days``, a separate setting)."""
    events_birthday_days: int = EVENT_BIRTHDAY_DAYS
    """``[events] birthday_days``: ``birthday.soon`` when the birthday falls within this
    many days, today included (the bonus's window is ``[birthday] days_before``)."""
    events_lapsed_days: int = EVENT_LAPSED_DAYS
    """``[events] lapsed_days``: ``member.lapsed`` once this many days have passed since
    the member's last purchase."""
    rescore_tolerance_points: Points = _RESCORE_POINTS
    """``[rescore] tolerance_points``: how many points a till's cheque may claim beyond the
    back office's re-score of it (earned plus bonuses, or spent beyond the cheque's cap)
    and still be applied as printed. An offline till scores with the member as it last
    heard of them (a tier or a birthday bonus another store already changed), so honest
    cheques can differ a little; a claim beyond the tolerance is held for review, not
    applied."""
    rescore_tolerance_bp: int = _RESCORE_BP
    """``[rescore] tolerance_bp``: more tolerance in proportion to the cheque, basis points
    of its amount to pay in points (100 bp = 1 %: with 1 point = 1 rouble, a cheque of
    5 000 roubles to pay tolerates 50 points more), added to ``rescore_tolerance_points``
    (a stale tier differs by its rate times the cheque)."""

    def rescore_tolerance(self, paid_kop: Kopecks) -> Points:
        """The points a cheque paying ``paid_kop`` may claim beyond the re-score."""
        return (
            self.rescore_tolerance_points
            + paid_kop * self.rescore_tolerance_bp // 10_000 // self.point_value_kop
        )

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def tier_for_spend(self, spend_kop: Kopecks) -> Tier:
        """The highest tier whose threshold the rolling spend reaches."""
        reached = self.tiers[0]
        for tier in self.tiers:
            if spend_kop >= tier.threshold_kop:
                reached = tier
        return reached

    def next_tier(self, tier: Tier) -> Tier | None:
        index = self.tiers.index(tier)
        return self.tiers[index + 1] if index + 1 < len(self.tiers) else None


class _Reader:
    """Reads one mapping of a rules document, naming the key path in every error."""

    def __init__(self, data: Any, path: str, source: str) -> None:
        if not isinstance(data, Mapping):
            raise self._error(path or "(top level)", "must be a table/object", source)
        self.data = data
        self.path = path
        self.source = source
        self.seen: set[str] = set()

    @staticmethod
    def _error(path: str, problem: str, source: str) -> RulesError:
        return RulesError(
            f"rules {source}: {path}: {problem}",
            f"Правила программы ({source}): поле {path}: {_RU_PROBLEMS.get(problem, problem)}",
            key=path,
            problem=problem,
            source=source,
        )

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, problem: str) -> RulesError:
        return self._error(self.key(name), problem, self.source)

    def raw(self, name: str, default: Any = ...) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if default is ...:
                raise self.fail(name, "is required")
            return default
        return self.data[name]

    def integer(self, name: str, lo: int, hi: int, default: Any = ...) -> int:
        value = self.raw(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, "must be a whole number")
        if not lo <= value <= hi:
            raise self.fail(name, f"must be between {lo} and {hi}")
        return value

    def flag(self, name: str, default: Any = ...) -> bool:
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.fail(name, "must be true or false")
        return value

    def text(self, name: str, default: Any = ..., *, max_len: int = 200) -> str:
        value = self.raw(name, default)
        if not isinstance(value, str) or not value.strip() or len(value) > max_len:
            raise self.fail(name, "must be a non-empty text")
        return value

    def strs(self, name: str) -> frozenset[str]:
        value = self.raw(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(name, "must be a list of texts")
        return frozenset(value)

    def day(self, name: str) -> date:
        value = self.raw(name)
        if isinstance(value, date):
            return value
        try:
            return date.fromisoformat(str(value))
        except ValueError:
            raise self.fail(name, "must be a date YYYY-MM-DD") from None

    def table(self, name: str, default: Any = ...) -> _Reader:
        return _Reader(self.raw(name, default), self.key(name), self.source)

    def tables(self, name: str) -> list[_Reader]:
        value = self.raw(name, [])
        if not isinstance(value, list):
            raise self.fail(name, "must be a list")
        return [
            _Reader(item, f"{self.key(name)}[{i}]", self.source) for i, item in enumerate(value)
        ]

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise self.fail(unknown[0], "is not a known key")


_RU_PROBLEMS = {
    "is required": "обязательно",
    "must be a whole number": "должно быть целым числом",
    "must be true or false": "должно быть true или false",
    "must be a non-empty text": "должно быть непустой строкой",
    "must be a list of texts": "должно быть списком строк",
    "must be a date YYYY-MM-DD": "должно быть датой ГГГГ-ММ-ДД",
    "must be a table/object": "должно быть таблицей",
    "must be a list": "должно быть списком",
    "is not a known key": "неизвестный ключ",
}

_MAX_KOP = 100_000_000_00
_MAX_POINTS = 10_000_000


def _tier(r: _Reader) -> Tier:
    tier = Tier(
        code=r.text("code", max_len=32),
        name_ru=r.text("name_ru"),
        name_en=r.text("name_en"),
        threshold_kop=r.integer("threshold_kop", 0, _MAX_KOP),
        accrual_bp=r.integer("accrual_bp", 0, 10_000),
    )
    r.done()
    return tier


def _campaign(r: _Reader) -> Campaign:
    campaign = Campaign(
        id=r.text("id", max_len=64),
        name_ru=r.text("name_ru"),
        starts=r.day("starts"),
        ends=r.day("ends"),
        categories=r.strs("categories"),
        collections=r.strs("collections"),
        skus=r.strs("skus"),
        multiplier_pct=r.integer("multiplier_pct", 100, 1000, 100),
        extra_bp=r.integer("extra_bp", 0, 10_000, 0),
    )
    if campaign.ends < campaign.starts:
        raise r.fail("ends", "must not be before starts")
    if not (campaign.categories or campaign.collections or campaign.skus):
        raise r.fail("categories", "a campaign must target categories, collections or skus")
    if campaign.multiplier_pct == 100 and campaign.extra_bp == 0:
        raise r.fail("multiplier_pct", "a campaign must set multiplier_pct > 100 or extra_bp")
    r.done()
    return campaign


def _collection(r: _Reader) -> CollectionMechanic:
    mechanic = CollectionMechanic(
        id=r.text("id", max_len=64),
        name_ru=r.text("name_ru"),
        collection=r.text("collection", max_len=64),
        target=r.integer("target", 2, 100),
        reward_points=r.integer("reward_points", 1, _MAX_POINTS),
    )
    r.done()
    return mechanic


def _offline(r: _Reader) -> OfflinePolicy:
    policy = OfflinePolicy(
        max_cache_age_hours=r.integer("max_cache_age_hours", 0, 24 * 90, 72),
        per_transaction_points=r.integer("per_transaction_points", 0, _MAX_POINTS, 1000),
        per_member_points=r.integer("per_member_points", 0, _MAX_POINTS, 2000),
        terminal_budget_points=r.integer("terminal_budget_points", 0, _MAX_POINTS, 20000),
        consecutive_limit=r.integer("consecutive_limit", 0, 100_000, 200),
        online_grace_seconds=r.integer("online_grace_seconds", 1, 86_400, 120),
    )
    r.done()
    return policy


def parse_programme(data: Any, source: str = "<data>") -> Programme:
    """Validate a decoded rules document (JSON/TOML) into a ``Programme``.

    Raises ``RulesError`` naming the first bad key; unknown keys are refused so a typo
    never silently falls back to a default.
    """
    r = _Reader(data, "", source)
    timezone = r.text("timezone", "Europe/Moscow")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise r.fail("timezone", "is not a known time zone") from None
    tiers = tuple(_tier(t) for t in r.tables("tiers"))
    if not tiers:
        raise r.fail("tiers", "at least one tier is required")
    if tiers[0].threshold_kop != 0:
        raise r.fail("tiers", "the first tier must have threshold_kop = 0")
    for a, b in itertools.pairwise(tiers):
        if b.threshold_kop <= a.threshold_kop:
            raise r.fail("tiers", f"thresholds must rise: {b.code} after {a.code}")
    if len({t.code for t in tiers}) != len(tiers):
        raise r.fail("tiers", "tier codes must be unique")
    welcome = r.table("welcome", {})
    birthday = r.table("birthday", {})
    rescore = r.table("rescore", {})
    events = r.table("events", {})
    categories = r.strs("categories")
    excluded = r.strs("excluded_categories")
    campaigns = tuple(_campaign(c) for c in r.tables("campaigns"))
    collections = tuple(_collection(c) for c in r.tables("collections"))
    if categories:
        unknown = sorted(excluded - categories) or sorted(
            cat for c in campaigns for cat in c.categories if cat not in categories
        )
        if unknown:
            raise r.fail("categories", f"category {unknown[0]!r} is used but not listed")
    for group, items in (("campaigns", campaigns), ("collections", collections)):
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            raise r.fail(group, "ids must be unique")
    programme = Programme(
        version=r.integer("version", 1, 2**31),
        name=r.text("name"),
        timezone=timezone,
        point_value_kop=r.integer("point_value_kop", 1, 10_000, 100),
        tiers=tiers,
        tier_window_days=r.integer("tier_window_days", 1, 3650, 365),
        accrue_on_sale_items=r.flag("accrue_on_sale_items", True),
        redeem_on_sale_items=r.flag("redeem_on_sale_items", True),
        categories=categories,
        excluded_categories=excluded,
        redeem_cap_bp=r.integer("redeem_cap_bp", 0, 10_000, 3000),
        min_payable_line_kop=r.integer("min_payable_line_kop", 0, _MAX_KOP, 100),
        pending_days=r.integer("pending_days", 0, 365, 14),
        expiry_days=r.integer("expiry_days", 1, 3650, 365),
        expiry_warning_days=r.integer("expiry_warning_days", 0, 365, 30),
        welcome_points=welcome.integer("points", 0, _MAX_POINTS, 0),
        welcome_expiry_days=welcome.integer("expiry_days", 1, 3650, 90),
        welcome_spend_before_sync=welcome.flag("spend_before_sync", False),
        birthday_points=birthday.integer("points", 0, _MAX_POINTS, 0),
        birthday_days_before=birthday.integer("days_before", 0, 60, 3),
        birthday_days_after=birthday.integer("days_after", 0, 60, 7),
        birthday_expiry_days=birthday.integer("expiry_days", 1, 365, 30),
        campaigns=campaigns,
        collections=collections,
        offline=_offline(r.table("offline", {})),
        consent_text_version=r.text("consent_text_version", "2026-01", max_len=64),
        phone_hash=_phone_cost(r),
        events_expiring_days=events.integer("expiring_days", 1, 365, EVENT_EXPIRING_DAYS),
        events_birthday_days=events.integer("birthday_days", 0, 60, EVENT_BIRTHDAY_DAYS),
        events_lapsed_days=events.integer("lapsed_days", 1, 3650, EVENT_LAPSED_DAYS),
        rescore_tolerance_points=rescore.integer(
            "tolerance_points", 0, _MAX_POINTS, _RESCORE_POINTS
        ),
        rescore_tolerance_bp=rescore.integer("tolerance_bp", 0, 10_000, _RESCORE_BP),
    )
    if programme.welcome_spend_before_sync and programme.welcome_points == 0:
        raise welcome.fail("spend_before_sync", "needs a welcome bonus (welcome.points > 0)")
    welcome.done()
    birthday.done()
    events.done()
    rescore.done()
    r.done()
    return programme


def load_programme_text(text: str, fmt: str, source: str = "<text>") -> Programme:
    """Parse rules from JSON or TOML text (``fmt`` "json" or "toml")."""
    try:
        data = json.loads(text) if fmt == "json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise RulesError(
            f"rules {source}: not valid {fmt.upper()}: {e}",
            f"Файл правил {source} повреждён: это не {fmt.upper()} ({e})",
            source=source,
            problem="syntax",
        ) from None
    return parse_programme(data, source)


def load_programme(path: Path) -> Programme:
    """Read a rules file; the format follows the suffix (.json or .toml)."""
    fmt = "toml" if path.suffix.lower() == ".toml" else "json"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RulesError(
            f"rules {path}: cannot read: {e}",
            f"Файл правил {path} не читается: {e}",
            source=str(path),
            problem="unreadable",
        ) from None
    return load_programme_text(text, fmt, str(path))


def programme_to_dict(p: Programme) -> dict[str, Any]:
    """The inverse of ``parse_programme``: a JSON-ready document (stored per version)."""
    return {
        "version": p.version,
        "name": p.name,
        "timezone": p.timezone,
        "point_value_kop": p.point_value_kop,
        "tiers": [
            {
                "code": t.code,
                "name_ru": t.name_ru,
                "name_en": t.name_en,
                "threshold_kop": t.threshold_kop,
                "accrual_bp": t.accrual_bp,
            }
            for t in p.tiers
        ],
        "tier_window_days": p.tier_window_days,
        "accrue_on_sale_items": p.accrue_on_sale_items,
        "redeem_on_sale_items": p.redeem_on_sale_items,
        "categories": sorted(p.categories),
        "excluded_categories": sorted(p.excluded_categories),
        "redeem_cap_bp": p.redeem_cap_bp,
        "min_payable_line_kop": p.min_payable_line_kop,
        "pending_days": p.pending_days,
        "expiry_days": p.expiry_days,
        "expiry_warning_days": p.expiry_warning_days,
        "welcome": {
            "points": p.welcome_points,
            "expiry_days": p.welcome_expiry_days,
            "spend_before_sync": p.welcome_spend_before_sync,
        },
        "birthday": {
            "points": p.birthday_points,
            "days_before": p.birthday_days_before,
            "days_after": p.birthday_days_after,
            "expiry_days": p.birthday_expiry_days,
        },
        "campaigns": [
            {
                "id": c.id,
                "name_ru": c.name_ru,
                "starts": c.starts.isoformat(),
                "ends": c.ends.isoformat(),
                "categories": sorted(c.categories),
                "collections": sorted(c.collections),
                "skus": sorted(c.skus),
                "multiplier_pct": c.multiplier_pct,
                "extra_bp": c.extra_bp,
            }
            for c in p.campaigns
        ],
        "collections": [
            {
                "id": m.id,
                "name_ru": m.name_ru,
                "collection": m.collection,
                "target": m.target,
                "reward_points": m.reward_points,
            }
            for m in p.collections
        ],
        "offline": {
            "max_cache_age_hours": p.offline.max_cache_age_hours,
            "per_transaction_points": p.offline.per_transaction_points,
            "per_member_points": p.offline.per_member_points,
            "terminal_budget_points": p.offline.terminal_budget_points,
            "consecutive_limit": p.offline.consecutive_limit,
            "online_grace_seconds": p.offline.online_grace_seconds,
        },
        "consent_text_version": p.consent_text_version,
        **_phone_cost_dict(p),
        **_events_dict(p),
    } | _rescore_dict(p)


def _rescore_dict(p: Programme) -> dict[str, Any]:
    """The ``[rescore]`` table, only when it is not the defaults (a document written
    before the table existed reads back the same, byte for byte)."""
    if (p.rescore_tolerance_points, p.rescore_tolerance_bp) == (_RESCORE_POINTS, _RESCORE_BP):
        return {}
    return {
        "rescore": {
            "tolerance_points": p.rescore_tolerance_points,
            "tolerance_bp": p.rescore_tolerance_bp,
        }
    }


def _events_dict(p: Programme) -> dict[str, Any]:
    """The ``[events]`` table, only when it is not the defaults (a document written
    before the table existed reads back the same, and a till of an earlier version, which
    refuses unknown keys, still reads such a programme)."""
    days = (p.events_expiring_days, p.events_birthday_days, p.events_lapsed_days)
    if days == (EVENT_EXPIRING_DAYS, EVENT_BIRTHDAY_DAYS, EVENT_LAPSED_DAYS):
        return {}
    return {
        "events": {
            "expiring_days": p.events_expiring_days,
            "birthday_days": p.events_birthday_days,
            "lapsed_days": p.events_lapsed_days,
        }
    }


def _phone_cost(r: _Reader) -> ScryptCost:
    value = r.raw("phone_hash", None)
    if value is None:
        return TILL_COST
    try:
        return cost_from_dict(dict(value) if isinstance(value, Mapping) else value)
    except ValueError as e:
        raise r.fail("phone_hash", str(e)) from None


def _phone_cost_dict(p: Programme) -> dict[str, Any]:
    """The ``[phone_hash]`` table, only when it is not the production default (a document
    written before the table existed reads back the same, and a till of the previous
    version, which refuses unknown keys, still reads a production programme)."""
    return {} if p.phone_hash == TILL_COST else {"phone_hash": cost_to_dict(p.phone_hash)}

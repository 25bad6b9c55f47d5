"""The pure rules engine: ``quote(cart, member, rules, now) -> Quote``.

No I/O and no clock: the same inputs always give the same quote, so the till and the
back office (which re-scores every event with this code) agree to the point.

Order of the calculation, per cheque:
1. validate the cart (``validate_cart``): bad amounts, unknown categories -> errors;
2. a coupon's discount (percent or fixed) spread over the lines that may take discounts;
3. the most points the member may spend: spendable balance, the cap (% of the eligible
   amount after the coupon) and the minimum payable per line, whichever is least;
4. the points actually spent, spread over the same lines by largest remainder;
5. accrual on what is left to pay, at the tier rate (tier as before the cheque; the
   upgrade is instant and applies from the next cheque), x campaign multiplier + extras;
6. bonuses: birthday (once a year, in a window), coupon points, collection rewards;
7. what the slip needs: tier progress, expiring points (after this cheque's spending).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from agent import limits
from agent.errors import CartError, CatalogError, CouponError, RedemptionError
from agent.model import (
    Bonus,
    Cart,
    CartLine,
    CollectionProgress,
    MemberState,
    PointLot,
    Quote,
    QuoteLine,
    TierInfo,
)
from agent.money import MAX_CHEQUE_KOP, Kopecks, Points, allocate, format_rub
from agent.requests import text_fault
from agent.rules import Campaign, Programme, Tier
from agent.tokens import Coupon

MAX_LINES = limits.MAX_LINES
MAX_QTY = 10_000


_LIMIT_TEXT = {
    "balance": ("not enough points", "недостаточно доступных бонусов"),
    "on_hold": (
        "part of the points is reserved for another cheque in progress",
        "часть бонусов зарезервирована для другого чека",
    ),
    "cap": (
        "points may pay at most {cap} of the cheque",
        "бонусами можно оплатить не более {cap} чека",
    ),
    "min_payable": (
        "each line must keep its minimum payable amount",
        "каждая позиция должна остаться не меньше минимальной суммы",
    ),
    "offline_stale_cache": (
        "offline and the member's data is too old to spend points",
        "нет связи, а данные участника устарели — списание невозможно",
    ),
    "offline_provisional": (
        "offline: a member who joined here spends after the back office confirms the registration",
        "нет связи: новый участник сможет списать бонусы, когда бэк-офис подтвердит регистрацию",
    ),
    "offline_welcome_only": (
        "offline: until the back office confirms the registration only the welcome bonus "
        "may be spent",
        "нет связи: до подтверждения регистрации бэк-офисом можно списать только "
        "приветственный бонус",
    ),
    "offline_per_transaction": (
        "offline limit per cheque reached",
        "нет связи: превышен лимит списания на один чек",
    ),
    "offline_per_member": (
        "offline limit for this member reached",
        "нет связи: превышен лимит списания для участника",
    ),
    "offline_terminal_budget": (
        "offline budget of this till used up",
        "нет связи: исчерпан лимит списаний кассы",
    ),
    "offline_consecutive": (
        "too many cheques in a row without connection",
        "нет связи слишком долго: списание временно недоступно",
    ),
}


def redeem_limit_text(key: str, rules: Programme) -> tuple[str, str]:
    """Why spending is limited, in English and in Russian for the cashier."""
    en, ru = _LIMIT_TEXT.get(key, (key, key))
    whole, frac = divmod(rules.redeem_cap_bp, 100)
    cap = f"{whole},{frac:02d}\u00a0%" if frac else f"{whole}\u00a0%"
    return en.format(cap=cap), ru.format(cap=cap)


def unconfirmed_spendable(member: MemberState, rules: Programme, now: datetime) -> Points:
    """The most a member whom the back office has not yet seen (registered at this till,
    ``provisional``) may spend while the till is offline, before the offline caps: the
    welcome bonus left in its lot when the programme allows it (``welcome.spend_before_sync``),
    else 0 (points).

    Why only the welcome bonus: it is the one grant the back office makes identically from
    the registration itself (``agent.ledger.registration_lots``), so the re-score at the
    centre finds the same points; a phone registered twice offline keeps one bonus at the
    centre and what the duplicate spent becomes the survivor's debt, bounded by the caps.
    """
    if not rules.welcome_spend_before_sync:
        return 0
    welcome = sum(
        lot.points for lot in member.lots if lot.source == "welcome" and lot.is_available(now)
    )
    return min(welcome, member.spendable(now))


UNCONFIRMED_SLIP_NOTES: dict[bool, tuple[str, ...]] = {
    False: ("Списать бонусы можно будет", "после подтверждения регистрации"),
    True: ("До подтверждения регистрации", "списывается только", "приветственный бонус"),
}
"""The sale slip's lines for a member the back office has not yet confirmed, printed at an
offline till, by ``welcome.spend_before_sync`` (at most 32 characters each: the narrowest
printer)."""


def tier_info(tier: Tier) -> TierInfo:
    return TierInfo(tier.code, tier.name_ru, tier.name_en)


def local_date(rules: Programme, moment: datetime) -> date:
    """The calendar date at the store (the programme's time zone)."""
    return moment.astimezone(rules.tz).date()


def rolling_spend(member: MemberState, rules: Programme, now: datetime) -> Kopecks:
    """Paid amounts over the last ``tier_window_days`` local days, today included."""
    first = (local_date(rules, now) - timedelta(days=rules.tier_window_days - 1)).isoformat()
    return sum(kop for day, kop in member.spend if day >= first)


def _bad(line: CartLine | None, en: str, ru: str, **details: object) -> CartError:
    where_en = f"line {line.line_no}: " if line else ""
    where_ru = f"строка {line.line_no}: " if line else ""
    if line:
        details["line_no"] = line.line_no
    return CartError(where_en + en, where_ru + ru, **details)


def validate_cart(cart: Cart, rules: Programme) -> None:
    """Refuse a cheque that cannot be right, naming the line and the field."""
    if not cart.receipt_id or len(cart.receipt_id) > 64 or not cart.receipt_id.isprintable():
        raise _bad(
            None,
            "receipt id must be 1-64 printable characters (no control or direction marks)",
            "номер чека — от 1 до 64 печатаемых символов (без управляющих символов и "
            "символов смены направления текста)",
            field="receipt_id",
        )
    if not cart.lines:
        raise _bad(None, "the cheque has no lines", "в чеке нет ни одной позиции", field="lines")
    if len(cart.lines) > MAX_LINES:
        raise _bad(
            None, f"more than {MAX_LINES} lines", f"больше {MAX_LINES} позиций", field="lines"
        )
    seen: set[int] = set()
    for line in cart.lines:
        if line.line_no in seen or line.line_no < 1:
            raise _bad(
                line,
                "line numbers must be unique and >= 1",
                "номера строк должны быть уникальны",
                field="line_no",
            )
        seen.add(line.line_no)
        if not line.sku or len(line.sku) > 64:
            raise _bad(line, "SKU must be 1-64 characters", "не указан артикул", field="sku")
        for field, text in (
            ("sku", line.sku),
            ("name", line.name),
            ("category", line.category),
            ("collection", line.collection or ""),
        ):
            fault = text_fault(text)
            if fault:
                raise _bad(line, f"{field} {fault[0]}", f"{field}: {fault[1]}", field=field)
        if not 1 <= line.qty <= MAX_QTY:
            raise _bad(
                line,
                f"quantity must be 1..{MAX_QTY}",
                f"количество должно быть от 1 до {MAX_QTY}",
                field="qty",
            )
        if not 0 <= line.price_kop <= MAX_CHEQUE_KOP:
            raise _bad(
                line,
                "price is negative or absurd",
                "цена отрицательная или слишком большая",
                field="price_kop",
            )
        if not 0 <= line.amount_kop <= line.price_kop * line.qty:
            raise _bad(
                line,
                "amount must be between 0 and price x quantity",
                "сумма строки должна быть от 0 до цены x количества",
                field="amount_kop",
            )
        limits.check_line(line.price_kop * line.qty, line.line_no)
        if not line.category:
            raise CatalogError(
                f"line {line.line_no}: no category",
                f"строка {line.line_no}: не указана категория товара",
                line_no=line.line_no,
                field="category",
            )
        if rules.categories and line.category not in rules.categories:
            raise CatalogError(
                f"line {line.line_no}: unknown category {line.category!r}",
                f"строка {line.line_no}: неизвестная категория «{line.category}»",
                line_no=line.line_no,
                field="category",
                category=line.category,
            )
    if cart.total_kop < 1:
        raise _bad(
            None,
            "the cheque costs 0 kopecks: nothing is bought, so nothing is committed (a free "
            "gift line may go on a cheque with something paid)",
            "сумма чека 0 копеек: покупки нет, чек не проводится (бесплатный подарок можно "
            "пробить вместе с оплачиваемым товаром)",
            field="lines",
        )
    limits.check_cheque(cart.total_kop)


def accrues(line: CartLine, rules: Programme) -> bool:
    """Whether a line earns points (excluded categories never; sale items if configured)."""
    if line.category in rules.excluded_categories:
        return False
    return rules.accrue_on_sale_items or not line.sale


def takes_discount(line: CartLine, rules: Programme) -> bool:
    """Whether points or a coupon may pay for a line."""
    if line.category in rules.excluded_categories:
        return False
    return rules.redeem_on_sale_items or not line.sale


def counts_for_tier(line: CartLine, rules: Programme) -> bool:
    return line.category not in rules.excluded_categories


def active_campaigns(rules: Programme, today: date) -> tuple[Campaign, ...]:
    return tuple(c for c in rules.campaigns if c.starts <= today <= c.ends)


def _matches(campaign: Campaign, line: CartLine) -> bool:
    return (
        line.category in campaign.categories
        or (line.collection is not None and line.collection in campaign.collections)
        or line.sku in campaign.skus
    )


def line_rate_bp(line: CartLine, tier: Tier, campaigns: Iterable[Campaign]) -> tuple[int, set[str]]:
    """Accrual rate for a line in basis points and the campaigns that shaped it."""
    multiplier, extra, used = 100, 0, set()
    for c in campaigns:
        if _matches(c, line):
            used.add(c.id)
            multiplier = max(multiplier, c.multiplier_pct)
            extra += c.extra_bp
    return tier.accrual_bp * multiplier // 100 + extra, used


def fifo_plan(
    lots: Iterable[PointLot], points: Points, now: datetime
) -> list[tuple[PointLot, int]]:
    """Which available lots pay ``points``: soonest expiry first (then oldest, then id)."""
    plan: list[tuple[PointLot, int]] = []
    if points <= 0:  # most sales spend nothing: no lot to sort
        return plan
    left = points
    for lot in sorted(
        (lot for lot in lots if lot.is_available(now)),
        key=lambda lot: (lot.expires_at, lot.earned_at, lot.lot_id),
    ):
        if left <= 0:
            break
        take = min(lot.points, left)
        plan.append((lot, take))
        left -= take
    if left > 0:
        raise ValueError("not enough available points for the plan")
    return plan


def birthday_occurrence(rules: Programme, member: MemberState, today: date) -> int | None:
    """The year of the birthday whose bonus window contains ``today``, if any."""
    if member.birthday is None or rules.birthday_points <= 0:
        return None
    for year in (today.year - 1, today.year, today.year + 1):
        month, day = member.birthday.month, member.birthday.day
        try:
            occurrence = date(year, month, day)
        except ValueError:  # 29 February in a common year
            occurrence = date(year, 2, 28)
        start = occurrence - timedelta(days=rules.birthday_days_before)
        end = occurrence + timedelta(days=rules.birthday_days_after)
        if start <= today <= end:
            return year
    return None


def _coupon_discounts(
    cart: Cart, coupon: Coupon | None, rules: Programme, now: datetime, eligible: list[bool]
) -> list[Kopecks]:
    lines = cart.lines
    zero = [0] * len(lines)
    if coupon is None:
        return zero
    if not coupon.valid_from <= now < coupon.valid_until:
        raise CouponError(
            "coupon is not valid at this time",
            "купон сейчас не действует",
            coupon_id=coupon.coupon_id,
        )
    if cart.total_kop < coupon.min_cheque_kop:
        raise CouponError(
            f"coupon needs a cheque of at least {format_rub(coupon.min_cheque_kop, lang='en')}",
            f"купон действует от суммы чека {format_rub(coupon.min_cheque_kop)}",
            coupon_id=coupon.coupon_id,
            min_cheque_kop=coupon.min_cheque_kop,
        )
    if coupon.kind == "points":
        return zero
    room = [
        max(0, line.amount_kop - rules.min_payable_line_kop) if ok else 0
        for line, ok in zip(lines, eligible, strict=True)
    ]
    weights = [line.amount_kop if ok else 0 for line, ok in zip(lines, eligible, strict=True)]
    base = sum(weights)
    if base == 0 or sum(room) == 0:
        raise CouponError(
            "no line of this cheque may take the coupon",
            "в чеке нет товаров, на которые действует купон",
            coupon_id=coupon.coupon_id,
        )
    wanted = base * coupon.value // 10_000 if coupon.kind == "percent" else coupon.value
    return allocate(min(wanted, sum(room)), weights, room)


def quote(
    cart: Cart,
    member: MemberState,
    rules: Programme,
    now: datetime,
    *,
    redeem_points: Points | Literal["max"] = 0,
    coupon: Coupon | None = None,
    redeem_limit: tuple[str, Points] | None = None,
    balance_bound: bool = True,
) -> Quote:
    """Score a cheque for a member. Raises ``CartError``/``CatalogError`` for a bad cart,
    ``CouponError`` for a coupon that does not apply, ``RedemptionError`` when asked to
    spend more than ``max_redeem_points`` (the quote with ``redeem_points=0`` says how much).

    ``redeem_points="max"`` spends the most allowed. ``redeem_limit`` is an outside bound
    on spending with its reason key (the till's offline policy), e.g. ("offline_per_member", 0).
    ``balance_bound=False`` is the back office's re-score of a cheque a till committed:
    the member's balance does not bound the spend (what it cannot pay becomes debt, see
    ``ledger.apply_purchase``), only the cheque's own limits do.
    """
    validate_cart(cart, rules)
    if redeem_points != "max" and redeem_points < 0:
        raise RedemptionError(
            "points to spend cannot be negative",
            "нельзя списать отрицательное число бонусов",
            field="redeem_points",
        )
    pv = rules.point_value_kop
    today = local_date(rules, now)
    lines = cart.lines
    may_discount = [takes_discount(line, rules) for line in lines]
    coupon_kop = _coupon_discounts(cart, coupon, rules, now, may_discount)

    # 3. the most the member may spend on this cheque
    after_coupon = [line.amount_kop - c for line, c in zip(lines, coupon_kop, strict=True)]
    room_pts = [
        max(0, a - rules.min_payable_line_kop) // pv if ok else 0
        for a, ok in zip(after_coupon, may_discount, strict=True)
    ]
    eligible_kop = sum(a for a, ok in zip(after_coupon, may_discount, strict=True) if ok)
    spendable = member.spendable(now)
    cap_pts = eligible_kop * rules.redeem_cap_bp // 10_000 // pv
    limits = {"balance": spendable, "cap": cap_pts, "min_payable": sum(room_pts)}
    if redeem_limit is not None:
        limits[redeem_limit[0]] = max(0, redeem_limit[1])
    if not balance_bound:
        del limits["balance"]
    max_redeem = min(limits.values())
    limited_by = min(limits, key=lambda k: limits[k])  # first of equals: balance, cap, lines
    if redeem_points == "max":
        redeem_points = max_redeem
    if redeem_points > max_redeem:
        en, ru = redeem_limit_text(limited_by, rules)
        raise RedemptionError(
            f"asked to spend {redeem_points} points, at most {max_redeem} allowed: {en}",
            f"можно списать не больше {max_redeem}, запрошено {redeem_points}: {ru}",
            max_redeem_points=max_redeem,
            requested=redeem_points,
            limited_by=limited_by,
        )
    # 4. spread the points over the lines
    redeemed = allocate(
        redeem_points,
        [a if ok else 0 for a, ok in zip(after_coupon, may_discount, strict=True)],
        room_pts,
    )

    # 5. accrual on what is left to pay
    spend_before = rolling_spend(member, rules, now)
    tier_before = rules.tier_for_spend(spend_before)
    campaigns = active_campaigns(rules, today)
    rates: list[int] = []
    used_campaigns: set[str] = set()
    numerators: list[int] = []
    for line, c_kop, r_pts in zip(lines, coupon_kop, redeemed, strict=True):
        if accrues(line, rules):
            rate, used = line_rate_bp(line, tier_before, campaigns)
            used_campaigns |= used
        else:
            rate = 0
        rates.append(rate)
        numerators.append((line.amount_kop - c_kop - r_pts * pv) * rate)
    earn_total = sum(numerators) // (10_000 * pv)
    earn_lines = allocate(earn_total, numerators)
    quote_lines = tuple(
        QuoteLine(line.line_no, line.amount_kop, c_kop, r_pts * pv, r_pts, e_pts, rate, line.qty)
        for line, c_kop, r_pts, e_pts, rate in zip(
            lines, coupon_kop, redeemed, earn_lines, rates, strict=True
        )
    )

    # 6. bonuses
    bonuses: list[Bonus] = []
    birthday_year = birthday_occurrence(rules, member, today)
    if birthday_year is not None and member.birthday_bonus_year != birthday_year:
        bonuses.append(
            Bonus(
                "birthday",
                rules.birthday_points,
                str(birthday_year),
                "Бонус ко дню рождения",
                "Birthday bonus",
            )
        )
    if coupon is not None and coupon.kind == "points":
        bonuses.append(
            Bonus("coupon", coupon.value, coupon.coupon_id, "Бонусы по купону", "Coupon points")
        )
    progress: list[CollectionProgress] = []
    for mech in rules.collections:
        units = sum(
            line.qty
            for line in lines
            if line.collection == mech.collection and accrues(line, rules)
        )
        before = member.collection_progress(mech.id)
        rewards, after = divmod(before + units, mech.target)
        if units or before:
            progress.append(CollectionProgress(mech.id, mech.name_ru, after, mech.target, rewards))
        if rewards:
            bonuses.append(
                Bonus(
                    "collection",
                    rewards * mech.reward_points,
                    mech.id,
                    f"Награда: {mech.name_ru}",
                    f"Reward: {mech.id}",
                )
            )

    # 7. what the slip shows
    spend_added = sum(
        ql.payable_kop
        for ql, line in zip(quote_lines, lines, strict=True)
        if counts_for_tier(line, rules)
    )
    spend_after = spend_before + spend_added
    tier_after = rules.tier_for_spend(spend_after)
    next_tier = rules.next_tier(tier_after)
    paid_by_lots = redeem_points if balance_bound else min(redeem_points, spendable)
    remaining_lots = _lots_after_spending(member, paid_by_lots, now)
    expiring_points, expiring_on = expiring_soon(remaining_lots, rules, now)
    return Quote(
        receipt_id=cart.receipt_id,
        member_id=member.member_id,
        lines=quote_lines,
        total_kop=cart.total_kop,
        balance_before=member.balance(now),
        available_before=member.available_points(now),
        pending_before=member.pending_points(now),
        max_redeem_points=max_redeem,
        redeem_points=redeem_points,
        point_value_kop=pv,
        earn_points=earn_total,
        bonuses=tuple(bonuses),
        earn_available_from=now + timedelta(days=rules.pending_days),
        tier_before=tier_info(tier_before),
        tier_after=tier_info(tier_after),
        spend_before_kop=spend_before,
        spend_after_kop=spend_after,
        next_tier=tier_info(next_tier) if next_tier else None,
        to_next_tier_kop=next_tier.threshold_kop - spend_after if next_tier else None,
        expiring_points=expiring_points,
        expiring_on=expiring_on,
        collections=tuple(progress),
        campaigns=tuple(sorted(used_campaigns)),
        coupon_id=coupon.coupon_id if coupon else None,
        rules_version=rules.version,
        redeem_limited_by=limited_by,
    )


def _lots_after_spending(member: MemberState, points: Points, now: datetime) -> list[PointLot]:
    taken = {lot.lot_id: take for lot, take in fifo_plan(member.lots, points, now)}
    return [
        lot if lot.lot_id not in taken else _with_points(lot, lot.points - taken[lot.lot_id])
        for lot in member.lots
    ]


def _with_points(lot: PointLot, points: Points) -> PointLot:
    return PointLot(
        lot.lot_id, points, lot.earned_at, lot.available_from, lot.expires_at, lot.source
    )


def expiring_soon(
    lots: Iterable[PointLot], rules: Programme, now: datetime
) -> tuple[Points, date | None]:
    """Points that burn on the nearest expiry date within the warning horizon.

    Returns (points, local date) for "N бонусов сгорят DD.MM", or (0, None).
    """
    horizon = now + timedelta(days=rules.expiry_warning_days)
    by_day: dict[date, int] = {}
    for lot in lots:
        if lot.points > 0 and now < lot.expires_at <= horizon:
            # A lot expiring at 00:00 local burns at the end of the previous day.
            day = local_date(rules, lot.expires_at - timedelta(microseconds=1))
            by_day[day] = by_day.get(day, 0) + lot.points
    if not by_day:
        return 0, None
    first = min(by_day)
    return by_day[first], first


@dataclass(frozen=True, slots=True)
class MemberSummary:
    """The points summary kept beside a member's state (till cache and back office alike),
    so balances and tiers are readable without decoding the state document."""

    balance: Points
    available: Points
    pending: Points
    expiring_points: Points
    expiring_on: date | None
    tier: str


def held_points(state: MemberState, now: datetime) -> tuple[Points, Points]:
    """(available, pending) points of ``state`` at ``now`` in one pass over the lots (a
    lot is never both), where the MemberState methods take two; ``balance`` is their sum
    minus the debt."""
    available = pending = 0
    for lot in state.lots:
        if lot.is_available(now):
            available += lot.points
        elif lot.is_pending(now):
            pending += lot.points
    return available, pending


def member_summary(state: MemberState, rules: Programme, now: datetime) -> MemberSummary:
    exp_points, exp_on = expiring_soon(state.lots, rules, now)
    available, pending = held_points(state, now)
    return MemberSummary(
        balance=available + pending - state.debt,
        available=available,
        pending=pending,
        expiring_points=exp_points,
        expiring_on=exp_on,
        tier=rules.tier_for_spend(rolling_spend(state, rules, now)).code,
    )

"""The rules engine, feature by feature, on the demo programme (real rules file)."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from agent.engine import quote
from agent.errors import CartError, CatalogError, CouponError, RedemptionError
from agent.model import MemberState, PointLot
from agent.tokens import Coupon
from tests.conftest import NOW, make_cart


def lot(points, *, days_ago=30, expires_in=300, pending=False, lot_id="L1"):
    earned = NOW - timedelta(days=days_ago)
    avail = NOW + timedelta(days=3) if pending else earned
    return PointLot(lot_id, points, earned, avail, NOW + timedelta(days=expires_in), "server")


def member(*lots, spend=0, **kw):
    spend_rows = (("2026-05-01", spend),) if spend else ()
    return MemberState("m1", lots=tuple(lots), spend=spend_rows, **kw)


def test_base_tier_accrues_five_percent_on_payable(rules):
    q = quote(make_cart("R1", ("DR-1001", 1)), member(), rules, NOW)
    assert q.tier_before.code == "base"
    assert q.earn_points == 6499 * 5 // 100  # 5 % of 6 499 ₽, 1 point = 1 ₽
    assert q.lines[0].earn_rate_bp == 500
    assert q.to_next_tier_kop == 3_000_000 - 649_900
    assert q.next_tier is not None and q.next_tier.name_ru == "Серебро"


def test_instant_upgrade_reported_and_next_cheque_gets_new_rate(rules):
    m = member(spend=2_500_000)
    q = quote(make_cart("R1", ("DR-1001", 1)), m, rules, NOW)
    assert q.tier_before.code == "base" and q.tier_after.code == "silver"
    m2 = member(spend=2_500_000 + 649_900)
    q2 = quote(make_cart("R2", ("DR-1001", 1)), m2, rules, NOW)
    assert q2.lines[0].earn_rate_bp == 700


def test_rolling_window_drops_old_spend(rules):
    old = MemberState("m1", spend=(("2025-01-01", 20_000_000),))
    q = quote(make_cart("R1", ("DR-1001", 1)), old, rules, NOW)
    assert q.tier_before.code == "base" and q.spend_before_kop == 0


def test_excluded_category_neither_earns_nor_takes_points(rules):
    m = member(lot(5000))
    q = quote(make_cart("R1", ("GC-9001", 1), ("DR-1001", 1)), m, rules, NOW, redeem_points="max")
    gift, dress = q.lines
    assert gift.earn_points == 0 and gift.points_discount_kop == 0
    assert dress.points_discount_kop > 0
    # cap is 30 % of the eligible amount only
    assert q.max_redeem_points == 649_900 * 3000 // 10_000 // 100


def test_sale_items_accrue_by_default_and_can_be_switched_off(rules):
    cart = make_cart("R1", ("DR-1001", 1), sale=True)
    assert quote(cart, member(), rules, NOW).earn_points > 0
    strict = replace(rules, accrue_on_sale_items=False, redeem_on_sale_items=False)
    q = quote(cart, member(lot(1000)), strict, NOW)
    assert q.earn_points == 0 and q.max_redeem_points == 0


def test_max_redeem_is_least_of_balance_cap_and_min_payable(rules):
    cart = make_cart("R1", ("SH-2001", 1))  # 3 499 ₽
    assert quote(cart, member(lot(100)), rules, NOW).max_redeem_points == 100
    q = quote(cart, member(lot(100_000)), rules, NOW)
    assert q.max_redeem_points == 1049 and q.redeem_limited_by == "cap"
    full_cap = replace(rules, redeem_cap_bp=10_000)
    q = quote(cart, member(lot(100_000)), full_cap, NOW)
    assert q.max_redeem_points == 3498 and q.redeem_limited_by == "min_payable"
    q = quote(cart, member(lot(100_000)), full_cap, NOW, redeem_points="max")
    assert q.lines[0].payable_kop == 100  # never below the minimum payable per line


def test_spending_more_than_allowed_is_refused_with_the_limit(rules):
    with pytest.raises(RedemptionError) as e:
        quote(make_cart("R1", ("SH-2001", 1)), member(lot(100)), rules, NOW, redeem_points=101)
    assert e.value.details["max_redeem_points"] == 100
    assert e.value.details["limited_by"] == "balance"
    assert "недостаточно" in e.value.message_ru


def test_pending_and_expired_points_are_not_spendable(rules):
    m = member(
        lot(300, pending=True, lot_id="p"),
        lot(200, expires_in=-1, lot_id="x"),
        lot(50, lot_id="ok"),
    )
    q = quote(make_cart("R1", ("DR-1001", 1)), m, rules, NOW)
    assert q.available_before == 50 and q.pending_before == 300
    assert q.max_redeem_points == 50
    assert q.earn_available_from == NOW + timedelta(days=14)


def test_fifo_spends_soonest_expiring_first_and_warns_about_rest(rules):
    m = member(lot(400, expires_in=10, lot_id="soon"), lot(500, expires_in=200, lot_id="late"))
    q = quote(make_cart("R1", ("DR-1001", 1)), m, rules, NOW, redeem_points=300)
    assert q.expiring_points == 100  # 400 - 300 left in the soon lot
    assert q.expiring_on == (NOW + timedelta(days=10)).astimezone(rules.tz).date()


def test_birthday_bonus_in_window_once_a_year(rules):
    bday = date(1990, 6, 18)  # NOW is 15 June, window is -3..+7 days
    q = quote(make_cart("R1", ("DR-1001", 1)), member(birthday=bday), rules, NOW)
    assert [(b.kind, b.points, b.ref) for b in q.bonuses] == [("birthday", 1000, "2026")]
    q2 = quote(
        make_cart("R1", ("DR-1001", 1)), member(birthday=bday, birthday_bonus_year=2026), rules, NOW
    )
    assert q2.bonuses == ()
    far = quote(make_cart("R1", ("DR-1001", 1)), member(birthday=date(1990, 1, 1)), rules, NOW)
    assert far.bonuses == ()


def test_campaign_multiplier_and_extra_on_collection(rules):
    q = quote(make_cart("R1", ("OW-4001", 1), ("AC-6001", 1)), member(), rules, NOW)
    coat, scarf = q.lines
    assert coat.earn_rate_bp == 500 * 2 + 500  # outerwear x2, plus +5 % on the capsule
    assert scarf.earn_rate_bp == 500 + 500
    assert q.campaigns == ("capsule-plus5", "outerwear-x2")
    before = replace(
        rules, campaigns=tuple(replace(c, ends=date(2026, 1, 2)) for c in rules.campaigns)
    )
    assert quote(make_cart("R1", ("OW-4001", 1)), member(), before, NOW).campaigns == ()


def test_collection_reward_on_fifth_item(rules):
    m = member(collections=(("north-5", 4),))
    q = quote(make_cart("R1", ("OW-4002", 1)), m, rules, NOW)
    assert [(b.kind, b.points) for b in q.bonuses] == [("collection", 1500)]
    assert q.collections[0].collected == 0 and q.collections[0].rewards == 1
    q = quote(make_cart("R1", ("OW-4002", 2)), member(), rules, NOW)
    assert q.collections[0].collected == 2 and q.bonuses == ()


def coupon(kind, value, **kw):
    return Coupon("ab" * 16, kind, value, NOW - timedelta(days=1), NOW + timedelta(days=1), **kw)


def test_coupons_percent_fixed_points(rules):
    cart = make_cart("R1", ("DR-1001", 1), ("GC-9001", 1))
    q = quote(cart, member(), rules, NOW, coupon=coupon("percent", 1000))
    assert q.lines[0].coupon_discount_kop == 64_990 and q.lines[1].coupon_discount_kop == 0
    q = quote(cart, member(), rules, NOW, coupon=coupon("fixed", 50_000))
    assert q.coupon_discount_kop == 50_000
    assert q.earn_points == (649_900 - 50_000) * 500 // 10_000 // 100
    q = quote(cart, member(), rules, NOW, coupon=coupon("points", 300))
    assert [(b.kind, b.points) for b in q.bonuses] == [("coupon", 300)]


def test_coupon_minimum_cheque_and_dates(rules):
    cart = make_cart("R1", ("SH-2001", 1))
    with pytest.raises(CouponError, match="at least") as short:
        quote(cart, member(), rules, NOW, coupon=coupon("fixed", 100, min_cheque_kop=10**7))
    # money as the cashier reads it in each language, not a count of kopecks
    assert short.value.message_en.endswith("at least 100,000.00\u00a0₽")
    assert short.value.message_ru.endswith("от суммы чека 100\u00a0000,00\u00a0₽")
    late = Coupon("cd" * 16, "fixed", 100, NOW - timedelta(days=9), NOW - timedelta(days=1))
    with pytest.raises(CouponError):
        quote(cart, member(), rules, NOW, coupon=late)
    with pytest.raises(CouponError, match="no line"):
        quote(make_cart("R1", ("GC-9001", 1)), member(), rules, NOW, coupon=coupon("fixed", 100))


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"qty": 0}, CartError, "qty"),
        ({"price_kop": -1}, CartError, "price_kop"),
        ({"amount_kop": 10**12}, CartError, "amount_kop"),
        ({"category": "spaceships"}, CatalogError, "category"),
        ({"sku": ""}, CartError, "sku"),
    ],
)
def test_bad_lines_are_refused_naming_the_field(rules, change, error, field):
    cart = make_cart("R1", ("DR-1001", 1))
    bad = replace(cart, lines=(replace(cart.lines[0], **change),))
    with pytest.raises(error) as e:
        quote(bad, member(), rules, NOW)
    assert e.value.details["field"] == field
    assert "строка 1" in e.value.message_ru


def test_empty_cart_and_duplicate_lines(rules):
    with pytest.raises(CartError, match="no lines"):
        quote(replace(make_cart("R1", ("DR-1001", 1)), lines=()), member(), rules, NOW)
    cart = make_cart("R1", ("DR-1001", 1), ("SH-2001", 1))
    dup = replace(cart, lines=(cart.lines[0], replace(cart.lines[1], line_no=1)))
    with pytest.raises(CartError, match="unique"):
        quote(dup, member(), rules, NOW)
    with pytest.raises(RedemptionError):
        quote(cart, member(), rules, NOW, redeem_points=-5)


def test_quote_is_deterministic(rules):
    cart = make_cart("R1", ("OW-4001", 1), ("DR-1001", 3), ("AC-6001", 2))
    m = member(lot(2000), collections=(("north-5", 3),), birthday=date(1990, 6, 15))
    assert quote(cart, m, rules, NOW, redeem_points=900) == quote(
        cart, m, rules, NOW, redeem_points=900
    )


def test_local_time_zone_decides_the_day(rules):
    # 22:30 UTC on 11 June is already 12 June in Moscow: the window (15 June - 3 days) opens.
    late = datetime(2026, 6, 11, 22, 30, tzinfo=UTC)
    m = member(birthday=date(1990, 6, 15))
    q = quote(make_cart("R1", ("DR-1001", 1)), m, rules, late)
    assert q.bonuses and q.bonuses[0].kind == "birthday"

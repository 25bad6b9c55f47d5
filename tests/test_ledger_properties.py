"""Hypothesis properties of the rules engine and the ledger (DESIGN.md §3):
the cap is never exceeded, line discounts sum exactly, a full refund returns the member to
the state before the purchase, points are conserved, partial refunds add up."""

from datetime import date, timedelta

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agent.engine import quote
from agent.errors import RefundError
from agent.ledger import apply_purchase, apply_refund
from agent.model import Cart, CartLine, MemberState, PointLot
from agent.seed import demo_programme
from agent.tokens import Coupon
from tests.conftest import NOW

RULES = demo_programme()
CATEGORIES = sorted(RULES.categories)


@st.composite
def carts(draw):
    n = draw(st.integers(1, 8))
    lines = []
    for i in range(n):
        price = draw(st.integers(0, 5_000_000))
        qty = draw(st.integers(1, 5))
        amount = draw(st.integers(0, price * qty))
        lines.append(
            CartLine(
                i + 1,
                f"SKU{i}",
                f"item {i}",
                draw(st.sampled_from(CATEGORIES)),
                price,
                qty,
                amount,
                draw(st.booleans()),
                draw(st.sampled_from([None, "north", "south"])),
            )
        )
    # a cheque of 0 kopecks in all is refused by validate_cart (nothing was bought)
    assume(sum(line.amount_kop for line in lines) > 0)
    return Cart("R-prop", tuple(lines))


@st.composite
def members(draw):
    lots = []
    for i in range(draw(st.integers(0, 4))):
        earned = NOW - timedelta(days=draw(st.integers(0, 400)))
        lots.append(
            PointLot(
                f"L{i}",
                draw(st.integers(1, 20_000)),
                earned,
                earned + timedelta(days=draw(st.integers(0, 30))),
                earned + timedelta(days=draw(st.integers(1, 500))),
                "server",
            )
        )
    spend = draw(st.integers(0, 15_000_000))
    return MemberState(
        "m1",
        lots=tuple(sorted(lots, key=lambda x: (x.expires_at, x.earned_at, x.lot_id))),
        spend=(("2026-05-01", spend),) if spend else (),
        debt=draw(st.sampled_from([0, 0, 0, 50, 5000])),
        birthday=draw(st.sampled_from([None, date(1990, 6, 16), date(1985, 1, 1)])),
        collections=(("north-5", draw(st.integers(1, 4))),) if draw(st.booleans()) else (),
    )


coupons = st.sampled_from(
    [
        None,
        Coupon("ab" * 16, "percent", 1500, NOW - timedelta(days=1), NOW + timedelta(days=1)),
        Coupon("cd" * 16, "fixed", 70_000, NOW - timedelta(days=1), NOW + timedelta(days=1)),
        Coupon("ef" * 16, "points", 250, NOW - timedelta(days=1), NOW + timedelta(days=1)),
    ]
)


def spend_fraction():
    return st.sampled_from(["max", 0, 0.5])


def _quote(cart, m, fraction, coupon):
    from agent.errors import CouponError

    try:
        probe = quote(cart, m, RULES, NOW, coupon=coupon)
    except CouponError:
        coupon = None
        probe = quote(cart, m, RULES, NOW)
    redeem = (
        probe.max_redeem_points
        if fraction == "max"
        else int(probe.max_redeem_points * (fraction or 0))
    )
    return quote(cart, m, RULES, NOW, redeem_points=redeem, coupon=coupon), coupon


@settings(max_examples=300, deadline=None)
@given(carts(), members(), spend_fraction(), coupons)
def test_cap_never_exceeded_and_discounts_sum_exactly(cart, m, fraction, coupon):
    q, _ = _quote(cart, m, fraction, coupon)
    pv = RULES.point_value_kop
    assert sum(line.redeemed_points for line in q.lines) == q.redeem_points
    assert q.points_discount_kop == q.redeem_points * pv
    assert q.redeem_points <= q.max_redeem_points <= max(0, m.spendable(NOW))
    eligible_after_coupon = sum(
        ql.amount_kop - ql.coupon_discount_kop
        for ql, line in zip(q.lines, cart.lines, strict=True)
        if line.category not in RULES.excluded_categories
    )
    assert q.points_discount_kop <= eligible_after_coupon * RULES.redeem_cap_bp // 10_000
    for ql, line in zip(q.lines, cart.lines, strict=True):
        assert 0 <= ql.discount_kop <= line.amount_kop
        if ql.discount_kop:
            assert ql.payable_kop >= RULES.min_payable_line_kop
        if line.category in RULES.excluded_categories:
            assert ql.discount_kop == 0 and ql.earn_points == 0
    assert sum(ql.earn_points for ql in q.lines) == q.earn_points
    assert q.payable_kop == cart.total_kop - q.discount_kop


@settings(max_examples=300, deadline=None)
@given(carts(), members(), spend_fraction(), coupons)
def test_points_conserved_and_full_refund_restores_state(cart, m, fraction, coupon):
    q, _ = _quote(cart, m, fraction, coupon)
    after, effects = apply_purchase(m, cart, q, RULES, NOW, "op1")
    # conservation: balance moves by exactly earned - spent
    assert after.balance(NOW) == m.balance(NOW) - q.redeem_points + q.total_earned
    assert after.debt >= 0 and all(lot.points > 0 for lot in after.lots)
    full = {line.line_no: line.qty for line in cart.lines}
    restored, result = apply_refund(after, effects, {}, full, NOW)
    assert result.complete
    assert restored == m
    assert result.net_points == m.balance(NOW) - after.balance(NOW)


@settings(max_examples=200, deadline=None)
@given(carts(), members(), spend_fraction(), st.randoms(use_true_random=False))
def test_partial_refunds_add_up_to_the_full_refund(cart, m, fraction, rnd):
    q, _ = _quote(cart, m, fraction, None)
    after, effects = apply_purchase(m, cart, q, RULES, NOW, "op1")
    units = [line.line_no for line in cart.lines for _ in range(line.qty)]
    rnd.shuffle(units)
    state, done = after, {}
    earned_back = returned = 0
    for line_no in units:
        state, r = apply_refund(state, effects, done, {line_no: 1}, NOW)
        done[line_no] = done.get(line_no, 0) + 1
        earned_back += r.earn_reversed + r.bonus_reversed
        returned += r.points_returned
        assert state.balance(NOW) == r.balance_after
    assert state == m
    assert returned == q.redeem_points
    assert earned_back == q.total_earned


@settings(max_examples=50, deadline=None)
@given(carts(), members())
def test_refund_of_more_than_bought_is_refused(cart, m):
    q, _ = _quote(cart, m, 0, None)
    after, effects = apply_purchase(m, cart, q, RULES, NOW, "op1")
    line = cart.lines[0]
    try:
        apply_refund(after, effects, {}, {line.line_no: line.qty + 1}, NOW)
    except RefundError as e:
        assert e.details["refundable"] == line.qty
    else:
        raise AssertionError("over-refund accepted")


def test_refund_after_points_spent_leaves_visible_debt():
    cart = Cart("R1", (CartLine(1, "S", "dress", "dresses", 1_000_000, 1, 1_000_000),))
    m = MemberState("m1")
    q = quote(cart, m, RULES, NOW)
    after, effects = apply_purchase(m, cart, q, RULES, NOW, "op1")
    later = NOW + timedelta(days=20)  # points now available ...
    spent_q = quote(Cart("R2", cart.lines), after, RULES, later, redeem_points="max")
    spent, _ = apply_purchase(after, Cart("R2", cart.lines), spent_q, RULES, later, "op2")
    # ... and spent; now the first cheque is refunded
    state, r = apply_refund(spent, effects, {}, {1: 1}, later)
    assert r.earn_reversed == q.earn_points
    assert state.debt > 0
    assert state.balance(later) == spent.balance(later) - q.earn_points
    # a later accrual repays the debt first
    q3 = quote(Cart("R3", cart.lines), state, RULES, later)
    repaid, _ = apply_purchase(state, Cart("R3", cart.lines), q3, RULES, later, "op3")
    assert repaid.debt == max(0, state.debt - q3.total_earned)

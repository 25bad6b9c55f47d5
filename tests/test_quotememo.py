"""The quote memo (agent.quotememo): a recalled quote is exactly the fresh one."""

from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import quotememo
from agent.engine import quote
from agent.errors import AgentError
from agent.model import MemberState, PointLot
from agent.seed import demo_programme
from tests.conftest import NOW, make_cart
from tests.test_ledger_properties import carts

RULES = demo_programme()
HOUR = 3600


@st.composite
def states(draw):
    """Lots whose boundaries fall close to NOW (hours either side), so that moving the
    clock by minutes to days crosses them often."""
    lots = []
    for i in range(draw(st.integers(0, 4))):
        earned = NOW - timedelta(seconds=draw(st.integers(0, 400 * 24 * HOUR)))
        near = st.integers(-48 * HOUR, 48 * HOUR)
        available = NOW + timedelta(seconds=draw(st.one_of(near, st.just(-60 * 24 * HOUR))))
        expires = NOW + timedelta(
            days=draw(st.sampled_from([0, RULES.expiry_warning_days, 1, 3])),
            seconds=draw(st.integers(-48 * HOUR, 48 * HOUR)),
        )
        expires = max(expires, available + timedelta(seconds=1))
        lots.append(
            PointLot(f"L{i}", draw(st.integers(1, 20_000)), earned, available, expires, "s")
        )
    return MemberState(
        "m1",
        lots=tuple(lots),
        spend=(("2026-06-14", draw(st.integers(0, 15_000_000))),),
        debt=draw(st.sampled_from([0, 0, 50])),
    )


limits = st.sampled_from([None, ("offline_per_member", 0), ("on_hold", 300), ("x", 10**9)])


@settings(max_examples=400, deadline=None)
@given(
    cart=carts(),
    state=states(),
    redeem=st.sampled_from(["max", 0, 1, 500]),
    limit=limits,
    offset=st.integers(-30 * HOUR, 30 * HOUR),
    delta=st.one_of(st.integers(0, 120), st.integers(0, 3 * 24 * HOUR)),
)
def test_recalled_quote_equals_a_fresh_one(cart, state, redeem, limit, offset, delta):
    then = NOW + timedelta(seconds=offset)
    now = then + timedelta(seconds=delta, microseconds=delta % 7)
    try:
        first = quote(cart, state, RULES, then, redeem_points=redeem, redeem_limit=limit)
    except AgentError:
        return
    key = (cart, redeem, "doc", limit)
    memo = quotememo.remember(key, state, RULES, then, first)
    recalled = quotememo.recall(memo, key, RULES, now)
    if recalled is not None:
        assert recalled == quote(cart, state, RULES, now, redeem_points=redeem, redeem_limit=limit)


def test_recall_needs_the_same_inputs_rules_and_day():
    state = MemberState("m1")
    cart = make_cart("R1", ("DR-1001", 2))
    first = quote(cart, state, RULES, NOW)
    key = (cart, 0, "doc", None)
    memo = quotememo.remember(key, state, RULES, NOW, first)
    assert quotememo.recall(memo, key, RULES, NOW) is first
    later = quotememo.recall(memo, key, RULES, NOW + timedelta(seconds=5))
    assert later == quote(cart, state, RULES, NOW + timedelta(seconds=5))
    assert quotememo.recall(memo, (cart, 0, "other doc", None), RULES, NOW) is None
    assert quotememo.recall(memo, key, replace(RULES), NOW) is None  # another programme
    assert quotememo.recall(memo, key, RULES, NOW - timedelta(seconds=1)) is None
    assert quotememo.recall(memo, key, RULES, NOW + timedelta(days=1)) is None  # next day
    assert quotememo.recall(None, key, RULES, NOW) is None


def test_a_lot_boundary_ends_the_memo():
    lot = PointLot(
        "L1",
        500,
        NOW - timedelta(days=20),
        NOW + timedelta(minutes=5),
        NOW + timedelta(days=300),
        "s",
    )
    state = MemberState("m1", lots=(lot,))
    cart = make_cart("R1", ("DR-1001", 2))
    key = (cart, "max", "doc", None)
    memo = quotememo.remember(
        key, state, RULES, NOW, quote(cart, state, RULES, NOW, redeem_points="max")
    )
    assert memo.until == lot.available_from
    assert quotememo.recall(memo, key, RULES, NOW + timedelta(minutes=4)) is not None
    assert quotememo.recall(memo, key, RULES, NOW + timedelta(minutes=5)) is None


def _edge_states():
    """One state per thing the engine reads from ``now``, each with its boundary within
    a day or two of NOW (local midnight in Moscow is 21:00 UTC)."""
    day = timedelta(days=1)
    old = NOW - 100 * day
    window_edge = (NOW.date() - timedelta(days=RULES.tier_window_days - 1)).isoformat()

    def lot(lot_id, available, expires, points=700):
        return PointLot(lot_id, points, old, available, expires, "s")

    warn = timedelta(days=RULES.expiry_warning_days)
    return [
        MemberState("pending", lots=(lot("A", NOW + timedelta(hours=7), NOW + 300 * day),)),
        MemberState("expiring", lots=(lot("A", old, NOW + timedelta(hours=20)),)),
        MemberState("horizon", lots=(lot("A", old, NOW + warn + timedelta(hours=9)),)),
        MemberState("spend", spend=((window_edge, 9_000_000),)),
        MemberState("birthday", birthday=(NOW + 3 * day + timedelta(hours=20)).date()),
        MemberState("birthday-end", birthday=(NOW - 7 * day).date()),
        MemberState(
            "mixed",
            lots=(
                lot("A", old, NOW + timedelta(hours=30)),
                lot("B", NOW + timedelta(hours=2), NOW + warn + timedelta(hours=1)),
            ),
            debt=50,
        ),
    ]


def test_recall_across_every_boundary_matches_fresh_quotes():
    """Every pair (then <= now) on an hourly-ish grid two days either side of the
    boundaries: a recalled quote is the fresh one, and boundaries do end the memo."""
    grid = [NOW + timedelta(hours=h, minutes=m) for h in range(-30, 52, 3) for m in (0, 59)]
    cart = make_cart("R1", ("DR-1001", 1), ("OW-4001", 1))
    hits = misses = 0
    for state in _edge_states():
        for redeem in ("max", 0):
            for i, then in enumerate(grid):
                first = quote(cart, state, RULES, then, redeem_points=redeem)
                key = (cart, redeem, state.member_id, None)
                memo = quotememo.remember(key, state, RULES, then, first)
                for now in grid[i:]:
                    fresh = quote(cart, state, RULES, now, redeem_points=redeem)
                    recalled = quotememo.recall(memo, key, RULES, now)
                    if recalled is None:
                        misses += 1
                    else:
                        hits += 1
                        assert recalled == fresh, (state.member_id, then, now)
    assert hits > 1000 and misses > 1000

"""The commit path's faster parts equal what they replace: ``model.replacer`` is
``dataclasses.replace``, ``engine.member_summary`` matches the MemberState methods."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import engine
from agent.model import MemberState, PointLot, Quote, replacer
from agent.seed import demo_programme

NOW = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)
offsets = st.integers(-400, 400).map(lambda d: NOW + timedelta(hours=d))
lots = st.builds(
    PointLot,
    lot_id=st.text(min_size=1, max_size=3),
    points=st.integers(0, 5000),
    earned_at=offsets,
    available_from=offsets,
    expires_at=offsets,
    source=st.just("purchase"),
)


@settings(max_examples=300, deadline=None)
@given(lots=st.lists(lots, max_size=6).map(tuple), debt=st.integers(0, 3000), now=offsets)
def test_member_summary_matches_the_state_methods(lots, debt, now):
    state = MemberState("m1", lots=lots, debt=debt)
    summary = engine.member_summary(state, demo_programme(), now)
    assert summary.balance == state.balance(now)
    assert summary.available == state.available_points(now)
    assert summary.pending == state.pending_points(now)


@settings(max_examples=50, deadline=None)
@given(quote=st.from_type(Quote), when=st.datetimes(timezones=st.just(UTC)))
def test_replacer_is_dataclasses_replace(quote, when):
    moved = replacer(Quote, "earn_available_from")(quote, when)
    assert moved == dataclasses.replace(quote, earn_available_from=when)
    state = MemberState("m2", debt=3)
    two = replacer(MemberState, "debt", "member_id")(state, 7, "m3")
    assert two == dataclasses.replace(state, debt=7, member_id="m3")


def test_replacer_refuses_unknown_fields():
    with pytest.raises(TypeError):
        replacer(MemberState, "nope")

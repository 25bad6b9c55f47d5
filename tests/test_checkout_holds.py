"""A commit closes its receipt's hold even when the POS does not name it (``hold_id``
omitted): the commit's member read says whether the receipt has an active hold, and only
then is the hold closed (committed, or expired when it ran out); other cheques' holds stay
active and their points stay out of reach."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from agent.results import CheckoutRequest
from agent.service import holds
from tests.conftest import make_cart

RICH = "m00000001"  # seed template 1: spendable points


def _req(receipt: str, redeem: object = "max") -> CheckoutRequest:
    return CheckoutRequest(
        RICH, make_cart(receipt, ("DR-1001", 1), ("SH-2001", 2)), redeem_points=redeem
    )


def _status(till, hold_id: str) -> tuple[str, str | None]:
    row = till.store.one("SELECT status, closed_at FROM holds WHERE hold_id = ?", (hold_id,))
    assert row is not None
    return row[0], row[1]


def test_commit_without_hold_id_closes_the_receipts_active_hold(till):
    hold = till.agent.place_hold(_req("R-1"))
    assert hold.points > 0
    result = till.agent.commit(_req("R-1"))
    assert result.quote.redeem_points == hold.points
    status, closed_at = _status(till, hold.hold_id)
    assert status == "committed" and closed_at is not None


def test_commit_after_the_hold_ran_out_records_it_expired(till, clock):
    hold = till.agent.place_hold(_req("R-2"), ttl_s=30)
    clock.advance(seconds=31)
    till.agent.commit(_req("R-2", redeem=0))
    assert _status(till, hold.hold_id)[0] == "expired"


def test_another_cheques_hold_stays_active_and_held(till):
    other = till.agent.place_hold(_req("R-OTHER", redeem=100))
    before = till.agent.card(RICH).spendable
    result = till.agent.commit(_req("R-3"))
    assert _status(till, other.hold_id) == ("active", None)
    assert result.quote.redeem_points == before - 100
    assert till.count("holds") == 1


def test_commit_with_no_hold_leaves_the_holds_table_alone(till):
    till.agent.commit(_req("R-4", redeem=0))
    assert till.count("holds") == 0 and till.count("purchases") == 1


@given(
    st.datetimes(min_value=datetime(1000, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_hold_stamps_are_sortable_utc_text_with_microseconds(moment, offset_min):
    """``holds.stamp`` (compared as text in SQL) is the UTC time as
    YYYY-MM-DDTHH:MM:SS.ffffffZ whatever the offset it is given in."""
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    expected = aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert holds.stamp(aware) == expected
    assert len(expected) == 27

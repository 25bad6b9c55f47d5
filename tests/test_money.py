from hypothesis import given
from hypothesis import strategies as st

from agent.money import allocate, format_points, format_rub, plural_ru

NB = "\u00a0"


def test_format_rub_groups_thousands_and_kopecks():
    assert format_rub(125000) == f"1{NB}250,00{NB}₽"
    assert format_rub(5) == f"0,05{NB}₽"
    assert format_rub(-1999) == f"-19,99{NB}₽"
    assert format_rub(123456789) == f"1{NB}234{NB}567,89{NB}₽"


def test_format_points_russian_plurals():
    assert format_points(1250) == f"1{NB}250{NB}бонусов"
    assert format_points(1) == f"1{NB}бонус"
    assert format_points(22) == f"22{NB}бонуса"
    assert format_points(11) == f"11{NB}бонусов"
    assert format_points(-21, sign=True) == f"-21{NB}бонус"
    assert format_points(2, "en") == "2 points"
    assert [plural_ru(n, "a", "b", "c") for n in (1, 2, 5, 12, 21, 104, 111)] == list("abccabc")


def test_allocate_largest_remainder_and_caps():
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(1000, [500, 300, 200], [100, 1000, 1000]) == [100, 540, 360]
    assert allocate(0, [5, 5]) == [0, 0]
    assert allocate(5, [0, 0], [3, 3]) == [3, 2]


def test_allocate_refuses_more_than_caps():
    import pytest

    with pytest.raises(ValueError, match="within caps"):
        allocate(10, [1, 1], [4, 5])
    with pytest.raises(ValueError):
        allocate(-1, [1])


@given(
    st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)), min_size=1, max_size=30),
    st.data(),
)
def test_allocate_sums_exactly_within_caps(lines, data):
    weights = [w for w, _ in lines]
    caps = [c for _, c in lines]
    total = data.draw(st.integers(0, sum(caps)))
    shares = allocate(total, weights, caps)
    assert sum(shares) == total
    assert all(0 <= s <= c for s, c in zip(shares, caps, strict=True))
    # proportional where not capped: an uncapped line never gets more than its quota + 1
    # unless other lines were capped away from their share
    if total <= sum(caps) and all(c >= total for c in caps) and sum(weights):
        for s, w in zip(shares, weights, strict=True):
            assert abs(s * sum(weights) - total * w) < sum(weights)

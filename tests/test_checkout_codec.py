"""The codec's hint-driven text encoders (the sale documents of a checkout) never change a
byte: a value that does not match its field's hint (a bool in an int field, a list where a
tuple is hinted, a datetime subclass, a float, a recursive dataclass) takes the generic
path and gives what the reference encoder gives."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import codec
from agent.model import CartLine, MemberState, PointLot


def ref(value: Any) -> str:
    """The reference: the JSON-ready tree (the generic walk), through the sorting encoder."""
    return json.dumps(
        codec.to_plain(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


class When(datetime):
    """A datetime subclass (its exact type is not ``datetime``)."""


@dataclass(frozen=True)
class Node:
    name: str
    kids: tuple[Node, ...] = ()
    parent: Node | None = None


@dataclass(frozen=True)
class Mixed:
    n: int
    flag: bool
    at: datetime
    day: date | None
    pairs: tuple[tuple[str, int], ...]
    kind: Literal["a", "b"]
    anything: Any = None
    numbers: tuple[int, ...] = ()


def test_values_off_their_hints_encode_as_the_reference():
    odd: Any = Mixed(
        n=True,  # a bool in an int field: "true", not "True" nor "1"
        flag=1,  # an int in a bool field
        at=When(2026, 5, 1, 9, 30, tzinfo=UTC),
        day=datetime(2026, 5, 2, 1, tzinfo=UTC),  # a datetime where a date is hinted
        pairs=[["a", 1.5], ("b", 2, 3), ("c", None)],  # a list, wrong lengths, a float
        kind="c",
        anything={"z": 1, "a": (1, 2)},
        numbers=(1, False, 2.0, 10**30),
    )
    assert codec.dumps(odd) == ref(odd)
    assert '"n":true' in codec.dumps(odd)


def test_recursive_dataclass_hints():
    tree = Node("root", kids=(Node("a"), Node("b", kids=(Node("c"),))), parent=Node("up"))
    assert codec.dumps(tree) == ref(tree)


def test_sale_parts_with_wrong_member_types():
    line: Any = CartLine(1, "S", "Платье «Лён»\n", "c", 100, True, 100.0, 0, "")
    lot: Any = PointLot("l", 5, When(2026, 1, 1, tzinfo=UTC), date(2026, 1, 2), None, "server")
    state: Any = MemberState("m", lots=[lot], spend=(("2026-01-01", True),), debt=None)
    for value in (line, lot, state):
        assert codec.dumps(value) == ref(value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.datetimes(timezones=st.just(UTC)),
    st.dates(),
)
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6)


@settings(max_examples=200, deadline=None)
@given(
    n=anything,
    flag=anything,
    at=anything,
    day=anything,
    pairs=anything,
    kind=anything,
    numbers=anything,
)
def test_any_member_values(n, flag, at, day, pairs, kind, numbers):
    value = Mixed(n, flag, at, day, pairs, kind, numbers=numbers)
    assert codec.dumps(value) == ref(value)

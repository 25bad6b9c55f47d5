"""The compiled codec gives exactly what the generic one-walker-for-all codec gave.

The reference below is the previous ``agent.codec`` (a generic walk over ``dataclasses``
fields and type hints), kept here as the oracle: payload hashes already in outboxes and in
back offices were made with it, so canonical JSON must not change by a byte.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import UTC, date, datetime, timedelta
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import codec
from agent.ledger import PurchaseEffects
from agent.model import Cart, MemberState, Quote
from agent.results import CheckoutRequest, CommitResult, RefundOutcome, RefundResult
from agent.slip import Slip


# --------------------------------------------------------------------------- reference
def ref_to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: ref_to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [ref_to_plain(v) for v in value]
    if isinstance(value, frozenset | set):
        return sorted(ref_to_plain(v) for v in value)
    if isinstance(value, dict):
        return {str(k): ref_to_plain(v) for k, v in value.items()}
    return value


def ref_dumps(value: Any) -> str:
    return json.dumps(
        ref_to_plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def ref_decode(tp: Any, value: Any) -> Any:
    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in get_args(tp) if a is not type(None)]
        return ref_decode(inner[0], value)
    if origin is tuple:
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(ref_decode(args[0], v) for v in value)
        return tuple(ref_decode(a, v) for a, v in zip(args, value, strict=True))
    if origin is frozenset:
        return frozenset(ref_decode(get_args(tp)[0], v) for v in value)
    if origin is dict:
        key_t, val_t = get_args(tp)
        return {ref_decode(key_t, k): ref_decode(val_t, v) for k, v in value.items()}
    if origin is typing.Literal:
        return value
    if tp is datetime:
        return datetime.fromisoformat(value)
    if tp is date:
        return date.fromisoformat(value)
    if tp is int and isinstance(value, str):
        return int(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return ref_from_plain(tp, value)
    return value


def ref_from_plain(cls: type, data: dict[str, Any]) -> Any:
    hints = get_type_hints(cls)
    kwargs = {
        f.name: ref_decode(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)
        if f.name in data
    }
    return cls(**kwargs)


# --------------------------------------------------------------------------- strategies
# Aware datetimes (what the core stores), text with Cyrillic, quotes and control characters.
aware = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
st.register_type_strategy(datetime, aware)
st.register_type_strategy(str, st.text(alphabet=st.characters(codec="utf-8"), max_size=12))

ROUND_TRIP = (MemberState, Quote, Cart, PurchaseEffects, RefundResult, Slip, CommitResult)
ENCODE_ONLY = (CheckoutRequest, RefundOutcome)


@pytest.mark.parametrize("cls", ROUND_TRIP + ENCODE_ONLY, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encoding_is_byte_identical_to_the_reference(cls, data):
    value = data.draw(st.from_type(cls))
    assert codec.to_plain(value) == ref_to_plain(value)
    text = codec.dumps(value)
    assert text == ref_dumps(value)
    assert codec.digest(text) == codec.digest(ref_dumps(value))
    assert codec.dumps_plain(codec.to_plain(value)) == text


@pytest.mark.parametrize("cls", ROUND_TRIP, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_decoding_matches_the_reference_and_round_trips(cls, data):
    value = data.draw(st.from_type(cls))
    plain = json.loads(codec.dumps(value))
    assert codec.from_plain(cls, plain) == ref_from_plain(cls, plain) == value
    assert codec.loads(cls, codec.dumps(value)) == value


def test_older_documents_without_defaulted_fields_still_decode():
    """A document written before a field existed decodes with the field's default, as the
    generic codec did (missing keys are left to the dataclass)."""
    now = datetime(2026, 5, 1, 12, tzinfo=UTC)
    state = MemberState("m1", birthday=date(1990, 5, 1), birthday_bonus_year=2025)
    plain = json.loads(codec.dumps(state))
    del plain["collections"], plain["birthday_bonus_year"]
    plain["field_from_the_future"] = 1  # unknown keys are ignored
    got = codec.from_plain(MemberState, plain)
    assert got == ref_from_plain(MemberState, plain)
    assert got.collections == () and got.birthday_bonus_year is None
    assert got.birthday == date(1990, 5, 1)
    assert codec.loads(MemberState, codec.dumps(state)).balance(now) == 0


def test_int_fields_written_as_text_decode_to_int():
    plain = json.loads(codec.dumps(MemberState("m1", debt=5)))
    plain["debt"] = "7"
    assert codec.from_plain(MemberState, plain).debt == 7


def test_a_missing_required_field_is_an_error_not_a_default():
    with pytest.raises(TypeError):
        codec.from_plain(MemberState, {"lots": []})


def test_containers_and_times_outside_dataclasses():
    when = datetime(2026, 5, 1, 9, 30, tzinfo=UTC) + timedelta(microseconds=5)
    value = {
        3: (when, date(2026, 5, 2)),
        "s": frozenset({"b", "a"}),
        "l": [MemberState("m2")],
        "n": None,
    }
    assert codec.to_plain(value) == ref_to_plain(value)
    assert codec.dumps(value) == ref_dumps(value)


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=10),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    doc=st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=8),
    data=st.data(),
)
def test_dumps_with_pre_encoded_members_is_byte_identical(doc, data):
    """A member given as canonical text (encoded once, shared) changes nothing in the
    canonical JSON of the whole, whatever the keys (sorting, escapes, non-ASCII)."""
    shared = data.draw(st.sets(st.sampled_from(sorted(doc)), max_size=len(doc)))
    texts = {k: codec.dumps_plain(doc[k]) for k in shared}
    rest = {k: v for k, v in doc.items() if k not in shared}
    assert codec.dumps_with(rest, **texts) == codec.dumps_plain(doc) == ref_dumps(doc)
    # A placeholder value under a pre-encoded key is ignored in favour of the text.
    assert codec.dumps_with(dict(doc), **texts) == codec.dumps_plain(doc)


@settings(max_examples=300, deadline=None)
@given(
    doc=st.dictionaries(
        st.one_of(st.text(max_size=6), st.integers(-5, 5), st.booleans()),
        st.one_of(json_values, st.dates(), st.frozensets(st.integers(), max_size=3)),
        max_size=8,
    )
)
def test_dumps_of_plain_containers_is_byte_identical(doc):
    """Non-text keys (made text, a later one winning a clash), dates, sets, floats and
    nesting: the canonical form is built sorted and encoded without re-sorting, and must
    equal the sorting encoder's output."""
    assert codec.dumps(doc) == ref_dumps(doc)
    assert codec.dumps([doc, (doc,)]) == ref_dumps([doc, (doc,)])


@pytest.mark.parametrize("value", ['текст "q"', 5, None, True, 2.5, [], {}])
def test_dumps_of_scalars_and_empty_containers(value):
    assert codec.dumps(value) == ref_dumps(value)

"""The projector's fast encoder of stored texts (``effects.canonical``) writes exactly
what ``codec.dumps`` writes, for any member state and purchase effects: odd text (control
characters, non-ASCII, lone surrogates), integers of any size, naive and offset times
(offsets of whole seconds among them), dates. The real states and effects of a projector
run are compared by tests/test_projector_batches.py (its oracle encodes with ``codec``)."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, get_args, get_origin, get_type_hints

from hypothesis import given, settings
from hypothesis import strategies as st

from agent import codec
from agent.ledger import Grant, PurchaseEffects, RecordLine
from agent.model import LotSource, MemberState, PointLot
from sync.backoffice import effects

_offsets = st.sampled_from(
    [
        None,
        UTC,
        timezone(timedelta(hours=3)),
        timezone(timedelta(hours=-3, minutes=-30)),
        timezone(timedelta(hours=3, seconds=30)),  # rounded by orjson: codec's way
        timezone(timedelta(hours=5, seconds=1, microseconds=5)),
        timezone(timedelta(hours=23, minutes=59)),
    ]
)
_times = st.builds(
    lambda d, tz: d.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    _offsets,
)
_ints = st.integers(min_value=-(2**70), max_value=2**70) | st.integers(-10, 10**6)
_text = st.text(max_size=8) | st.sampled_from(["", 'a"\\\n\x00\x1f\x7f', "é😀", "\ud800", "Z"])
_lots = st.builds(
    PointLot,
    _text,
    _ints,
    _times,
    _times,
    _times,
    st.sampled_from(get_args(LotSource)),
)
_pairs = st.lists(st.tuples(_text, _ints), max_size=3).map(tuple)
_states = st.builds(
    MemberState,
    _text,
    st.lists(_lots, max_size=4).map(tuple),
    _pairs,
    _ints,
    st.none() | st.dates(min_value=date(1, 1, 1)),
    st.none() | _ints,
    _pairs,
)
_lines = st.builds(
    RecordLine, _ints, _ints, _ints, _ints, _ints, st.booleans(), st.none() | _text, _ints
)
_grants = st.builds(
    Grant, st.sampled_from(get_args(LotSource)), _text, _ints, _ints, st.none() | _lots
)
_effects = st.builds(
    PurchaseEffects,
    _text,
    _text,
    _text,
    st.lists(_lines, max_size=3).map(tuple),
    st.lists(_lots, max_size=3).map(tuple),
    st.lists(_grants, max_size=3).map(tuple),
    _text,
    _ints,
    _pairs,
    st.lists(st.tuples(_text, _text, _ints, _ints), max_size=2).map(tuple),
    st.none() | _ints,
    _ints,
)


@settings(max_examples=400, deadline=None)
@given(value=_states | _effects)
def test_canonical_writes_what_codec_writes(value: Any) -> None:
    assert effects.canonical(value) == codec.dumps(value)


def test_canonical_takes_only_the_two_stored_types() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        effects.canonical(PointLot("l", 1, at, at, at, "purchase"))  # type: ignore[arg-type]
    except TypeError as e:
        assert "member state or purchase effects" in str(e)
    else:
        raise AssertionError("a lot was encoded")


def _times_in(tp: Any, path: str, seen: set[type]) -> list[str]:
    """The paths of the datetimes a value of type ``tp`` may hold (from its hints)."""
    if tp is datetime:
        return [path]
    origin = get_origin(tp)
    if origin is not None and origin is not typing.Literal:
        return [p for a in get_args(tp) for p in _times_in(a, path, seen)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp not in seen:
        hints = get_type_hints(tp)
        return [
            p
            for f in dataclasses.fields(tp)
            for p in _times_in(hints[f.name], f"{tp.__name__}.{f.name}", seen | {tp})
        ]
    return []


def test_the_only_times_are_those_of_lots() -> None:
    """``canonical`` checks the offsets of the lots' times only: the stored types hold no
    other datetime (a new one must be checked there too)."""
    lot_times = {"PointLot.earned_at", "PointLot.available_from", "PointLot.expires_at"}
    for tp in (MemberState, PurchaseEffects):
        assert set(_times_in(tp, tp.__name__, set())) == lot_times

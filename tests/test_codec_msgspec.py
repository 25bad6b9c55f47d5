"""The canonical bytes of the stored documents, pinned; and exactly where msgspec's differ.

``snapshots/codec_documents.json`` holds what a demo till stored for a hold, two sales
(one spending points, with a birthday bonus), a refund and a registration at conftest's
``NOW``: the journal payloads with their payload hashes, purchase results and effects, a
refund result, a hold's quote, member states, slips and the rules document, each with the
SHA-256 of its text. Decoding each with ``agent.codec`` and encoding it again must give the
same text, so the same hash: hashes made from these bytes are in outboxes and back offices.

msgspec's sorted JSON encoder (``msgspec.json.Encoder(order="sorted")``) is not used for
them because its bytes differ in one case that every sale meets: an aware datetime in UTC
is written ``…Z``, where the canonical form (``datetime.isoformat``) has ``…+00:00``. The
property below states that difference exactly: for values of every stored type, msgspec's
text is the reference text of the same value with its UTC datetimes ending in ``Z``, and
nothing else differs. The other differences (floats, NaN, offsets with seconds, keys that
are not text) lie outside the stored types and are listed with examples.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import codec
from agent.ledger import PurchaseEffects
from agent.model import Cart, MemberState, Quote
from agent.results import CheckoutRequest, CommitResult, RefundOutcome, RefundResult
from agent.slip import Slip

SORTED = msgspec.json.Encoder(order="sorted")

STORED = (
    MemberState,
    Quote,
    Cart,
    PurchaseEffects,
    RefundResult,
    Slip,
    CommitResult,
    RefundOutcome,
    CheckoutRequest,
)
BY_NAME: dict[str, type] = {cls.__name__: cls for cls in STORED}
GOLDEN: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "snapshots" / "codec_documents.json").read_text("utf-8")
)


# --------------------------------------------------------------------------- reference
def ref_plain(value: Any, utc: str) -> Any:
    """The generic walk of the canonical form (as tests/test_codec.py's reference), with
    an aware datetime at offset zero ending in ``utc`` (``"+00:00"``: the canonical form;
    ``"Z"``: msgspec's)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: ref_plain(getattr(value, f.name), utc) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        text = value.isoformat()
        return text.removesuffix("+00:00") + utc if value.utcoffset() == timedelta(0) else text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [ref_plain(v, utc) for v in value]
    return value


def ref_text(value: Any, utc: str = "+00:00") -> str:
    plain = ref_plain(value, utc)
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- strategies
# Aware datetimes at the offsets a till meets (UTC in the journal, local time on slips),
# whole seconds or not; text with Cyrillic, quotes, backslashes and control characters.
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=3)), timezone(-timedelta(hours=5, minutes=30))]
)
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)


def values(tp: Any) -> st.SearchStrategy[Any]:
    """Values of the type hint ``tp`` (the hints the stored dataclasses use)."""
    if tp is datetime:
        return st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=ZONES)
    if tp is date:
        return st.dates(date(1900, 1, 1), date(2100, 1, 1))
    if tp is str:
        return TEXT
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(-(2**70), 2**70)
    origin, args = get_origin(tp), get_args(tp)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (Union, types.UnionType):
        return st.one_of([st.none() if a is type(None) else values(a) for a in args])
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return st.lists(values(args[0]), max_size=3).map(tuple)
    if origin is tuple:
        return st.tuples(*map(values, args))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = get_type_hints(tp)
        fields = {f.name: values(hints[f.name]) for f in dataclasses.fields(tp)}
        return st.builds(tp, **fields)
    raise AssertionError(f"no strategy for the hint {tp!r}")  # a new hint: extend values()


# --------------------------------------------------------------------------- golden
@pytest.mark.parametrize("doc", GOLDEN, ids=[d["kind"] for d in GOLDEN])
def test_stored_documents_keep_their_bytes_and_hashes(doc: dict[str, Any]) -> None:
    text = doc["text"]
    assert codec.digest(text) == doc["sha256"]
    if doc["type"] is None:  # a JSON-ready document (journal payload, rules)
        plain = json.loads(text)
        assert codec.dumps(plain) == text
        if "quote" in plain and "cart" in plain:  # a sale's payload, as the till writes it
            cart = codec.from_plain(Cart, plain["cart"])
            quote = codec.from_plain(Quote, plain["quote"])
            rest = {k: v for k, v in plain.items() if k not in ("cart", "quote")}
            texts = {"cart": codec.dumps(cart), "quote": codec.dumps(quote)}
            assert codec.dumps_with(rest, **texts) == text
        return
    cls = BY_NAME[doc["type"]]
    value = codec.loads(cls, text)
    assert codec.dumps(value) == text == ref_text(value)
    assert codec.digest(codec.dumps(value)) == doc["sha256"]


def test_the_golden_documents_cover_utc_and_local_times_and_cyrillic() -> None:
    """What the pinned documents exercise (so the set is not thinned unnoticed)."""
    texts = [d["text"] for d in GOLDEN]
    # Cart and Quote also inside the sales' payloads; RefundResult inside RefundOutcome.
    assert {d["type"] for d in GOLDEN} == {
        None,
        "CommitResult",
        "PurchaseEffects",
        "RefundOutcome",
        "Quote",
        "MemberState",
        "Slip",
    }
    assert sum("+00:00" in t for t in texts) >= 10
    assert any("+03:00" in t for t in texts)  # slips print local time
    assert any("Пуховик «Север»" in t for t in texts)


@pytest.mark.parametrize("doc", GOLDEN, ids=[d["kind"] for d in GOLDEN])
def test_msgspec_changes_the_stored_bytes_only_where_they_hold_utc_times(
    doc: dict[str, Any],
) -> None:
    text = doc["text"]
    cls = BY_NAME.get(doc["type"]) if doc["type"] else None
    value = json.loads(text) if cls is None else codec.loads(cls, text)
    theirs = SORTED.encode(value).decode("utf-8")
    assert theirs == ref_text(value, utc="Z")
    if cls is not None and "+00:00" in text:
        assert theirs != text and codec.digest(theirs) != doc["sha256"]
    else:  # text only (journal payloads, rules) or local times only (slips): the same
        assert theirs == text


# --------------------------------------------------------------------------- property
@pytest.mark.parametrize("cls", STORED, ids=lambda c: c.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_msgspec_differs_from_the_canonical_form_only_in_utc_offsets(
    cls: type, data: st.DataObject
) -> None:
    value = data.draw(values(cls))
    ours = codec.dumps(value)
    assert ours == ref_text(value)
    theirs = SORTED.encode(value).decode("utf-8")
    assert theirs == ref_text(value, utc="Z")
    if "+00:00" not in ours:
        assert theirs == ours
    # The canonical text decodes to the same value (``codec.loads`` reads ``int |
    # Literal["max"]`` as an int, so a checkout request, which is only ever hashed, is not
    # decoded by it; msgspec's decoder reads it too).
    if cls is not CheckoutRequest:
        assert codec.loads(cls, ours) == value
    assert msgspec.json.decode(ours, type=cls) == value


# --------------------------------------------------------------------------- other cases
AT = datetime(2026, 6, 15, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "ours", "theirs"),
    [
        pytest.param(AT, '"2026-06-15T09:00:00+00:00"', '"2026-06-15T09:00:00Z"', id="utc"),
        pytest.param(
            AT.astimezone(timezone(timedelta(hours=3, seconds=30))),
            '"2026-06-15T12:00:30+03:00:30"',
            '"2026-06-15T12:00:30+03:00"',  # the offset's seconds are dropped
            id="offset-with-seconds",
        ),
        pytest.param(1e16, "1e+16", "1e16", id="float-exponent"),
        pytest.param(1e-05, "1e-05", "0.00001", id="small-float"),
        pytest.param(math.nan, "NaN", "null", id="nan"),
        pytest.param(-math.inf, "-Infinity", "null", id="infinity"),
    ],
)
def test_values_msgspec_writes_otherwise(value: Any, ours: str, theirs: str) -> None:
    assert codec.dumps(value) == ours
    assert SORTED.encode(value).decode("utf-8") == theirs


def test_msgspec_refuses_keys_that_are_not_text() -> None:
    value: dict[Any, int] = {3: 1, True: 2, "a": 3}
    assert codec.dumps(value) == '{"3":1,"True":2,"a":3}'
    with pytest.raises(TypeError, match="str keys"):
        SORTED.encode(value)


@pytest.mark.parametrize(
    "value",
    [
        'Платье «Лён»\n\t\x00\x1f\x7f\u2028"\\',
        2**70,
        -(2**64),
        ((1, ("a", None)), ()),
        date(2026, 6, 15),
        datetime(2026, 6, 15, 12, 0, 0, 5, tzinfo=timezone(timedelta(hours=3))),
        datetime(2026, 6, 15, 12, 0),
        frozenset({"б", "a"}),
        {"б": [1, {"a": None}], "a": True},
        2.5,
    ],
)
def test_values_msgspec_writes_alike(value: Any) -> None:
    assert SORTED.encode(value).decode("utf-8") == codec.dumps(value)

"""The push parser's two readings of one declaration: the msgspec decoding of
``PushRequest`` (the fast path) and the field-by-field reading that names a refused
body's fault. Over mutated batches they must agree: a body is either read, or refused
with a contract code naming the field and event - never the fallback that means the two
readings disagree."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.protocol import (
    MAX_BATCH_EVENTS,
    ProtocolError,
    PushRequest,
    WireEvent,
    encode_push,
    parse_push,
)

CODES = {
    "bad_json",
    "bad_request",
    "missing_field",
    "bad_field",
    "bad_event",
    "bad_event_id",
    "unsupported_protocol",
    "batch_too_large",
}
FALLBACK = ("body is not valid:", "an event is not valid")
KEYS = ["protocol", "terminal_id", "events", *WireEvent.__struct_fields__, "other"]
VALUES = st.one_of(
    st.sampled_from(
        [None, True, 0, 1, -1, 2**31, 2**62, 2**62 + 1, 2**63, 1.0, 1.5, "", "1", "a" * 32]
    ),
    st.sampled_from(["A" * 32, "g" * 32, "a" * 201, "a\x00b", "a\x07b", "a\u202eb", "Ж" * 199]),
    st.sampled_from([[], {}, [1], {"a": 1}]),
    st.text(max_size=8),
    st.integers(),
)


def event(seq: int) -> dict[str, Any]:
    payload = json.dumps({"seq": seq, "name": "Сумка"}, ensure_ascii=False)
    return {
        "event_id": f"{seq:032x}",
        "terminal_id": "till-1",
        "terminal_epoch": "e1",
        "seq": seq,
        "type": "purchase",
        "schema_version": 1,
        "created_at": "2026-06-15T09:00:00+00:00",
        "payload": payload,
        "payload_hash": hashlib.sha256(payload.encode()).hexdigest(),
    }


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(0, 4), ascii_only=st.booleans())
def test_a_refused_batch_is_named_by_the_field_reader(
    data: st.DataObject, n: int, ascii_only: bool
) -> None:
    doc: dict[str, Any] = {
        "protocol": 1,
        "terminal_id": "till-1",
        "events": [event(i + 1) for i in range(n)],
    }
    for _ in range(data.draw(st.integers(1, 3))):
        events = doc.get("events")
        targets: list[Any] = [doc, *(events if isinstance(events, list) else [])]
        target = data.draw(st.sampled_from(targets))
        if not isinstance(target, dict):
            continue
        key = data.draw(st.sampled_from(KEYS))
        if data.draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = data.draw(VALUES)
    body = json.dumps(doc, ensure_ascii=ascii_only).encode()
    try:
        req = parse_push(body)
    except ProtocolError as e:
        assert e.code in CODES and e.message and not e.message.startswith(FALLBACK), e.to_dict()
        if "index" in e.details:
            assert isinstance(doc["events"], list) and 0 <= e.details["index"] < len(doc["events"])
        return
    assert isinstance(req, PushRequest) and len(req.events) == len(doc["events"])
    for ev, sent in zip(req.events, doc["events"], strict=True):
        assert ev.payload_utf8 == sent["payload"].encode()


def test_good_batch_reads_into_the_models_and_keeps_the_payload_bytes() -> None:
    events = [event(i + 1) for i in range(3)]
    req = parse_push(encode_push("till-1", events))
    assert req.terminal_id == "till-1" and all(isinstance(e, WireEvent) for e in req.events)
    assert [e.payload_bytes() for e in req.events] == [e["payload"].encode() for e in events]
    rebuilt = WireEvent(*(events[0][k] for k in WireEvent.__struct_fields__))
    assert rebuilt == req.events[0] and rebuilt.payload_bytes() == req.events[0].payload_bytes()


@pytest.mark.parametrize(
    ("edit", "code", "field"),
    [
        ({"event_id": "\x01" * 32, "seq": "x"}, "bad_field", "events[1].event_id"),
        ({"terminal_epoch": "a\x07b", "seq": "x"}, "bad_field", "events[1].seq"),
        ({"terminal_epoch": "a\x07b", "payload": 5}, "bad_field", "events[1].terminal_epoch"),
        ({"schema_version": -1}, "bad_field", None),
        ({"event_id": "A" * 32}, "bad_event_id", None),
    ],
)
def test_the_first_fault_is_named_as_before(
    edit: dict[str, Any], code: str, field: str | None
) -> None:
    """Several faults in an event: its id and numbers are named before the other fields,
    and a control character in its text before a later field; an event the model takes
    (the first: a BEL in its epoch) is not refused for it."""
    events = [{**event(1), "terminal_epoch": "a\x07b"}, {**event(2), **edit}, event(3)]
    with pytest.raises(ProtocolError) as refused:
        parse_push(json.dumps({"protocol": 1, "terminal_id": "t", "events": events}).encode())
    assert (refused.value.status, refused.value.code) == (400, code)
    assert refused.value.details.get("index") == 1
    assert refused.value.details.get("field") == field


def test_too_many_events_is_413_before_any_event_is_read() -> None:
    events: list[Any] = ["not an event"] * (MAX_BATCH_EVENTS + 1)
    with pytest.raises(ProtocolError) as refused:
        parse_push(json.dumps({"protocol": 1, "terminal_id": "t", "events": events}).encode())
    assert (refused.value.status, refused.value.code) == (413, "batch_too_large")

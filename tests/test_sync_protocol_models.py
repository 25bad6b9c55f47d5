"""The push parser's two readings of one declaration: the msgspec decoding of
``PushRequest`` (the fast path) and the field-by-field reading that names a refused
body's fault. Over mutated batches they must agree: a body is either read, or refused
with a contract code naming the field and event - never the fallback that means the two
readings disagree."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
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


MISSING = object()
ODD: list[Any] = [
    None,
    True,
    0,
    -1,
    1.0,
    2**31,
    2**62 + 1,
    2**70,
    "",
    "1",
    "A" * 32,
    "g" * 32,
    "a" * 201,
    "a\x00b",
    "a\x07b",
    "a\u202eb",
    "\ud800",
    [],
    {},
]


def push_variants() -> list[tuple[str, bytes]]:
    """Pushes of three good events with one or two faults each, labelled: every envelope
    field and every field of the first and last event left out or given each ``ODD``
    value, the middle event replaced by one, pairs of faults in the middle event, and a
    few whole bodies."""
    out: list[tuple[str, bytes]] = []

    def add(label: str, doc: Any) -> None:
        out.append((label, json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")))

    def doc() -> dict[str, Any]:
        return {"protocol": 1, "terminal_id": "till-1", "events": [event(i) for i in (1, 2, 3)]}

    def put(target: dict[str, Any], key: str, value: Any) -> None:
        if value is MISSING:
            target.pop(key, None)
        else:
            target[key] = value

    for value in [MISSING, *ODD]:
        shown = "missing" if value is MISSING else repr(value)
        for key in ("protocol", "terminal_id", "events"):
            d = doc()
            put(d, key, value)
            add(f"{key}={shown}", d)
        for index in (0, 2):
            for key in WireEvent.__struct_fields__:
                d = doc()
                put(d["events"][index], key, value)
                add(f"events[{index}].{key}={shown}", d)
        if value is not MISSING:
            d = doc()
            d["events"][1] = value
            add(f"events[1]={shown}", d)
    fields = WireEvent.__struct_fields__
    for a, b in ((a, b) for i, a in enumerate(fields) for b in fields[i + 1 :]):
        for first, second in ((MISSING, "a\x07b"), ("a\x07b", 1.5), ("x" * 201, MISSING)):
            d = doc()
            put(d["events"][1], a, first)
            put(d["events"][1], b, second)
            add(f"events[1].{a},{b}", d)
    add("protocol=2,bad event", {**doc(), "protocol": 2, "events": [{"seq": "x"}]})
    add("501 events", {**doc(), "events": ["x"] * (MAX_BATCH_EVENTS + 1)})
    add("unknown keys", {**doc(), "other": {"deep": [1, 2]}, "events": [{**event(1), "x": 1}]})
    add("body a list", [doc()])
    return out


def push_answer(body: bytes) -> list[Any]:
    try:
        req = parse_push(body)
    except ProtocolError as e:
        return [e.status, e.code, e.message, e.details]
    events = [
        [e.event_id, e.seq, hashlib.sha256(e.payload_bytes()).hexdigest()[:16]] for e in req.events
    ]
    return ["read", req.terminal_id, events]


def test_every_fault_is_answered_as_the_hand_written_parser_answered_it() -> None:
    """The oracle: what the hand-written push parser (before the msgspec models)
    answered to each of these bodies, recorded in snapshots/push_errors.json: the same
    status, code, message and details (field, index, limit), or the same batch read (ids,
    seqs and the payloads' bytes)."""
    path = Path(__file__).parent / "snapshots/push_errors.json"
    recorded = json.loads(path.read_text(encoding="utf-8"))
    variants = push_variants()
    assert [label for label, _ in variants] == [label for label, _ in recorded]
    for (label, body), (_, answer) in zip(variants, recorded, strict=True):
        assert push_answer(body) == answer, label

"""Time-ordered identifiers (agent.ids): the protocol's form, RFC 9562 layout, ordering."""

from __future__ import annotations

import time
import uuid

from agent.ids import time_ordered_id
from sync.protocol import EVENT_ID_RE


def test_an_id_is_32_lowercase_hex_as_the_protocol_wants() -> None:
    for _ in range(1000):
        text = time_ordered_id()
        assert EVENT_ID_RE.match(text), text
        assert len(text) == 32


def test_an_id_is_a_version_7_uuid_carrying_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid.UUID(time_ordered_id())
    after = time.time_ns() // 1_000_000
    assert value.version == 7
    assert value.variant == uuid.RFC_4122
    assert before <= value.int >> 80 <= after


def test_ids_of_later_milliseconds_sort_after_earlier_ones() -> None:
    first = time_ordered_id()
    time.sleep(0.002)
    second = time_ordered_id()
    assert first < second  # text order is time order: new rows go to the end of an index


def test_ids_made_in_one_millisecond_still_differ() -> None:
    ids = [time_ordered_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)


def test_an_id_from_given_time_and_bits_is_a_pure_function_of_them() -> None:
    ms, bits = 1_764_547_200_000, (1 << 74) - 12345
    text = time_ordered_id(ms, bits)
    assert text == time_ordered_id(ms, bits)
    value = uuid.UUID(text)
    assert value.version == 7 and value.int >> 80 == ms
    assert value.int & ((1 << 62) - 1) == bits & ((1 << 62) - 1)
    assert (value.int >> 64) & 0xFFF == (bits >> 62) & 0xFFF

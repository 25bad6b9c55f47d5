"""Identifiers made at the till: time-ordered, so that new rows go to the end of an index.

An event id is the ledger key forever (``outbox.event_id``, ``purchases.op_id`` and the back
office's ``events`` are all unique-indexed on it). A random id (UUID version 4) lands on a
random leaf of each of those B-trees, so every sale dirtied, and wrote to the WAL and
fsynced, a leaf page per index that the next sale would not touch again; on a till with a
year of sales those leaves are not in the page cache either. A UUID version 7 (RFC 9562:
48-bit Unix time in milliseconds, then 74 random bits) sorts by time, so consecutive ids
share the rightmost leaf: measured on the sale path of ``bench/checkout.py``, see
bench/README.md. Uniqueness does not depend on the clock: two ids of the same millisecond
still differ in 74 random bits (a collision needs ~2^37 ids in one millisecond), and a till
whose clock jumps back only loses the ordering, never uniqueness.

The text form is the one the protocol has always carried: 32 lowercase hex digits
(``sync.protocol.EVENT_ID_RE``), so tills with random ids and tills with these interoperate.
"""

from __future__ import annotations

import os
import time

_VERSION_7 = 0x7 << 76  # the version nibble, bits 76-79 of the 128
_VARIANT = 0b10 << 62  # RFC 9562 variant, bits 62-63
_RAND_A = (1 << 12) - 1
_RAND_B = (1 << 62) - 1


def time_ordered_id(ms: int | None = None, rand: int | None = None) -> str:
    """A new UUID version 7 as 32 lowercase hex digits (no dashes).

    ``ms``: Unix time in milliseconds (default: now); ``rand``: the random bits (default:
    from the OS; the low 74 are used). Given both, the id is a pure function of them (the
    benches make ids for past events from a seeded generator)."""
    if ms is None:
        ms = time.time_ns() // 1_000_000
    if rand is None:
        rand = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 used
    value = (
        (ms & 0xFFFF_FFFF_FFFF) << 80
        | _VERSION_7
        | ((rand >> 62) & _RAND_A) << 64
        | _VARIANT
        | (rand & _RAND_B)
    )
    return f"{value:032x}"

"""The checkout's entry-line grammar (pure): every form the cashier types, and refusals."""

from __future__ import annotations

import pytest

from tui.entry import Entry, parse_entry


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", Entry("empty")),
        ("   ", Entry("empty")),
        ("8 916 124-24-86", Entry("identify", "8 916 124-24-86")),
        ("+7 (916) 124-24-86", Entry("identify", "+7 (916) 124-24-86")),
        ("0001000000018", Entry("identify", "0001000000018")),
        ("KM1:ABCDEF", Entry("identify", "KM1:ABCDEF")),
        ("kc1:abc", Entry("coupon", "kc1:abc")),
        ("OW-4001", Entry("sku", "OW-4001")),
        ("ow-4001", Entry("sku", "OW-4001")),
        ("DR-1001*2", Entry("sku", "DR-1001", qty=2)),
        ("DR-1001 x3", Entry("sku", "DR-1001", qty=3)),
        ("DR-1001 х3", Entry("sku", "DR-1001", qty=3)),  # Cyrillic х
        ("SH-2001!", Entry("sku", "SH-2001", sale=True)),
        ("SH-2001*2!", Entry("sku", "SH-2001", qty=2, sale=True)),
        ("X-1 shirts 3499", Entry("line", "X-1", amount_kop=349_900, category="shirts")),
        (
            "x-1 shirts 3499.5*2!",
            Entry("line", "X-1", qty=2, sale=True, amount_kop=349_950, category="shirts"),
        ),
        ("=4999", Entry("total", amount_kop=499_900)),
        ("=4999.5", Entry("total", amount_kop=499_950)),
        ("=4999,05 shirts", Entry("total", amount_kop=499_905, category="shirts")),
        ("-500", Entry("redeem", points=500)),
        ("-", Entry("redeem", points=0)),
        ("-*", Entry("redeem", points="max")),
    ],
)
def test_entry_forms(text: str, expected: Entry) -> None:
    assert parse_entry(text) == expected


@pytest.mark.parametrize(
    "text",
    ["=0", "=-5", "=12.345", "??", "a b c", "-5x", "X shirts 0"],
)
def test_entries_refused(text: str) -> None:
    assert parse_entry(text).kind == "invalid"


@pytest.mark.parametrize(
    "text", ["DR-1001*0", "DR-1001*1000", "DR-1001 х 5000", "X-1 shirts 100 *1000", "ВК-1001*1000"]
)
def test_a_quantity_out_of_range_is_named_as_such(text: str) -> None:
    """A SKU with a quantity the till does not take is refused for its quantity (the
    cashier is told the limit), not as input the till cannot read."""
    assert parse_entry(text).kind == "bad_qty"

"""agent.requests: the JSON request parsers shared by the CLI and the POS API."""

from datetime import date

import pytest

from agent.errors import CartError, CatalogError, InputError
from agent.requests import birthday_from_json, cart_from_json, flag_from_json


def test_birthday_format_and_calendar_errors_are_told_apart():
    assert birthday_from_json("1990-02-28") == date(1990, 2, 28)
    assert birthday_from_json(None) is None and birthday_from_json("") is None
    with pytest.raises(InputError) as missing_day:
        birthday_from_json("1990-02-31")
    assert "no such date" in missing_day.value.message_en
    assert "такой даты нет" in missing_day.value.message_ru
    # date.fromisoformat alone takes the last two on Python 3.11 (basic and week forms)
    for bad in ("31.02.1990", "1990-2-3", 19900228, ["1990-02-28"], "19900228", "1990-W09-3"):
        with pytest.raises(InputError) as wrong:
            birthday_from_json(bad)
        assert "YYYY-MM-DD" in wrong.value.message_en and "ГГГГ-ММ-ДД" in wrong.value.message_ru
        assert wrong.value.details["field"] == "birthday"


def test_flags_must_be_json_booleans():
    assert flag_from_json({"x": True}, "x") is True and flag_from_json({}, "x") is False
    for bad in ("yes", "true", 1, 0, None):
        with pytest.raises(InputError) as e:
            flag_from_json({"x": bad}, "x")
        assert e.value.details == {"field": "x"} and "true" in e.value.message_ru


def test_line_errors_carry_the_line_number_and_path_in_both_languages():
    with pytest.raises(CatalogError) as e:
        cart_from_json({"receipt_id": "R", "lines": [{"sku": "NOPE"}]}, lambda sku: None)
    assert e.value.message_en.startswith("line 1 (lines[0].sku): unknown SKU 'NOPE'")
    assert e.value.message_ru.startswith("позиция 1 (lines[0].sku): неизвестный артикул «NOPE»")
    assert e.value.details == {"field": "sku", "line": 1, "sku": "NOPE"}
    lines = [{"sku": "A", "category": "c", "price_kop": 100}, {"sku": "B", "category": "c"}]
    with pytest.raises(CartError) as missing_price:
        cart_from_json({"receipt_id": "R", "lines": lines})
    assert missing_price.value.message_en.startswith("line 2 (lines[1].price_kop): ")
    assert missing_price.value.message_ru.startswith("позиция 2 (lines[1].price_kop): ")
    assert missing_price.value.details == {"field": "price_kop", "line": 2}

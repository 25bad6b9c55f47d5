"""Cashier number style per language (agent.money is the one place): Russian exactly as
it always was, English with comma groups and a decimal point, for money and points
alike."""

from __future__ import annotations

from agent.money import format_points, format_rub

NB = "\u00a0"


def test_russian_is_unchanged_and_the_default() -> None:
    assert format_rub(1709910) == f"17{NB}099,10{NB}₽"
    assert format_rub(1709910, lang="ru") == format_rub(1709910)
    assert format_rub(-1999, lang="ru") == f"-19,99{NB}₽"
    assert format_rub(500, sign=True) == f"+5,00{NB}₽"
    assert format_points(3248) == f"3{NB}248{NB}бонусов"
    assert format_points(3248, "ru", sign=True) == f"+3{NB}248{NB}бонусов"


def test_english_uses_one_style_for_money_and_points() -> None:
    assert format_rub(1709910, lang="en") == f"17,099.10{NB}₽"
    assert format_rub(123456789, lang="en") == f"1,234,567.89{NB}₽"
    assert format_rub(5, lang="en") == f"0.05{NB}₽"
    assert format_rub(-1999, lang="en") == f"-19.99{NB}₽"
    assert format_rub(500, sign=True, lang="en") == f"+5.00{NB}₽"
    assert format_points(3248, "en") == "3,248 points"
    assert format_points(1, "en") == "1 point"
    assert format_points(-1250, "en") == "-1,250 points"
    assert format_points(1250, "en", sign=True) == "+1,250 points"
    # the same grouping in both: a thousands separator never reads as a decimal one
    for n in (999, 1000, 1234567):
        assert format_points(n, "en").split()[0] == f"{n:,}"
        assert format_rub(n * 100, lang="en").split(".")[0] == f"{n:,}"


def test_the_cashier_app_formats_through_agent_money() -> None:
    from tui.i18n import money, points

    assert money("ru", 1709910) == format_rub(1709910)
    assert money("en", 1709910) == format_rub(1709910, lang="en")
    assert points("ru", 3248) == format_points(3248)
    assert points("en", 3248) == format_points(3248, "en")

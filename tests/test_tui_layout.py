"""Pilot tests: the till keyboard in the Russian layout (ЙЦУКЕН) and with Shift/Caps Lock.

A letter key works whatever layout and case the keyboard is in, on every screen (present
and future), while the key bar and F1 help show it once, as bound. A SKU, a total or a
coupon typed by the Latin key labels under the Russian layout is understood as a scan is;
a Cyrillic word stays what it is. Real till store and back office (tui_helpers).
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
from pathlib import Path
from typing import Any, ClassVar

from test_tui_checkout import said, sign_in
from textual.binding import Binding, BindingType
from tui_helpers import Harness, harness, settle, widget_text

import tui.screens
from agent.layout import russian_layout_char
from agent.seed import demo_phone
from tui.app import KassaApp
from tui.entry import parse_entry
from tui.messages import CoreFailed, QuoteReady, ReportQueued
from tui.screens.base import KassaScreen
from tui.screens.checkout import CheckoutScreen
from tui.screens.help import HelpScreen
from tui.screens.shift import ShiftScreen


def run(coro: Any) -> None:
    asyncio.run(coro)


def in_russian_layout(text: str) -> str:
    """What the keys of ``text`` type when the keyboard is in ЙЦУКЕН."""
    return "".join(russian_layout_char(ch) for ch in text)


def letter_keys(bindings: Any) -> dict[str, list[Binding]]:
    return {k: v for k, v in bindings.key_to_bindings.items() if len(k) == 1 and k.isalpha()}


def test_p_prints_the_x_report_in_both_layouts_and_cases(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await pilot.press("f11")
                await settle(pilot)
                assert isinstance(pilot.app.screen, ShiftScreen)
                for n, key in enumerate(("p", "P", "з", "З"), 1):
                    await pilot.press(key)
                    await settle(pilot)
                    assert len(h.of(ReportQueued)) == n, key
                keys = widget_text(pilot.app, "#keys")
                assert keys.count("Печать") == 1 and " P " in keys
                assert " З " not in keys and " з " not in keys and " p " not in keys
                await pilot.press("f1")
                await settle(pilot)
                assert isinstance(pilot.app.screen, HelpScreen)
                text = widget_text(pilot.app, "#help-box")
                assert text.count("Печать") == 1 and " З " not in text, text

    run(main())


def test_every_screen_and_a_later_one_bind_letters_in_both_layouts() -> None:
    for info in pkgutil.iter_modules(tui.screens.__path__):
        importlib.import_module(f"tui.screens.{info.name}")

    class LaterScreen(KassaScreen):  # a screen written later does nothing for it
        BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reprint", "bind.print")]

    class AgainScreen(ShiftScreen):  # its list already has the twins: none added again
        BINDINGS: ClassVar[list[BindingType]] = [*ShiftScreen.BINDINGS]

    again = letter_keys(AgainScreen._merged_bindings)
    assert {k: len(v) for k, v in again.items()} == {"p": 1, "P": 1, "з": 1, "З": 1}

    screens: list[Any] = [KassaApp, HelpScreen, LaterScreen]
    todo = list(KassaScreen.__subclasses__())
    while todo:
        cls = todo.pop()
        screens.append(cls)
        todo.extend(cls.__subclasses__())
    for cls in screens:
        letters = letter_keys(cls._merged_bindings)
        for key, bound in letters.items():
            if not key.isascii():
                continue
            for twin in {key.lower(), key.upper(), russian_layout_char(key.lower())}:
                twins = letters.get(twin) or letters.get(russian_layout_char(twin))
                assert twins, (cls.__name__, key, twin)
                assert [b.action for b in twins] == [b.action for b in bound]
    assert "ctrl+й" in KassaApp._merged_bindings.key_to_bindings  # Ctrl+Q, kitty protocol
    later = letter_keys(LaterScreen._merged_bindings)
    assert sorted(later) == sorted(["r", "R", "к", "К"])
    assert [b.show for b in later["к"]] == [False] and later["r"][0].show


def test_entry_typed_in_the_russian_layout_is_repaired_only_when_it_is_a_code() -> None:
    assert parse_entry("ВК-1001").text == "DR-1001"  # DR-1001 by the Latin labels
    assert parse_entry("вк-1001*2").qty == 2
    assert parse_entry("ЩЦ-4001!").sale
    total = parse_entry("=4999б50")  # the key labelled "," is "б"
    assert (total.kind, total.amount_kop) == ("total", 499_950)
    assert parse_entry("ЛС1ЖФИСВ") == parse_entry("KC1:ABCD")
    for word in ("Иванов", "Анна", "привет мир"):  # words, not codes: left as typed
        assert (parse_entry(word).kind, parse_entry(word).text) == ("invalid", word)
    assert parse_entry("SH-2001х2").qty == 2  # the Cyrillic "х" as "times" still works
    assert parse_entry("ЫР-2001 х3!") == parse_entry("SH-2001*3!")  # also after a slip


def test_sku_typed_in_the_russian_layout_is_a_cheque_line(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                screen = pilot.app.screen
                assert isinstance(screen, CheckoutScreen)
                await h.type(pilot, "ВК-1001")
                assert [ln.sku for ln in screen.lines] == ["DR-1001"]
                assert not h.of(CoreFailed)
                await h.type(pilot, "Иванов")  # a name is not made a SKU
                assert "Не понял ввод: Иванов" in said(pilot)
                assert not h.of(CoreFailed) and len(screen.lines) == 1

    run(main())


async def member_cheque(h: Harness, pilot: Any) -> CheckoutScreen:
    await sign_in(h, pilot)
    await h.type(pilot, "DR-1001")
    await h.type(pilot, demo_phone(6))
    screen = pilot.app.screen
    assert isinstance(screen, CheckoutScreen) and screen.card is not None
    return screen


def test_coupon_typed_in_the_russian_layout_applies(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            coupon = h.coupon(percent_bp=1000)
            typed = in_russian_layout(coupon)
            assert typed != coupon and typed.startswith("ЛС1Ж")
            async with h.run() as pilot:
                await member_cheque(h, pilot)
                await pilot.press("f7")  # at F7's prompt
                await h.type(pilot, typed)
                assert h.of(QuoteReady)[-1].quote.coupon_discount_kop == 64_990
                assert not h.of(CoreFailed)

        with harness(tmp_path / "entry") as h:
            coupon = h.coupon(percent_bp=1000)
            async with h.run() as pilot:
                await member_cheque(h, pilot)
                await h.type(pilot, in_russian_layout(coupon))  # on the entry line
                assert h.of(QuoteReady)[-1].quote.coupon_discount_kop == 64_990
                assert not h.of(CoreFailed)

    run(main())


def test_ctrl_q_under_the_russian_layout_asks_then_quits(tmp_path: Path) -> None:
    """A kitty-protocol terminal reports Ctrl+Q pressed under ЙЦУКЕН as Ctrl+Й."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")  # an open cheque: asked first
                app = pilot.app
                await pilot.press("ctrl+й")
                await settle(pilot)
                assert app.is_running and "Выйти из кассы?" in said(pilot), said(pilot)
                await pilot.press("ctrl+й")  # again: yes
                await settle(pilot)
                assert not app.is_running

    run(main())


def test_a_letter_key_listed_in_help_works_from_help(tmp_path: Path) -> None:
    """F1 over the shift screen lists P: P (or з) pressed there closes help and prints,
    as an F-key does."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await pilot.press("f11")
                await settle(pilot)
                for n, key in enumerate(("з", "P"), 1):
                    await pilot.press("f1")
                    await settle(pilot)
                    assert isinstance(pilot.app.screen, HelpScreen)
                    await pilot.press(key)
                    await settle(pilot)
                    assert isinstance(pilot.app.screen, ShiftScreen), key
                    assert len(h.of(ReportQueued)) == n, key
                await pilot.press("f1")
                await settle(pilot)
                await pilot.press("x")  # not a key of the shift screen: help stays
                await settle(pilot)
                assert isinstance(pilot.app.screen, HelpScreen)

    run(main())

"""Pilot tests: F1 help over the sign-in and checkout screens (real app, real store).

Assertions are on the rendered text (keys and their descriptions as the cashier reads
them), on the screen stack, and on the state of the screen underneath after help closes.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from textual.containers import VerticalScroll
from textual.widgets import Input, OptionList
from tui_helpers import Harness, harness, screen_text, settle, widget_text

from agent.seed import demo_phone
from tui.app import KassaApp
from tui.i18n import STRINGS, t
from tui.messages import CoreFailed, MemberIdentified
from tui.screens.base import KassaScreen
from tui.screens.checkout import CheckoutScreen
from tui.screens.help import GENERAL_HELP, HelpScreen
from tui.screens.lookup import LookupScreen
from tui.screens.signin import SignInScreen


def run(coro: Any) -> None:
    asyncio.run(coro)


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")
    assert isinstance(pilot.app.screen, CheckoutScreen)


async def open_help(pilot: Any) -> str:
    await pilot.press("f1")
    await settle(pilot)
    assert isinstance(pilot.app.screen, HelpScreen)
    return widget_text(pilot.app, "#help-box")


def has_key(text: str, key: str, description: str) -> bool:
    """A key row of the help (or a key bar item): the key, spaces, its description."""
    return re.search(rf"(^|\s){re.escape(key)}\s+{re.escape(description)}", text, re.M) is not None


def footer_items(text: str) -> list[tuple[str, str]]:
    """(key, description) pairs of a rendered key bar (two spaces between items)."""
    items = []
    for chunk in re.split(r"\s{2,}|\n", text):
        if chunk.strip():
            key, _, desc = chunk.strip().partition(" ")
            items.append((key, desc))
    return items


def test_f1_on_sign_in_lists_its_keys_and_keeps_the_pin(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert isinstance(pilot.app.screen, SignInScreen)
                assert has_key(widget_text(pilot.app, "#keys"), "F1", "Помощь")
                await pilot.press("down")
                await h.type(pilot, "2", submit=False)  # the PIN begins, for Олег
                text = await open_help(pilot)
                assert "Помощь" in text
                assert t("ru", "help.signin.2") in text
                assert has_key(text, "F1", "Помощь")
                assert has_key(text, "F10", "English")
                assert has_key(text, "Esc", "Стереть PIN")  # hidden in the key bar, described
                assert "Назад" not in text  # sign-in is the first screen: no "back"
                # no shift yet: the checkout's keys and the flows do not work here
                for key, desc in (("F6", "Списать/нет"), ("F8", "Новый чек"), ("F2", "Регистр.")):
                    assert not has_key(text, key, desc)
                    assert desc not in text
                # F6 is not a key of this screen: help stays open
                await pilot.press("f6")
                await settle(pilot)
                assert isinstance(pilot.app.screen, HelpScreen)
                await pilot.press("escape")
                await settle(pilot)
                screen = pilot.app.screen
                assert isinstance(screen, SignInScreen)
                pin = screen.query_one("#pin", Input)
                assert pin.value == "2"
                assert screen.focused is pin
                assert screen.query_one("#cashiers", OptionList).highlighted == 1
                await h.type(pilot, "222")  # the rest of the PIN: signs in as Олег
                assert isinstance(pilot.app.screen, CheckoutScreen)
                assert pilot.app.cashier_name == "Олег Смирнов"

    run(main())


def test_f1_on_checkout_lists_the_live_keys_and_returns_to_the_cheque(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                checkout = pilot.app.screen
                assert isinstance(checkout, CheckoutScreen)
                await h.type(pilot, "DR-1001")
                assert len(checkout.lines) == 1
                await h.type(pilot, "OW-40", submit=False)
                footer = footer_items(widget_text(pilot.app, "#keys"))
                assert ("F6", "Списать/нет") in footer
                text = await open_help(pilot)
                for key in checkout.HELP_LINES:
                    assert t("ru", key) in text
                assert has_key(text, "F6", "Списать/нет")
                assert has_key(text, "F7", "Купон")
                assert has_key(text, "F8", "Новый чек")
                assert has_key(text, "F2", "Регистр.")
                # every key the key bar shows is in help with the same description
                for key, desc in footer:
                    assert has_key(text, key, desc), (key, desc)
                # ...and nothing the screen does not have (the Input's own keys)
                assert "cursor" not in text.lower()
                await pilot.press("escape")
                await settle(pilot)
                assert pilot.app.screen is checkout
                entry = checkout.query_one("#entry", Input)
                assert entry.value == "OW-40"
                assert checkout.focused is entry
                assert [line.sku for line in checkout.lines] == ["DR-1001"]
                assert checkout.stage == "entry"
                # F1 closes help too; typing goes on where it was
                await open_help(pilot)
                await pilot.press("f1")
                await settle(pilot)
                assert pilot.app.screen is checkout
                await h.type(pilot, "01")
                assert [line.sku for line in checkout.lines] == ["DR-1001", "OW-4001"]
                assert not h.of(CoreFailed)

    run(main())


def test_help_follows_the_language(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                text = await open_help(pilot)
                assert has_key(text, "F6", "Списать/нет")
                await pilot.press("f10")  # in help: switches, help stays
                await settle(pilot)
                assert isinstance(pilot.app.screen, HelpScreen)
                text = widget_text(pilot.app, "#help-box")
                assert "Help" in text and "Esc or F1 - close" in text
                assert t("en", "help.checkout.1") in text
                assert has_key(text, "F6", "Spend/none")
                assert has_key(text, "F10", "Русский")
                assert "Списать" not in text and "Помощь" not in text
                await pilot.press("escape")
                await settle(pilot)
                assert isinstance(pilot.app.screen, CheckoutScreen)
                assert has_key(widget_text(pilot.app, "#keys"), "F6", "Spend/none")
                # opened in English: English straight away; F10 back to Russian
                text = await open_help(pilot)
                assert has_key(text, "F8", "New cheque")
                await pilot.press("f10")
                await settle(pilot)
                text = widget_text(pilot.app, "#help-box")
                assert has_key(text, "F8", "Новый чек")
                assert t("ru", CheckoutScreen.HELP_LINES[-1]) in text

    run(main())


def test_help_fits_80x24_and_scrolls_in_a_smaller_terminal(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run(size=(80, 24)) as pilot:
                await sign_in(h, pilot)
                await open_help(pilot)
                help_screen = pilot.app.screen
                box = help_screen.query_one("#help-box", VerticalScroll)
                assert box.region.x >= 0 and box.region.right <= 80
                assert box.region.y >= 0 and box.region.bottom <= 24
                assert box.max_scroll_x == 0 and box.max_scroll_y == 0  # all of it shows
                assert help_screen.styles.background.a < 1  # the cheque shows dimmed
                whole = screen_text(pilot.app)
                for key in CheckoutScreen.HELP_LINES:
                    assert t("ru", key) in whole  # each line whole, nothing cut
                assert has_key(whole, "Esc", "Назад")
                assert not h.of(CoreFailed)
        with harness(tmp_path / "small") as h:
            async with h.run(size=(80, 16)) as pilot:
                await sign_in(h, pilot)
                await open_help(pilot)
                box = pilot.app.screen.query_one("#help-box", VerticalScroll)
                assert box.region.bottom <= 16
                assert box.max_scroll_y > 0
                assert not has_key(screen_text(pilot.app), "Esc", "Назад")
                await pilot.press("end")
                await settle(pilot)
                assert has_key(screen_text(pilot.app), "Esc", "Назад")

    (tmp_path / "small").mkdir()
    run(main())


def test_help_lines_exist_in_both_languages_and_fit_the_box() -> None:
    screens = [c for c in _subclasses(KassaScreen) if c.HELP_LINES]
    assert {c.__name__ for c in screens} >= {"CheckoutScreen", "SignInScreen"}
    keys = {"help.close", *GENERAL_HELP}
    for cls in screens:
        assert 2 <= len(cls.HELP_LINES) <= 5, cls
        keys.update(cls.HELP_LINES)
    for key in keys:
        assert key in STRINGS, key
        for lang in ("ru", "en"):
            assert len(t(lang, key)) <= 72, (key, lang)  # the box is 76 wide, 72 inside


def _subclasses(cls: type) -> list[type]:
    import tui.screens.lookup
    import tui.screens.refund
    import tui.screens.register
    import tui.screens.shift
    import tui.screens.sync
    import tui.screens.training  # noqa: F401

    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def test_a_scan_while_help_is_open_goes_to_the_screen_underneath(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                checkout = pilot.app.screen
                assert isinstance(checkout, CheckoutScreen)
                await h.type(pilot, "12", submit=False)
                assert h.services is not None
                code = h.services.agent.identify(demo_phone(3)).code
                await open_help(pilot)
                await h.scan(pilot, code)
                assert pilot.app.screen is checkout  # help closed
                identified = h.of(MemberIdentified)
                assert [m.source for m in identified] == ["wedge"]
                assert checkout.card is not None and checkout.card.code == code
                # the typed text is untouched and no scanned character leaked anywhere
                assert checkout.query_one("#entry", Input).value == "12"
                assert not h.of(CoreFailed)

    run(main())


def test_a_function_key_in_help_closes_it_and_does_its_job(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                app = pilot.app
                assert isinstance(app, KassaApp)
                await sign_in(h, pilot)
                checkout = app.screen
                assert isinstance(checkout, CheckoutScreen)
                await h.type(pilot, demo_phone(6))  # F6 spends a member's points
                await open_help(pilot)
                await pilot.press("f6")  # the checkout's own key
                await settle(pilot)
                assert app.screen is checkout
                assert checkout.redeem == "max"
                await open_help(pilot)
                await pilot.press("f4")  # an App flow: lookup over checkout, not over help
                await settle(pilot)
                assert isinstance(app.screen, LookupScreen)
                assert not any(isinstance(s, HelpScreen) for s in app.screen_stack)
                await pilot.press("escape")
                await settle(pilot)
                assert app.screen is checkout
                # general keys in help do not reach the screen underneath
                await open_help(pilot)
                await pilot.press("enter", "x")
                await settle(pilot)
                assert isinstance(app.screen, HelpScreen)
                await pilot.press("escape")
                await settle(pilot)
                assert checkout.stage == "entry"
                assert checkout.query_one("#entry", Input).value == ""

    run(main())

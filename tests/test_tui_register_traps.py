"""Pilot tests: nothing typed on the registration form (F2) is lost without a word.

Esc on a filled form asks first (as the checkout's F8 does), Ctrl+Q names the form; a scan
or a fast paste ending in Tab fills a field (a phone the phone field, a Cyrillic name as
typed) instead of vanishing; a member card scanned there or a phone already registered
offers to open that member at the checkout; consent boxes show a visible tick; after a
registration Enter takes the new member to a purchase and typing starts the next form.
Real till store, real back office, fake clock and key timing (tests/tui_helpers.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.widgets import Input
from tui_helpers import Harness, harness, screen_text, settle, widget_text

from agent.seed import demo_phone
from tui.messages import CoreFailed, MemberIdentified
from tui.screens.checkout import CheckoutScreen
from tui.screens.register import MemberRegistered, RegisterScreen, scan_kind

PHONE = "+7 999 555-01-23"


async def open_form(h: Harness, pilot: Any) -> RegisterScreen:
    await pilot.press("enter")
    await h.type(pilot, "1111")
    await pilot.press("f2")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, RegisterScreen)
    return screen


def said(pilot: Any) -> str:
    return " ".join(widget_text(pilot.app, "#say").split())


def value(screen: RegisterScreen, field: str) -> str:
    return screen.query_one(field, Input).value


def test_esc_on_a_filled_form_asks_first_and_only_enter_leaves(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await open_form(h, pilot)
                await h.type(pilot, "+7999555", submit=False)
                await pilot.press("escape")
                await settle(pilot)
                assert pilot.app.screen is screen
                assert "Бросить анкету?" in said(pilot) and "Enter — да, Esc — нет" in said(pilot)
                await pilot.press("f10")  # the language switch keeps the question, translated
                await settle(pilot)
                assert "Drop this form?" in said(pilot)
                await pilot.press("f10")
                await settle(pilot)
                await pilot.press("escape")  # no: the form stays, whole
                await settle(pilot)
                assert pilot.app.screen is screen and value(screen, "#phone") == "+7999555"
                assert "Анкета на месте" in said(pilot)
                await pilot.press("escape")  # asked again; a typed key is no, and is typed
                await h.type(pilot, "0", submit=False)
                assert pilot.app.screen is screen and value(screen, "#phone") == "+79995550"
                assert "Бросить" not in said(pilot)
                await pilot.press("enter")  # Enter now is the field's own (next field)
                await settle(pilot)
                assert pilot.app.screen is screen
                assert screen.query_one("#first-name", Input).has_focus
                # Ctrl+Q names the form among what quitting would lose; Esc stays.
                await pilot.press("ctrl+q")
                await settle(pilot)
                assert "незаконченная анкета участника" in said(pilot)
                await pilot.press("escape")
                await settle(pilot)
                assert pilot.app.is_running and pilot.app.screen is screen
                # Ctrl+Q over Esc's question closes it: after "not quitting", an Enter is
                # the field's own again, not a yes nobody saw.
                await pilot.press("escape", "ctrl+q", "escape")
                await settle(pilot)
                assert "Выход отменён" in said(pilot)
                await pilot.press("enter")
                await settle(pilot)
                assert pilot.app.screen is screen and value(screen, "#phone") == "+79995550"
                screen.query_one("#first-name", Input).focus()
                # Esc, Enter: gone, to the checkout.
                await pilot.press("escape", "enter")
                await settle(pilot)
                assert isinstance(pilot.app.screen, CheckoutScreen)
                # An empty form is left at once.
                await pilot.press("f2")
                await settle(pilot)
                await pilot.press("escape")
                await settle(pilot)
                assert isinstance(pilot.app.screen, CheckoutScreen)

    asyncio.run(main())


def test_a_burst_ending_in_tab_fills_the_fields_and_registers(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await open_form(h, pilot)
                await h.scan(pilot, "+79995550123", suffix="tab")  # a paste, then Tab
                assert value(screen, "#phone") == "+79995550123"
                assert screen.query_one("#first-name", Input).has_focus
                assert "Считано в поле: Телефон" in said(pilot)
                await pilot.press("f10")  # the message follows the language switch
                await settle(pilot)
                assert "Read into the field: Phone" in said(pilot)
                await pilot.press("f10")
                await settle(pilot)
                # A Cyrillic name pasted fast: kept as typed (no scanner layout repair).
                await h.scan(pilot, "Екатерина", suffix="tab")
                assert value(screen, "#first-name") == "Екатерина"
                assert value(screen, "#phone") == "+79995550123"
                assert screen.query_one("#birthday", Input).has_focus
                # A phone scanned while another field has the focus goes to the phone field.
                await h.scan(pilot, "+79995550124", suffix="enter")
                assert value(screen, "#phone") == "+79995550124"
                assert value(screen, "#birthday") == ""
                screen.query_one("#consent-rules").focus()
                await pilot.press("space", "f12")
                await settle(pilot)
                done = h.of(MemberRegistered)
                assert len(done) == 1, h.of(CoreFailed)
                assert done[0].registration.card.first_name == "Екатерина"

    asyncio.run(main())


def test_a_member_card_scanned_on_the_form_opens_the_member(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await open_form(h, pilot)
                assert h.services is not None
                card = h.services.agent.identify(demo_phone(3))
                await h.type(pilot, "Вера", submit=False)
                screen.query_one("#first-name", Input).focus()
                await h.type(pilot, "Ан", submit=False)
                h.keys.now += 1.0  # the scan comes a while after the last typed key
                await h.scan(pilot, card.code)
                assert h.of(MemberIdentified)[-1].card.code == card.code
                assert card.code in said(pilot) and "уже в программе" in said(pilot)
                assert value(screen, "#first-name") == "Ан"  # the digits did not land there
                await pilot.press("escape")  # stay: the form is as it was
                await settle(pilot)
                assert pilot.app.screen is screen and value(screen, "#phone") == "Вера"
                await h.scan(pilot, card.code, suffix="tab")
                await pilot.press("enter")  # open them at the checkout
                await settle(pilot)
                checkout = pilot.app.screen
                assert isinstance(checkout, CheckoutScreen)
                assert checkout.card is not None and checkout.card.code == card.code
                # A coupon is no card: said so, nothing opened.
                await pilot.press("f2")
                await settle(pilot)
                await h.scan(pilot, h.coupon())
                assert "купон" in said(pilot).lower()
                assert isinstance(pilot.app.screen, RegisterScreen)

    asyncio.run(main())


def test_a_phone_already_registered_says_so_and_offers_the_member(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await open_form(h, pilot)
                assert h.services is not None
                known = h.services.agent.identify(demo_phone(1))
                await h.type(pilot, demo_phone(1))
                await h.type(pilot, "Вера")
                await h.type(pilot, "")
                await pilot.press("space", "f12")
                await settle(pilot)
                text = said(pilot)
                assert "Конфликт данных" not in text
                assert "Телефон уже зарегистрирован" in text and known.code in text
                assert "Esc — исправить телефон" in text
                assert screen.query_one("#phone", Input).has_focus
                await pilot.press("f10")
                await settle(pilot)
                assert "already registered" in said(pilot)
                await pilot.press("f10")
                await settle(pilot)
                await pilot.press("enter")
                await settle(pilot)
                checkout = pilot.app.screen
                assert isinstance(checkout, CheckoutScreen)
                assert checkout.card is not None and checkout.card.code == known.code
                assert checkout.card.identified_by == "phone"  # typed there, not scanned

    asyncio.run(main())


def test_consent_boxes_show_a_visible_tick(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await open_form(h, pilot)
                rules_line = next(
                    ln for ln in screen_text(pilot.app).split("\n") if "правилами" in ln
                )
                assert "[ ]" in rules_line and "[x]" not in rules_line
                keys = widget_text(pilot.app, "#keys")
                assert "Зарегистрировать" in keys and "bind." not in keys
                screen.query_one("#consent-rules").focus()
                await pilot.press("space")
                await settle(pilot)
                lines = screen_text(pilot.app).split("\n")
                assert "[x]" in next(ln for ln in lines if "правилами" in ln)
                assert "[ ]" in next(ln for ln in lines if "рекламные" in ln)

    asyncio.run(main())


def test_after_a_registration_typing_starts_the_next_form(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await open_form(h, pilot)
                await h.type(pilot, PHONE)
                await h.type(pilot, "Вера")
                await h.type(pilot, "")
                await pilot.press("space", "f12")
                await settle(pilot)
                assert screen.done is not None
                assert "Enter — к покупке" in said(pilot)
                await pilot.press("space")  # a stray Space keeps the card and its QR
                await settle(pilot)
                assert screen.done is not None
                await h.type(pilot, "+7", submit=False)  # the next customer's phone
                assert screen.done is None and value(screen, "#phone") == "+7"
                assert screen.query_one("#phone", Input).has_focus

    asyncio.run(main())


def test_scan_kind() -> None:
    from agent.identify import make_member_code

    code = make_member_code(100_000_001)
    assert scan_kind(code) == "member"
    wrong = code[:-1] + str((int(code[-1]) + 1) % 10)  # a check digit that fails: no card
    assert scan_kind(wrong) != "member"
    assert scan_kind("KM1:abc") == "member" and scan_kind("]Q1KM1:abc") == "member"
    assert scan_kind("KC1:xyz") == "coupon"
    assert scan_kind("+7 999 555-01-23") == "phone" and scan_kind("89995550123") == "phone"
    assert scan_kind("Екатерина") == "text" and scan_kind("05.03.1990") == "text"


def test_birthday_dots_typed_under_the_russian_layout() -> None:
    from datetime import date

    from tui.screens.register import parse_birthday

    assert parse_birthday("05ю03ю1990") == parse_birthday("05б03б1990") == date(1990, 3, 5)
    assert parse_birthday("05,03,1990") == date(1990, 3, 5)


def test_quit_question_names_enter_only_where_enter_would_quit(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await open_form(h, pilot)
                await h.type(pilot, "+7999555", submit=False)
                await pilot.press("ctrl+q")  # the phone field holds text: Enter is its own
                await settle(pilot)
                assert "Ctrl+Q — да, Esc — нет" in said(pilot)
                assert "Enter — да" not in said(pilot)
                await pilot.press("escape")
                screen.query_one("#first-name", Input).focus()  # an empty field
                await settle(pilot)
                await pilot.press("ctrl+q")
                await settle(pilot)
                assert "Ctrl+Q или Enter — да" in said(pilot)
                await pilot.press("enter")  # and Enter there does quit
                await settle(pilot)
                assert not pilot.app.is_running

    asyncio.run(main())

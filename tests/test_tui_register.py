"""Pilot tests: registering a member at the till (F2) against a real store and the real
back office: consents recorded with the text version and cashier, the welcome bonus
shown, the on-screen QR decodes with a real reader, offline registration merged later,
bad input writes nothing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
from escpos_walker import decode_qr
from textual.widgets import Checkbox, Input
from tui_helpers import Harness, harness, screen_text, settle, widget_text

from tui.messages import CoreFailed
from tui.screens.register import MemberRegistered, RegisterScreen

PHONE = "+7 999 555-01-23"


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")


def counts(h: Harness) -> tuple[int, int]:
    assert h.services is not None
    with h.services.store.read() as conn:
        members = conn.execute("SELECT count(*) FROM members").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    return int(members), int(events)


async def fill(
    h: Harness,
    pilot: Any,
    phone: str,
    name: str,
    birthday: str = "",
    rules: bool = True,
    marketing: bool = False,
) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, RegisterScreen)
    screen.query_one("#phone", Input).focus()
    await h.type(pilot, phone)  # Enter moves to the next field
    await h.type(pilot, name)
    await h.type(pilot, birthday)
    assert screen.query_one("#consent-rules", Checkbox).has_focus
    if rules:
        await pilot.press("space")
    await pilot.press("tab")
    if marketing:
        await pilot.press("space")
    await pilot.press("f12")
    await settle(pilot)


_HALF_BITS = {" ": (0, 0), "▀": (1, 0), "▄": (0, 1), "█": (1, 1)}


def decode_terminal_qr(text: str) -> list[str]:
    """Read the half-block QR as the terminal shows it (blocks are light on dark)."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    width = max(len(ln) for ln in lines)
    rows = []
    for line in lines:
        padded = line.ljust(width)
        rows += [[_HALF_BITS[ch][0] for ch in padded], [_HALF_BITS[ch][1] for ch in padded]]
    dark = ~np.array(rows, bool)
    dark = np.pad(dark, 4, constant_values=True)  # the dark terminal around the symbol
    return decode_qr(dark.repeat(4, 0).repeat(4, 1))


def test_register_with_consents_shows_bonus_and_a_qr_that_decodes(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await pilot.press("f2")
                await settle(pilot)
                assert isinstance(pilot.app.screen, RegisterScreen)
                assert h.services is not None
                version = h.services.agent.programme().consent_text_version
                assert f"редакция {version}" in screen_text(pilot.app)
                before = counts(h)
                await fill(h, pilot, PHONE, "Вера", "05.03.1990", marketing=True)
                done = h.of(MemberRegistered)
                assert len(done) == 1, h.of(CoreFailed)
                reg = done[0].registration
                assert counts(h) == (before[0] + 1, before[1] + 1)
                # The store: the phone's fingerprint and a mask without digits only (the
                # screen showed the typed number's last digits); consents recorded.
                assert h.services is not None
                row = h.services.store.one(
                    "SELECT first_name, phone_masked, phone_hash, consent_programme, "
                    "consent_marketing, provisional FROM members WHERE code = ?",
                    (reg.card.code,),
                )
                assert row is not None
                assert row[0] == "Вера" and row[1] == "+7 *** ***-**-**"
                assert reg.card.phone_masked.endswith("01-23")
                assert "9995550123" not in row[2] and row[3:5] == (1, 1)
                payload = json.loads(
                    h.services.store.one(
                        "SELECT payload FROM outbox WHERE type = 'member_registered'"
                    )[0]
                )
                assert payload["consent_text_version"] == version
                assert payload["cashier_id"] == "anna"
                assert payload["birthday"] == "1990-03-05"
                assert payload["consent_marketing"] is True
                assert "9995550123" not in json.dumps(payload)
                # On screen: the welcome bonus and the code; the QR decodes to the code.
                text = widget_text(pilot.app, "#register-result")
                assert reg.welcome_points > 0
                assert f"+{reg.welcome_points}" in text.replace("\u00a0", "").replace(" ", "")
                assert reg.card.code in text
                assert decode_terminal_qr(widget_text(pilot.app, "#register-qr")) == [reg.card.code]
                # The member is found by the phone at once.
                card = h.services.agent.identify(PHONE)
                assert card.member_id == reg.card.member_id
                # English on F10.
                await pilot.press("f10")
                await settle(pilot)
                assert "Welcome bonus" in widget_text(pilot.app, "#register-result")
                # Esc back to checkout.
                await pilot.press("escape")
                await settle(pilot)
                assert not isinstance(pilot.app.screen, RegisterScreen)

    asyncio.run(main())


def test_bad_input_shows_what_is_wrong_and_writes_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await pilot.press("f2")
                await settle(pilot)
                before = counts(h)
                # No consent to the rules.
                await fill(h, pilot, PHONE, "Вера", rules=False)
                assert h.of(CoreFailed)[-1].code == "consent_required"
                assert "правилами программы" in widget_text(pilot.app, "#say")
                assert counts(h) == before
                # A phone number that is not one.
                screen = pilot.app.screen
                screen.query_one("#phone", Input).value = ""
                screen.query_one("#first-name", Input).value = ""
                screen.query_one("#birthday", Input).value = ""
                await fill(h, pilot, "12345", "Вера", rules=False)
                # The refusal put the focus on the box at fault: Space ticks it.
                assert screen.query_one("#consent-rules", Checkbox).has_focus
                await pilot.press("space", "f12")
                await settle(pilot)
                failed = h.of(CoreFailed)[-1]
                assert (failed.op_name, failed.code) == ("register_member", "bad_phone")
                assert "телефон" in widget_text(pilot.app, "#say").lower()
                assert counts(h) == before
                # A birthday in the right format on a day that does not exist: said so
                # (not "use DD.MM.YYYY"), in either language.
                screen.query_one("#phone", Input).value = PHONE
                screen.query_one("#birthday", Input).value = "31.02.1990"
                await pilot.press("f12")
                await settle(pilot)
                said = widget_text(pilot.app, "#say")
                assert "31.02.1990" in said and "такой даты нет" in said, said
                assert "ДД.ММ.ГГГГ" not in said
                await pilot.press("f10")
                await settle(pilot)
                assert "there is no such date" in widget_text(pilot.app, "#say")
                await pilot.press("f10")
                await settle(pilot)
                # A birthday that is not a date at all.
                screen.query_one("#birthday", Input).value = "1990.31"
                await pilot.press("f12")
                await settle(pilot)
                assert "ДД.ММ.ГГГГ" in widget_text(pilot.app, "#say")
                assert counts(h) == before
                assert not h.of(MemberRegistered)
                # A phone already in the programme.
                from agent.seed import demo_phone

                screen.query_one("#phone", Input).value = demo_phone(1)
                screen.query_one("#birthday", Input).value = ""
                await pilot.press("f12")
                await settle(pilot)
                assert "уже зарегистрирован" in widget_text(pilot.app, "#say")
                assert counts(h) == before

    asyncio.run(main())


def test_offline_registration_is_provisional_and_reaches_the_back_office(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None and h.services.sync is not None
                await sign_in(h, pilot)
                h.network_down()
                h.clock.advance(minutes=5)  # beyond the online grace: the till is offline
                await pilot.press("f2")
                await settle(pilot)
                await fill(h, pilot, PHONE, "Вера")
                reg = h.of(MemberRegistered)[-1]
                assert reg.offline and reg.registration.card.provisional
                assert "предварительная" in widget_text(pilot.app, "#register-result")
                # Back online: the registration is pushed once and the member exists centrally.
                h.network_up()
                sent = await asyncio.to_thread(h.services.sync.drain)
                assert sent.acked == 1
                with h.bo.db.reading() as tx:
                    rows = tx.all(
                        "SELECT first_name, consent_text_version, cashier_id, terminal_id "
                        "FROM members WHERE code = ?",
                        (reg.registration.card.code,),
                    )
                version = h.services.agent.programme().consent_text_version
                assert [tuple(r) for r in rows] == [("Вера", version, "anna", "till-1")]

    asyncio.run(main())


def test_parse_birthday() -> None:
    from datetime import date

    import pytest

    from agent.errors import InputError
    from tui.screens.register import parse_birthday

    assert parse_birthday("") is None
    assert parse_birthday(" 29.02.2000 ") == date(2000, 2, 29)
    assert parse_birthday("1.2.1990") == date(1990, 2, 1)
    assert parse_birthday("01/02/1990") == parse_birthday("1990-02-01") == date(1990, 2, 1)
    for text in ("31.02.1990", "29.02.1900", "00.01.1990", "12.13.1990", "1990-02-30"):
        with pytest.raises(InputError) as e:
            parse_birthday(text)
        assert "такой даты нет" in e.value.message_ru and "no such date" in e.value.message_en
    for text in ("1990.31", "31.02.90", "завтра", "31021990"):
        with pytest.raises(InputError) as e:
            parse_birthday(text)
        assert "ДД.ММ.ГГГГ" in e.value.message_ru and "DD.MM.YYYY" in e.value.message_en

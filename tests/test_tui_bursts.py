"""Pilot tests: a burst of keys delivered at once (a fast wedge scanner, a driver handing
over a whole read, a paste) is routed as if each key had been handled before the next:
a scan's keys reach no widget, and the keys after a scanner-like frame go, in order, to
the field the frame moved the focus to.

Unlike ``Harness.scan`` and ``Harness.type`` (each key posted once the app has handled the
one before), :func:`burst` posts every key event to the app's queue before it handles any,
as the terminal driver does with one read of a fast scanner or a paste.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.widgets import Input, OptionList
from tui_helpers import Harness, harness, key_event, settle, widget_text

from agent.seed import demo_phone
from tui.messages import Scanned
from tui.screens.lookup import LookupScreen, MemberLooked, MembersMatched
from tui.screens.register import RegisterScreen

_NAMED = {"\t": "tab", "\r": "enter"}


async def burst(h: Harness, pilot: Any, keys: Iterable[str], gap_s: float = 0.002) -> None:
    """Post ``keys`` (key names or characters) to the app all at once, ``gap_s`` apart by
    the wedge's key clock, then wait until the app has handled them."""
    events = []
    for key in keys:
        event = key_event(_NAMED.get(key, key))
        event.set_sender(pilot.app)
        events.append(event)
    h.keys.step = gap_s
    try:
        for event in events:
            pilot.app.post_message(event)
        await settle(pilot)
    finally:
        h.keys.now += 1.0
        h.keys.step = 0.2
    await settle(pilot)


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")


def test_a_scan_burst_on_the_sign_in_list_leaves_no_digit_in_the_pin(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                code = h.services.agent.identify(demo_phone(5)).code
                assert isinstance(pilot.app.focused, OptionList)
                await burst(h, pilot, [*code, "enter"])
                assert [m.text for m in h.of(Scanned)] == [code]
                assert pilot.app.screen.query_one("#pin", Input).value == ""
                assert isinstance(pilot.app.focused, OptionList)
                assert "Сначала войдите" in widget_text(pilot.app, "#say")
                # The PIN typed next is the cashier's alone: it signs in.
                await sign_in(h, pilot)
                assert h.services.shift is not None

    asyncio.run(main())


def test_a_scan_burst_on_the_lookup_match_list_leaves_the_entry_empty(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                await pilot.press("f4")
                await settle(pilot)
                assert isinstance(pilot.app.screen, LookupScreen)
                await h.type(pilot, "ольг")
                assert h.of(MembersMatched)[-1].matches
                assert isinstance(pilot.app.focused, OptionList)
                code = h.services.agent.identify(demo_phone(5)).code
                await burst(h, pilot, [*code, "enter"])
                assert h.of(MemberLooked)[-1].card.code == code
                entry = pilot.app.screen.query_one("#lookup-entry", Input)
                assert entry.value == ""
                # The next Enter does not search the code again.
                looked = len(h.of(MemberLooked))
                await pilot.press("enter")
                await settle(pilot)
                assert len(h.of(MemberLooked)) == looked

    asyncio.run(main())


def test_a_pasted_phone_tab_name_fills_both_fields_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await pilot.press("f2")
                await settle(pilot)
                screen = pilot.app.screen
                assert isinstance(screen, RegisterScreen)
                await burst(h, pilot, "89031112244\tСветлана")
                phone = screen.query_one("#phone", Input).value
                assert "".join(c for c in phone if c.isdigit()) == "89031112244"
                assert screen.query_one("#first-name", Input).value == "Светлана"
                assert pilot.app.focused is screen.query_one("#first-name", Input)

    asyncio.run(main())


def test_typing_delivered_at_once_reaches_the_field_whole_and_in_order(tmp_path: Path) -> None:
    """Slow keys (typing) queued together are no scan: every one reaches the entry line,
    in order, and the Enter among them searches what they typed."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await pilot.press("f4")
                await settle(pilot)
                await burst(h, pilot, "ольг\r", gap_s=0.2)
                matched = h.of(MembersMatched)[-1]
                assert matched.query == "ольг" and matched.matches
                assert not h.of(Scanned)

    asyncio.run(main())


def test_a_scan_whose_first_keys_went_on_to_the_list_is_taken_after_them(
    tmp_path: Path,
) -> None:
    """The app passed the first 12 digits on to the name list (no newer key was queued
    then) before the last digit and Enter arrived: the screen takes the scan after the
    list has handed those digits to the PIN, so the wipe leaves no digit there."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                app = pilot.app
                assert h.services is not None
                code = h.services.agent.identify(demo_phone(5)).code
                keys = [key_event(k) for k in [*code, "enter"]]
                for event in keys:
                    event.set_sender(app)

                def the_rest() -> None:  # queued behind the app's flush of the first 12
                    for event in keys[12:]:
                        app.post_message(event)

                h.keys.step = 0.002
                try:
                    for event in keys[:12]:
                        app.post_message(event)
                    app.call_later(the_rest)
                    await settle(pilot)
                finally:
                    h.keys.step = 0.2
                assert [m.text for m in h.of(Scanned)] == [code]
                assert app.screen.query_one("#pin", Input).value == ""
                assert isinstance(app.focused, OptionList)

    asyncio.run(main())


def test_keys_after_a_scan_the_screen_never_reports_taken_still_arrive(tmp_path: Path) -> None:
    """The keys after a scan wait for the screen's widgets to report it taken; when that
    report never comes (the screen closed under it), they go on after
    ``SCAN_TAKE_MAX_S``, in order, instead of being held for good."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                app = pilot.app
                assert h.services is not None
                app._after_scan_handled = lambda screen, token: None  # type: ignore[method-assign]
                code = h.services.agent.identify(demo_phone(5)).code
                await burst(h, pilot, [*code, "enter", "1", "2"])
                pin = app.screen.query_one("#pin", Input)
                await asyncio.sleep(app.SCAN_TAKE_MAX_S + 0.3)
                await settle(pilot)
                assert pin.value == "12"

    asyncio.run(main())

"""Pilot tests: traps found walking sign-in, lookup and help in both languages.

Typing on the lookup screen always reaches its entry line (the match list has the focus
after a name search, and the message tells the cashier to refine the query); a scan at
sign-in leaves nothing in the PIN field. Real till store and back office (tui_helpers).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_tui_checkout import said
from textual.widgets import Input, OptionList
from tui_helpers import Harness, harness, settle

from tui.messages import CoreFailed, ShiftOpened
from tui.screens.lookup import LookupScreen, MemberLooked, MembersMatched
from tui.screens.signin import SignInScreen


def run(coro: Any) -> None:
    asyncio.run(coro)


async def open_lookup(h: Harness, pilot: Any) -> LookupScreen:
    await pilot.press("enter")
    await h.type(pilot, "1111")
    await pilot.press("f4")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, LookupScreen)
    return screen


def test_refining_a_name_search_types_into_the_entry_line(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path, members=200) as h:
            async with h.run() as pilot:
                screen = await open_lookup(h, pilot)
                await h.type(pilot, "ан")
                cut = h.of(MembersMatched)[-1]
                assert cut.more and isinstance(screen.focused, OptionList)
                name = next(m.first_name for m in cut.matches if m.first_name)
                assert name is not None
                await h.type(pilot, name)  # refine, as the message says: a new search
                entry = screen.query_one("#lookup-entry", Input)
                assert h.of(MembersMatched)[-1].query == name, said(pilot)
                assert not h.of(MemberLooked)  # Enter did not open the first match
                matched = h.of(MembersMatched)[-1].matches
                assert all(name.lower() in (m.first_name or "").lower() for m in matched)
                assert isinstance(screen.focused, OptionList)  # the new matches to pick
                await pilot.press("x")  # a slip: it goes to the entry line, and is erased
                await settle(pilot)
                assert screen.focused is entry and entry.value == "x"
                await pilot.press("backspace", "down")  # Down from the entry: the list
                await settle(pilot)
                assert isinstance(screen.focused, OptionList) and screen.focused.highlighted == 0
                await pilot.press("enter")
                await settle(pilot)
                assert h.of(MemberLooked)[-1].card.member_id == matched[0].member_id
                assert screen.focused is entry

    run(main())


def test_a_scan_at_sign_in_leaves_no_digits_in_the_pin(tmp_path: Path) -> None:
    """A member card scanned before signing in: its digits do not stay in the PIN field
    (the PIN typed next would be refused and cost a try); the cashier is told why."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = pilot.app.screen
                assert isinstance(screen, SignInScreen)
                await h.scan(pilot, "0001000000018")
                await settle(pilot)
                assert screen.query_one("#pin", Input).value == ""
                assert "Сначала войдите" in said(pilot)
                await h.type(pilot, "1111")
                assert not h.of(CoreFailed)
                assert [o.cashier.cashier_id for o in h.of(ShiftOpened)] == ["anna"]

    run(main())


def test_a_scan_on_the_match_list_leaves_the_entry_line_empty(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path, members=200) as h:
            async with h.run() as pilot:
                screen = await open_lookup(h, pilot)
                await h.type(pilot, "ан")
                assert isinstance(screen.focused, OptionList)
                await h.scan(pilot, "0001000000018")
                await settle(pilot)
                assert [m.card.code for m in h.of(MemberLooked)] == ["0001000000018"]
                assert screen.query_one("#lookup-entry", Input).value == ""

    run(main())

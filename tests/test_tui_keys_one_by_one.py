"""The two Pilot tests that press keys one at a time (``pilot.press``, waiting for the app
after each key) instead of posting them in one go as every other test does (tui_helpers):
a scanner burst and a typed phone must come out the same either way."""

from __future__ import annotations

import asyncio
from pathlib import Path

from textual.widgets import Input
from tui_helpers import harness

from agent.seed import demo_phone
from tui.messages import MemberIdentified, Scanned
from tui.screens.checkout import CheckoutScreen


def test_scan_pressed_one_by_one_is_a_scan(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await pilot.press("enter")
                await h.type(pilot, "1111", one_by_one=True)
                assert isinstance(pilot.app.screen, CheckoutScreen)
                await h.type(pilot, "DR-1001", one_by_one=True)
                assert h.services is not None
                code = h.services.agent.identify(demo_phone(3)).code
                await h.scan(pilot, code, one_by_one=True)
                assert [s.text for s in h.of(Scanned)] == [code]
                identified = h.of(MemberIdentified)[-1]
                assert identified.source == "wedge" and identified.card.code == code
                # the scanned characters did not stay in the entry line
                assert pilot.app.screen.query_one("#entry", Input).value == ""
                assert [ln.sku for ln in pilot.app.screen.lines] == ["DR-1001"]

    asyncio.run(main())


def test_phone_typed_one_by_one_is_typing(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await pilot.press("enter")
                await h.type(pilot, "1111", one_by_one=True)
                await h.type(pilot, "DR-1001", one_by_one=True)
                phone = demo_phone(5)
                await h.type(
                    pilot,
                    f"8 {phone[2:5]} {phone[5:8]}-{phone[8:10]}-{phone[10:]}",
                    one_by_one=True,
                )
                assert h.of(Scanned) == []  # eleven digits typed at 0.2 s a key: no scan
                card = h.of(MemberIdentified)[-1].card
                assert card.identified_by == "phone"
                assert pilot.app.screen.query_one("#entry", Input).value == ""

    asyncio.run(main())

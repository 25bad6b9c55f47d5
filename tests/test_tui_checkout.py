"""Pilot tests: sign-in and shift, checkout (scan, accept, confirm), against a real store
and the real back office."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tui_helpers import harness

from agent.seed import demo_phone
from tui.messages import CheckoutCommitted, MemberIdentified, ShiftOpened


def test_sign_in_then_scan_accept_confirm(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                app = pilot.app
                await pilot.press("enter")
                await h.type(pilot, "1111")
                opened = h.of(ShiftOpened)
                assert opened and opened[0].cashier.cashier_id == "anna"
                await h.type(pilot, "DR-1001")
                code = app.services.agent.identify(demo_phone(3)).code
                await h.scan(pilot, code)
                ident = h.of(MemberIdentified)
                assert ident[-1].source == "wedge"
                await pilot.press("enter")
                await pilot.pause()
                await pilot.press("enter")
                from tui_helpers import settle

                await settle(pilot)
                done = h.of(CheckoutCommitted)
                assert len(done) == 1
                print(done[0].slip_text)

    asyncio.run(main())

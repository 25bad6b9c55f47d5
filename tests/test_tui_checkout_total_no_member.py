"""Pilot test: a cheque with lines and no member yet shows its total (the lines' sum
before loyalty), so the cashier can name it before the card is scanned; the member's
quote then takes over the same row."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_tui_training import sign_in
from tui_helpers import harness, settle, widget_text

from agent.seed import demo_phone
from tui.i18n import money


def test_total_is_shown_before_the_member(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, "=4999,50")
                await settle(pilot)
                text = widget_text(pilot.app, "#cheque")
                assert "Итого" in text and money("ru", 1149850) in text, text
                await pilot.press("f10")
                await settle(pilot)
                text = widget_text(pilot.app, "#cheque")
                assert "Total" in text and money("en", 1149850) in text, text
                await pilot.press("f10")
                await h.type(pilot, demo_phone(1))
                await settle(pilot)
                text = widget_text(pilot.app, "#cheque")
                assert text.count("Итого") == 1 and "К оплате" in text, text

    asyncio.run(main())

"""Pilot test: a phone already in the programme is said once, in either language: the
question names the member and what Enter and Esc do, with no title repeating it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_tui_register_traps import open_form, said
from tui_helpers import harness, settle

from agent.seed import demo_phone


def test_a_registered_phone_is_said_once(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await open_form(h, pilot)
                await h.type(pilot, demo_phone(1))
                await h.type(pilot, "Вера")
                await h.type(pilot, "")
                await pilot.press("space", "f12")
                await settle(pilot)
                text = said(pilot)
                assert text.count("Телефон") == 1 and text.count("уже") == 1, text
                assert "Enter — открыть его на кассе" in text
                await pilot.press("f10")
                await settle(pilot)
                text = said(pilot)
                assert text.count("already registered") == 1, text
                assert text.startswith("This phone is already registered"), text

    asyncio.run(main())

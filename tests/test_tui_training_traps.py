"""Pilot tests: the training switch (F9) loses no work: a cheque in progress is dropped
only when the cashier says so, a second Enter while the copy is prepared does not switch
back (nor leave the checkout), a scan on the training screen reaches the cheque."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_tui_training import sign_in, toggle
from tui_helpers import harness, settle, widget_text

from agent.seed import demo_phone
from agent.training import is_training
from tui.messages import CoreRequested, MemberIdentified
from tui.screens.checkout import CheckoutScreen
from tui.screens.training import TrainingScreen, TrainingToggled, switch_training


def test_a_second_enter_while_switching_does_not_switch_back(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                await pilot.press("f9")
                await settle(pilot)
                screen = pilot.app.screen
                assert isinstance(screen, TrainingScreen)
                # Enter pressed again before the worker has answered (the copy of a big
                # store takes seconds): both presses reach the screen in one go.
                screen.action_switch()
                screen.action_switch()
                await settle(pilot)
                # One switch only: two would copy the store concurrently onto one file.
                switches = [m for m in h.of(CoreRequested) if m.op is switch_training]
                assert [m.args for m in switches] == [(True,)]
                assert [m.on for m in h.of(TrainingToggled)] == [True]
                assert h.services.training and is_training(h.services.store)
                assert isinstance(pilot.app.screen, CheckoutScreen)
                assert h.services.shift is not None  # still signed in

    asyncio.run(main())


def test_an_open_cheque_is_dropped_only_when_confirmed(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                checkout: Any = pilot.app.screen
                await h.type(pilot, "DR-1001")
                assert len(checkout.lines) == 1
                await pilot.press("f9")
                await settle(pilot)
                await pilot.press("enter")
                await settle(pilot)
                assert isinstance(pilot.app.screen, TrainingScreen)
                assert not h.of(TrainingToggled)
                assert "Открыт чек — он будет отменён" in widget_text(pilot.app, "#say")
                await pilot.press("f10")
                await settle(pilot)
                assert "A cheque is open" in widget_text(pilot.app, "#say")
                await pilot.press("f10", "escape")  # keep the cheque
                await settle(pilot)
                assert isinstance(pilot.app.screen, TrainingScreen)
                await pilot.press("escape")
                await settle(pilot)
                assert pilot.app.screen is checkout and len(checkout.lines) == 1
                assert not h.services.training
                await toggle(pilot)  # asks again...
                assert not h.of(TrainingToggled)
                await pilot.press("enter")  # ...and Enter drops the cheque and switches
                await settle(pilot)
                assert [m.on for m in h.of(TrainingToggled)] == [True]
                assert pilot.app.screen is checkout and checkout.lines == []
                # Nothing open: the switch back needs no question.
                await toggle(pilot)
                assert [m.on for m in h.of(TrainingToggled)] == [True, False]

    asyncio.run(main())


def test_a_scan_on_the_training_screen_reaches_the_cheque(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                checkout: Any = pilot.app.screen
                await pilot.press("f9")
                await settle(pilot)
                assert isinstance(pilot.app.screen, TrainingScreen)
                code = h.services.agent.identify(demo_phone(3)).code
                await h.scan(pilot, code)  # a member's card
                assert pilot.app.screen is checkout
                assert checkout.card is not None and checkout.card.code == code
                assert [m.source for m in h.of(MemberIdentified)] == ["wedge"]
                assert not h.services.training and not h.of(TrainingToggled)

    asyncio.run(main())

"""Pilot tests: F9 pressed over another screen (F11's X report, F2's form) switches the
whole till, not only the screen on top: the open cheque or form below is asked about
before it is dropped, and after the switch the checkout's cheque belongs to the store now
in use (a training number never reaches the real journal, a real number never the copy)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_tui_training import sign_in
from tui_helpers import harness, settle, widget_text

from agent.seed import demo_phone
from tui.messages import CheckoutCommitted
from tui.screens.checkout import CheckoutScreen
from tui.screens.register import RegisterScreen
from tui.screens.training import TrainingScreen, TrainingToggled


async def switch_over_shift(pilot: Any) -> None:
    """F11 then F9 and Enter: the training switch opened over the shift screen."""
    await pilot.press("f11")
    await settle(pilot)
    await pilot.press("f9")
    await settle(pilot)
    assert isinstance(pilot.app.screen, TrainingScreen)
    await pilot.press("enter")
    await settle(pilot)


def test_leaving_training_from_the_x_report_starts_a_real_cheque(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                checkout: Any = pilot.app.screen
                assert isinstance(checkout, CheckoutScreen)
                await switch_over_shift(pilot)  # training on
                assert h.services.training
                assert pilot.app.screen is checkout
                assert str(checkout.receipt_id).startswith("TRN-")
                await switch_over_shift(pilot)  # and off again, from its X report
                assert not h.services.training
                assert pilot.app.screen is checkout
                assert not str(checkout.receipt_id).startswith("TRN-")
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(1))
                await pilot.press("enter", "enter")
                await settle(pilot)
                receipt = h.of(CheckoutCommitted)[-1].result.receipt_id
                assert not receipt.startswith("TRN-")
                with h.services.store.read() as conn:
                    ids = [r[0] for r in conn.execute("SELECT receipt_id FROM purchases")]
                assert ids == [receipt]

    asyncio.run(main())


def test_an_open_cheque_under_the_x_report_is_asked_about(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                checkout: Any = pilot.app.screen
                await h.type(pilot, "DR-1001")
                real_receipt = checkout.receipt_id
                await switch_over_shift(pilot)
                assert not h.of(TrainingToggled)
                assert isinstance(pilot.app.screen, TrainingScreen)
                assert "Открыт чек — он будет отменён" in widget_text(pilot.app, "#say")
                await pilot.press("enter")  # yes: the cheque goes, training starts
                await settle(pilot)
                assert [m.on for m in h.of(TrainingToggled)] == [True]
                assert pilot.app.screen is checkout and checkout.lines == []
                assert checkout.receipt_id != real_receipt
                assert str(checkout.receipt_id).startswith("TRN-")

    asyncio.run(main())


def test_a_half_filled_form_is_asked_about_and_kept_on_esc(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                await pilot.press("f2")
                await settle(pilot)
                form = pilot.app.screen
                assert isinstance(form, RegisterScreen)
                await pilot.press(*"9031112233")
                await pilot.press("f9", "enter")
                await settle(pilot)
                assert not h.of(TrainingToggled)
                said = widget_text(pilot.app, "#say")
                assert "Не сохранится" in said and "анкета" in said
                await pilot.press("escape")  # no
                await settle(pilot)
                assert "Режим не переключён" in widget_text(pilot.app, "#say")
                await pilot.press("escape")
                await settle(pilot)
                assert pilot.app.screen is form
                assert form.form().phone == "9031112233"
                assert not h.services.training

    asyncio.run(main())

"""Pilot tests: a refund finds the cheque as the cashier reads it off the slip (the short
number or the last digits, not only the 21-64 character number), lists the cheques that
share the last digits, and never loses typing (a Tab, the cheque list, the finished
refund); a cheque cancelled with F8 takes no number."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_tui_refund import open_refund, sell, sign_in, with_points
from textual.widgets import OptionList
from tui_helpers import Harness, harness, settle, widget_text

from agent.model import Cart, CartLine
from agent.results import CheckoutRequest
from agent.seed import demo_phone
from tui.messages import CheckoutCommitted
from tui.screens.refund import ChequeFound, ChequesMatched, RefundMade, RefundScreen


def pos_sale(h: Harness, receipt_id: str, phone_i: int) -> None:
    """A cheque committed by the POS with its own number (the POS API's path)."""
    assert h.services is not None
    member = h.services.agent.identify(demo_phone(phone_i)).member_id
    line = CartLine(1, "SH-2001", "Рубашка", "shirts", 299900, 1, 299900)
    h.services.agent.commit(CheckoutRequest(member, Cart(receipt_id, (line,))))


def found(h: Harness) -> str:
    return str(h.of(ChequeFound)[-1].cheque.receipt_id)


def test_a_cancelled_cheque_takes_no_number(tmp_path: Path) -> None:
    """F8 on a cheque that was never committed: the next committed cheque has the number
    the cancelled one showed (numbers are gapless), and the screen showed that number."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                screen: Any = pilot.app.screen
                shown = screen.receipt_id
                assert shown is not None and shown.endswith("-000001")
                await h.type(pilot, "DR-1001")
                await pilot.press("f8", "f8")  # cancel the cheque
                await settle(pilot)
                assert not screen.lines and screen.receipt_id == shown
                first = await sell(h, pilot, 1)
                assert first.receipt_id == shown
                await pilot.press("f8")
                await settle(pilot)
                assert screen.receipt_id.endswith("-000002")
                second = await sell(h, pilot, 2)
                assert second.receipt_id.endswith("-000002")
                assert [c.result.receipt_id for c in h.of(CheckoutCommitted)] == [
                    first.receipt_id,
                    second.receipt_id,
                ]

    asyncio.run(main())


def test_refund_finds_the_cheque_by_its_short_number(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                first = await sell(h, pilot, with_points(h))
                await pilot.press("f8")
                await settle(pilot)
                second = await sell(h, pilot, with_points(h, 1))
                assert len(first.receipt_id) > 10 and first.receipt_id.endswith("-000001")
                screen = await open_refund(pilot)
                for typed, wanted in (("1", first), ("000002", second), ("2", second)):
                    await h.type(pilot, typed)
                    assert screen.stage == "lines", (typed, widget_text(pilot.app, "#say"))
                    assert found(h) == wanted.receipt_id, typed
                    await pilot.press("escape")
                    await settle(pilot)
                await h.type(pilot, first.receipt_id.lower())  # the full number, any case
                assert found(h) == first.receipt_id
                await pilot.press("escape")
                await settle(pilot)
                await h.type(pilot, "3")  # no cheque 3 yet: said so, in both languages
                assert "чека 3 нет на этой кассе" in widget_text(pilot.app, "#say")
                await pilot.press("f10")
                await settle(pilot)
                assert "no cheque 3 on this till" in widget_text(pilot.app, "#say")

    asyncio.run(main())


def test_shared_last_digits_are_listed_to_pick_and_typing_is_kept(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                pos_sale(h, "POS-2026-11770", 3)
                pos_sale(h, "POS-2026-22770", 4)
                pos_sale(h, "POS-2026-33001", 5)
                screen = await open_refund(pilot)
                await pilot.press("tab")  # the focus leaves the entry line...
                await settle(pilot)
                await h.type(pilot, "770")  # ...and the typing still reaches it
                matched = h.of(ChequesMatched)
                assert matched and matched[-1].text == "770"
                assert screen.stage == "pick"
                options = screen.query_one("#refund-cheques", OptionList)
                ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
                assert ids == ["POS-2026-22770", "POS-2026-11770"]  # newest first
                assert "оканчиваются на «770»" in widget_text(pilot.app, "#say")
                await pilot.press("f10")
                await settle(pilot)
                assert "Several cheques end with «770»" in widget_text(pilot.app, "#say")
                await pilot.press("f10")
                await settle(pilot)
                # The list does not take the typing: a number typed now is a new search.
                await h.type(pilot, "001")
                assert found(h) == "POS-2026-33001"
                await pilot.press("escape")
                await settle(pilot)
                await h.type(pilot, "770")
                await pilot.press("down", "enter")  # the arrows pick from the entry line
                await settle(pilot)
                assert found(h) == "POS-2026-11770"

    asyncio.run(main())


def test_after_a_refund_a_typed_number_starts_the_next(tmp_path: Path) -> None:
    """The finished refund says «Enter — новый возврат»; a cheque number typed there is
    the next refund's search, not thrown away; a scan while lines are chosen keeps them
    and says why; F12 is offered only where it refunds."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                first = await sell(h, pilot, with_points(h))
                await pilot.press("f8")
                await settle(pilot)
                second = await sell(h, pilot, with_points(h, 1))
                screen = await open_refund(pilot)
                assert "Провести возврат" not in widget_text(pilot.app, "#keys")
                await h.type(pilot, "1")
                assert "Провести возврат" in widget_text(pilot.app, "#keys")
                await h.type(pilot, "1*1")
                assert screen.chosen == {1: 1}
                assert "F12 или Enter — провести возврат" in widget_text(pilot.app, "#say")
                slip = h.services.agent.print_job(second.print_job_id) if h.services else None
                assert slip is not None and slip.qr_payload
                await h.scan(pilot, slip.qr_payload)  # another member's card mid-refund
                assert screen.stage == "lines" and screen.chosen == {1: 1}
                assert "Сначала проведите этот возврат" in widget_text(pilot.app, "#say")
                await pilot.press("f12")
                await settle(pilot)
                assert h.of(RefundMade)[-1].outcome.result.amount_kop > 0
                assert screen.stage == "done"
                assert "Провести возврат" not in widget_text(pilot.app, "#keys")
                await h.type(pilot, "2")  # typed at «Enter — новый возврат»
                assert isinstance(pilot.app.screen, RefundScreen)
                assert screen.stage == "lines" and found(h) == second.receipt_id
                assert first.receipt_id != second.receipt_id

    asyncio.run(main())

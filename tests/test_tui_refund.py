"""Pilot tests: refunds (F3) against a real store and the real back office: find the
cheque by number or by scanning the slip's QR (member code), pick lines, see what the
points will do before confirming, the refund and its printed slip (ESC/POS decoded);
refunding more than was bought or an unknown cheque writes nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from escpos_walker import walk
from textual.widgets import OptionList
from tui_helpers import Harness, harness, settle, widget_text

from agent.seed import demo_phone
from drivers.profiles import load_profile
from tui.messages import CheckoutCommitted, CoreFailed
from tui.screens.refund import ChequeFound, RefundMade, RefundPreviewed, RefundScreen, apply_entry


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")


def with_points(h: Harness, skip: int = 0) -> int:
    """A demo member who has points to spend (their index for ``demo_phone``)."""
    assert h.services is not None
    rich = [i for i in range(1, 60) if h.services.agent.identify(demo_phone(i)).spendable > 0]
    return rich[skip]


async def sell(h: Harness, pilot: Any, phone_i: int) -> Any:
    """Two dresses and a shirt, paid partly with points."""
    await h.type(pilot, "DR-1001*2")
    await h.type(pilot, "SH-2001")
    await h.type(pilot, demo_phone(phone_i))
    await pilot.press("f6")  # spend the most allowed
    await settle(pilot)
    await pilot.press("enter", "enter")
    await settle(pilot)
    return h.of(CheckoutCommitted)[-1].result


def footprint(h: Harness) -> tuple[int, int, int, str]:
    """Refunds, journal rows, print jobs, and the member states: all a refund would touch."""
    assert h.services is not None
    with h.services.store.read() as conn:
        refunds = conn.execute("SELECT count(*) FROM refunds").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        jobs = conn.execute("SELECT count(*) FROM print_jobs").fetchone()[0]
        states = conn.execute("SELECT group_concat(state) FROM members").fetchone()[0]
    return int(refunds), int(events), int(jobs), str(states)


async def open_refund(pilot: Any) -> RefundScreen:
    await pilot.press("f8")  # leave the finished cheque
    await settle(pilot)
    await pilot.press("f3")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, RefundScreen)
    return screen


def test_refund_by_cheque_number_preview_then_confirm_prints(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                sale = await sell(h, pilot, with_points(h))
                assert sale.quote.redeem_points > 0 and sale.quote.earn_points > 0
                h.services.printer.drain()
                assert h.services.preview is not None
                mark = len(h.services.preview.data)  # the sale slip is already printed
                screen = await open_refund(pilot)
                await h.type(pilot, sale.receipt_id)
                cheque = h.of(ChequeFound)[-1].cheque
                assert [(ln.line_no, ln.qty, ln.left) for ln in cheque.lines] == [
                    (1, 2, 2),
                    (2, 1, 1),
                ]
                assert "Платье" in widget_text(pilot.app, "#refund-box")
                before = footprint(h)
                balance_before = h.services.agent.card(sale.quote.member_id).balance
                # One dress back: the dry run shows what the core will do; nothing written.
                await h.type(pilot, "1*1")
                preview = h.of(RefundPreviewed)[-1].result
                assert screen.chosen == {1: 1}
                assert preview.earn_reversed > 0 and preview.points_returned > 0
                assert preview.balance_before == balance_before
                text = widget_text(pilot.app, "#refund-box")
                assert "Начисление отменяется" in text and "Бонусы вернутся" in text
                assert footprint(h) == before
                # Confirm: the refund the core makes is the one previewed.
                await pilot.press("f12")
                await settle(pilot)
                made = h.of(RefundMade)
                assert len(made) == 1, h.of(CoreFailed)
                result = made[0].outcome.result
                assert result == preview
                after = footprint(h)
                assert after[:3] == (before[0] + 1, before[1] + 1, before[2] + 1)
                card = h.services.agent.card(sale.quote.member_id)
                assert card.balance == preview.balance_after
                row = h.services.store.one(
                    "SELECT type, json_extract(payload, '$.lines') FROM outbox "
                    "ORDER BY seq DESC LIMIT 1"
                )
                assert row == ("refund", '{"1":1}')
                # The slip: on screen, and printed through the sale's print path.
                assert "Возврат на сумму" in widget_text(pilot.app, "#refund-box")
                h.services.printer.drain()
                profile = load_profile("epson-tm-42")
                job = walk(
                    h.services.preview.data[mark:],
                    {slot: enc for enc, slot in profile.slots.items()},
                    native_qr=profile.qr_native,
                    require_start=True,
                )
                paper = job.view(profile.columns)
                assert "Возврат на сумму" in paper
                assert sale.receipt_id in paper
                assert "Начисление отменено" in paper
                # The same cheque again: line 1 has one unit left, line 2 untouched.
                await pilot.press("enter")  # next refund
                await settle(pilot)
                await h.type(pilot, sale.receipt_id)
                cheque = h.of(ChequeFound)[-1].cheque
                assert [ln.left for ln in cheque.lines] == [1, 1]
                # English on F10.
                await h.type(pilot, "2")
                await pilot.press("f10")
                await settle(pilot)
                assert "Points returned" in widget_text(pilot.app, "#refund-box")

    asyncio.run(main())


def test_scan_of_the_slip_lists_the_members_cheques(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                who = with_points(h, 1)
                first = await sell(h, pilot, who)
                await pilot.press("f8")
                await settle(pilot)
                second = await sell(h, pilot, who)
                slip = h.services.agent.print_job(second.print_job_id)
                assert slip.qr_payload  # the slip's QR: the member code
                await open_refund(pilot)
                await h.scan(pilot, slip.qr_payload)
                options = pilot.app.screen.query_one("#refund-cheques", OptionList)
                ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
                assert ids == [second.receipt_id, first.receipt_id]  # newest first
                await pilot.press("down", "enter")
                await settle(pilot)
                assert h.of(ChequeFound)[-1].cheque.receipt_id == first.receipt_id
                await h.type(pilot, "*")
                assert pilot.app.screen.chosen == {1: 2, 2: 1}
                await pilot.press("f12")
                await settle(pilot)
                outcome = h.of(RefundMade)[-1].outcome
                assert outcome.result.complete
                # Everything is back: the cheque cannot be refunded again.
                await pilot.press("enter")
                await settle(pilot)
                await h.type(pilot, first.receipt_id)
                assert "всё уже возвращено" in widget_text(pilot.app, "#say")

    asyncio.run(main())


def test_more_than_bought_and_unknown_cheque_write_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                sale = await sell(h, pilot, with_points(h, 2))
                screen = await open_refund(pilot)
                before = footprint(h)
                await h.type(pilot, "NO-SUCH-1")
                assert "чека NO-SUCH-1 нет" in widget_text(pilot.app, "#say")
                assert screen.stage == "find"
                await h.type(pilot, sale.receipt_id)
                await h.type(pilot, "1*3")  # two were bought
                failed = h.of(CoreFailed)[-1]
                assert failed.code == "bad_refund"
                assert "строка 1: к возврату 3 шт., доступно 2 шт." in widget_text(
                    pilot.app, "#say"
                )
                assert screen.chosen == {}
                await h.type(pilot, "9")  # no such line
                assert "нет строки 9" in widget_text(pilot.app, "#say")
                await h.type(pilot, "abc")
                assert "Не понял" in widget_text(pilot.app, "#say")
                await pilot.press("f12")  # nothing chosen
                await settle(pilot)
                assert "Выберите строки" in widget_text(pilot.app, "#say")
                await pilot.press("f10")  # the message follows the language
                await settle(pilot)
                assert "Pick lines to refund" in widget_text(pilot.app, "#say")
                await h.type(pilot, "abc")
                await pilot.press("f10")
                await settle(pilot)
                assert "Не понял «abc»" in widget_text(pilot.app, "#say")
                assert footprint(h) == before
                assert not h.of(RefundMade)

    asyncio.run(main())


def test_entry_grammar() -> None:
    from datetime import UTC, datetime

    from agent.results import Cheque, ChequeLine

    c = Cheque(
        "R-1",
        "m",
        "c",
        "c",
        datetime(2026, 1, 1, tzinfo=UTC),
        (ChequeLine(1, "a", 2, 1, 100), ChequeLine(2, "b", 3, 0, 200)),
    )
    assert apply_entry("*", c, {}) == {1: 1, 2: 3}
    assert apply_entry("2", c, {}) == {2: 3}
    assert apply_entry("2*1", c, {1: 1}) == {1: 1, 2: 1}
    assert apply_entry("2 x 2", c, {}) == {2: 2}
    assert apply_entry("-1", c, {1: 1, 2: 1}) == {2: 1}
    assert apply_entry("1*0", c, {1: 1}) == {}
    assert apply_entry("два", c, {}) is None


def test_esc_with_lines_chosen_asks_before_dropping_them(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                sale = await sell(h, pilot, with_points(h))
                screen = await open_refund(pilot)
                await h.type(pilot, sale.receipt_id)
                await h.type(pilot, "1*1")
                assert screen.chosen == {1: 1}
                before = footprint(h)
                await pilot.press("escape")  # asks: the chosen line is still there
                await settle(pilot)
                assert screen.stage == "lines" and screen.chosen == {1: 1}
                assert "Бросить выбранные строки" in widget_text(pilot.app, "#say")
                assert "Enter — да, Esc — нет" in widget_text(pilot.app, "#say")
                await pilot.press("escape")  # Esc at the question is no: the lines stay
                await settle(pilot)
                assert screen.stage == "lines" and screen.chosen == {1: 1}
                assert footprint(h) == before and not h.of(RefundMade)
                await pilot.press("escape")
                await h.type(pilot, "2")  # a typed entry is no, and is taken as itself
                assert screen.chosen == {1: 1, 2: 1}
                await pilot.press("escape", "enter")  # asked, then yes: back to finding
                await settle(pilot)
                assert screen.stage == "find" and screen.chosen == {}
                assert footprint(h) == before

    asyncio.run(main())


def test_an_empty_enter_asks_before_making_the_refund(tmp_path: Path) -> None:
    """A scanner's Enter and then the cashier's must not make a refund unasked: the first
    empty Enter asks (as the checkout asks before a commit), the second makes it."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                sale = await sell(h, pilot, with_points(h))
                screen = await open_refund(pilot)
                await h.type(pilot, sale.receipt_id)
                await h.type(pilot, "1*1")
                before = footprint(h)
                await pilot.press("enter")
                await settle(pilot)
                assert "Провести возврат?" in widget_text(pilot.app, "#say")
                assert footprint(h) == before and not h.of(RefundMade)
                await pilot.press("escape")  # no: nothing made, the lines stay
                await settle(pilot)
                assert screen.chosen == {1: 1} and not h.of(RefundMade)
                await pilot.press("enter", "enter")  # asked, yes
                await settle(pilot)
                assert len(h.of(RefundMade)) == 1
                assert footprint(h)[0] == before[0] + 1

    asyncio.run(main())

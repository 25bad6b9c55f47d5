"""Pilot tests: on the checkout screen no keystroke throws work away without a word.

A prompt (F8's "drop this cheque?", Ctrl+Q's "quit?") is confirmed only by its own key
or an empty Enter; anything else typed or scanned there closes it and is taken as what
it is. Typing always reaches the entry line, whatever Tab or another screen did to the
focus. Real till store and back office (tui_helpers)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from test_tui_checkout import purchases, said, sign_in
from textual.widgets import Input
from tui_helpers import Harness, harness, settle, widget_text

from agent.seed import demo_phone
from tui.messages import CheckoutCommitted, CoreFailed, QuoteReady
from tui.screens.checkout import CheckoutScreen


def run(coro: Any) -> None:
    asyncio.run(coro)


def entry(pilot: Any) -> Input:
    return pilot.app.screen.query_one("#entry", Input)


async def cheque_with_member(h: Harness, pilot: Any, phone_n: int = 6) -> CheckoutScreen:
    await sign_in(h, pilot)
    await h.type(pilot, "DR-1001")
    await h.type(pilot, demo_phone(phone_n))
    screen = pilot.app.screen
    assert isinstance(screen, CheckoutScreen)
    assert screen.card is not None and [ln.sku for ln in screen.lines] == ["DR-1001"]
    return screen


def test_f8_prompt_takes_a_typed_sku_as_a_line_and_keeps_the_cheque(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                receipt, card = screen.receipt_id, screen.card
                await pilot.press("f8")
                await settle(pilot)
                assert "Отменить этот чек?" in said(pilot)
                await h.type(pilot, "SH-2001")  # not a yes: closes the prompt, adds the line
                assert [ln.sku for ln in screen.lines] == ["DR-1001", "SH-2001"]
                assert screen.receipt_id == receipt and screen.card == card
                assert "Отменить" not in said(pilot)
                await h.type(pilot, "")  # the next empty Enter accepts the quote, no drop
                assert screen.stage == "confirm" and len(screen.lines) == 2
                await pilot.press("escape")
                await settle(pilot)
                await pilot.press("f8")
                await settle(pilot)
                await h.scan(pilot, "OW-4001")  # a scan at the prompt: a line too
                assert [ln.sku for ln in screen.lines] == ["DR-1001", "SH-2001", "OW-4001"]
                await h.type(pilot, "")  # the prompt is closed: Enter accepts
                assert screen.stage == "confirm" and screen.receipt_id == receipt

    run(main())


def test_confirm_prompt_takes_a_typed_sku_as_a_line_not_as_yes(tmp_path: Path) -> None:
    """At "Провести чек?" a typed SKU is one more line and the cheque is not committed."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await h.type(pilot, "")
                assert screen.stage == "confirm"
                await h.type(pilot, "SH-2001")
                assert h.of(CheckoutCommitted) == [] and purchases(h) == []
                assert [ln.sku for ln in screen.lines] == ["DR-1001", "SH-2001"]
                assert screen.stage == "entry"
                await pilot.press("enter", "enter")
                await settle(pilot)
                committed = h.of(CheckoutCommitted)
                assert len(committed) == 1 and len(committed[0].result.quote.lines) == 2

    run(main())


def test_sku_after_a_committed_cheque_starts_the_next_one_with_it(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await pilot.press("enter", "enter")
                await settle(pilot)
                done = h.of(CheckoutCommitted)[-1].result.receipt_id
                assert screen.stage == "done" and "проведён" in said(pilot)
                await h.type(pilot, "SH-2001")  # typed
                assert screen.stage == "entry" and screen.card is None
                assert [ln.sku for ln in screen.lines] == ["SH-2001"]
                assert screen.receipt_id not in (None, done)
                await h.type(pilot, demo_phone(7))
                await pilot.press("enter", "enter")
                await settle(pilot)
                assert screen.stage == "done"
                await h.scan(pilot, "OW-4001")  # scanned
                assert [ln.sku for ln in screen.lines] == ["OW-4001"]
                await pilot.press("f8")  # nothing member-bound yet but a line: asks
                await settle(pilot)
                await pilot.press("f8")
                await settle(pilot)
                await h.type(pilot, demo_phone(7))
                await pilot.press("enter", "enter")
                await settle(pilot)
                await h.type(pilot, "=4999")  # a total
                assert [(ln.sku, ln.amount_kop) for ln in screen.lines] == [("TOTAL", 499_900)]
                assert screen.stage == "entry"

    run(main())


def test_tab_never_strands_typing_and_esc_brings_the_focus_back(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                screen = pilot.app.screen
                await pilot.press("tab")
                await settle(pilot)
                await h.type(pilot, "=4999")
                assert [ln.amount_kop for ln in screen.lines] == [499_900]
                await pilot.press("tab", "shift+tab", "tab")
                await settle(pilot)
                await h.type(pilot, "DR-1001")
                assert [ln.sku for ln in screen.lines] == ["TOTAL", "DR-1001"]
                screen.query_one("#cheque-box").focus()  # whatever took the focus
                await settle(pilot)
                await h.type(pilot, "SH-2001")
                assert [ln.sku for ln in screen.lines] == ["TOTAL", "DR-1001", "SH-2001"]
                screen.set_focus(None)
                await settle(pilot)
                await pilot.press("f8", "escape")
                await settle(pilot)
                assert screen.focused is entry(pilot)
                await pilot.press("f4")  # the lookup screen, then back
                await settle(pilot)
                assert not isinstance(pilot.app.screen, CheckoutScreen)
                await pilot.press("escape")
                await settle(pilot)
                assert pilot.app.screen is screen and screen.focused is entry(pilot)
                await h.type(pilot, "OW-4001")
                assert len(screen.lines) == 4

    run(main())


def test_ctrl_q_with_an_open_cheque_asks_first(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                app = pilot.app
                await pilot.press("ctrl+q")
                await settle(pilot)
                assert app.is_running and "Выйти" in said(pilot), said(pilot)
                await pilot.press("escape")  # no: the cheque and the member stay
                await settle(pilot)
                assert app.is_running and screen.card is not None and len(screen.lines) == 1
                assert "Выйти" not in said(pilot)
                await pilot.press("ctrl+q")
                await settle(pilot)
                await h.type(pilot, "SH-2001")  # other input: no, and it is a line
                assert app.is_running and [ln.sku for ln in screen.lines] == [
                    "DR-1001",
                    "SH-2001",
                ]
                await pilot.press("ctrl+q")
                await settle(pilot)
                await pilot.press("f4")  # another key: no, and it does what it does
                await settle(pilot)
                assert app.is_running and not isinstance(app.screen, CheckoutScreen)
                await pilot.press("ctrl+q")  # from the lookup: the cheque below is open
                await settle(pilot)
                assert app.is_running and "Выйти" in said(pilot)
                await pilot.press("enter")  # an empty Enter: yes
                await settle(pilot)
                assert not app.is_running

    run(main())


def test_ctrl_q_twice_quits_and_with_nothing_open_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await cheque_with_member(h, pilot)
                await pilot.press("ctrl+q")
                await settle(pilot)
                assert pilot.app.is_running
                await pilot.press("ctrl+q")
                await settle(pilot)
                assert not pilot.app.is_running
        with harness(tmp_path / "2") as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await pilot.press("ctrl+q")
                await settle(pilot)
                assert not pilot.app.is_running

    run(main())


def test_a_line_is_selected_with_up_down_and_voided_with_del(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await h.type(pilot, "SH-2001")
                await h.type(pilot, "OW-4001")
                before = h.of(QuoteReady)[-1].quote
                assert "Сторно" not in widget_text(pilot.app, "#keys")
                await pilot.press("up")  # the last line
                await settle(pilot)
                assert screen.selected == 2 and "Строка 3" in said(pilot)
                await pilot.press("up")
                await settle(pilot)
                assert screen.selected == 1
                keys = widget_text(pilot.app, "#keys")  # what the 80x24 bar shows
                assert "Del Сторно" in keys and "Esc Назад" in keys and "F1 Помощь" in keys
                await pilot.press("delete")
                await settle(pilot)
                assert [ln.sku for ln in screen.lines] == ["DR-1001", "OW-4001"]
                assert [ln.line_no for ln in screen.lines] == [1, 2]
                assert screen.selected is None
                q = h.of(QuoteReady)[-1].quote
                assert q.total_kop < before.total_kop and len(q.lines) == 2
                assert "Строка 2" in said(pilot) and "удалена" in said(pilot)
                assert "Сторно" not in widget_text(pilot.app, "#keys")
                # Del with text typed edits the text, it voids nothing
                await pilot.press("up")
                await h.type(pilot, "SH-2001", submit=False)
                await pilot.press("left", "delete")
                await settle(pilot)
                assert entry(pilot).value == "SH-200" and len(screen.lines) == 2
                entry(pilot).value = ""
                await pilot.press("up", "escape")  # Esc unselects; the member stays
                await settle(pilot)
                assert screen.selected is None and screen.card is not None
                await pilot.press("down", "delete", "enter", "enter")  # void line 1, commit
                await settle(pilot)
                sold = h.of(CheckoutCommitted)[-1].result.quote.lines
                assert [ln.amount_kop for ln in sold] == [screen.lines[0].amount_kop]
                rows = purchases(h)
                assert len(rows) == 1

    run(main())


def test_cheque_ceilings_refuse_a_typo_with_the_reason(tmp_path: Path) -> None:
    """=4999,50 then =100000000: the second line is refused (no member needed to hear
    it), the cheque keeps its one line; a line under the ceiling that would take the
    cheque over 10 000 000 ₽ is refused too."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                screen = pilot.app.screen
                await h.type(pilot, "=4999,50")
                await h.type(pilot, "=100000000")
                assert [ln.amount_kop for ln in screen.lines] == [499_950]
                refused = h.of(CoreFailed)[-1]
                assert refused.code == "cheque_limit"
                text = said(pilot).replace("\u00a0", " ").replace("\n", " ")
                assert "Сумма больше допустимой" in text and "1 000 000,00 ₽" in text, text
                for _ in range(10):
                    await h.type(pilot, "=999999")
                assert len(screen.lines) == 10
                assert h.of(CoreFailed)[-1].details["limit_kop"] == 10_000_000_00
                await h.type(pilot, demo_phone(6))
                assert h.of(QuoteReady)[-1].quote.total_kop == sum(
                    ln.amount_kop for ln in screen.lines
                )

    run(main())


def test_coupon_before_the_member_waits_for_one_or_says_why_not(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            coupon = h.coupon(percent_bp=1000)
            async with h.run() as pilot:
                await sign_in(h, pilot)
                screen = pilot.app.screen
                await h.type(pilot, "DR-1001")
                await h.scan(pilot, coupon)
                assert screen.coupon == coupon
                assert "Купон -10 % принят" in said(pilot) and "участника" in said(pilot)
                assert "ждёт участника" in widget_text(pilot.app, "#cheque-box")
                await h.type(pilot, demo_phone(6))
                q = h.of(QuoteReady)[-1].quote
                assert q.coupon_id is not None and q.coupon_discount_kop == 64_990
                await pilot.press("f8", "f8")
                await settle(pilot)
                await pilot.press("f7")
                await h.type(pilot, "KC1:AAAA")  # typed and broken: refused at once
                assert screen.coupon is None
                text = said(pilot)
                assert text.strip().startswith("Купон не принят:"), text
                assert "QR-код" not in text
                assert "ждёт" not in widget_text(pilot.app, "#cheque-box")

    run(main())


def test_typed_coupon_refused_with_a_member_is_headed_as_a_coupon(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await pilot.press("f7")
                await h.type(pilot, "KC1:AAAA")
                assert screen.coupon is None and h.of(CoreFailed)[-1].code.startswith("token_")
                text = said(pilot)
                assert text.strip().startswith("Купон не принят:") and "QR-код" not in text
                await pilot.press("f10")
                await settle(pilot)
                assert said(pilot).strip().startswith("Coupon refused:")

    run(main())


def test_an_old_error_does_not_come_back_from_another_screen(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await h.type(pilot, "ZZ-0000")
                assert "ZZ-0000" in said(pilot)
                await pilot.press("f3")
                await settle(pilot)
                assert not isinstance(pilot.app.screen, CheckoutScreen)
                await pilot.press("escape")
                await settle(pilot)
                assert pilot.app.screen is screen
                assert "ZZ-0000" not in said(pilot) and "Enter — принять" in said(pilot)
                await pilot.press("f10")  # nor after a language switch
                await settle(pilot)
                assert "ZZ-0000" not in said(pilot)

    run(main())


def test_another_key_closes_the_f8_question_so_enter_keeps_the_cheque(tmp_path: Path) -> None:
    """F8 (drop?), then F7 (a coupon after all), then an empty Enter: the coupon prompt
    is closed, the cheque is not dropped."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                receipt = screen.receipt_id
                await pilot.press("f8", "f7")
                await settle(pilot)
                await h.type(pilot, "")
                assert screen.receipt_id == receipt and len(screen.lines) == 1
                assert screen.card is not None
                await pilot.press("f8", "up")
                await settle(pilot)
                await h.type(pilot, "")
                assert screen.receipt_id == receipt and len(screen.lines) == 1

    run(main())


def test_keys_after_a_commit_do_something(tmp_path: Path) -> None:
    """After a commit F6 says how to go on; F7 opens the next cheque at the coupon prompt."""

    async def main() -> None:
        with harness(tmp_path) as h:
            coupon = h.coupon(percent_bp=1000)
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await pilot.press("enter", "enter")
                await settle(pilot)
                done = h.of(CheckoutCommitted)[-1].result.receipt_id
                await pilot.press("f6")
                await settle(pilot)
                assert "новый чек" in said(pilot) and screen.stage == "done"
                await pilot.press("f7")
                await settle(pilot)
                assert screen.stage == "entry" and screen.receipt_id not in (None, done)
                assert screen.awaiting_coupon and "Купон" in said(pilot)
                await h.type(pilot, coupon)
                assert screen.coupon == coupon

    run(main())


def test_enter_on_a_cheque_the_core_refused_says_why_again(tmp_path: Path) -> None:
    """A catalogue item whose category the programme does not know: the quote is refused;
    Enter to accept says the reason again instead of doing nothing."""

    async def main() -> None:
        with harness(tmp_path) as h:
            from agent.store import Store

            with Store(h.path) as store, store.write() as conn:
                conn.execute(
                    "INSERT INTO catalog(sku, name, category, collection, price_kop) "
                    "VALUES ('BG-1', 'Табурет', 'furniture', NULL, 100000)"
                )
            async with h.run() as pilot:
                await sign_in(h, pilot)
                screen = pilot.app.screen
                await h.type(pilot, "BG-1")
                await h.type(pilot, demo_phone(6))
                assert h.of(CoreFailed)[-1].code == "unknown_item"
                await h.type(pilot, "Z")  # any other entry replaces the message
                await h.type(pilot, "")
                assert "furniture" in said(pilot) and screen.stage == "entry"

    run(main())


def test_points_chosen_for_one_member_are_not_spent_from_the_next(tmp_path: Path) -> None:
    """-100 for one member, then another member is identified (or Esc clears the first):
    the cheque spends nothing until the cashier chooses again."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await h.type(pilot, "-100")
                assert h.of(QuoteReady)[-1].quote.redeem_points == 100
                await h.type(pilot, demo_phone(7))
                assert screen.redeem == 0 and h.of(QuoteReady)[-1].quote.redeem_points == 0
                await pilot.press("f6")
                await settle(pilot)
                assert screen.redeem == "max"
                await pilot.press("escape")  # forget the member
                await settle(pilot)
                assert screen.card is None and screen.redeem == 0
                await h.type(pilot, demo_phone(7))
                assert h.of(QuoteReady)[-1].quote.redeem_points == 0

    run(main())


def test_an_item_answered_after_the_commit_starts_the_next_cheque(tmp_path: Path) -> None:
    """A SKU typed while the cheque was committing: its answer arrives after the commit
    and opens the next cheque with it (the committed cheque's lines are not touched)."""
    from tui.messages import CatalogItemFound

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await pilot.press("enter", "enter")
                await settle(pilot)
                done = h.of(CheckoutCommitted)[-1].result.receipt_id
                assert screen.stage == "done"
                late = CatalogItemFound("SH-2001", "Рубашка", "shirts", None, 349_900, 1, False)
                screen.post_message(late)  # as the catalogue worker answers
                await settle(pilot)
                assert screen.stage == "entry" and [ln.sku for ln in screen.lines] == ["SH-2001"]
                assert screen.receipt_id not in (None, done)

    run(main())


def test_f7_prompt_takes_a_sku_or_a_card_scan_as_what_it_is(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                screen = pilot.app.screen
                await pilot.press("f7")
                await h.type(pilot, "SH-2001")  # a SKU, not a coupon
                assert [ln.sku for ln in screen.lines] == ["SH-2001"]
                assert screen.coupon is None and not screen.awaiting_coupon
                await pilot.press("f7")
                await settle(pilot)
                assert h.services is not None
                code = h.services.agent.identify(demo_phone(4)).code
                await h.scan(pilot, code)  # a member card closes the prompt too
                assert screen.card is not None and not screen.awaiting_coupon
                await h.type(pilot, "OW-4001")
                assert [ln.sku for ln in screen.lines] == ["SH-2001", "OW-4001"]
                assert screen.coupon is None

    run(main())


def test_a_serial_scan_answers_the_quit_question_with_no(tmp_path: Path) -> None:
    from tui.messages import Scanned

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await pilot.press("ctrl+q")
                await settle(pilot)
                pilot.app.post_message(Scanned("SH-2001", "serial"))  # as SerialScanner does
                await settle(pilot)
                assert [ln.sku for ln in screen.lines] == ["DR-1001", "SH-2001"]
                await h.type(pilot, "")  # an Enter now accepts the quote, it does not quit
                assert pilot.app.is_running and screen.stage == "confirm"

    run(main())


def test_page_keys_scroll_the_slip_preview_and_typing_still_lands(tmp_path: Path) -> None:
    """At 80x24 the slip preview is taller than its box: PageDown/PageUp scroll it (no
    Tab to it needed), and the keyboard stays on the entry line."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run(size=(80, 24)) as pilot:
                screen = await cheque_with_member(h, pilot)
                await pilot.press("enter", "enter")
                await settle(pilot)
                box = screen.query_one("#cheque-box")
                assert screen.stage == "done" and box.max_scroll_y > 0
                await pilot.press("pagedown")
                await settle(pilot)
                assert box.scroll_y > 0 and screen.focused is entry(pilot)
                await pilot.press("pageup")
                await settle(pilot)
                assert box.scroll_y == 0
                await h.type(pilot, "SH-2001")
                assert [ln.sku for ln in screen.lines] == ["SH-2001"]

    run(main())


def test_ctrl_q_over_the_help_asks_on_the_screen_below(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = await cheque_with_member(h, pilot)
                await pilot.press("f1")
                await settle(pilot)
                assert pilot.app.screen is not screen
                await pilot.press("ctrl+q")
                await settle(pilot)
                assert pilot.app.is_running and pilot.app.screen is screen
                assert "Выйти из кассы?" in said(pilot)
                await pilot.press("escape")
                await settle(pilot)
                assert pilot.app.is_running and len(screen.lines) == 1

    run(main())


def test_a_full_key_bar_gives_way_by_rarity_never_cutting_esc() -> None:
    from tui.widgets.keybar import fit_keys

    keys = [(f"f{n}", "Длинная подпись") for n in range(1, 12)]
    keys += [("delete", "Сторно"), ("ctrl+q", "Выход"), ("escape", "Назад")]
    lines = fit_keys(keys, 80, 2).plain.split("\n")
    assert len(lines) <= 2 and all(len(line) <= 80 for line in lines)
    text = " ".join(lines)
    for kept in ("Esc Назад", "Del Сторно", "^Q Выход", " F1 ", " F8 ", " F11 "):
        assert kept in f" {text} ", kept
    assert " F10 " not in f" {text} "  # the rarest key left first; it still works (F1 lists it)
    roomy = fit_keys(keys, 400, 2).plain
    assert " F10 " in roomy and "\n" not in roomy  # nothing leaves when there is room


def test_a_quantity_over_the_limit_is_named_not_misread(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001*1000")
                await settle(pilot)
                assert "от 1 до 999" in said(pilot) and "Не понял" not in said(pilot)
                screen = pilot.app.screen
                assert isinstance(screen, CheckoutScreen) and screen.lines == []

    run(main())

"""Pilot tests: sign-in and checkout against a real store and the real back office.

Assertions are on the till's store, the back office and the recorded messages; scanner
bursts are injected as key events (fast key clock, see tui_helpers)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.widgets import Input
from tui_helpers import Harness, harness, settle, widget_text

from agent.seed import demo_phone
from agent.shifts import current_shift
from tui.messages import (
    CheckoutCommitted,
    CoreFailed,
    MemberIdentified,
    QuoteReady,
    Scanned,
    ShiftOpened,
)
from tui.screens.checkout import CheckoutScreen
from tui.screens.signin import SignInScreen


def run(coro: Any) -> None:
    asyncio.run(coro)


async def sign_in(h: Harness, pilot: Any, pin: str = "1111", down: int = 0) -> None:
    for _ in range(down):
        await pilot.press("down")
    await pilot.press("enter")
    await h.type(pilot, pin)


def said(pilot: Any) -> str:
    return widget_text(pilot.app, "#say")


def purchases(h: Harness) -> list[tuple[Any, ...]]:
    assert h.services is not None
    with h.services.store.read() as conn:
        return conn.execute(
            "SELECT receipt_id, member_id, cashier_id, shift_id, offline FROM purchases"
        ).fetchall()


def test_sign_in_with_wrong_then_right_pin(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert isinstance(pilot.app.screen, SignInScreen)
                await sign_in(h, pilot, "9999", down=1)
                failed = h.of(CoreFailed)
                assert failed[-1].code == "wrong_pin"
                assert "Неверный PIN" in said(pilot)
                assert pilot.app.screen.query_one("#pin", Input).value == ""
                assert isinstance(pilot.app.screen, SignInScreen)
                # Back on the name list (Олег highlighted): digits go straight to the PIN.
                pilot.app.screen.query_one("#cashiers").focus()
                await pilot.pause()
                await h.type(pilot, "2222")
                opened = h.of(ShiftOpened)
                assert [o.cashier.cashier_id for o in opened] == ["oleg"]
                assert isinstance(pilot.app.screen, CheckoutScreen)
                assert h.services is not None
                shift = current_shift(h.services.store)
                assert shift is not None and shift.cashier_id == "oleg"

    run(main())


def test_three_keys_scan_accept_confirm_commits_and_prints(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                assert h.services is not None
                code = h.services.agent.identify(demo_phone(3)).code
                keys_before = h.keys.now
                await h.scan(pilot, code)  # the scan: no key from the cashier
                assert h.of(Scanned)[-1].text == code
                assert h.of(MemberIdentified)[-1].source == "wedge"
                # the scanned digits did not land in the entry line
                assert pilot.app.screen.query_one("#entry", Input).value == ""
                assert h.keys.now > keys_before
                await pilot.press("enter")  # 1: accept the quote
                await settle(pilot)
                assert pilot.app.screen.stage == "confirm"
                await pilot.press("enter")  # 2: confirm
                await settle(pilot)
                done = h.of(CheckoutCommitted)
                assert len(done) == 1
                result = done[0].result
                rows = purchases(h)
                assert rows == [(result.receipt_id, result.quote.member_id, "anna", rows[0][3], 0)]
                assert rows[0][3] is not None  # the shift id
                assert "Платье" not in done[0].slip_text  # slips carry points, not goods
                assert "Начислено" in done[0].slip_text
                assert result.receipt_id in widget_text(pilot.app, "#cheque-box")
                # The preview printer got real ESC/POS bytes for the slip.
                h.services.printer.drain()
                data = h.services.preview.data
                assert data.startswith(b"\x1b@")
                assert result.receipt_id.encode() in data
                assert "Начислено".encode("cp866") in data
                # Enter again: a new cheque with the next number.
                await pilot.press("enter")
                await settle(pilot)
                assert pilot.app.screen.card is None
                assert pilot.app.screen.receipt_id != result.receipt_id

    run(main())


def test_typed_phone_total_spend_all_and_typed_points(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                screen = pilot.app.screen
                await h.type(pilot, "=12000")  # a till without integration: the total
                await h.type(pilot, "SH-2001*2!")  # two sale shirts
                await h.type(pilot, "X-9 shoes 1500*3")  # not in the catalogue
                await h.type(pilot, "X-8 socks 10")  # unknown category: refused
                assert h.of(CoreFailed)[-1].code == "bad_input" and "socks" in said(pilot)
                phone = demo_phone(5)
                await h.type(pilot, f"8 {phone[2:5]} {phone[5:8]}-{phone[8:10]}-{phone[10:]}")
                card = h.of(MemberIdentified)[-1].card
                assert card.identified_by == "phone"
                rules = h.services.agent.programme()  # type: ignore[union-attr]
                earning = [c for c in rules.categories if c not in rules.excluded_categories]
                default_category = earning[0]
                assert [(ln.sku, ln.category, ln.qty, ln.sale) for ln in screen.lines] == [
                    ("TOTAL", default_category, 1, False),
                    ("SH-2001", "shirts", 2, True),
                    ("X-9", "shoes", 3, False),
                ]
                assert screen.lines[2].amount_kop == 450_000
                assert screen.lines[0].amount_kop == 1_200_000
                q = h.of(QuoteReady)[-1].quote
                assert q.redeem_points == 0 and q.max_redeem_points > 0
                await pilot.press("f6")  # spend all allowed
                await settle(pilot)
                q = h.of(QuoteReady)[-1].quote
                assert q.redeem_points == q.max_redeem_points > 0
                await h.type(pilot, "-100")  # spend exactly 100
                q = h.of(QuoteReady)[-1].quote
                assert q.redeem_points == 100
                assert sum(ln.points_discount_kop for ln in q.lines) == 100 * q.point_value_kop
                text = widget_text(pilot.app, "#cheque-box")
                assert "100" in text
                await pilot.press("enter", "enter")
                await settle(pilot)
                committed = h.of(CheckoutCommitted)[-1].result
                assert committed.quote.redeem_points == 100
                after = h.services.agent.card(card.member_id)  # type: ignore[union-attr]
                assert after.balance == card.balance - 100 + committed.quote.total_earned
                # the card on screen shows the balance after the cheque
                assert pilot.app.screen.card.balance == after.balance
                assert h.of(MemberIdentified)[-1].source == "refresh"

    run(main())


def test_bad_entries_say_what_was_wrong_and_write_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "ZZ-0000")
                assert "ZZ-0000" in said(pilot)
                await h.type(pilot, "8 999 000-00-00")
                assert h.of(CoreFailed)[-1].code == "not_found"
                await h.type(pilot, "??")
                assert "??" in said(pilot)
                await h.type(pilot, "")  # Enter on nothing: no member yet
                assert "карту" in said(pilot)
                await h.type(pilot, "DR-1001")
                code = h.services.agent.identify(demo_phone(4)).code  # type: ignore[union-attr]
                await h.scan(pilot, code)
                await h.type(pilot, "-999999")  # more than allowed: refused, back to none
                assert h.of(CoreFailed)[-1].code == "redemption_refused"
                assert pilot.app.screen.redeem == 0
                await h.type(pilot, "KC1:AAAA")  # a broken coupon: refused, dropped
                assert pilot.app.screen.coupon is None
                assert h.of(QuoteReady)[-1].quote.coupon_id is None
                assert purchases(h) == []

    run(main())


def test_points_without_a_member_say_so_and_each_entry_replaces_the_message(
    tmp_path: Path,
) -> None:
    """-500 (or F6) before a member is identified says to identify one first, and does
    not stay armed for the member found later; every new entry replaces the old
    message (an earlier error never stays under a later entry)."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run(size=(80, 24)) as pilot:
                await sign_in(h, pilot)
                screen = pilot.app.screen
                await h.type(pilot, "=0")
                assert "Не понял ввод: =0" in said(pilot)
                await h.type(pilot, "-500")
                assert "Сначала найдите участника" in said(pilot), said(pilot)
                assert "=0" not in said(pilot) and screen.redeem == 0
                await h.type(pilot, "=0")
                await h.type(pilot, "-99999")
                assert "Сначала найдите участника" in said(pilot)
                await pilot.press("f6")
                await settle(pilot)
                assert "Сначала найдите участника" in said(pilot) and screen.redeem == 0
                await pilot.press("f10")
                await settle(pilot)
                assert "Identify a member first" in said(pilot)
                await pilot.press("f10")
                await settle(pilot)
                await h.type(pilot, "=0")
                await h.type(pilot, "DR-1001")  # a good entry clears the old error
                assert "=0" not in said(pilot)
                await h.type(pilot, demo_phone(6))
                q = h.of(QuoteReady)[-1].quote
                assert q.redeem_points == 0 and screen.redeem == 0 and q.max_redeem_points > 100
                await h.type(pilot, "-100")  # with a member: spent
                assert h.of(QuoteReady)[-1].quote.redeem_points == 100
                assert purchases(h) == []

    run(main())


def test_scanned_product_barcode_becomes_a_cheque_line(tmp_path: Path) -> None:
    """A wedge burst of a SKU is a cheque line, not a failed member lookup."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.scan(pilot, "DR-1001")
                await h.scan(pilot, "OW-4001")
                lines = pilot.app.screen.lines
                assert [ln.sku for ln in lines] == ["DR-1001", "OW-4001"]
                assert [ln.qty for ln in lines] == [1, 1]
                assert not [f for f in h.of(CoreFailed) if f.code == "not_found"]
                code = h.services.agent.identify(demo_phone(4)).code  # type: ignore[union-attr]
                await h.scan(pilot, code)  # a member code scan still identifies
                assert pilot.app.screen.card is not None
                assert [ln.sku for ln in pilot.app.screen.lines] == ["DR-1001", "OW-4001"]

    run(main())


def test_coupon_scanned_applies_and_is_single_use(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            coupon = h.coupon(percent_bp=1000)
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(6))
                await h.scan(pilot, coupon)
                q = h.of(QuoteReady)[-1].quote
                assert q.coupon_id is not None
                assert sum(ln.coupon_discount_kop for ln in q.lines) == 64_990
                await pilot.press("enter", "enter")
                await settle(pilot)
                assert h.of(CheckoutCommitted)[-1].result.quote.coupon_id == q.coupon_id
                await pilot.press("enter")  # new cheque; the coupon again is refused
                await settle(pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(7))
                await pilot.press("f7")
                await h.type(pilot, coupon)
                assert h.of(CoreFailed)[-1].code == "bad_coupon"
                assert pilot.app.screen.coupon is None

    run(main())


def test_language_switch_relabels_everything(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                keys = widget_text(pilot.app, "#keys")
                assert "English" in keys
                await pilot.press("f10")
                await pilot.pause()
                assert "Cashier sign-in" in str(pilot.app.screen.query_one("#signin").border_title)
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(2))
                text = widget_text(pilot.app, "#cheque-box").replace("\u00a0", " ")
                assert "To pay" in text and "К оплате" not in text
                # one English number style for money and points (agent.money)
                assert "6,499.00 ₽" in text and "6 499,00" not in text, text
                card = widget_text(pilot.app, "#card").replace("\u00a0", " ")
                assert " points" in card and "бонус" not in card
                keys = widget_text(pilot.app, "#keys")
                assert "New cheque" in keys and "Русский" in keys
                status = widget_text(pilot.app, "#status")
                assert "Online" in status
                await pilot.press("f10")
                await pilot.pause()
                text = widget_text(pilot.app, "#cheque-box").replace("\u00a0", " ")
                assert "К оплате" in text and "6 499,00 ₽" in text

    run(main())


def test_serial_scan_and_app_qr_typed_under_russian_layout(tmp_path: Path) -> None:
    """A serial scanner's frame arrives at the App from the reader thread and reaches the
    checkout; an app QR token scanned by a wedge under the Russian layout is repaired and
    verified offline."""
    from datetime import timedelta

    from agent.tokens import TokenSigner, issue_member_token, load_ed25519_private_key

    ru = dict(
        zip(
            "qwertyuiop[]asdfghjkl;'zxcvbnm,.QWERTYUIOP{}ASDFGHJKL:\"ZXCVBNM<>",
            "йцукенгшщзхъфывапролджэячсмитьбюЙЦУКЕНГШЩЗХЪФЫВАПРОЛДЖЭЯЧСМИТЬБЮ",
            strict=True,
        )
    )

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                assert h.services is not None
                code = h.services.agent.identify(demo_phone(8)).code
                pilot.app.post_message(Scanned(code, "serial"))  # as SerialScanner does
                await settle(pilot)
                got = h.of(MemberIdentified)[-1]
                assert got.source == "serial" and got.card.code == code
                key = load_ed25519_private_key(h.bo.setting("token_private_key"))
                other = h.services.agent.identify(demo_phone(9)).code
                token = issue_member_token(
                    TokenSigner(1, key), other, h.clock.now() - timedelta(seconds=5)
                )
                garbled = "".join(ru.get(ch, ch) for ch in token)
                assert garbled != token
                await h.scan(pilot, garbled)
                scanned = h.of(Scanned)[-1]
                assert scanned.layout_repaired and scanned.text == token
                card = h.of(MemberIdentified)[-1].card
                assert card.code == other and card.identified_by == "scan_token"
                assert pilot.app.screen.query_one("#entry", Input).value == ""

    run(main())


def test_coupon_scanned_after_f7_ends_the_prompt(tmp_path: Path) -> None:
    """F7, then the coupon is scanned: the next typed line is a phone again, not a coupon."""

    async def main() -> None:
        with harness(tmp_path) as h:
            coupon = h.coupon(percent_bp=1000)
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(6))
                screen = pilot.app.screen
                await pilot.press("f7")
                await settle(pilot)
                assert screen.awaiting_coupon
                await h.scan(pilot, coupon)
                assert screen.coupon == coupon and not screen.awaiting_coupon
                assert h.of(QuoteReady)[-1].quote.coupon_id is not None
                failed_before = len(h.of(CoreFailed))
                await h.type(pilot, demo_phone(7))  # another member: identified, not a coupon
                assert len(h.of(CoreFailed)) == failed_before
                card = h.of(MemberIdentified)[-1].card
                assert card.identified_by == "phone" and screen.card == card
                assert screen.coupon == coupon
                assert h.of(QuoteReady)[-1].quote.coupon_id is not None

    run(main())


def test_refused_coupon_reason_stays_on_screen(tmp_path: Path) -> None:
    """A spent single-use coupon is refused: the cheque is quoted again without it and the
    cashier still reads why (ru, then en)."""

    async def main() -> None:
        with harness(tmp_path) as h:
            coupon = h.coupon(percent_bp=1000)
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(6))
                await h.scan(pilot, coupon)
                await pilot.press("enter", "enter")
                await settle(pilot)
                assert h.of(CheckoutCommitted)[-1].result.quote.coupon_id is not None
                await pilot.press("enter")  # new cheque
                await settle(pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(7))
                quotes_before = len(h.of(QuoteReady))
                await h.scan(pilot, coupon)
                refused = h.of(CoreFailed)[-1]
                assert refused.code == "bad_coupon"
                # the re-quote without the coupon came after the refusal ...
                assert len(h.of(QuoteReady)) > quotes_before
                assert h.of(QuoteReady)[-1].quote.coupon_id is None
                assert pilot.app.screen.coupon is None
                # ... and did not overwrite the reason
                assert "Купон не принят" in said(pilot)
                assert refused.message_ru[:20] in said(pilot).replace("\n", " ")
                await pilot.press("f10")
                await settle(pilot)
                await h.scan(pilot, coupon)
                assert h.of(CoreFailed)[-1].code == "bad_coupon"
                assert refused.message_en[:20] in said(pilot).replace("\n", " ")

    run(main())


def test_sale_slip_shows_the_coupon_discount(tmp_path: Path) -> None:
    """A cheque with a −10 % coupon and 100 points: the slip (preview text and the printed
    ESC/POS, decoded) carries the coupon's discount in roubles next to the points lines."""
    from escpos_walker import walk

    from agent.money import format_rub
    from drivers.profiles import load_profile

    async def main() -> None:
        with harness(tmp_path) as h:
            coupon = h.coupon(percent_bp=1000)
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(6))
                await h.scan(pilot, coupon)
                await h.type(pilot, "-100")
                await pilot.press("enter", "enter")
                await settle(pilot)
                done = h.of(CheckoutCommitted)[-1]
                q = done.result.quote
                assert q.coupon_id is not None and q.redeem_points == 100
                assert q.coupon_discount_kop == 64_990
                rub = format_rub(q.coupon_discount_kop).replace("\u00a0", " ")
                assert rub == "649,90 ₽"
                slip_rows = done.slip_text.split("\n")
                # the preview is the paper's text: the printer's code page has no ₽
                paper_rub = rub.replace(" ₽", " руб.")
                assert any(
                    r.startswith("Скидка по купону") and r.endswith(paper_rub) for r in slip_rows
                ), slip_rows
                assert any(r.startswith("Скидка бонусами") for r in slip_rows)
                assert "Скидка по купону" in widget_text(pilot.app, "#cheque-box")
                assert h.services is not None
                h.services.printer.drain()
                profile = load_profile("epson-tm-42")
                slots = {slot: enc for enc, slot in profile.slots.items()}
                paper = walk(h.services.preview.data, slots, native_qr=profile.qr_native)
                printed = [ln.text.replace("\u00a0", " ") for ln in paper.lines]
                coupon_rows = [r for r in printed if r.startswith("Скидка по купону")]
                assert len(coupon_rows) == 1 and "649,90" in coupon_rows[0], printed

    run(main())


def test_cheque_panel_with_coupon_fits_80x24(tmp_path: Path) -> None:
    """At 80x24 with a coupon on: the coupon row reads «Купон -10 %» and its discount (not
    the 32-digit coupon id), with the one minus sign of every amount on the cheque, and
    every summary label is shown whole."""

    async def main() -> None:
        with harness(tmp_path) as h:
            coupon = h.coupon(percent_bp=1000)
            async with h.run(size=(80, 24)) as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(6))
                await h.scan(pilot, coupon)
                await pilot.press("f6")
                await settle(pilot)
                q = h.of(QuoteReady)[-1].quote
                assert q.coupon_id is not None and q.redeem_points > 0
                text = widget_text(pilot.app, "#cheque-box").replace("\u00a0", " ")
                assert q.coupon_id not in text
                rows = text.split("\n")
                assert "−" not in text  # one minus sign: the amounts' (and the slip's)
                coupon_rows = [r for r in rows if "Купон -10 %" in r]
                assert len(coupon_rows) == 1 and "-649,90 ₽" in coupon_rows[0], text
                for label in ("Итого", "Можно списать", "Списываем (всё)", "Начислим", "К оплате"):
                    assert any(label in r for r in rows), (label, text)
                await pilot.press("f10")
                await settle(pilot)
                text = widget_text(pilot.app, "#cheque-box")
                assert "Coupon -10 %" in text and q.coupon_id not in text
                for label in ("Total", "May spend", "Spend (all)", "Earn", "To pay"):
                    assert label in text, (label, text)

    run(main())


def test_sign_in_pin_field_moves_along_names_and_names_the_cashier(tmp_path: Path) -> None:
    """The PIN typed for the pre-selected first name fails: the message names the cashier
    (not the id) and is English in English mode; Down from the PIN field picks the next
    cashier, whose PIN then opens the shift; only the first cashier's tries were used."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                screen = pilot.app.screen
                assert isinstance(screen, SignInScreen)
                await pilot.press("f10")
                await settle(pilot)
                await h.type(pilot, "2222")  # Oleg's PIN, Anna highlighted
                failed = h.of(CoreFailed)[-1]
                assert failed.code == "wrong_pin" and failed.details["cashier_id"] == "anna"
                text = said(pilot)
                assert text.strip().startswith("Wrong PIN: Анна Петрова")
                assert "tries left" in text and "anna" not in text and "Неверный" not in text
                pin = screen.query_one("#pin", Input)
                assert screen.focused is pin and pin.value == ""
                await pilot.press("f10")
                await settle(pilot)
                await pilot.press("down")  # from the PIN field: the next name
                await settle(pilot)
                assert screen.query_one("#cashiers").highlighted == 1
                assert "PIN кассира: Олег Смирнов" in widget_text(pilot.app, "#pin-row")
                await h.type(pilot, "2222")
                assert [o.cashier.cashier_id for o in h.of(ShiftOpened)] == ["oleg"]
                assert isinstance(pilot.app.screen, CheckoutScreen)
                assert h.services is not None
                assert h.services.store.meta("pin_failures:anna") == "1"
                assert int(h.services.store.meta("pin_failures:oleg") or 0) == 0

    run(main())


def test_f8_asks_before_dropping_a_cheque_in_progress(tmp_path: Path) -> None:
    """F8 with lines or a member asks first: Esc keeps the cheque (and the member), F8
    again or Enter drops it; on an empty cheque F8 acts at once."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                screen = pilot.app.screen
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(6))
                card, receipt = screen.card, screen.receipt_id
                assert card is not None and len(screen.lines) == 1
                await pilot.press("f8")
                await settle(pilot)
                assert "Отменить этот чек?" in said(pilot)
                assert screen.card == card and len(screen.lines) == 1
                assert screen.receipt_id == receipt
                await pilot.press("escape")  # keep it
                await settle(pilot)
                assert screen.card == card and len(screen.lines) == 1
                assert "Чек сохранён" in said(pilot)
                await pilot.press("f8", "f8")  # asked, then confirmed
                await settle(pilot)
                assert screen.card is None and screen.lines == []
                # a dropped cheque burns no number: the next cheque may have the same
                assert screen.receipt_id is not None
                await h.type(pilot, "DR-1001")
                await pilot.press("f8")
                await settle(pilot)
                assert len(screen.lines) == 1
                await pilot.press("enter")  # Enter confirms too
                await settle(pilot)
                assert screen.lines == [] and screen.receipt_id is not None
                await h.type(pilot, "=100")
                await pilot.press("f8", "f8")
                await settle(pilot)
                assert screen.lines == []
                await pilot.press("f8")  # nothing in progress: a new cheque at once
                await settle(pilot)
                assert screen.lines == [] and "Отменить" not in said(pilot)
                assert screen.receipt_id is not None
                assert purchases(h) == []

    run(main())


def test_quantity_and_a_long_message_stay_visible_at_80x24(tmp_path: Path) -> None:
    """At 80x24: a long name does not hide its quantity (×3); a message longer than the
    screen is wrapped onto a second line, not cut."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run(size=(80, 24)) as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001*3")
                screen = pilot.app.screen
                assert [(ln.sku, ln.qty) for ln in screen.lines] == [("DR-1001", 3)]
                text = widget_text(pilot.app, "#cheque-box").replace("\u00a0", " ")
                assert "×3 19 497,00 ₽" in text, text
                junk = "?" + "x" * 70 + "END"
                await h.type(pilot, junk)
                shown = " ".join(ln.strip() for ln in said(pilot).split("\n"))
                assert junk in shown.replace(" ", "") or junk in shown, shown
                assert shown.rstrip().endswith("END")

    run(main())


def test_sign_in_names_whose_pin_is_typed_and_how_a_lock_is_undone(tmp_path: Path) -> None:
    """While the PIN is typed the screen keeps saying whose it is (the placeholder goes
    with the first digit); five wrong PINs lock that cashier only, and the message says
    what to do: another cashier with the arrows, and how the lock is undone (in the
    demo: start it again)."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run(size=(80, 24)) as pilot:
                screen = pilot.app.screen
                assert isinstance(screen, SignInScreen)
                await h.type(pilot, "22", submit=False)  # a digit on the list starts the PIN
                assert screen.query_one("#pin", Input).value == "22"
                text = widget_text(pilot.app, "#signin")
                assert "PIN кассира: Анна Петрова" in text
                assert "▸ Анна Петрова" in text and "▸ Олег" not in text  # no colour needed
                await pilot.press("down")
                await settle(pilot)
                text = widget_text(pilot.app, "#signin")
                assert "PIN кассира: Олег Смирнов" in text
                assert "▸ Олег Смирнов" in text and "▸ Анна" not in text
                await pilot.press("f10")
                await settle(pilot)
                assert "PIN for: Олег Смирнов" in widget_text(pilot.app, "#signin")
                await pilot.press("f10", "up")
                await settle(pilot)
                for _ in range(5):
                    await h.type(pilot, "2222")
                failed = h.of(CoreFailed)[-1]
                assert failed.details.get("locked") or failed.details.get("tries_left") == 0
                text = said(pilot)
                assert "Анна Петрова" in text and "заблокирован" in text
                assert "↑↓" in text and "администратор" in text, text
                assert "kassa cashier set-pin --id anna" in " ".join(text.split()), text
                # The demo (its sign-in hints are on screen): start it again.
                assert h.services is not None
                h.services.hints = ["PIN: Анна 1111, Олег 2222"]
                await h.type(pilot, "1111")
                assert not h.of(ShiftOpened)  # the right PIN does not open a locked cashier
                text = said(pilot)
                assert "make demo" in text and "↑↓" in text, text
                await pilot.press("f10")
                await settle(pilot)
                assert "make demo" in said(pilot) and "locked" in said(pilot)
                await pilot.press("f10", "down")
                await h.type(pilot, "2222")
                assert [o.cashier.cashier_id for o in h.of(ShiftOpened)] == ["oleg"]

    run(main())

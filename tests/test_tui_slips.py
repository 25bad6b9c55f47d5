"""Pilot at 80x24: the slips on screen are the slips on paper, and the member panel's
provisional marker tells the truth.

- The slip preview after a sale or a refund is the printer's own lines (decoded from the
  ESC/POS job with tests/escpos_walker.py), the QR drawn in half blocks that a QR reader
  reads off the screen (the terminal cells with their colours, as a screenshot shows
  them), and PageDown brings the balance and the QR into view with the focus left on the
  entry line.
- The X report and the closing Z report print their own layouts (decoded ESC/POS); the Z
  report is queued when the shift closes, also with the printer down.
- "ПРЕДВАРИТЕЛЬНО" goes from the member panel once the back office counted the member's
  events, and in training the panel says training instead.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from escpos_walker import Walk, decode_qr, walk
from test_tui_offline import FlakyPrinter, wait_for
from tui_helpers import Harness, harness, screen_text, settle, widget_text

from agent.printq import recent_jobs
from agent.seed import demo_phone
from agent.shifts import current_shift
from drivers.preview import is_qr_row
from drivers.printq import PrintWorker
from drivers.profiles import load_profile
from drivers.render import render
from tui.messages import CheckoutCommitted, ReportQueued, ShiftClosed
from tui.screens.refund import RefundMade
from tui.screens.signin import SignInScreen

PROFILE = load_profile("epson-tm-42")


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")


def paper(data: bytes) -> Walk:
    return walk(
        data, {slot: enc for enc, slot in PROFILE.slots.items()}, native_qr=PROFILE.qr_native
    )


def paper_lines(w: Walk) -> list[str]:
    """Each printed line's text (double-width lines too: the screen shows their text)."""
    return [ln.text.strip() for ln in w.lines]


def screen_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if not is_qr_row(line)]


def _luma(color: Any, default: int) -> int:
    if color is None:
        return default
    r, g, b = color.get_truecolor()
    return int(0.299 * r + 0.587 * g + 0.114 * b)


def screen_image(app: Any, selector: str) -> np.ndarray:
    """The widget's cells as a screenshot's pixels: each cell two pixel rows (top and
    bottom half, as the half-block characters split it), True = dark."""
    region = app.screen.query_one(selector).region
    strips = app.screen._compositor.render_strips()[region.y : region.y + region.height]
    rows: list[list[bool]] = []
    for strip in strips:
        top: list[bool] = []
        bottom: list[bool] = []
        for seg in strip.crop(region.x, region.x + region.width):
            text, style = seg.text, seg.style
            fg = _luma(style.color if style else None, 255) < 128
            bg = _luma(style.bgcolor if style else None, 0) < 128
            for ch in text:
                up, down = {"█": (fg, fg), "▀": (fg, bg), "▄": (bg, fg)}.get(ch, (bg, bg))
                top.append(up)
                bottom.append(down)
        rows.extend([top[: region.width], bottom[: region.width]])
    image = np.array(rows, dtype=bool)
    return np.kron(image, np.ones((4, 4), dtype=bool))  # 4 px per module for the reader


async def page_down_until(pilot: Any, selector: str, needle: str, presses: int = 6) -> bool:
    for _ in range(presses):
        if needle in widget_text(pilot.app, selector):
            return True
        await pilot.press("pagedown")
        await settle(pilot)
    return needle in widget_text(pilot.app, selector)


def test_sale_slip_preview_is_the_printed_slip_with_a_readable_qr(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                assert h.services is not None and h.services.preview is not None
                mark = len(h.services.preview.data)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(7))
                await pilot.press("enter", "enter")
                await settle(pilot)
                done = h.of(CheckoutCommitted)[-1]
                h.services.printer.drain()
                printed = paper(h.services.preview.data[mark:])
                # Line for line what the printer got (the kind's title and QR caption too).
                assert screen_lines(done.slip_text) == paper_lines(printed)
                assert "БОНУСЫ ЗА ПОКУПКУ" in paper_lines(printed)
                assert "Покажите этот код на кассе" in paper_lines(printed)
                assert "[QR]" not in done.slip_text
                box = widget_text(pilot.app, "#cheque-box")
                assert "БОНУСЫ ЗА ПОКУПКУ" in box and "PgUp/PgDn" in box
                # PageDown reaches the balance and the whole QR; the focus stays put.
                assert await page_down_until(pilot, "#cheque-box", "Баланс после")
                code = h.services.agent.identify(demo_phone(7)).code
                assert await page_down_until(pilot, "#cheque-box", code)
                assert pilot.app.focused is not None and pilot.app.focused.id == "entry"
                on_paper = [t for r in printed.rasters for t in decode_qr(r.image)]
                assert on_paper == [code]
                assert decode_qr(screen_image(pilot.app, "#cheque-box")) == [code]
                # Typing still goes to the entry line: the next cheque starts.
                await h.type(pilot, "SH-2001")
                assert "Рубашка" in widget_text(pilot.app, "#cheque-box")

    asyncio.run(main())


def test_refund_slip_preview_scrolls_and_is_the_printed_slip(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                assert h.services is not None and h.services.preview is not None
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(3))
                await pilot.press("enter", "enter")
                await settle(pilot)
                sold = h.of(CheckoutCommitted)[-1].result
                await pilot.press("f8", "f3")
                await settle(pilot)
                await h.type(pilot, sold.receipt_id)
                await h.type(pilot, "*")  # every line
                await pilot.press("f12")
                await settle(pilot)
                slip = h.of(RefundMade)[-1].slip_text
                jobs = [j for j in recent_jobs(h.services.store) if j.kind == "refund"]
                assert jobs, screen_text(pilot.app)
                printed = paper(render(jobs[0].slip, PROFILE))
                assert screen_lines(slip) == paper_lines(printed)
                assert "ВОЗВРАТ" in widget_text(pilot.app, "#refund-box")
                assert await page_down_until(pilot, "#refund-box", "Баланс")
                await pilot.press("pagedown", "pageup")
                await settle(pilot)
                assert "ВОЗВРАТ" in widget_text(pilot.app, "#refund-box")
                assert pilot.app.focused is not None and pilot.app.focused.id == "refund-entry"

    asyncio.run(main())


def test_x_and_z_reports_print_their_own_layouts(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                assert h.services is not None and h.services.preview is not None
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(1))
                await pilot.press("enter", "enter")
                await settle(pilot)
                await pilot.press("f8", "f11")
                await settle(pilot)
                h.services.printer.drain()  # the sale's slip is out
                mark = len(h.services.preview.data)
                await pilot.press("p")
                await settle(pilot)
                h.services.printer.drain()
                x = paper(h.services.preview.data[mark:])
                x_lines = paper_lines(x)
                assert "Сменный отчёт без гашения" in x_lines
                labels = {ln.split("  ")[0] for ln in x_lines}
                assert not labels & {"Чек", "Участник", "Уровень"}  # not the cheque template
                rows = {ln.split("  ")[0]: ln.split()[-1] for ln in x_lines if "  " in ln}
                assert rows["Касса"] == "till-1" and rows["Смена №"] == "1"
                assert rows["Чеков с картой"] == "1" and rows["Чеков с купоном"] == "0"
                assert {"Продажи", "Возвраты", "Бонусы", "Купоны"} <= set(x_lines)
                assert any(ln.startswith("Отчёт на") for ln in x_lines)
                assert x.of(type(x.lines[0]))  # decoded text, not opaque bytes
                # The screen printer's preview is the same job, reachable with PageDown.
                assert screen_lines(h.of(ReportQueued)[-1].preview) == x_lines
                assert await page_down_until(pilot, "#xreport", "Регистраций")
                # Closing the shift prints the Z report.
                mark = len(h.services.preview.data)
                await pilot.press("f12", "enter")
                await settle(pilot)
                assert isinstance(pilot.app.screen, SignInScreen)
                assert "Z-отчёт отправлен на принтер" in widget_text(pilot.app, "#say")
                closed = h.of(ShiftClosed)[-1].report
                h.services.printer.drain()
                z_lines = paper_lines(paper(h.services.preview.data[mark:]))
                assert "Отчёт о закрытии смены" in z_lines and "СМЕНА ЗАКРЫТА" in z_lines
                assert "Сменный отчёт без гашения" not in z_lines
                when = closed.shift.closed_at.strftime("%d.%m.%Y %H:%M")
                assert any(ln.startswith("Закрыта") and ln.endswith(when) for ln in z_lines)
                z_rows = {ln.split("  ")[0]: ln.split()[-1] for ln in z_lines if "  " in ln}
                assert z_rows["Чеков с картой"] == "1"
                kinds = [j.kind for j in recent_jobs(h.services.store)]
                assert kinds.count("z_report") == 1 and kinds.count("x_report") == 1

    asyncio.run(main())


def test_z_report_is_queued_when_the_printer_is_down_and_the_shift_closes(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            flaky = FlakyPrinter()
            flaky.broken = True
            app = h.make_app(printer_url=None)
            services = h.services
            assert services is not None
            services.printer = PrintWorker(
                services.store,
                flaky,
                lambda slip: render(slip, PROFILE),
                status_supported=False,
                backoff_initial_s=0.05,
                backoff_max_s=0.1,
                idle_poll_s=0.05,
            )
            async with app.run_test(size=(80, 24), message_hook=h.messages.append) as pilot:
                await settle(pilot)
                await sign_in(h, pilot)
                await pilot.press("f11")
                await settle(pilot)
                await pilot.press("f12", "enter")
                await settle(pilot)
                assert isinstance(pilot.app.screen, SignInScreen)
                assert current_shift(services.store) is None
                jobs = [j for j in recent_jobs(services.store) if j.kind == "z_report"]
                assert len(jobs) == 1 and jobs[0].status != "printed"
                flaky.broken = False  # the printer comes back: the Z report prints
                assert await wait_for(pilot, lambda: "закрытии".encode("cp866") in flaky.data)

    asyncio.run(main())


def test_provisional_marker_goes_once_counted_and_training_says_training(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                assert h.services is not None and h.services.sync is not None
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(2))
                await pilot.press("enter", "enter")
                await settle(pilot)
                assert not h.of(CheckoutCommitted)[-1].result.offline
                pilot.app.refresh_status()
                await settle(pilot)
                assert "ПРЕДВАРИТЕЛЬНО" in widget_text(pilot.app, "#card")  # in the queue
                sent = await asyncio.to_thread(h.services.sync.drain)
                assert sent.acked == 1
                pilot.app.refresh_status()
                await settle(pilot)
                assert pilot.app.last_status.events_waiting == 0
                card = widget_text(pilot.app, "#card")
                assert "ПРЕДВАРИТЕЛЬНО" not in card and "Баланс" in card
                # Training: never sent, so never "settles once online".
                await pilot.press("f8", "f9")
                await settle(pilot)
                await pilot.press("enter")
                await settle(pilot)
                assert h.services.training
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(2))
                await pilot.press("enter", "enter")
                await settle(pilot)
                card = widget_text(pilot.app, "#card")
                assert "ПРЕДВАРИТЕЛЬНО" not in card and "УЧЕБНЫЙ РЕЖИМ" in card
                await pilot.press("f10")
                await settle(pilot)
                assert "TRAINING" in widget_text(pilot.app, "#card")

    asyncio.run(main())


def test_an_80mm_printers_slip_is_shown_whole_at_80x24(tmp_path: Path) -> None:
    """48 columns (epson-tm-80 and the other 80 mm presets): the preview box widens to the
    printer's line and the card gives up the room, so no slip line is wrapped or cut."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run(profile="epson-tm-80") as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(7))
                await pilot.press("enter", "enter")
                await settle(pilot)
                rows = h.of(CheckoutCommitted)[-1].slip_text.split("\n")
                assert max(len(r) for r in rows) == 48
                box = widget_text(pilot.app, "#cheque-box").split("\n")
                shown = [r for r in rows if r.startswith(("Чек ", "Участник ", "Баланс до"))]
                assert len(shown) == 3 and all(any(r in b for b in box) for r in shown), box
                assert "Баланс:" in widget_text(pilot.app, "#card")  # the card is still there
                await pilot.press("f8")
                await settle(pilot)
                assert pilot.app.screen.query_one("#card").region.width == 32  # back as it was

    asyncio.run(main())


def test_page_down_stops_at_the_qr_so_it_is_drawn_whole(tmp_path: Path) -> None:
    """A training slip (its marks make the tail longer than the box at 80x24): PageDown
    stops with the QR's top row at the top of the box, the QR whole and readable there;
    PageUp goes back to the top."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await pilot.press("f9")
                await settle(pilot)
                await pilot.press("enter")
                await settle(pilot)
                assert h.services is not None and h.services.training
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(7))
                await pilot.press("enter", "enter")
                await settle(pilot)
                code = h.services.agent.identify(demo_phone(7)).code
                first_rows = []
                for _ in range(4):
                    await pilot.press("pagedown")
                    await settle(pilot)
                    inner = widget_text(pilot.app, "#cheque-box").split("\n")[1:-1]
                    first = inner[0].strip("│ ▁▂▃▄▅▆▇")
                    first_rows.append(first)
                    if first and set(first) == {"█"}:  # the QR's quiet-zone row on top
                        assert decode_qr(screen_image(pilot.app, "#cheque-box")) == [code]
                        break
                else:
                    raise AssertionError(f"PageDown never stopped at the QR: {first_rows}")
                for _ in range(4):
                    await pilot.press("pageup")
                    await settle(pilot)
                assert "*** УЧЕБНЫЙ РЕЖИМ ***" in widget_text(pilot.app, "#cheque-box")

    asyncio.run(main())

"""Pilot tests: the shift screen (X-report on screen, printed, shift closed) and the
deterministic screen snapshots (80x24, frozen clock)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from tui_helpers import Harness, harness, screen_text, settle, widget_text

from agent.printq import recent_jobs
from agent.seed import demo_phone
from agent.shifts import current_shift
from tui.messages import ReportQueued, ShiftClosed, XReportReady
from tui.screens.shift import ShiftScreen
from tui.screens.signin import SignInScreen

SNAPSHOTS = Path(__file__).with_name("snapshots")


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")


async def sale(h: Harness, pilot: Any, phone_i: int, redeem: str = "") -> None:
    await h.type(pilot, "DR-1001")
    await h.type(pilot, demo_phone(phone_i))
    if redeem:
        await h.type(pilot, redeem)
    await pilot.press("enter", "enter")
    await settle(pilot)
    await pilot.press("f8")
    await settle(pilot)


def test_x_report_print_and_close_shift(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                # F11 is hidden and inert before sign-in.
                assert "F11" not in widget_text(pilot.app, "#keys")
                await pilot.press("f11")
                await settle(pilot)
                assert isinstance(pilot.app.screen, SignInScreen)
                await sign_in(h, pilot)
                await sale(h, pilot, 1, "-*")
                await sale(h, pilot, 2)
                await pilot.press("f11")
                await settle(pilot)
                assert isinstance(pilot.app.screen, ShiftScreen)
                report = h.of(XReportReady)[-1].report
                assert (report.cheques, report.by_phone, report.by_scan) == (2, 2, 0)
                assert report.points_spent > 0 and report.points_earned > 0
                text = widget_text(pilot.app, "#xreport")
                assert "Чеков с картой" in text and "Анна Петрова" in text
                await pilot.press("p")
                await settle(pilot)
                job = h.of(ReportQueued)[-1].job_id
                assert h.services is not None
                jobs = {j.job_id: j for j in recent_jobs(h.services.store)}
                assert jobs[job].kind == "x_report"
                spent = {ln.label: ln.value for ln in jobs[job].slip.lines}["Списано"]
                assert spent.replace("\xa0", "").startswith(str(report.points_spent))
                # Esc backs out of the close question; F12 + Enter closes.
                await pilot.press("f12", "escape")
                await settle(pilot)
                assert current_shift(h.services.store) is not None
                await pilot.press("f12", "enter")
                await settle(pilot)
                closed = h.of(ShiftClosed)[-1].report
                assert closed.shift.closed_at is not None and closed.cheques == 2
                assert current_shift(h.services.store) is None
                assert isinstance(pilot.app.screen, SignInScreen)
                assert "Смена закрыта" in widget_text(pilot.app, "#say")

    asyncio.run(main())


def test_closing_the_shift_names_an_open_cheque_and_f12_twice_closes(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")  # a cheque in progress, not committed
                await pilot.press("f11")
                await settle(pilot)
                await pilot.press("f12")
                await settle(pilot)
                said = widget_text(pilot.app, "#say")
                assert "Закрыть смену?" in said and "чек" in said  # what would be lost
                await pilot.press("escape")
                await settle(pilot)
                assert h.services is not None
                assert current_shift(h.services.store) is not None
                await pilot.press("f12", "f12")  # F12 again is yes, as F8's prompt
                await settle(pilot)
                assert current_shift(h.services.store) is None
                assert isinstance(pilot.app.screen, SignInScreen)

    asyncio.run(main())


def _check_snapshot(name: str, app: Any) -> None:
    """Compare the screen with tests/snapshots/<name>.txt; KASSA_UPDATE_SNAPSHOTS=1
    rewrites it. The key bar's rows are left out: it lists every routed flow, which grows
    as flows are added (its content is checked in the checkout tests)."""
    keys = app.screen.query_one("#keys").region
    lines = screen_text(app).split("\n")
    text = "\n".join(lines[: keys.y] + lines[keys.y + keys.height :])
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("KASSA_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    assert text + "\n" == path.read_text(encoding="utf-8"), f"screen differs from {path}"


def test_snapshots_80x24(tmp_path: Path) -> None:
    """Sign-in, the checkout with a member and a quote, the slip preview, the X-report:
    fixed size, frozen clock, fixed demo data; the cursor is not drawn in headless mode."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                _check_snapshot("signin", pilot.app)
                await sign_in(h, pilot)
                await h.type(pilot, "DR-1001")
                await h.type(pilot, "OW-4002*2")
                await h.type(pilot, demo_phone(7))
                await pilot.press("f6")
                await settle(pilot)
                _check_snapshot("checkout_quote", pilot.app)
                await pilot.press("enter", "enter")
                await settle(pilot)
                _check_snapshot("checkout_slip", pilot.app)
                await pilot.press("f8", "f11")
                await settle(pilot)
                _check_snapshot("x_report", pilot.app)
                await pilot.press("f10")
                await settle(pilot)
                _check_snapshot("x_report_en", pilot.app)

    asyncio.run(main())


def test_x_report_print_on_the_screen_printer_shows_the_preview(tmp_path: Path) -> None:
    """The demo's printer is the screen: P on the shift screen shows the X-report slip as
    the sale slip is shown (and the job is queued all the same)."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await sale(h, pilot, 1)
                await pilot.press("f11")
                await settle(pilot)
                assert isinstance(pilot.app.screen, ShiftScreen)
                assert "Программа лояльности" not in widget_text(pilot.app, "#xreport")
                await pilot.press("p")
                await settle(pilot)
                queued = h.of(ReportQueued)[-1]
                assert h.services is not None and h.services.preview is not None
                jobs = {j.job_id: j for j in recent_jobs(h.services.store)}
                assert jobs[queued.job_id].kind == "x_report"
                text = widget_text(pilot.app, "#xreport")
                assert "Слип (предпросмотр)" in text
                assert "Программа лояльности" in text and "Чеков с картой" in text
                assert "Анна Петрова" in text
                assert "X-отчёт отправлен" in widget_text(pilot.app, "#say")

    asyncio.run(main())

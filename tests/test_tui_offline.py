"""The till keeps selling when the back office or the printer fails mid-shift, and the
status bar says so; the queue drains when the back office returns."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tui_helpers import Harness, harness, settle, widget_text

from agent import journal
from agent.seed import demo_phone
from drivers.printq import PrintWorker
from drivers.profiles import load_profile
from drivers.render import render
from drivers.status import PrinterError, PrinterFault
from drivers.transport import CaptureTransport
from tui.messages import CheckoutCommitted, PrinterChanged, StatusUpdated


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")


async def sell(h: Harness, pilot: Any, phone_i: int, sku: str = "DR-1001") -> Any:
    await h.type(pilot, sku)
    await h.type(pilot, demo_phone(phone_i))
    await pilot.press("enter", "enter")
    await settle(pilot)
    return h.of(CheckoutCommitted)[-1].result


async def refresh_status(pilot: Any) -> Any:
    pilot.app.refresh_status()
    await settle(pilot)
    return pilot.app.last_status


def test_back_office_down_mid_shift_then_back(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None and h.services.sync is not None
                await sign_in(h, pilot)
                first = await sell(h, pilot, 1)
                assert not first.offline
                snap = await refresh_status(pilot)
                assert snap.online is True and snap.events_waiting == 1
                assert "Очередь 1" in widget_text(pilot.app, "#status")
                sent = await asyncio.to_thread(h.services.sync.drain)
                assert sent.acked == 1
                # The back office goes away; time passes beyond the online grace.
                h.network_down()
                h.clock.advance(minutes=5)
                try:
                    await asyncio.to_thread(h.services.sync.drain)
                except Exception as e:  # the sync loop would log and back off
                    assert "TransientError" in type(e).__name__
                snap = await refresh_status(pilot)
                assert snap.online is False
                status = widget_text(pilot.app, "#status")
                assert "НЕТ СВЯЗИ" in status
                assert pilot.app.screen.query_one("#status").has_class("-offline")
                # Sales go on offline and are marked so.
                await pilot.press("f8")
                await settle(pilot)
                second = await sell(h, pilot, 2, "SH-2001")
                assert second.offline
                assert "без связи" in widget_text(pilot.app, "#say")
                assert "ПРЕДВАРИТЕЛЬНО" in h.of(CheckoutCommitted)[-1].slip_text
                snap = await refresh_status(pilot)
                assert snap.events_waiting == 1 and snap.oldest_waiting is not None
                assert "Очередь 1 с" in widget_text(pilot.app, "#status")
                # The back office returns: the queue drains exactly once.
                h.network_up()
                sent = await asyncio.to_thread(h.services.sync.drain)
                assert sent.acked == 1
                snap = await refresh_status(pilot)
                assert snap.online is True and snap.events_waiting == 0
                assert "На связи" in widget_text(pilot.app, "#status")
                applied = h.bo.db  # the server counted both cheques once
                with applied.reading() as tx:
                    rows = tx.all("SELECT count(*) FROM events WHERE status = 'applied'")
                assert rows[0][0] == 2
                assert journal.status(h.services.store).events_waiting == 0
                assert h.of(StatusUpdated)

    asyncio.run(main())


class FlakyPrinter(CaptureTransport):
    """The printer edge: refuses to open while ``broken`` (cover open)."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False

    def open(self) -> None:
        if self.broken:
            raise PrinterError(PrinterFault.OFFLINE, "refused", "printer unplugged")
        super().open()


async def wait_for(pilot: Any, cond: Any, rounds: int = 200) -> bool:
    """Let the print worker thread and the app run until ``cond()`` (no time assertion)."""
    for _ in range(rounds):
        if cond():
            return True
        await pilot.pause(0.02)
    return bool(cond())


def test_printer_fails_mid_shift_sale_is_kept_and_slip_prints_later(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            flaky = FlakyPrinter()
            app = h.make_app(printer_url=None)
            services = h.services
            assert services is not None
            profile = load_profile("epson-tm-42")
            services.printer = PrintWorker(
                services.store,
                flaky,
                lambda slip: render(slip, profile),
                status_supported=False,
                backoff_initial_s=0.05,
                backoff_max_s=0.1,
                idle_poll_s=0.05,
            )
            async with app.run_test(size=(80, 24), message_hook=h.messages.append) as pilot:
                await settle(pilot)
                await sign_in(h, pilot)
                ok = await sell(h, pilot, 1)
                assert await wait_for(pilot, lambda: ok.receipt_id.encode() in flaky.data)
                flaky.broken = True
                await pilot.press("f8")
                await settle(pilot)
                kept = await sell(h, pilot, 2, "SH-2001")
                assert kept.receipt_id  # committed although the printer is down
                assert await wait_for(
                    pilot, lambda: any(m.kind == "fault" for m in h.of(PrinterChanged))
                )
                await refresh_status(pilot)
                status = widget_text(pilot.app, "#status")
                assert "ПРИНТЕР" in status
                fault = [m for m in h.of(PrinterChanged) if m.kind == "fault"][-1]
                await pilot.press("f10")  # the fault follows the language
                await settle(pilot)
                status = widget_text(pilot.app, "#status")
                assert f"PRINTER: {fault.message_en}"[:30] in status, status
                await pilot.press("f10")
                await settle(pilot)
                assert kept.receipt_id.encode() not in flaky.data
                flaky.broken = False
                services.printer.retry_now()
                assert await wait_for(pilot, lambda: kept.receipt_id.encode() in flaky.data)
                assert await wait_for(pilot, lambda: pilot.app.printer_problem is None)
                await refresh_status(pilot)
                assert "ПРИНТЕР" not in widget_text(pilot.app, "#status")
                with services.store.read() as conn:
                    rows = conn.execute(
                        "SELECT receipt_id, status FROM print_jobs ORDER BY job_id"
                    ).fetchall()
                assert rows == [(ok.receipt_id, "printed"), (kept.receipt_id, "printed")]

    asyncio.run(main())

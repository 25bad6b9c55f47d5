"""F12 on the checkout: a copy of the slip just committed (the till service's reprint), on
paper marked «КОПИЯ»; offered only while that cheque's slip is on screen."""

from __future__ import annotations

import asyncio
from pathlib import Path

from test_tui_slips import paper, paper_lines, sign_in
from tui_helpers import harness, settle, widget_text

from agent.seed import demo_phone
from tui.messages import CheckoutCommitted, SlipReprinted


def test_f12_prints_a_copy_of_the_slip_just_committed(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                assert h.services is not None and h.services.preview is not None
                await h.type(pilot, "DR-1001")
                await h.type(pilot, demo_phone(7))
                assert "Копия слипа" not in widget_text(pilot.app, "#keys")
                await pilot.press("f12")  # nothing committed yet: nothing to copy
                await settle(pilot)
                assert h.of(SlipReprinted) == []
                await pilot.press("enter", "enter")
                await settle(pilot)
                done = h.of(CheckoutCommitted)[-1]
                assert "Копия слипа" in widget_text(pilot.app, "#keys")
                assert h.services.printer is not None
                h.services.printer.drain()
                mark = len(h.services.preview.data)

                await pilot.press("f12")
                await settle(pilot)
                copy = h.of(SlipReprinted)[-1]
                assert copy.copy_of == done.result.print_job_id
                assert copy.job_id != copy.copy_of
                assert copy.receipt_id == done.result.receipt_id
                assert f"Копия слипа чека {done.result.receipt_id}" in widget_text(
                    pilot.app, "#say"
                )
                row = h.services.store.one(
                    "SELECT receipt_id, copy FROM print_jobs WHERE job_id = ?", (copy.job_id,)
                )
                assert tuple(row) == (done.result.receipt_id, 1)
                h.services.printer.drain()
                printed = paper_lines(paper(h.services.preview.data[mark:]))
                assert any("КОПИЯ" in line for line in printed), printed
                assert "БОНУСЫ ЗА ПОКУПКУ" in printed  # the same slip, as the member got it

                await pilot.press("enter")  # the next cheque: no slip of it to copy
                await settle(pilot)
                assert "Копия слипа" not in widget_text(pilot.app, "#keys")
                await pilot.press("f12")
                await settle(pilot)
                assert len(h.of(SlipReprinted)) == 1

    asyncio.run(main())

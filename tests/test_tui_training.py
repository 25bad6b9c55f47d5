"""Training mode (F9): everything works, nothing is sent as real.

Pilot over a real till store and the real back office: a training sale, refund and
registration change neither the real journal nor the member cache nor anything at the
back office (balances, purchases, members), before or after a sync; the status bar and
the slips (on screen and decoded ESC/POS) say «УЧЕБНЫЙ РЕЖИМ»; the training copy's
journal cannot be pushed even by hand."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from escpos_walker import walk
from tui_helpers import Harness, harness, settle, widget_text

from agent.errors import NotFoundError
from agent.seed import demo_phone
from agent.store import Store
from agent.training import is_training, open_training_store
from drivers.profiles import load_profile
from sync.client import PermanentError, SyncClient
from tui.messages import CheckoutCommitted, ShiftClosed, XReportReady
from tui.screens.register import MemberRegistered
from tui.screens.shift import ShiftScreen
from tui.screens.sync import SyncFinished
from tui.screens.training import TrainingScreen, TrainingToggled

NEW_PHONE = "+7 999 555-01-23"


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")


def with_points(h: Harness) -> int:
    assert h.services is not None
    return next(i for i in range(1, 60) if h.services.agent.identify(demo_phone(i)).spendable)


async def sell(h: Harness, pilot: Any, phone_i: int, spend: bool = False) -> Any:
    await h.type(pilot, "DR-1001")
    await h.type(pilot, demo_phone(phone_i))
    if spend:
        await pilot.press("f6")
        await settle(pilot)
    await pilot.press("enter", "enter")
    await settle(pilot)
    result = h.of(CheckoutCommitted)[-1].result
    await pilot.press("f8")
    await settle(pilot)
    return result


def real_state(store: Store, member_id: str) -> tuple[Any, ...]:
    with store.read() as conn:
        return (
            conn.execute("SELECT count(*), max(seq) FROM outbox").fetchone(),
            conn.execute("SELECT count(*) FROM purchases").fetchone()[0],
            conn.execute("SELECT count(*) FROM members").fetchone()[0],
            conn.execute("SELECT count(*) FROM print_jobs").fetchone()[0],
            conn.execute(
                "SELECT state, balance, unsynced FROM members WHERE member_id = ?", (member_id,)
            ).fetchone(),
        )


def backoffice_state(h: Harness, member_id: str) -> tuple[Any, ...]:
    with h.bo.db.reading() as tx:
        return (
            tuple(tx.one("SELECT balance, state FROM members WHERE member_id = ?", (member_id,))),
            tx.all("SELECT count(*) FROM purchases")[0][0],
            tx.all("SELECT count(*) FROM members")[0][0],
            tx.all("SELECT count(*) FROM events")[0][0],
        )


async def toggle(pilot: Any) -> None:
    await pilot.press("f9")
    await settle(pilot)
    assert isinstance(pilot.app.screen, TrainingScreen)
    await pilot.press("enter")
    await settle(pilot)


def test_training_sales_never_reach_the_journal_or_the_back_office(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                who = with_points(h)
                real = await sell(h, pilot, who)  # a real sale first, synced
                member = real.quote.member_id
                sent = await asyncio.to_thread(h.services.sync.drain)
                assert sent.acked == 1
                real_store = h.services.store
                before = real_state(real_store, member)
                bo_before = backoffice_state(h, member)
                card_before = h.services.agent.card(member)

                await toggle(pilot)
                assert h.of(TrainingToggled)[-1].on is True
                assert h.services.training and is_training(h.services.store)
                assert h.services.store is not real_store
                assert "УЧЕБНЫЙ РЕЖИМ" in widget_text(pilot.app, "#status")
                mark = len(h.services.preview.data)

                # A training sale spending points: works like a real one...
                train = await sell(h, pilot, who, spend=True)
                assert train.receipt_id.startswith("TRN-")
                assert train.quote.redeem_points > 0 and not train.offline
                slip = h.of(CheckoutCommitted)[-1].slip_text
                assert "УЧЕБНЫЙ РЕЖИМ" in slip
                assert h.services.agent.card(member).balance != card_before.balance
                # ...and its slip is printed marked as training (decoded ESC/POS).
                h.services.printer.drain()
                profile = load_profile("epson-tm-42")
                paper = walk(
                    h.services.preview.data[mark:],
                    {slot: enc for enc, slot in profile.slots.items()},
                    native_qr=profile.qr_native,
                ).view(profile.columns)
                assert "*** УЧЕБНЫЙ РЕЖИМ ***" in paper
                assert "НЕ ЧЕК" in paper and train.receipt_id in paper
                # A training refund and a training registration.
                h.services.agent.refund("RF-T1", train.receipt_id, {1: 1})
                await pilot.press("f2")
                await settle(pilot)
                screen = pilot.app.screen
                for field, value in (("#phone", NEW_PHONE), ("#first-name", "Вера")):
                    screen.query_one(field).value = value
                screen.query_one("#consent-rules").value = True
                await pilot.press("f12")
                await settle(pilot)
                assert h.of(MemberRegistered)
                await pilot.press("escape")
                await settle(pilot)
                # The training journal is never pending: the queue stays empty.
                training_pending = h.services.store.one(
                    "SELECT count(*) FROM outbox WHERE status = 'pending'"
                )
                assert training_pending == (0,)
                assert h.services.store.one("SELECT count(*) FROM outbox")[0] == 3
                # The status bar shows the real queue (the real sale is acked: 0 waiting).
                assert "Очередь 0" in widget_text(pilot.app, "#status")
                # "Sync now" in training sends the real journal only: nothing new.
                await pilot.press("f5")
                await settle(pilot)
                await pilot.press("f5")
                await settle(pilot)
                assert h.of(SyncFinished)[-1].report["pushed"] == 0
                await pilot.press("escape")
                await settle(pilot)
                # Nothing real changed, here or at the back office.
                assert real_state(real_store, member) == before
                assert backoffice_state(h, member) == bo_before

                await toggle(pilot)  # training off
                assert h.of(TrainingToggled)[-1].on is False
                assert h.services.store is real_store and not h.services.training
                assert not (tmp_path / "till.training.db").exists()  # training data dropped
                assert "УЧЕБНЫЙ" not in widget_text(pilot.app, "#status")
                assert h.services.agent.card(member).balance == card_before.balance
                with pytest.raises(NotFoundError):
                    h.services.agent.identify(NEW_PHONE)
                sent = await asyncio.to_thread(h.services.sync.drain)
                assert sent.sent == 0
                assert real_state(real_store, member) == before
                assert backoffice_state(h, member) == bo_before
                # Live again: the next sale is real and reaches the back office.
                live = await sell(h, pilot, who)
                assert not live.receipt_id.startswith("TRN-")
                assert "УЧЕБНЫЙ" not in h.of(CheckoutCommitted)[-1].slip_text
                sent = await asyncio.to_thread(h.services.sync.drain)
                assert sent.acked == 1
                assert backoffice_state(h, member)[1] == bo_before[1] + 1

    asyncio.run(main())


def test_training_copy_cannot_be_pushed_even_by_hand(tmp_path: Path) -> None:
    with harness(tmp_path) as h:
        from agent.model import Cart, CartLine
        from agent.results import CheckoutRequest
        from agent.service import Agent

        with Store(h.path) as real:
            copy = open_training_store(real, h.clock.now())
            try:
                agent = Agent(copy, h.clock)
                member = agent.identify(demo_phone(2)).member_id
                line = CartLine(1, "DR-1001", "Платье", "dresses", 649900, 1, 649900)
                agent.commit(CheckoutRequest(member, Cart("T-1", (line,))))
                row = copy.one("SELECT status, terminal_id FROM outbox")
                assert row is not None and row[0] == "training" and row[1].startswith("TRN-")
                assert copy.meta("sync_token") is None
                assert agent.print_job(1).training
                client = SyncClient(agent, h.http, token=real.meta("sync_token"))
                with pytest.raises(PermanentError, match="training"):
                    client.push_once()
                with h.bo.db.reading() as tx:
                    assert tx.all("SELECT count(*) FROM events")[0][0] == 0
                assert real.one("SELECT count(*) FROM outbox") == (0,)
            finally:
                copy.close()
            with pytest.raises(ValueError):
                open_training_store(real, h.clock.now(), real.path)


def test_training_has_its_own_shift_report_and_no_close_key(tmp_path: Path) -> None:
    """In training the X report is the training shift's: its own opening time and the
    training cheques only, with the screen saying so; F12 «Закрыть смену» is not offered
    and does nothing; leaving training gives the real shift back, open, with its report."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                real_store = h.services.store
                shift = h.services.shift
                assert shift is not None
                await sell(h, pilot, 1)  # a real cheque in the real shift
                h.clock.advance(hours=2)
                await toggle(pilot)
                training_shift = h.services.shift
                assert training_shift is not None and training_shift.shift_id != shift.shift_id
                assert training_shift.opened_at == h.clock.now()
                assert training_shift.terminal_id.startswith("TRN-")
                await sell(h, pilot, 2)  # two training cheques
                await sell(h, pilot, 3)
                await pilot.press("f11")
                await settle(pilot)
                report = h.of(XReportReady)[-1].report
                assert report.cheques == 2 and report.shift.shift_id == training_shift.shift_id
                local_open = h.clock.now().astimezone(report.shift.opened_at.tzinfo)
                assert report.shift.opened_at == local_open
                panel = widget_text(pilot.app, "#xreport")
                assert local_open.strftime("%d.%m %H:%M") in panel
                assert "Учебная смена" in widget_text(pilot.app, "#say")
                assert "Закрыть смену" not in widget_text(pilot.app, "#keys")
                await pilot.press("f12", "enter")  # not offered: nothing happens
                await settle(pilot)
                assert isinstance(pilot.app.screen, ShiftScreen)
                assert h.services.shift == training_shift
                assert not h.of(ShiftClosed)
                await pilot.press("f1")  # help names no F12 either
                await settle(pilot)
                help_text = widget_text(pilot.app, "#help-text")
                assert "Учебная смена закроется" in help_text, help_text
                assert "F12" not in help_text and "закрыть смену" not in help_text
                await pilot.press("escape")
                await settle(pilot)
                assert isinstance(pilot.app.screen, ShiftScreen)
                await pilot.press("f10")  # the note follows the language
                await settle(pilot)
                assert "Training shift" in widget_text(pilot.app, "#say")
                assert "Close shift" not in widget_text(pilot.app, "#keys")
                await pilot.press("f10", "escape")
                await settle(pilot)
                await toggle(pilot)  # training off
                assert h.services.store is real_store
                assert h.services.shift is not None
                assert h.services.shift.shift_id == shift.shift_id
                assert h.services.cashier is not None
                assert h.services.cashier.cashier_id == "anna"
                row = real_store.one(
                    "SELECT closed_at FROM shifts WHERE shift_id = ?", (shift.shift_id,)
                )
                assert row == (None,)
                assert real_store.one("SELECT count(*) FROM shifts") == (1,)
                await pilot.press("f11")
                await settle(pilot)
                real_report = h.of(XReportReady)[-1].report
                assert real_report.shift.shift_id == shift.shift_id and real_report.cheques == 1
                assert "Закрыть смену" in widget_text(pilot.app, "#keys")
                assert "Учебная" not in widget_text(pilot.app, "#say")

    asyncio.run(main())


def test_status_bar_in_training_shows_the_real_queue(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                await sell(h, pilot, 1)  # real, not yet sent: the real queue is 1
                await toggle(pilot)
                await sell(h, pilot, 2)  # training: never queued
                await sell(h, pilot, 3)
                pilot.app.refresh_status()
                await settle(pilot)
                snap = pilot.app.last_status
                assert snap.training and snap.events_waiting == 1
                status = widget_text(pilot.app, "#status")
                assert "УЧЕБНЫЙ РЕЖИМ" in status and "Очередь 1" in status
                assert (tmp_path / "till.training.db").exists()
            # The app closed while training: the copy is closed and deleted.
            assert not (tmp_path / "till.training.db").exists()

    asyncio.run(main())


def test_training_off_message_follows_the_language(tmp_path: Path) -> None:
    """«Учебный режим выключен» on the checkout's message line reads "Training mode off"
    after F10 (and Russian again after F10 once more)."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await toggle(pilot)  # training on
                assert "Учебный режим включён" in widget_text(pilot.app, "#say")
                await toggle(pilot)  # training off
                assert h.services is not None and not is_training(h.services.store)
                assert "Учебный режим выключен" in widget_text(pilot.app, "#say")
                await pilot.press("f10")
                await settle(pilot)
                say = widget_text(pilot.app, "#say")
                assert "Training mode off" in say and "Учебный" not in say
                await pilot.press("f10")
                await settle(pilot)
                assert "Учебный режим выключен" in widget_text(pilot.app, "#say")

    asyncio.run(main())


def test_training_at_80x24_cuts_no_name_mark_or_cheque_number(tmp_path: Path) -> None:
    """Training at 80x24 (both languages): the status bar keeps the training mark and the
    cashier's whole name (it drops the last-contact time instead), a discounted sale line
    shows its whole sale mark, and the cheque number is shown whole."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run(size=(80, 24)) as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                await toggle(pilot)
                screen = pilot.app.screen
                await h.type(pilot, "SS-5001!")
                await h.type(pilot, "SH-2001*2!")
                await h.type(pilot, demo_phone(with_points(h)))
                await pilot.press("f6")
                await settle(pilot)
                assert screen.receipt_id is not None and screen.receipt_id.startswith("TRN-")
                for lang, mark, sale in (
                    ("ru", "УЧЕБНЫЙ РЕЖИМ", "[расп.]"),
                    ("en", "TRAINING", "[sale]"),
                ):
                    pilot.app.refresh_status()
                    await settle(pilot)
                    status = widget_text(pilot.app, "#status")
                    assert mark in status and "Анна Петрова" in status, (lang, status)
                    assert "…" not in status, status
                    box = widget_text(pilot.app, "#cheque-box").split("\n")
                    assert screen.receipt_id in box[0], box[0]
                    lines = [r for r in box if "Ботинки" in r or "Рубашка" in r]
                    assert len(lines) == 2 and all(sale in r for r in lines), (lang, box)
                    assert all("-" in r.split("₽")[-2] for r in lines), box  # the discounts
                    await pilot.press("f10")
                    await settle(pilot)

    asyncio.run(main())

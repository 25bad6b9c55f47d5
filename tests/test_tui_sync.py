"""Pilot tests: the sync screen (F5) over a real store and the real back office: the queue
(waiting, oldest, last contact, online/offline), the quarantine with its reason, and
"sync now" that drains the queue exactly once, or says there is no link and keeps it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tui_helpers import Harness, harness, settle, widget_text

from agent import journal
from agent.seed import demo_phone
from tui.messages import CheckoutCommitted
from tui.screens.sync import SyncFinished, SyncRead, SyncScreen


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")


async def sell(h: Harness, pilot: Any, phone_i: int) -> Any:
    await h.type(pilot, "SH-2001")
    await h.type(pilot, demo_phone(phone_i))
    await pilot.press("enter", "enter")
    await settle(pilot)
    result = h.of(CheckoutCommitted)[-1].result
    await pilot.press("f8")
    await settle(pilot)
    return result


async def two_sales(h: Harness, pilot: Any) -> None:
    await sign_in(h, pilot)
    await sell(h, pilot, 1)
    await sell(h, pilot, 2)


async def sync_now(pilot: Any) -> None:
    """F5 opens the sync screen, F5 there syncs now."""
    for _ in range(2):
        await pilot.press("f5")
        await settle(pilot)


def applied(h: Harness) -> int:
    with h.bo.db.reading() as tx:
        return int(tx.all("SELECT count(*) FROM events WHERE status = 'applied'")[0][0])


def test_queue_offline_then_sync_now_drains_once(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                await sell(h, pilot, 1)
                h.network_down()
                h.clock.advance(minutes=5)
                await sell(h, pilot, 2)
                await pilot.press("f5")
                await settle(pilot)
                assert isinstance(pilot.app.screen, SyncScreen)
                read = h.of(SyncRead)[-1]
                assert read.online is False and read.status.events_waiting == 2
                text = widget_text(pilot.app, "#sync-box")
                assert "НЕТ СВЯЗИ" in text
                assert "В очереди событий  2" in text
                assert "Самое старое" in text and "Карантин пуст" in text
                # Sync now while the back office is away: said plainly, queue kept.
                await pilot.press("f5")
                await settle(pilot)
                assert h.of(SyncFinished)[-1].ok is False
                assert "Связи нет" in widget_text(pilot.app, "#say")
                assert journal.status(h.services.store).events_waiting == 2
                assert applied(h) == 0
                assert "Последняя ошибка" in widget_text(pilot.app, "#sync-box")
                # Back: sync now sends both, once.
                h.network_up()
                await pilot.press("f5")
                await settle(pilot)
                done = h.of(SyncFinished)[-1]
                assert done.ok and done.report["acked"] == 2
                assert "принято 2" in widget_text(pilot.app, "#say")
                assert applied(h) == 2
                read = h.of(SyncRead)[-1]
                assert read.online is True and read.status.events_waiting == 0
                assert "на связи" in widget_text(pilot.app, "#sync-box")
                # Again: nothing more is sent, nothing doubled.
                await pilot.press("f5")
                await settle(pilot)
                assert h.of(SyncFinished)[-1].report["pushed"] == 0
                assert applied(h) == 2
                await pilot.press("f10")
                await settle(pilot)
                assert "Events waiting" in widget_text(pilot.app, "#sync-box")
                await pilot.press("escape")
                await settle(pilot)
                assert not isinstance(pilot.app.screen, SyncScreen)

    asyncio.run(main())


def test_quarantine_lists_refused_events_with_reason(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await two_sales(h, pilot)
                with h.services.store.write() as conn:  # event 1 corrupted on disk
                    conn.execute("UPDATE outbox SET payload = payload || ' ' WHERE seq = 1")
                await sync_now(pilot)
                done = h.of(SyncFinished)[-1]
                assert done.ok and (done.report["acked"], done.report["quarantined"]) == (1, 1)
                read = h.of(SyncRead)[-1]
                assert [(q["seq"], q["code"]) for q in read.quarantine] == [(1, "hash_mismatch")]
                text = widget_text(pilot.app, "#sync-box")
                assert "Карантин: 1" in text
                assert "#1" in text and "purchase" in text and "hash_mismatch" in text
                assert "очередь не держат" in text
                assert read.status.events_waiting == 0

    asyncio.run(main())


def test_accepted_events_show_until_their_verdict(tmp_path: Path, monkeypatch: Any) -> None:
    """A busy back office only accepts the push: the screen says the events are accepted
    and not yet applied; once the projector has applied them, sync now confirms them."""
    from sync.backoffice import ingest, project

    monkeypatch.setattr(ingest, "INLINE_MAX_EVENTS", 0)

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await two_sales(h, pilot)
                await sync_now(pilot)
                assert h.of(SyncFinished)[-1].ok
                status = journal.status(h.services.store)
                assert status.events_waiting == 0 and status.awaiting_verdict == 2
                assert applied(h) == 0
                assert "Приняты, ждут учёта  2" in widget_text(pilot.app, "#sync-box")
                assert project.run_all(h.bo.context) == 2
                await pilot.press("f5")
                await settle(pilot)
                assert h.of(SyncFinished)[-1].report["confirmed"] == 2
                assert journal.status(h.services.store).awaiting_verdict == 0
                assert applied(h) == 2
                assert "ждут учёта" not in widget_text(pilot.app, "#sync-box")

    asyncio.run(main())


def test_sync_message_follows_a_language_switch(tmp_path: Path) -> None:
    """The line under the screen is kept as a key and its values, not as rendered text:
    after "sync now" F10 re-renders it in English (and back), figures unchanged."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await two_sales(h, pilot)
                await sync_now(pilot)
                assert h.of(SyncFinished)[-1].ok
                assert "Готово: отправлено 2, принято 2" in widget_text(pilot.app, "#say")
                await pilot.press("f10")
                await settle(pilot)
                text = widget_text(pilot.app, "#say")
                assert "Done: sent 2, acknowledged 2" in text and "Готово" not in text, text
                await pilot.press("f10")
                await settle(pilot)
                assert "Готово: отправлено 2, принято 2" in widget_text(pilot.app, "#say")
                # A failed sync names the error the same way in either language.
                h.network_down()
                await pilot.press("f5")
                await settle(pilot)
                assert "Связи нет" in widget_text(pilot.app, "#say")
                await pilot.press("f10")
                await settle(pilot)
                assert "No link" in widget_text(pilot.app, "#say")

    asyncio.run(main())


def test_a_refusal_is_not_called_no_link(tmp_path: Path) -> None:
    """The back office answers no (here: the till's token is not valid any more): the
    screen names the refusal and asks for the administrator, instead of "no link, it
    will go later", which would never happen by itself; the queue is kept."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None and h.services.sync is not None
                await sign_in(h, pilot)
                await sell(h, pilot, 1)
                h.services.sync.token = "revoked-" + "0" * 24
                await sync_now(pilot)
                done = h.of(SyncFinished)[-1]
                assert done.ok is False and done.refused
                said = widget_text(pilot.app, "#say")
                assert f"Бэк-офис отказал ({done.refused})" in said, said
                assert "Связи нет" not in said
                assert journal.status(h.services.store).events_waiting == 1
                await pilot.press("f10")
                await settle(pilot)
                assert "The back office refused" in widget_text(pilot.app, "#say")

    asyncio.run(main())

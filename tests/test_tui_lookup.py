"""Pilot tests: member lookup (F4) by phone, member code (scan) and name fragment, with the
member's cheques on this till (purchases and refunds), against a real store and back
office; bad input is named and nothing is written."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from textual.widgets import OptionList
from tui_helpers import Harness, harness, settle, widget_text

from agent import history
from agent.seed import demo_phone
from tui.messages import CheckoutCommitted, CoreFailed
from tui.screens.lookup import LookupScreen, MemberLooked, MembersMatched


async def sign_in(h: Harness, pilot: Any) -> None:
    await pilot.press("enter")
    await h.type(pilot, "1111")


def footprint(h: Harness) -> tuple[Any, ...]:
    assert h.services is not None
    with h.services.store.read() as conn:
        return tuple(
            conn.execute(
                "SELECT (SELECT count(*) FROM outbox), (SELECT count(*) FROM members), "
                "(SELECT group_concat(state) FROM members)"
            ).fetchone()
        )


def test_lookup_by_phone_shows_card_and_this_tills_history(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                # A sale and a partial refund for member 3 on this till.
                await h.type(pilot, "DR-1001*2")
                await h.type(pilot, demo_phone(3))
                await pilot.press("enter", "enter")
                await settle(pilot)
                sale = h.of(CheckoutCommitted)[-1].result
                h.services.agent.refund("RF-1", sale.receipt_id, {1: 1})
                await pilot.press("f8")
                await settle(pilot)
                await pilot.press("f4")
                await settle(pilot)
                assert isinstance(pilot.app.screen, LookupScreen)
                before = footprint(h)
                phone = demo_phone(3)
                await h.type(pilot, f"8 ({phone[2:5]}) {phone[5:8]}-{phone[8:10]}-{phone[10:]}")
                looked = h.of(MemberLooked)[-1]
                assert looked.card.member_id == sale.quote.member_id
                assert [(e.kind, e.receipt_id) for e in looked.history] == [
                    ("refund", sale.receipt_id),
                    ("purchase", sale.receipt_id),
                ]
                assert looked.history[1].points_delta == sale.quote.total_earned
                text = widget_text(pilot.app, "#lookup-right")
                assert "Только история этой кассы" in text
                assert "покупка" in text and "возврат" in text
                assert sale.receipt_id in text
                card = widget_text(pilot.app, "#lookup-card")
                assert looked.card.phone_masked in card
                assert footprint(h) == before  # a lookup writes nothing
                await pilot.press("f10")
                await settle(pilot)
                assert "Only this till's history" in widget_text(pilot.app, "#lookup-right")

    asyncio.run(main())


def test_lookup_by_scanned_code_and_by_name_fragment(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                await sign_in(h, pilot)
                await pilot.press("f4")
                await settle(pilot)
                code = h.services.agent.identify(demo_phone(5)).code
                await h.scan(pilot, code)
                assert h.of(MemberLooked)[-1].card.code == code
                assert "На этой кассе чеков нет" in widget_text(pilot.app, "#lookup-right")
                # A name fragment in lower case finds Cyrillic names.
                await h.type(pilot, "ольг")
                matched = h.of(MembersMatched)[-1]
                assert matched.matches
                assert all("Ольг" in (m.first_name or "") for m in matched.matches)
                options = pilot.app.screen.query_one("#lookup-matches", OptionList)
                assert options.option_count == len(matched.matches)
                await pilot.press("down", "enter")
                await settle(pilot)
                assert h.of(MemberLooked)[-1].card.member_id == matched.matches[1].member_id
                # Nobody by that name.
                await h.type(pilot, "Зебра")
                assert "Никого не найдено" in widget_text(pilot.app, "#say")

    asyncio.run(main())


def test_bad_queries_are_named(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                await sign_in(h, pilot)
                await pilot.press("f4")
                await settle(pilot)
                before = footprint(h)
                await h.type(pilot, "12345")  # neither a phone nor a member code
                failed = h.of(CoreFailed)[-1]
                assert (failed.op_name, failed.code) == ("look_up", "bad_phone")
                assert "слишком мало цифр" in widget_text(pilot.app, "#say")
                assert pilot.app.screen.looked is None
                await h.type(pilot, "+7 999 000-00-00")  # a valid phone nobody has
                assert "Не найдено: с этим телефоном участника нет" in widget_text(
                    pilot.app, "#say"
                )
                await h.type(pilot, "я")  # one letter is too little for a name search
                assert "2 буквы" in widget_text(pilot.app, "#say")
                assert footprint(h) == before

    asyncio.run(main())


def test_name_search_is_capped_and_skips_merged(tmp_path: Path) -> None:
    with harness(tmp_path, members=200) as h, h.make_app().services.store as store:
        found = history.find_by_name(store, "АН")  # Анна, Андрей, Татьяна...
        assert len(found) == history.NAME_MATCH_LIMIT
        victim = found[0]
        with store.write() as conn:
            conn.execute(
                "UPDATE members SET merged_into = ? WHERE member_id = ?",
                (found[1].member_id, victim.member_id),
            )
        again = history.find_by_name(store, "ан")
        assert victim.member_id not in {m.member_id for m in again}


def test_name_matches_use_the_whole_panel_at_80x24(tmp_path: Path) -> None:
    """20 matches at 80x24: the list fills the panel (no empty rows under it while
    more names wait below), and the arrows reach the last one."""

    async def main() -> None:
        with harness(tmp_path, members=200) as h:
            async with h.run(size=(80, 24)) as pilot:
                await sign_in(h, pilot)
                await pilot.press("f4")
                await settle(pilot)
                await h.type(pilot, "ан")
                matched = h.of(MembersMatched)[-1]
                assert len(matched.matches) == history.NAME_MATCH_LIMIT
                screen = pilot.app.screen
                options = screen.query_one("#lookup-matches", OptionList)
                panel = screen.query_one("#lookup-right")
                assert options.region.height == panel.content_region.height >= 14
                rows = widget_text(pilot.app, "#lookup-matches").split("\n")
                assert all(r.strip() for r in rows), rows  # every row shows a name
                assert "Показаны первые 20" in widget_text(pilot.app, "#say")
                for _ in range(len(matched.matches) - 1):
                    await pilot.press("down")
                await pilot.press("enter")
                await settle(pilot)
                assert h.of(MemberLooked)[-1].card.member_id == matched.matches[-1].member_id

    asyncio.run(main())


def test_history_shows_cheque_numbers_and_amounts_whole_at_80x24(tmp_path: Path) -> None:
    """An offline purchase («покупка (без связи)») widens the kind column: the cheque
    number (what a refund searches by) and the amount still show whole, in both
    languages."""

    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run(size=(80, 24)) as pilot:
                assert h.services is not None and h.services.sync is not None
                await sign_in(h, pilot)
                h.network_down()
                h.clock.advance(minutes=5)  # beyond the online grace
                with contextlib.suppress(Exception):  # the sync loop would back off
                    await asyncio.to_thread(h.services.sync.drain)
                await h.type(pilot, "OW-4001*3")
                await h.type(pilot, demo_phone(3))
                await pilot.press("enter", "enter")
                await settle(pilot)
                sale = h.of(CheckoutCommitted)[-1].result
                assert sale.offline
                await pilot.press("f8")
                await settle(pilot)
                await pilot.press("f4")
                await settle(pilot)
                await h.type(pilot, demo_phone(3))
                for amount, kind in (("56 997,00 ₽", "без связи"), ("56,997.00 ₽", "offline")):
                    text = widget_text(pilot.app, "#lookup-right").replace("\u00a0", " ")
                    assert sale.receipt_id in text and "…" not in text, text
                    assert amount in text and kind in text, text
                    await pilot.press("f10")
                    await settle(pilot)

    asyncio.run(main())

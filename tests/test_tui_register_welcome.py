"""Pilot test of the demo programme's first-purchase flow at an offline till: register a
member (F2), get the welcome bonus, Enter to the checkout, spend part of it on the first
purchase. The registration screen, the member card, the quote and the slip say the same
thing about the bonus (``welcome.spend_before_sync``), and the back office, re-scoring the
cheque with the same engine, agrees and ends with the same balance."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from tui_helpers import Harness, harness, settle, widget_text

from agent.seed import demo_programme
from sync.backoffice import project, verify
from tui.messages import CheckoutCommitted, CoreFailed, QuoteReady
from tui.screens.checkout import CheckoutScreen
from tui.screens.register import MemberRegistered, RegisterScreen

PHONE = "+7 999 555-01-23"


async def register_offline(h: Harness, pilot: Any) -> MemberRegistered:
    await pilot.press("enter")
    await h.type(pilot, "1111")
    h.network_down()
    h.clock.advance(minutes=5)  # beyond the online grace: the till is offline
    await pilot.press("f2")
    await settle(pilot)
    assert isinstance(pilot.app.screen, RegisterScreen)
    await h.type(pilot, PHONE)
    await h.type(pilot, "Вера")
    await h.type(pilot, "")
    await pilot.press("space", "f12")
    await settle(pilot)
    done = h.of(MemberRegistered)
    assert len(done) == 1, h.of(CoreFailed)
    return done[0]


def test_register_offline_then_spend_part_of_the_welcome_bonus(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                reg = await register_offline(h, pilot)
                assert reg.offline and reg.registration.welcome_points == 500
                result = " ".join(widget_text(pilot.app, "#register-result").split())
                assert "можно списать сразу" in result and "офлайн-лимитов" in result
                await pilot.press("enter")  # to a purchase with the new member
                await settle(pilot)
                checkout = pilot.app.screen
                assert isinstance(checkout, CheckoutScreen)
                assert checkout.card is not None
                assert checkout.card.code == reg.registration.card.code
                assert checkout.card.spendable == 500
                assert checkout.card.identified_by == "registration"  # not a card scan
                assert "Доступно: 500" in " ".join(widget_text(pilot.app, "#card").split())
                await h.type(pilot, "SH-2001")
                q = h.of(QuoteReady)[-1].quote
                assert q.max_redeem_points == 500  # what the card said
                await h.type(pilot, "-200")
                assert h.of(QuoteReady)[-1].quote.redeem_points == 200
                await pilot.press("enter", "enter")
                await settle(pilot)
                committed = h.of(CheckoutCommitted)[-1]
                assert committed.result.offline and committed.result.quote.redeem_points == 200
                slip = committed.slip_text
                assert "Списано" in slip and "приветственный бонус" in slip
                assert h.services is not None and h.services.sync is not None
                till_card = h.services.agent.card(checkout.card.member_id)
                assert till_card.balance == 500 - 200 + committed.result.quote.total_earned
                # Back online: both events reach the back office, which re-scores the
                # cheque with the same engine and finds nothing to flag.
                h.network_up()
                sent = await asyncio.to_thread(h.services.sync.drain)
                assert sent.acked == 2
                project.run_all(h.bo.context)
                verify.run_all(h.bo.context)
                with h.bo.db.reading() as tx:
                    flags = tx.all("SELECT kind, detail FROM flags")
                    row = tx.one("SELECT balance FROM members WHERE code = ?", (till_card.code,))
                assert [(k, json.loads(d)) for k, d in flags] == []
                assert row is not None and int(row[0]) == till_card.balance

    asyncio.run(main())


def test_without_the_setting_every_face_says_the_bonus_waits(tmp_path: Path) -> None:
    async def main() -> None:
        with harness(tmp_path) as h:
            async with h.run() as pilot:
                assert h.services is not None
                waiting = replace(demo_programme(), version=2, welcome_spend_before_sync=False)
                h.services.agent.install_rules(waiting)
                reg = await register_offline(h, pilot)
                result = " ".join(widget_text(pilot.app, "#register-result").split())
                assert "после подтверждения регистрации" in result
                await pilot.press("enter")
                await settle(pilot)
                checkout = pilot.app.screen
                assert isinstance(checkout, CheckoutScreen) and checkout.card is not None
                assert checkout.card.code == reg.registration.card.code
                assert checkout.card.spendable == 0
                card_text = " ".join(widget_text(pilot.app, "#card").replace("│", " ").split())
                assert "Доступно: 0" in card_text
                assert "500 бонусов — после подтверждения регистрации" in card_text
                await h.type(pilot, "SH-2001")
                q = h.of(QuoteReady)[-1].quote
                assert q.max_redeem_points == 0 and q.redeem_limited_by == "offline_provisional"
                await pilot.press("enter", "enter")
                await settle(pilot)
                slip = h.of(CheckoutCommitted)[-1].slip_text
                assert "после подтверждения регистрации" in slip

    asyncio.run(main())

"""The welcome bonus of a member who joined at an offline till (``welcome.spend_before_sync``):
the rules loader's check, the pure engine's bound, and what the Agent quotes, shows on the
member card and prints on the slip, over a real SQLite store."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agent import engine
from agent.errors import RedemptionError, RulesError
from agent.model import MemberState, PointLot
from agent.results import CheckoutRequest
from agent.rules import load_programme_text, parse_programme, programme_to_dict
from agent.seed import demo_programme
from agent.slip import slip_text
from tests.conftest import NOW, make_cart

PHONE = "+79995550123"


def offline_registration(till, rules=None):
    """Install ``rules`` (if given), take the till offline, register a member there."""
    if rules is not None:
        till.agent.install_rules(rules)
    grace = till.agent.programme().offline.online_grace_seconds
    till.clock.advance(seconds=grace + 1)
    assert not till.agent.offline_status().online
    return till.agent.register(
        phone=PHONE, first_name="Вера", consent_programme=True, consent_marketing=False
    )


def without_spending_before_sync():
    return replace(demo_programme(), version=2, welcome_spend_before_sync=False)


# ---------------------------------------------------------------------- the rules file
def test_the_setting_is_read_checked_and_kept() -> None:
    demo = demo_programme()
    assert demo.welcome_spend_before_sync is True  # the demo shows the flow
    assert parse_programme(programme_to_dict(demo)) == demo
    doc = programme_to_dict(demo)
    del doc["welcome"]["spend_before_sync"]
    assert parse_programme(doc).welcome_spend_before_sync is False  # the safe default
    doc["welcome"]["spend_before_sync"] = "yes"
    with pytest.raises(RulesError) as e:
        parse_programme(doc, "p.json")
    assert "welcome.spend_before_sync" in str(e.value) and "true or false" in str(e.value)
    doc["welcome"] = {"points": 0, "spend_before_sync": True}
    with pytest.raises(RulesError) as e:
        parse_programme(doc, "p.json")
    assert "welcome.spend_before_sync" in str(e.value) and "welcome.points" in str(e.value)
    doc["welcome"] = {"points": 100, "spend_before_sync": True, "spend_befor_sync": False}
    with pytest.raises(RulesError) as e:
        parse_programme(doc, "p.json")
    assert "spend_befor_sync" in str(e.value)


def test_the_toml_form_of_the_setting() -> None:
    toml = (
        'version = 1\nname = "P"\n[[tiers]]\ncode = "b"\nname_ru = "Б"\nname_en = "B"\n'
        "threshold_kop = 0\naccrual_bp = 500\n[welcome]\npoints = 300\nspend_before_sync = true\n"
    )
    p = load_programme_text(toml, "toml", "p.toml")
    assert p.welcome_points == 300 and p.welcome_spend_before_sync is True


# ---------------------------------------------------------------------- the pure engine
def test_engine_bound_is_the_welcome_bonus_left_or_nothing(rules) -> None:
    def lot(lot_id: str, pts: int, source: str, available: int = 0) -> PointLot:
        at = NOW + timedelta(days=available)
        return PointLot(lot_id, pts, NOW, at, NOW + timedelta(days=90), source)  # type: ignore[arg-type]

    state = MemberState(
        "m1",
        lots=(lot("w", 350, "welcome"), lot("b", 1000, "birthday"), lot("p", 40, "purchase", 14)),
    )
    assert engine.unconfirmed_spendable(state, rules, NOW) == 350  # not the birthday lot
    off = replace(rules, welcome_spend_before_sync=False)
    assert engine.unconfirmed_spendable(state, off, NOW) == 0
    owing = replace(state, debt=1200)  # debt is repaid before anything is spent
    assert engine.unconfirmed_spendable(owing, rules, NOW) == 150
    expired = NOW + timedelta(days=91)
    assert engine.unconfirmed_spendable(state, rules, expired) == 0


# ---------------------------------------------------------------------- the Agent
def test_offline_registration_spends_part_of_the_welcome_bonus_at_once(till) -> None:
    rules = till.agent.programme()
    reg = offline_registration(till)
    card = reg.card
    assert card.provisional and reg.welcome_points == rules.welcome_points == 500
    # The card says what the cheque allows: the welcome bonus, nothing waits for the sync.
    assert (card.spendable, card.spendable_after_sync) == (500, 0)
    # A 3 499 ₽ shirt: the cap (30 %) allows 1 049, the welcome bonus 500: 500 at most.
    cart = make_cart("R-1", ("SH-2001", 1))
    q = till.agent.quote(CheckoutRequest(card.member_id, cart))
    assert q.max_redeem_points == 500 and q.redeem_limited_by == "balance"
    result = till.agent.commit(CheckoutRequest(card.member_id, cart, 200))
    assert result.offline and result.quote.redeem_points == 200
    slip = till.agent.print_job(result.print_job_id)
    text = slip_text(slip, 32)
    assert slip.provisional and "Списано" in text
    assert "списывается только" in text and "приветственный бонус" in text
    assert all(
        len(line) <= 32 for notes in engine.UNCONFIRMED_SLIP_NOTES.values() for line in notes
    )
    after = till.agent.card(card.member_id)
    assert after.spendable == 300 and after.spendable_after_sync == 0
    # The offline caps still bound it: a per-cheque cap below the bonus is the limit.
    capped = replace(rules, version=2, offline=replace(rules.offline, per_transaction_points=100))
    till.agent.install_rules(capped)
    q = till.agent.quote(CheckoutRequest(card.member_id, make_cart("R-2", ("SH-2001", 1))))
    assert q.max_redeem_points == 100 and q.redeem_limited_by == "offline_per_transaction"
    with pytest.raises(RedemptionError):
        till.agent.quote(CheckoutRequest(card.member_id, make_cart("R-2", ("SH-2001", 1)), 101))


def test_without_the_setting_the_bonus_waits_and_every_face_says_so(till) -> None:
    reg = offline_registration(till, without_spending_before_sync())
    card = reg.card
    assert (card.spendable, card.spendable_after_sync) == (0, 500)
    cart = make_cart("R-1", ("SH-2001", 1))
    q = till.agent.quote(CheckoutRequest(card.member_id, cart))
    assert q.max_redeem_points == 0 and q.redeem_limited_by == "offline_provisional"
    en, ru = engine.redeem_limit_text("offline_provisional", till.agent.programme())
    assert "back office confirms" in en and "подтвердит регистрацию" in ru
    result = till.agent.commit(CheckoutRequest(card.member_id, cart))
    text = slip_text(till.agent.print_job(result.print_job_id), 32)
    assert "после подтверждения регистрации" in text
    # Back online (the back office answered): the whole bonus is spendable, no note.
    till.agent.record_contact()
    online = till.agent.card(card.member_id)
    assert (online.spendable, online.spendable_after_sync) == (500, 0)


def test_a_known_member_offline_is_unchanged(till) -> None:
    """The cache-age rule still holds for members the back office sent (not provisional)."""
    from agent.identify import make_member_code

    rules = till.agent.programme()
    till.clock.advance(hours=rules.offline.max_cache_age_hours + 1)
    card = till.agent.identify(make_member_code(100_000_001))
    assert card.spendable_after_sync == 0
    q = till.agent.quote(CheckoutRequest(card.member_id, make_cart("R-1", ("SH-2001", 1))))
    assert q.max_redeem_points == 0 and q.redeem_limited_by == "offline_stale_cache"


# ---------------------------------------------------------------------- the back office
def test_a_phone_registered_at_two_offline_tills_spends_one_bonus_at_the_centre(cluster) -> None:
    """Both tills let the new member spend 200 of the welcome bonus; the centre merges the
    two into the first registration, which holds one bonus and both cheques, and its
    re-score of the cheques agrees with the tills."""
    from sync.backoffice import project, verify

    a, b = cluster.till("till-a"), cluster.till("till-b")
    cluster.clock.advance(seconds=a.agent.programme().offline.online_grace_seconds + 1)
    assert not a.agent.offline_status().online and not b.agent.offline_status().online
    regs = [
        t.agent.register(
            phone="+7 999 123-45-67",
            first_name="Ира",
            consent_programme=True,
            consent_marketing=False,
        )
        for t in (a, b)
    ]
    sales = [
        t.sale(f"{t.agent.terminal_id}-1", r.card.member_id, ("SH-2001", 1), redeem=200)
        for t, r in zip((a, b), regs, strict=True)
    ]
    assert all(s.offline and s.quote.redeem_points == 200 for s in sales)
    a.client.drain()
    b.client.drain()
    project.run_all(cluster.bo.context)
    verify.run_all(cluster.bo.context)
    survivor = regs[0].card.member_id
    earned = sum(s.quote.total_earned for s in sales)
    assert cluster.server_balance(survivor) == 500 - 2 * 200 + earned
    kinds = [k for (k,) in cluster.ledger("SELECT kind FROM flags")]
    assert "rescore_mismatch" not in kinds and "merge" in kinds


# ---------------------------------------------------------------------- the demo
def test_the_scripted_demo_spends_part_of_the_welcome_bonus_on_the_first_purchase(
    tmp_path,
) -> None:
    """``kassa demo --script`` (a real process, an offline till): the new member's first
    purchase spends 200 of the 500-point welcome bonus."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    kassa = Path(sys.executable).with_name("kassa")
    run = subprocess.run(
        [str(kassa), "demo", "--script", "--members", "200"],
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    out = run.stdout.replace("\u00a0", " ")
    assert "можно списать сейчас 500 бонусов" in out
    assert "Первая покупка: списано 200 бонусов из приветственного бонуса" in out

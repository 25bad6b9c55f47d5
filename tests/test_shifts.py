"""Cashiers, PINs, shifts and the X-report on a real till store."""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import FakeClock, Till, make_cart

from agent import shifts
from agent.errors import ConflictError, InputError, NotFoundError
from agent.printq import get_job
from agent.results import CheckoutRequest
from agent.seed import demo_phone


def test_cashier_needs_a_digit_pin_and_is_unique(till: Till) -> None:
    for bad in ("12", "abcd", "123456789", "12 4"):
        with pytest.raises(InputError) as e:
            shifts.add_cashier(till.store, "anna", "Анна", bad)
        assert e.value.details["field"] == "pin"
    assert till.count("cashiers") == 0
    shifts.add_cashier(till.store, "anna", "Анна", "1234")
    with pytest.raises(ConflictError):
        shifts.add_cashier(till.store, "anna", "Анна 2", "1234")
    with pytest.raises(InputError):
        shifts.add_cashier(till.store, "x", "", "1234")
    assert [c.name for c in shifts.cashiers(till.store)] == ["Анна"]
    row = till.store.one("SELECT pin_hash FROM cashiers")
    assert row is not None and "1234" not in row[0] and row[0].startswith("pbkdf2_sha256$")


def test_wrong_pins_lock_until_reset(till: Till) -> None:
    shifts.add_cashier(till.store, "anna", "Анна", "1234")
    assert shifts.verify_pin(till.store, "anna", "1234").cashier_id == "anna"
    for left in range(shifts.MAX_PIN_FAILURES - 1, -1, -1):
        with pytest.raises(shifts.PinError) as e:
            shifts.verify_pin(till.store, "anna", "0000")
        assert e.value.details["tries_left"] == left
    with pytest.raises(shifts.PinError) as e:
        shifts.verify_pin(till.store, "anna", "1234")
    assert e.value.details["locked"] is True
    shifts.set_pin(till.store, "anna", "4321")
    assert shifts.verify_pin(till.store, "anna", "4321").name == "Анна"
    with pytest.raises(NotFoundError):
        shifts.verify_pin(till.store, "nobody", "1234")


def test_one_open_shift_per_till(till: Till, clock: FakeClock) -> None:
    shifts.add_cashier(till.store, "anna", "Анна", "1111")
    shifts.add_cashier(till.store, "oleg", "Олег", "2222")
    s1 = shifts.open_shift(till.store, "anna", clock.now())
    assert shifts.open_shift(till.store, "anna", clock.now()).shift_id == s1.shift_id
    with pytest.raises(ConflictError) as e:
        shifts.open_shift(till.store, "oleg", clock.now())
    assert "Анна" in e.value.message_ru
    assert shifts.current_shift(till.store) == s1
    shifts.close_shift(till.store, s1.shift_id, clock.now())
    assert shifts.current_shift(till.store) is None
    with pytest.raises(ConflictError):
        shifts.close_shift(till.store, s1.shift_id, clock.now())
    assert shifts.open_shift(till.store, "oleg", clock.now()).cashier_name == "Олег"


def test_x_report_counts_the_shift_only(till: Till, clock: FakeClock) -> None:
    agent = till.agent
    shifts.add_cashier(till.store, "anna", "Анна", "1111")
    # Before the shift: not counted.
    early = agent.identify(demo_phone(1))
    agent.commit(CheckoutRequest(early.member_id, make_cart("R-0", ("DR-1001", 1))))
    clock.advance(minutes=1)
    shift = shifts.open_shift(till.store, "anna", clock.now())
    by_phone = agent.identify(demo_phone(2))
    r1 = agent.commit(
        CheckoutRequest(
            by_phone.member_id,
            make_cart("R-1", ("DR-1001", 1), ("SH-2001", 2)),
            "max",
            shift_id=shift.shift_id,
            identified_by=by_phone.identified_by,
        )
    )
    by_scan = agent.identify(agent.card(by_phone.member_id).code)
    r2 = agent.commit(
        CheckoutRequest(
            by_scan.member_id,
            make_cart("R-2", ("BG-7001", 1)),
            identified_by=by_scan.identified_by,
        )
    )
    reg = agent.register(
        phone="+7 999 555-01-99", first_name="Вера", consent_programme=True, consent_marketing=False
    )
    refund = agent.refund("RF-1", "R-1", {2: 1})
    clock.advance(minutes=5)
    report = shifts.x_report(till.store, shift.shift_id, clock.now())
    assert (report.cheques, report.by_phone, report.by_scan) == (2, 1, 1)
    assert report.registrations == 1 and reg.welcome_points > 0
    q1, q2 = r1.quote, r2.quote
    assert report.sales_kop == q1.total_kop + q2.total_kop
    assert report.points_spent == q1.redeem_points > 0
    assert report.points_earned == q1.total_earned + q2.total_earned
    assert report.discount_kop == q1.discount_kop + q2.discount_kop
    assert report.refunds == 1
    assert report.refund_kop == refund.result.amount_kop
    assert report.points_returned == refund.result.points_returned
    assert report.points_reversed == refund.result.earn_reversed + refund.result.bonus_reversed
    closed = shifts.close_shift(till.store, shift.shift_id, clock.now())
    clock.advance(minutes=1)
    agent.commit(CheckoutRequest(early.member_id, make_cart("R-3", ("DR-1001", 1))))
    later = shifts.x_report(till.store, shift.shift_id, clock.now() + timedelta(hours=1))
    assert later.cheques == closed.cheques == 2
    job = shifts.queue_report(till.store, later, "Тест")
    slip = get_job(till.store, job).slip
    assert slip.kind == "z_report" and slip.receipt_id.startswith("Z-")  # a closed shift
    assert get_job(till.store, job).kind == "z_report"
    assert ("Чеков с картой", "2") in [(ln.label, ln.value) for ln in slip.lines]

"""The till service's whole interface over a real SQLite store and a fake clock: members,
sales, holds (a commit naming its hold), refunds' reads, slips and reprints, shifts and the
status views. Each front door (POS API, CLI, cashier app) calls exactly these methods."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import pytest

from agent import shifts
from agent.errors import ConflictError, ConsentError, InputError, NotFoundError, TokenExpired
from agent.identify import make_member_code
from agent.results import (
    CheckoutRequest,
    JournalPage,
    Reprint,
    SlipView,
    SyncView,
    TillStatus,
)
from agent.service.holds import HoldChequeChangedError, HoldError
from agent.slip import slip_text
from agent.tokens import Coupon, issue_coupon
from tests.conftest import NOW, make_cart

RICH = "m00000001"  # seed template 1: spendable points


def _req(receipt: str, redeem: object = "max", *items: tuple[str, int]) -> CheckoutRequest:
    cart = make_cart(receipt, *(items or (("DR-1001", 1), ("SH-2001", 2))))
    return CheckoutRequest(RICH, cart, redeem_points=redeem)  # type: ignore[arg-type]


def _tables(till) -> dict[str, int]:
    return {t: till.count(t) for t in ("purchases", "outbox", "print_jobs", "holds")}


# ----------------------------------------------------------------- commit with a hold
def test_commit_naming_a_hold_without_points_spends_what_it_reserved(till):
    hold = till.agent.place_hold(_req("H-1", "max"), ttl_s=60)
    assert hold.points > 0 and hold.status == "active"
    assert till.agent.holds_active() == 1
    result = till.agent.commit(_req("H-1", None), hold.hold_id)
    assert result.quote.redeem_points == hold.points
    assert till.agent.get_hold(hold.hold_id).status == "committed"
    assert till.agent.holds_active() == 0
    again = till.agent.commit(_req("H-1", None), hold.hold_id)  # a retry: the same result
    assert again.duplicate and again.receipt_id == result.receipt_id


def test_commit_naming_a_hold_with_another_cheque_is_refused_and_writes_nothing(till):
    hold = till.agent.place_hold(_req("H-2", "max"))
    before = _tables(till)
    changed = _req("H-2", None, ("DR-1001", 1))
    with pytest.raises(HoldChequeChangedError) as e:
        till.agent.commit(changed, hold.hold_id)
    assert e.value.details["hold_id"] == hold.hold_id
    with pytest.raises(HoldChequeChangedError):  # other points than the hold's
        till.agent.commit(_req("H-2", 1), hold.hold_id)
    assert _tables(till) == before
    assert till.agent.get_hold(hold.hold_id).status == "active"


def test_commit_without_a_hold_and_without_points_spends_none(till):
    result = till.agent.commit(_req("N-1", None))
    assert result.quote.redeem_points == 0
    assert till.agent.quote(_req("N-2", None)).redeem_points == 0


@pytest.mark.parametrize("hold_id", ["", "h" * 65])
def test_commit_refuses_a_hold_id_that_is_no_hold_id(till, hold_id):
    with pytest.raises(InputError) as e:
        till.agent.commit(_req("B-1", None), hold_id)
    assert e.value.details["field"] == "hold_id"
    assert till.count("purchases") == 0


def test_cancelled_hold_cannot_pay_a_commit(till, clock):
    hold = till.agent.place_hold(_req("C-1", "max"))
    assert till.agent.cancel_hold(hold.hold_id).status == "cancelled"
    assert till.agent.holds_active() == 0
    with pytest.raises(HoldError):
        till.agent.commit(_req("C-1", "max"), hold.hold_id)
    with pytest.raises(NotFoundError):
        till.agent.get_hold("nope")


def test_hold_runs_out_by_the_service_clock(till, clock):
    hold = till.agent.place_hold(_req("E-1", 10), ttl_s=30)
    clock.advance(seconds=31)
    assert till.agent.get_hold(hold.hold_id).status == "expired"
    assert till.agent.holds_active() == 0


# ----------------------------------------------------------------- slips
def test_slip_as_text_and_a_reprint_queued_as_a_copy(till):
    result = till.agent.commit(_req("S-1", 0))
    depth = till.agent.print_queue_depth()
    view = till.agent.slip(result.print_job_id, 32)
    assert isinstance(view, SlipView)
    assert (view.job_id, view.receipt_id, view.kind, view.status, view.width) == (
        result.print_job_id,
        "S-1",
        "sale",
        "queued",
        32,
    )
    assert view.text == slip_text(till.agent.print_job(result.print_job_id), 32)
    assert view.text != till.agent.slip(result.print_job_id).text  # 42 by default
    copy = till.agent.reprint(result.print_job_id)
    assert copy == Reprint(copy.job_id, result.print_job_id, True)
    assert copy.job_id != result.print_job_id
    assert till.agent.print_queue_depth() == depth + 1
    assert till.agent.print_job(copy.job_id).receipt_id == "S-1"


@pytest.mark.parametrize("width", [0, 40, 80])
def test_slip_width_is_one_of_the_roll_widths(till, width):
    result = till.agent.commit(_req("S-2", 0))
    with pytest.raises(InputError) as e:
        till.agent.slip(result.print_job_id, width)
    assert e.value.details["field"] == "width"


def test_slip_and_reprint_of_an_unknown_job(till):
    with pytest.raises(NotFoundError):
        till.agent.slip(999)
    with pytest.raises(NotFoundError):
        till.agent.reprint(999)


# ----------------------------------------------------------------- sales helpers
def test_coupon_read_terms_and_refusal(till, clock):
    coupon = Coupon("ab" * 16, "fixed", 50_000, NOW - timedelta(days=1), NOW + timedelta(days=9))
    text = issue_coupon(till.signer, coupon)
    read = till.agent.read_coupon(f"  {text} ")
    assert (read.coupon_id, read.kind, read.value) == (coupon.coupon_id, "fixed", 50_000)
    assert till.agent.coupon_terms(text) == ("fixed", 50_000)
    assert till.agent.coupon_terms(None) == ("", 0)
    assert till.agent.coupon_terms("KC1:garbage") == ("", 0)
    clock.advance(days=10)  # past valid_until: refused now, by the service's own clock
    with pytest.raises(TokenExpired):
        till.agent.read_coupon(text)
    assert till.agent.coupon_terms(text) == ("", 0)


def test_redeem_limit_text_and_upcoming_receipt(till):
    en, ru = till.agent.redeem_limit_text("on_hold")
    assert en and ru and en != ru
    first = till.agent.upcoming_receipt()
    assert first == till.agent.upcoming_receipt()  # reading does not take it
    assert till.agent.catalog_lookup("DR-1001") is not None
    assert till.agent.catalog_lookup("NOPE") is None


def test_cheque_lines_from_the_catalogue_a_total_or_typed_in_full(till):
    from agent import limits

    line = till.agent.catalog_line("DR-1001", 2, False, line_no=3)
    name, category, collection, price = till.agent.catalog_lookup("DR-1001") or ("", "", None, 0)
    assert (line.line_no, line.sku, line.name, line.category) == (3, "DR-1001", name, category)
    assert (line.collection, line.price_kop, line.amount_kop) == (collection, price, 2 * price)
    with pytest.raises(InputError):
        till.agent.catalog_line("NOPE", 1, False)
    with pytest.raises(InputError):  # the cheque would go over its limit
        till.agent.catalog_line("DR-1001", 1, False, cheque_kop=limits.CHEQUE_MAX_KOP)
    rules = till.agent.programme()
    total = till.agent.total_line(150_00, None)
    earning = [c for c in rules.categories if c not in rules.excluded_categories]
    assert total.category == (earning[0] if earning else "general")
    assert (total.sku, total.qty, total.amount_kop) == ("TOTAL", 1, 150_00)
    typed = till.agent.free_line("X-9", category, 99_00, 3, True, line_no=2)
    assert (typed.name, typed.amount_kop, typed.sale, typed.line_no) == ("X-9", 297_00, True, 2)
    with pytest.raises(InputError):
        till.agent.free_line("X-9", "no-such-category", 1_00, 1, False)
    with pytest.raises(InputError):
        till.agent.total_line(limits.LINE_MAX_KOP + 1, None)


# ----------------------------------------------------------------- members and refunds
def test_members_history_and_cheque_reads(till):
    card = till.agent.identify(make_member_code(100_000_001))
    name = card.first_name or ""
    assert name
    found = till.agent.find_members(name[:3], 5)
    assert card.member_id in {m.member_id for m in found} and len(found) <= 5
    result = till.agent.commit(replace(_req("Q-1", 0), member_id=card.member_id))
    history = till.agent.member_history(card.member_id)
    assert [h.receipt_id for h in history] == ["Q-1"]
    assert till.agent.find_cheques("Q-1") == ["Q-1"]
    cheque = till.agent.cheque("Q-1")
    assert cheque.member_id == card.member_id and cheque.refundable
    [entry] = till.agent.cheque_entries(["Q-1", "missing"])
    assert entry.amount_kop == result.quote.payable_kop
    before = _tables(till) | {"refunds": till.count("refunds")}
    preview = till.agent.refund_preview("Q-1", {1: 1})
    assert _tables(till) | {"refunds": till.count("refunds")} == before  # wrote nothing
    outcome = till.agent.refund("F-1", "Q-1", {1: 1})
    assert outcome.result == preview


def test_commit_and_refund_come_with_the_slip_they_queued(till):
    card = till.agent.identify(make_member_code(100_000_001))
    req = replace(_req("S-1", 0), member_id=card.member_id)
    result, slip = till.agent.commit_with_slip(req)
    assert (slip.kind, slip.receipt_id) == ("sale", "S-1")
    assert slip == till.agent.print_job(result.print_job_id)
    again, same = till.agent.commit_with_slip(req)  # idempotent: the stored cheque's slip
    assert again.print_job_id == result.print_job_id and same == slip
    outcome, refund_slip = till.agent.refund_with_slip("RS-1", "S-1", {1: 1})
    assert refund_slip.kind == "refund"
    assert refund_slip == till.agent.print_job(outcome.print_job_id)


def test_look_up_by_code_or_by_name_and_a_member_page(till):
    card = till.agent.identify(make_member_code(100_000_001))
    till.agent.commit(replace(_req("L-1", 0), member_id=card.member_id))
    tz = till.agent.programme().tz
    found = till.agent.look_up(f"  {card.code} ")
    assert found.card is not None and found.card.member_id == card.member_id
    assert found.matches == []
    assert [h.receipt_id for h in found.history] == ["L-1"]
    assert found.history[0].at.tzinfo == tz
    page = till.agent.member_page(card.member_id)
    assert page.card == till.agent.card(card.member_id) and page.history == found.history
    name = card.first_name or ""
    named = till.agent.look_up(name[:3])
    assert named.card is None and card.member_id in {m.member_id for m in named.matches}
    with pytest.raises(InputError):
        till.agent.look_up("12")  # digits that are neither a phone nor a code
    with pytest.raises(InputError):
        till.agent.look_up("  ")


def test_find_cheque_by_number_by_member_or_not_at_all(till):
    card = till.agent.identify(make_member_code(100_000_001))
    for receipt in ("C-11", "C-21"):
        till.agent.commit(replace(_req(receipt, 0), member_id=card.member_id))
    one = till.agent.find_cheque(" C-11 ")
    assert one.cheque is not None and one.cheque.receipt_id == "C-11" and one.entries == []
    mine = till.agent.find_cheque(card.code)
    assert mine.cheque is None and mine.member_label == (card.phone_masked or card.code)
    assert [e.receipt_id for e in mine.entries] == ["C-21", "C-11"]
    assert mine.entries[0].at.tzinfo == till.agent.programme().tz
    with pytest.raises(NotFoundError):
        till.agent.find_cheque("NO-SUCH")
    with pytest.raises(InputError):
        till.agent.find_cheque(" ")


def test_register_at_till_says_offline_and_the_consent_text_agreed_to(till):
    kwargs = {"first_name": "Вера", "consent_programme": True, "consent_marketing": False}
    done = till.agent.register_at_till(phone="8 (999) 555-01-24", **kwargs)
    assert done.consent_text_version == till.agent.programme().consent_text_version
    assert done.offline == (not till.agent.offline_status().online)
    assert done.registration.card.provisional
    till.agent.record_contact()  # the back office answered just now: online
    online = till.agent.register_at_till(phone="8 (999) 555-01-25", cashier_id="c1", **kwargs)
    assert not online.offline
    with pytest.raises(ConsentError):
        till.agent.register_at_till(
            phone="8 (999) 555-01-26",
            first_name="Ян",
            consent_programme=False,
            consent_marketing=False,
        )


# ----------------------------------------------------------------- shifts
def test_shift_from_sign_in_to_its_report(till, clock):
    shifts.add_cashier(till.store, "anna", "Анна", "1234")
    assert [c.cashier_id for c in till.agent.cashiers()] == ["anna"]
    assert till.agent.verify_pin("anna", "1234").name == "Анна"
    with pytest.raises(shifts.PinError):
        till.agent.verify_pin("anna", "9999")
    shift = till.agent.open_shift("anna")
    assert shift.opened_at == clock.now() and shift.closed_at is None
    till.agent.commit(replace(_req("X-1", 0), cashier_id="anna", shift_id=shift.shift_id))
    clock.advance(minutes=5)
    report = till.agent.x_report(shift.shift_id)
    assert report.cheques == 1 and report.generated_at == clock.now()
    depth = till.agent.print_queue_depth()
    job = till.agent.queue_report(report)
    assert till.agent.print_job(job).kind == "x_report"
    assert till.agent.print_queue_depth() == depth + 1
    closed = till.agent.close_shift(shift.shift_id)
    assert closed.shift.closed_at == clock.now()


def test_sign_in_then_x_report_printed_then_shift_closed_with_its_z_report(till, clock):
    till.agent.add_cashier("vera", "Вера", "2468")
    with pytest.raises(shifts.PinError):
        till.agent.sign_in("vera", "0000")
    assert till.count("shifts") == 0  # a wrong PIN opens no shift
    cashier, shift = till.agent.sign_in("vera", "2468")
    assert cashier.name == "Вера" and shift.cashier_id == "vera" and shift.closed_at is None
    assert till.agent.sign_in("vera", "2468")[1].shift_id == shift.shift_id  # resumed
    tz = till.agent.programme().tz
    report, job = till.agent.print_x_report(shift.shift_id, training=True)
    assert report.generated_at == clock.now() and report.generated_at.tzinfo == tz
    assert till.agent.x_report(shift.shift_id, local=True).shift.opened_at.tzinfo == tz
    assert till.agent.print_job(job).kind == "x_report"
    with pytest.raises(InputError):
        till.agent.close_shift_and_report(shift.shift_id, training=True)
    assert till.agent.x_report(shift.shift_id).shift.closed_at is None  # still open
    clock.advance(minutes=1)
    closed, z_job = till.agent.close_shift_and_report(shift.shift_id)
    assert closed.shift.closed_at == clock.now() and closed.shift.closed_at.tzinfo == tz
    assert z_job is not None and till.agent.print_job(z_job).kind == "z_report"


def test_cashiers_added_and_unlocked_through_the_service(till):
    till.agent.add_cashier("boris", "Борис", "4321", "supervisor")
    assert [(c.cashier_id, c.role) for c in till.agent.cashiers()] == [("boris", "supervisor")]
    with pytest.raises(ConflictError):
        till.agent.add_cashier("boris", "Борис 2", "1111")
    for _ in range(shifts.MAX_PIN_FAILURES):
        with pytest.raises(shifts.PinError):
            till.agent.verify_pin("boris", "0000")
    with pytest.raises(shifts.PinLockedError):
        till.agent.verify_pin("boris", "4321")
    till.agent.set_pin("boris", "5678")  # a new PIN unlocks
    assert till.agent.verify_pin("boris", "5678").name == "Борис"
    with pytest.raises(NotFoundError):
        till.agent.set_pin("nobody", "5678")


def test_expire_holds_by_the_service_clock(till, clock):
    hold = till.agent.place_hold(_req("E-1", 10), ttl_s=60)
    assert till.agent.expire_holds() == 0
    clock.advance(seconds=61)
    assert till.agent.expire_holds() == 1
    assert till.agent.get_hold(hold.hold_id).status == "expired"
    assert till.agent.expire_holds() == 0


def test_training_flag_of_the_real_store_and_of_its_copy(till, clock):
    from agent.service import Agent
    from agent.training import discard_training_store, open_training_store

    assert till.agent.training is False
    copy = open_training_store(till.store, clock.now())
    try:
        assert Agent(copy, clock).training is True
    finally:
        discard_training_store(copy)


# ----------------------------------------------------------------- status views
def test_status_journal_and_sync_views(till, clock):
    till.agent.place_hold(_req("T-1", 10))
    till.agent.commit(_req("T-2", 0))
    status = till.agent.status()
    assert status == TillStatus(
        terminal_id="till-1",
        rules_version=till.agent.programme().version,
        online=True,
        enrolled=False,
        last_contact=clock.now(),
        events_waiting=1,
        holds_active=1,
        print_queue=1,
    )
    page = till.agent.journal(10)
    assert isinstance(page, JournalPage)
    assert (page.shown, page.total, page.truncated, page.limit) == (1, 1, False, 10)
    assert page.pending[0]["type"] == "purchase" and page.status.events_waiting == 1
    till.agent.commit(_req("T-3", 0))
    short = till.agent.journal(1)
    assert (short.shown, short.total, short.truncated) == (1, 2, True)
    till.agent.record_sync_error("back office not reachable")
    sync = till.agent.sync_status()
    assert isinstance(sync, SyncView)
    assert sync.last_error == "back office not reachable" and sync.events_waiting == 2
    assert (sync.online, sync.enrolled, sync.terminal_id, sync.quarantine) == (
        True,
        False,
        "till-1",
        (),
    )
    assert sync.backoffice_url is None


def test_value_types_import_neither_service_engine_nor_store():
    code = (
        "import sys, agent.results, agent.clock; "
        "bad = {'agent.service', 'agent.engine', 'agent.store', 'sqlite3'} & set(sys.modules); "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_agent_service_exports_the_service_and_the_value_types_live_in_results():
    from agent import clock, results, service

    assert service.__all__ == ["SCHEMA_VERSION", "Agent"]
    assert hasattr(service, "Agent") and hasattr(service, "SCHEMA_VERSION")
    for name in (
        "CheckoutRequest",
        "CommitResult",
        "MemberCard",
        "OfflineStatus",
        "RefundOutcome",
        "Registration",
    ):
        assert hasattr(results, name), name
    assert hasattr(clock, "Clock") and hasattr(clock, "SystemClock")

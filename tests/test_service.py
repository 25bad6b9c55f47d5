"""The Agent over a real SQLite store: atomic commits with their journal row, idempotency,
refunds, registration with consent, the offline spending policy, and bad input that
writes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agent.errors import (
    CatalogError,
    ConflictError,
    ConsentError,
    CouponError,
    NotFoundError,
    PhoneError,
    RedemptionError,
    RefundError,
    TokenExpired,
    TokenForged,
)
from agent.identify import make_member_code, repair_layout
from agent.requests import cart_from_json
from agent.results import CheckoutRequest
from agent.seed import demo_phone
from agent.tokens import Coupon, issue_coupon, issue_member_token
from tests.conftest import NOW, make_cart

TABLES = ("purchases", "outbox", "print_jobs", "refunds", "coupons_used", "members")

RICH = 1  # seed template 1 has spendable points and a lot expiring soon


def snapshot(till):
    return {t: till.count(t) for t in TABLES} | {
        "states": till.store.one("SELECT group_concat(state) FROM members")[0]
    }


def checkout(till, receipt="R-1", member=RICH, redeem=0, coupon=None, items=None):
    card = till.agent.identify(make_member_code(100_000_000 + member))
    cart = make_cart(receipt, *(items or [("DR-1001", 1), ("SH-2001", 2)]))
    return till.agent.commit(
        CheckoutRequest(card.member_id, cart, redeem, coupon, identified_by=card.identified_by)
    )


def test_store_pragmas_and_named_migrations(till):
    assert till.store.one("PRAGMA journal_mode")[0] == "wal"
    assert till.store.one("PRAGMA synchronous")[0] == 2  # FULL
    applied = till.store.applied_migrations()
    assert applied[:2] == ["0001_initial", "0002_sync"]
    assert "0003_holds" in applied


def test_identify_by_every_form(till):
    phone = demo_phone(RICH)
    by_code = till.agent.identify(make_member_code(100_000_000 + RICH))
    by_phone = till.agent.identify(f"8 ({phone[2:5]}) {phone[5:8]}-{phone[8:10]}-{phone[10:]}")
    token = issue_member_token(till.signer, by_code.code, NOW)
    by_token = till.agent.identify(token)
    assert by_code.member_id == by_phone.member_id == by_token.member_id
    assert (by_code.identified_by, by_phone.identified_by, by_token.identified_by) == (
        "scan_code",
        "phone",
        "scan_token",
    )
    assert by_code.balance > 0 and by_code.expiring_on is not None


def test_identify_errors_are_distinct(till):
    code = make_member_code(100_000_000 + RICH)
    till.clock.advance(hours=1)
    old = issue_member_token(till.signer, code, NOW)
    with pytest.raises(TokenExpired):
        till.agent.identify(old)
    fresh = issue_member_token(till.signer, code, till.clock.now())
    forged = fresh[:-3] + ("AAA" if not fresh.endswith("AAA") else "BBB")
    with pytest.raises(TokenForged):
        till.agent.identify(forged)
    with pytest.raises(NotFoundError):
        till.agent.identify(make_member_code(999_999_999))
    with pytest.raises(PhoneError):
        till.agent.identify("12")


def test_commit_writes_sale_journal_and_print_job_together(till):
    before = till.agent.identify(make_member_code(100_000_000 + RICH))
    result = checkout(till, redeem="max")
    q = result.quote
    assert q.redeem_points == q.max_redeem_points > 0
    assert (till.count("purchases"), till.count("outbox"), till.count("print_jobs")) == (1, 1, 1)
    event = till.agent.pending_events()[0]
    assert (event["seq"], event["type"], event["event_id"]) == (1, "purchase", result.event_id)
    assert event["terminal_id"] == "till-1" and event["terminal_epoch"]
    after = till.agent.card(before.member_id)
    assert after.balance == before.balance - q.redeem_points + q.total_earned
    assert after.unsynced_events == 1
    slip = till.agent.print_job(result.print_job_id)
    assert any("Списано" in line.label for line in slip.lines)
    assert not slip.provisional  # online: the till heard from the back office just now


def test_commit_is_idempotent_by_receipt_id(till):
    first = checkout(till, redeem=100)
    again = checkout(till, redeem=100)
    assert again.duplicate and again.event_id == first.event_id and again.seq == first.seq
    assert till.count("outbox") == 1 and till.count("purchases") == 1
    with pytest.raises(ConflictError):
        checkout(till, redeem=50)
    assert till.count("outbox") == 1


def test_journal_seq_is_gapless_across_event_types(till):
    checkout(till, "R-1")
    till.agent.register(
        phone="+7 999 555-01-23", first_name="Вера", consent_programme=True, consent_marketing=True
    )
    till.agent.refund("RF-1", "R-1", {1: 1})
    checkout(till, "R-2", member=3)
    events = till.agent.pending_events()
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["type"] for e in events] == ["purchase", "member_registered", "refund", "purchase"]
    assert len({e["event_id"] for e in events}) == 4


def test_refund_partial_then_rest_then_over_refund(till):
    card = till.agent.identify(make_member_code(100_000_000 + RICH))
    result = checkout(till, redeem="max")
    r1 = till.agent.refund("RF-1", "R-1", {2: 1})
    assert r1.result.points_returned > 0 and r1.result.earn_reversed > 0
    assert till.agent.refund("RF-1", "R-1", {2: 1}).duplicate
    till.agent.refund("RF-2", "R-1", {1: 1, 2: 1})
    assert till.agent.card(card.member_id).balance == card.balance
    snap = snapshot(till)
    with pytest.raises(RefundError) as e:
        till.agent.refund("RF-3", "R-1", {1: 1})
    assert e.value.details["refundable"] == 0
    with pytest.raises(NotFoundError):
        till.agent.refund("RF-4", "NOPE", {1: 1})
    assert snapshot(till) == snap
    assert (
        result.quote.redeem_points
        == r1.result.points_returned
        + till.agent.refund("RF-2", "R-1", {1: 1, 2: 1}).result.points_returned
    )


def test_register_keeps_no_raw_phone_and_records_consent(till):
    reg = till.agent.register(
        phone="8 (999) 555-01-23",
        first_name="Вера",
        consent_programme=True,
        consent_marketing=False,
        cashier_id="c1",
    )
    assert reg.card.balance == reg.welcome_points == 500
    assert reg.card.phone_masked == "+7 *** ***-01-23" and reg.card.provisional
    assert till.agent.identify("+79995550123").member_id == reg.card.member_id
    till.store.conn.execute("PRAGMA wal_checkpoint(FULL)")
    raw = till.path.read_bytes()
    for form in (b"9995550123", "9995550123".encode("utf-16-le")):
        assert form not in raw
    event = till.agent.pending_events()[-1]
    assert "9995550123" not in event["payload"]
    import json

    payload = json.loads(event["payload"])
    assert payload["consent_text_version"] == "2026-03" and payload["cashier_id"] == "c1"
    from agent.tokens import open_sealed

    assert open_sealed(payload["phone_sealed"], till.seal) == b"+79995550123"
    with pytest.raises(ConflictError):
        till.agent.register(
            phone="+79995550123", first_name="Вера", consent_programme=True, consent_marketing=False
        )


def test_register_without_consent_writes_nothing(till):
    snap = snapshot(till)
    with pytest.raises(ConsentError):
        till.agent.register(
            phone="+79995550123", first_name="Вера", consent_programme=False, consent_marketing=True
        )
    with pytest.raises(PhoneError):
        till.agent.register(
            phone="abc", first_name="Вера", consent_programme=True, consent_marketing=True
        )
    assert snapshot(till) == snap


def test_coupon_single_use(till):
    coupon = Coupon("12" * 16, "fixed", 50_000, NOW - timedelta(days=1), NOW + timedelta(days=9))
    text = issue_coupon(till.signer, coupon)
    first = checkout(till, "R-1", coupon=text)
    assert first.quote.coupon_discount_kop == 50_000
    snap = snapshot(till)
    with pytest.raises(CouponError, match="already used"):
        checkout(till, "R-2", member=3, coupon=text)
    assert snapshot(till) == snap


def test_bad_input_writes_nothing(till):
    snap = snapshot(till)
    with pytest.raises(RedemptionError):
        checkout(till, redeem=10**6)
    with pytest.raises(CatalogError):
        cart_from_json(
            {"receipt_id": "X", "lines": [{"sku": "NO-SUCH"}]}, till.agent.catalog_lookup
        )
    with pytest.raises(NotFoundError):
        till.agent.commit(CheckoutRequest("ghost", make_cart("R-9", ("DR-1001", 1))))
    assert snapshot(till) == snap


def test_offline_spending_bounded_with_reasons(till):
    rules = till.agent.programme()
    till.clock.advance(seconds=rules.offline.online_grace_seconds + 1)
    assert not till.agent.offline_status().online
    card = till.agent.identify(make_member_code(100_000_000 + RICH))
    q = till.agent.quote(CheckoutRequest(card.member_id, make_cart("R-1", ("OW-4001", 1))))
    assert q.max_redeem_points <= rules.offline.per_transaction_points
    result = checkout(till, "R-1", redeem="max", items=[("OW-4001", 1)])
    assert result.offline and till.agent.print_job(result.print_job_id).provisional
    status = till.agent.offline_status()
    assert status.consecutive_offline == 1
    assert status.terminal_offline_spent == result.quote.redeem_points
    # accrual works while spending is refused on a stale cache
    till.clock.advance(hours=rules.offline.max_cache_age_hours + 1)
    with pytest.raises(RedemptionError) as e:
        checkout(till, "R-2", member=5, redeem=1)
    assert e.value.details["limited_by"] == "offline_stale_cache"
    assert "устарели" in e.value.message_ru
    assert checkout(till, "R-2", member=5).quote.earn_points > 0
    # contact with the back office resets the offline counters
    till.agent.record_contact()
    assert (
        till.agent.offline_status().online and till.agent.offline_status().consecutive_offline == 0
    )


def test_provisional_member_cannot_spend_offline(till, rules):
    """Unless the programme says ``welcome.spend_before_sync`` (tests/test_welcome_offline.py)."""
    till.agent.install_rules(replace(rules, version=2, welcome_spend_before_sync=False))
    reg = till.agent.register(
        phone="+79995550123", first_name="Вера", consent_programme=True, consent_marketing=False
    )
    till.clock.advance(hours=1)
    q = till.agent.quote(CheckoutRequest(reg.card.member_id, make_cart("R-1", ("DR-1001", 1))))
    assert q.max_redeem_points == 0 and q.redeem_limited_by == "offline_provisional"


def test_layout_repaired_scan_identifies(till):
    code = make_member_code(100_000_000 + RICH)
    token = issue_member_token(till.signer, code, NOW)
    ru = dict(zip("QWERTYUIOPASDFGHJKLZXCVBNM:", "ЙЦУКЕНГШЩЗФЫВАПРОЛДЯЧСМИТЬЖ", strict=True))
    garbled = "".join(ru.get(c, c) for c in token)
    assert repair_layout(garbled) == token
    assert till.agent.identify(garbled).code == code


def test_second_process_cannot_open_the_store(till):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from agent.store import Store; from agent.errors import StoreLockedError\n"
            "try:\n    Store(sys.argv[1])\nexcept StoreLockedError as e:\n    print(e.code)",
            str(till.path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "store_locked"


def test_read_only_store_refuses_sale_cleanly(till, tmp_path):
    snap = snapshot(till)
    till.store.conn.execute("PRAGMA query_only = ON")
    from agent.errors import StoreWriteError

    with pytest.raises(StoreWriteError):
        checkout(till)
    till.store.conn.execute("PRAGMA query_only = OFF")
    assert snapshot(till) == snap
    assert checkout(till).seq == 1


def test_corrupt_store_is_a_clear_error(tmp_path):
    from agent.errors import StoreError
    from agent.store import Store

    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        Store(bad)
    # the failed open released the ownership lock: a second attempt says the same, not "locked"
    with pytest.raises(StoreError, match="cannot open"):
        Store(bad)


def test_concurrent_offline_commits_count_every_cheque(till):
    """UI workers and the POS API share one Agent: offline counters must not lose updates."""
    from concurrent.futures import ThreadPoolExecutor

    rules = till.agent.programme()
    till.clock.advance(seconds=rules.offline.online_grace_seconds + 1)

    def sale(n):
        return checkout(
            till, f"T-{n}", member=1 + 4 * (n % 20), redeem="max", items=[("SH-2001", 1)]
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(sale, range(40)))
    status = till.agent.offline_status()
    assert all(r.offline for r in results)
    assert status.consecutive_offline == 40
    assert status.terminal_offline_spent == sum(r.quote.redeem_points for r in results)
    assert status.events_waiting == 40


def test_commit_reuses_the_quote_only_while_its_inputs_hold(till, clock):
    """The commit re-scores the cheque (agent.quotememo): a few seconds after the quote it
    is the same quote with the commit's time; a change of member or bound re-scores."""
    card = till.agent.identify(make_member_code(100_000_000 + RICH))
    req = CheckoutRequest(card.member_id, make_cart("R-m1", ("DR-1001", 1)), 100)
    seen = till.agent.quote(req)
    clock.advance(seconds=5)
    done = till.agent.commit(req).quote
    assert done.earn_available_from == clock.now() + timedelta(days=14)
    assert replace(done, earn_available_from=seen.earn_available_from) == seen
    # The member's state changed (the sale above): the next quote is scored afresh.
    req2 = replace(req, cart=make_cart("R-m2", ("DR-1001", 1)), redeem_points="max")
    seen2 = till.agent.quote(req2)
    assert seen2.balance_before == done.balance_after and seen2.redeem_points > 0
    # Offline since the quote: the commit's bound differs, so it is re-scored with it.
    clock.advance(hours=till.agent.programme().offline.max_cache_age_hours + 1)
    assert not till.agent.offline_status().online
    offline = till.agent.commit(req2).quote
    assert (offline.redeem_points, offline.redeem_limited_by) == (0, "offline_stale_cache")


def test_a_repeated_receipt_is_answered_under_the_write_lock_and_writes_nothing(till, monkeypatch):
    """The repeat check runs inside the commit's write transaction, so it cannot race with
    another thread committing the same receipt: the stored result for the same contents,
    a conflict for other contents, and no second journal row either way."""
    first = checkout(till, redeem=100)
    store = till.agent.store
    before = store.one("SELECT value FROM meta WHERE key = 'last_seq'")
    locks = []
    real_write = store.write

    def write():
        locks.append(store.conn.in_transaction)
        return real_write()

    monkeypatch.setattr(store, "write", write)
    again = checkout(till, redeem=100)
    with pytest.raises(ConflictError):
        checkout(till, redeem=50)
    assert again.duplicate and (again.event_id, again.seq) == (first.event_id, first.seq)
    assert locks == [False, False]  # each answered inside a write transaction of its own
    assert store.one("SELECT value FROM meta WHERE key = 'last_seq'") == before
    assert till.count("outbox") == 1 and till.count("purchases") == 1


def test_a_quote_for_a_merged_member_is_the_survivors_and_an_unknown_one_is_refused(till):
    """The quote reads member, holds and counters in one statement; a member the back
    office merged into another still leads to the survivor (as identify does)."""
    merged, survivor = "m00000002", f"m{RICH:08d}"
    with till.store.write() as conn:
        conn.execute("UPDATE members SET merged_into = ? WHERE member_id = ?", (survivor, merged))
    cart = make_cart("R-M", ("DR-1001", 1))
    via_merged = till.agent.quote(CheckoutRequest(merged, cart, "max"))
    direct = till.agent.quote(CheckoutRequest(survivor, cart, "max"))
    assert via_merged.member_id == direct.member_id == survivor
    assert via_merged.balance_before == direct.balance_before > 0
    assert via_merged.redeem_points == direct.redeem_points > 0
    with pytest.raises(NotFoundError):
        till.agent.quote(CheckoutRequest("nobody", cart, 0))

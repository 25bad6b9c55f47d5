"""Cheque numbers on a real till store: taken at commit (gapless, a cancelled cheque takes
none), found by the full number, the short number or the last characters (ambiguous ones
named), the same lookup for the core's refund (the POS API and CLI path); a training
copy's numbers never equal real ones and its files are private and all removed."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from conftest import FakeClock, Till, make_cart

from agent import receipts
from agent.errors import AmbiguousReceiptError, ConflictError, NotFoundError
from agent.results import CheckoutRequest, CommitResult
from agent.seed import demo_phone
from agent.service import Agent
from agent.store import Store
from agent.training import discard_training_store, open_training_store, training_files


def sell(till: Till, receipt_id: str, phone_i: int = 1) -> CommitResult:
    member = till.agent.identify(demo_phone(phone_i)).member_id
    return till.agent.commit(CheckoutRequest(member, make_cart(receipt_id, ("SH-2001", 1))))


def sell_next(till: Till, phone_i: int = 1) -> CommitResult:
    return sell(till, receipts.upcoming(till.store), phone_i)


def lookup(till: Till, text: str) -> list[str]:
    with till.store.read() as conn:
        return receipts.matches(conn, text)


def test_a_number_is_taken_at_commit_and_a_cancelled_cheque_takes_none(till: Till) -> None:
    first = receipts.upcoming(till.store)
    assert first == "TILL-1-000001"
    assert receipts.upcoming(till.store) == first  # a cheque started and cancelled: no hole
    assert sell(till, first).receipt_id == first
    second = receipts.upcoming(till.store)
    assert second == "TILL-1-000002"
    sell(till, second)
    sell(till, "POS-778899")  # a POS's own number takes nothing
    assert receipts.upcoming(till.store) == "TILL-1-000003"
    assert till.store.meta(receipts.COUNTER_META) == "2"


def test_a_number_out_of_turn_is_refused_and_nothing_written(till: Till) -> None:
    sell_next(till)
    purchases, events = till.count("purchases"), till.count("outbox")
    with pytest.raises(ConflictError, match=r"not the next number of this till \(TILL-1-000002\)"):
        sell(till, "TILL-1-000005", phone_i=2)  # would leave a hole
    with pytest.raises(ConflictError, match="already committed"):
        sell(till, "TILL-1-000001", phone_i=2)  # taken
    assert (till.count("purchases"), till.count("outbox")) == (purchases, events)
    assert receipts.upcoming(till.store) == "TILL-1-000002"
    # The repeat of a committed cheque is still answered as a repeat, not refused.
    assert sell(till, "TILL-1-000001").duplicate


def test_receipt_numbers_keep_the_whole_terminal_id(till: Till) -> None:
    """A number is what a refund searches by: the terminal id is never cut (the demo's
    ``t-`` plus 12 hex digits lost 6 of them)."""
    with till.store.write() as conn:
        Store.set_meta(conn, "terminal_id", "t-2a9f1c3b4d5e")
    assert receipts.upcoming(till.store) == "T-2A9F1C3B4D5E-000001"


def test_found_by_full_short_number_or_last_digits(till: Till) -> None:
    numbers = [sell_next(till, i).receipt_id for i in range(1, 12)]  # 000001 .. 000011
    sell(till, "R-2026-5501", 1)
    sell(till, "R-2026-1770", 2)
    sell(till, "R-2026-2770", 3)
    assert lookup(till, numbers[6]) == [numbers[6]]
    assert lookup(till, numbers[6].lower()) == [numbers[6]]
    for short in ("7", "07", "000007", " 0000007 "):
        assert lookup(till, short) == ["TILL-1-000007"], short
    assert lookup(till, "11") == ["TILL-1-000011"]
    assert lookup(till, "1-000011") == ["TILL-1-000011"]
    # Digits that are no counter of this till: the last digits of the other numbers only
    # (``01`` names cheque 1; ``5501`` is not cheque 5501 of this till).
    assert lookup(till, "5501") == ["R-2026-5501"]
    assert lookup(till, "770") == ["R-2026-2770", "R-2026-1770"]  # newest first
    assert lookup(till, "12") == []
    assert lookup(till, "") == []
    with till.store.read() as conn:
        with pytest.raises(AmbiguousReceiptError) as err:
            receipts.resolve(conn, "770")
        assert err.value.details["candidates"] == ["R-2026-2770", "R-2026-1770"]
        assert "R-2026-1770" in err.value.message("ru")
        with pytest.raises(NotFoundError, match="no cheque 12 on this till"):
            receipts.resolve(conn, "12")
        with pytest.raises(NotFoundError):
            receipts.resolve(conn, "%")  # LIKE wildcards are literal


def test_last_digits_look_at_recent_cheques_only(
    till: Till, monkeypatch: pytest.MonkeyPatch
) -> None:
    sell(till, "R-OLD-4242", 1)
    for i in range(3):
        sell(till, f"R-NEW-{i}", 2)
    assert lookup(till, "4242") == ["R-OLD-4242"]
    monkeypatch.setattr(receipts, "RECENT_WINDOW", 3)
    assert lookup(till, "4242") == []  # out of the window by its last digits...
    assert lookup(till, "R-OLD-4242") == ["R-OLD-4242"]  # ...never by its full number


def test_the_cores_refund_takes_the_short_number(till: Till) -> None:
    """The POS API and the CLI refund through ``Agent.refund``: the same lookup."""
    for i in range(1, 4):
        sell_next(till, i)
    sell(till, "R-2026-1770", 1)
    sell(till, "R-2026-2770", 2)
    out = till.agent.refund("RF-1", "000002", {1: 1})
    row = till.store.one("SELECT receipt_id FROM refunds WHERE refund_id = 'RF-1'")
    assert row == ("TILL-1-000002",)
    again = till.agent.refund("RF-1", "TILL-1-000002", {1: 1})  # the same request
    assert again.duplicate and again.event_id == out.event_id
    events = till.count("outbox")
    with pytest.raises(AmbiguousReceiptError):
        till.agent.refund("RF-2", "770", {1: 1})
    with pytest.raises(NotFoundError):
        till.agent.refund("RF-3", "9", {1: 1})
    assert till.count("outbox") == events and till.count("refunds") == 1


def test_training_numbers_never_equal_real_ones(till: Till, clock: FakeClock) -> None:
    for i in range(1, 5):
        sell_next(till, i)
    real_next = receipts.upcoming(till.store)
    copy = open_training_store(till.store, clock.now())
    try:
        training_number = receipts.upcoming(copy)
        assert training_number == "TRN-TILL-1-000001"
        assert training_number.split("-")[-1] != real_next.split("-")[-1]
        agent = Agent(copy, clock)
        member = agent.identify(demo_phone(1)).member_id
        cart = make_cart(training_number, ("SH-2001", 1))
        assert agent.commit(CheckoutRequest(member, cart)).receipt_id == training_number
        assert receipts.upcoming(copy) == "TRN-TILL-1-000002"
        with copy.read() as conn:  # the short number names the training cheque
            assert receipts.matches(conn, "1") == [training_number]
    finally:
        discard_training_store(copy)
    assert receipts.upcoming(till.store) == real_next


def test_training_copy_files_are_private_and_all_removed(till: Till, clock: FakeClock) -> None:
    path = till.path.with_name("till.training.db")
    copy = open_training_store(till.store, clock.now())
    try:
        with copy.write() as conn:  # a write: the WAL and shared-memory files exist
            Store.set_meta(conn, "probe", "1")
        present = [p for p in training_files(path) if p.exists()]
        assert {p.name for p in present} >= {
            "till.training.db",
            "till.training.db-wal",
            "till.training.db-shm",
            "till.training.db.lock",
        }
        for p in present:
            if not p.name.endswith(".lock"):
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    finally:
        discard_training_store(copy)
    assert not [p for p in training_files(path) if p.exists()]
    assert not list(Path(till.path.parent).glob("till.training.db*"))

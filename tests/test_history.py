"""agent.history on a real store: the refund dry run is exactly the refund and writes
nothing; a cheque's lines and what is left; a member's history newest first; names."""

from __future__ import annotations

import pytest
from conftest import make_cart, store_busy

from agent import history
from agent.errors import InputError, NotFoundError, RefundError
from agent.identify import make_member_code
from agent.results import CheckoutRequest

RICH = 1  # seed template 1 has spendable points


def dump(till) -> list[tuple]:
    with till.store.read() as conn:
        return [
            tuple(conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall())
            for t in ("purchases", "refunds", "outbox", "print_jobs", "members")
        ]


def sell(till, receipt: str):
    card = till.agent.identify(make_member_code(100_000_000 + RICH))
    cart = make_cart(receipt, ("DR-1001", 2), ("SH-2001", 1))
    return card, till.agent.commit(CheckoutRequest(card.member_id, cart, "max"))


def test_refund_preview_is_the_refund_and_writes_nothing(till) -> None:
    sell(till, "R-1")
    before = dump(till)
    preview = history.refund_preview(till.store, "R-1", {1: 1, 2: 1}, till.clock.now())
    assert dump(till) == before
    assert preview.points_returned > 0 and preview.earn_reversed > 0
    done = till.agent.refund("RF-1", "R-1", {1: 1, 2: 1})
    assert done.result == preview
    # What is left, and the refusals the refund itself would give.
    cheque = history.cheque(till.store, "R-1")
    assert [(ln.line_no, ln.qty, ln.refunded, ln.left) for ln in cheque.lines] == [
        (1, 2, 1, 1),
        (2, 1, 1, 0),
    ]
    assert cheque.lines[0].name == "Платье миди «Лён»"  # from the journal's cart
    snap = dump(till)
    with pytest.raises(RefundError) as e:
        history.refund_preview(till.store, "R-1", {2: 1}, till.clock.now())
    assert e.value.details["refundable"] == 0
    with pytest.raises(NotFoundError):
        history.refund_preview(till.store, "NOPE", {1: 1}, till.clock.now())
    with pytest.raises(NotFoundError):
        history.cheque(till.store, "NOPE")
    with pytest.raises(InputError):
        history.cheque(till.store, "  ")
    assert dump(till) == snap


def test_member_history_newest_first_with_refunds(till) -> None:
    card, first = sell(till, "R-1")
    till.clock.advance(minutes=10)
    refund = till.agent.refund("RF-1", "R-1", {1: 1})
    till.clock.advance(minutes=10)
    sell(till, "R-2")
    entries = history.member_history(till.store, card.member_id)
    assert [(e.kind, e.receipt_id) for e in entries] == [
        ("purchase", "R-2"),
        ("refund", "R-1"),
        ("purchase", "R-1"),
    ]
    assert entries[2].amount_kop == first.quote.payable_kop
    assert entries[2].points_delta == first.quote.total_earned - first.quote.redeem_points
    assert entries[1].points_delta == refund.result.net_points != 0
    assert entries[1].amount_kop == refund.result.amount_kop
    assert history.member_history(till.store, "nobody") == []


def test_names_found_case_insensitively_in_cyrillic(till) -> None:
    found = history.find_by_name(till.store, "анна")
    assert found and all(m.first_name == "Анна" for m in found)
    assert {m.first_name for m in history.find_by_name(till.store, "ТАТЬ")} == {"Татьяна"}
    with pytest.raises(InputError):
        history.find_by_name(till.store, "а")
    with pytest.raises(InputError):
        history.find_by_name(till.store, "12")


def test_a_name_search_does_not_wait_for_the_store_lock(till) -> None:
    """The scan reads on a connection of its own: a thread holding the store (a sale being
    written) does not stop it, and it sees what was committed."""
    import threading

    with store_busy(till.store):
        found: list[object] = []
        search = threading.Thread(
            target=lambda: found.append(history.find_by_name(till.store, "анна"))
        )
        search.start()
        search.join(10)
        assert not search.is_alive(), "the name search waited for the store lock"
        assert found and found[0]

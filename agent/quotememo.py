"""Reuse of the quote the cashier just saw when the cheque is committed.

A commit re-scores its cheque inside the write transaction (the member may have changed
since the quote). Usually nothing did: the same cart, the same member state document, the
same spending bound, a few seconds later. ``engine.quote`` is deterministic, so its result
can be reused when every input is equal, and the only input that moved is ``now``.

What ``engine.quote`` reads from ``now`` (without a coupon, which is never memoised here):

- the programme-local date (``today``: campaigns, birthday window, rolling tier spend);
- each lot's availability, pending state and expiry (``available_from <= now <
  expires_at``): balances, the spendable amount, the FIFO plan;
- the expiry warning horizon (``now < expires_at <= now + expiry_warning_days``);
- ``earn_available_from = now + pending_days``, copied into the quote.

So a quote made at ``then`` equals, with ``earn_available_from`` moved, the quote at a
later ``now`` of the same local date when no lot boundary (``available_from``,
``expires_at``, ``expires_at - expiry_warning_days``) lies in ``(then, now]``.
``tests/test_quotememo.py`` checks this against fresh quotes (hypothesis).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from agent import engine
from agent.model import MemberState, Quote, replacer
from agent.rules import Programme


@dataclass(frozen=True, slots=True)
class Memo:
    """A quote with everything it was computed from and the time it stays valid."""

    key: tuple[Any, ...]
    rules: Programme
    day: date
    then: datetime
    until: datetime | None  # the first lot boundary after ``then`` (None: none)
    quote: Quote


def stable_until(state: MemberState, rules: Programme, then: datetime) -> datetime | None:
    """The first moment after ``then`` at which some lot changes what the engine sees."""
    warn = timedelta(days=rules.expiry_warning_days)
    first: datetime | None = None
    for lot in state.lots:
        for moment in (lot.available_from, lot.expires_at, lot.expires_at - warn):
            if moment > then and (first is None or moment < first):
                first = moment
    return first


def remember(
    key: tuple[Any, ...], state: MemberState, rules: Programme, then: datetime, quote: Quote
) -> Memo:
    """``key``: every input of the quote besides the member state document and ``now``
    (the caller's: cart, points asked, spending bound) plus that document."""
    return Memo(
        key, rules, engine.local_date(rules, then), then, stable_until(state, rules, then), quote
    )


def recall(
    memo: Memo | None, key: tuple[Any, ...], rules: Programme, now: datetime
) -> Quote | None:
    """The memoised quote as ``engine.quote`` would give it at ``now``, or None."""
    if (
        memo is None
        or memo.rules is not rules
        or now < memo.then
        or (memo.until is not None and now >= memo.until)
        or memo.key != key
        or engine.local_date(rules, now) != memo.day
    ):
        return None
    if now == memo.then:
        return memo.quote
    return _moved(memo.quote, now + timedelta(days=rules.pending_days))


# ``replace(q, earn_available_from=t)`` compiled once (``dataclasses.replace`` looks the
# 27 fields of a Quote up on every call).
_moved: Callable[[Quote, datetime], Quote] = replacer(Quote, "earn_available_from")

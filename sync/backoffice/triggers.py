"""The scheduled member events: points expiring soon, a birthday soon, a member lapsed,
and points expired (the ledger expires a lot by time alone: nothing is written when it
burns, so this pass is where its event comes from).

Once a day (the programme's local date by the service's clock) ``run`` walks the live
members (not merged away, not erased) in chunks of ``CHUNK`` and emits, in one
transaction per chunk under the feed lock (``outbox``):

- ``points.expiring`` ``{"points", "expires_on", "days"}``: points of lots that burn
  within ``expiring_days`` local days (one event per member and expiry day);
- ``points.expired`` ``{"points", "cause": "expiry", "expired_on"}``: points of lots that
  burnt in the last ``EXPIRED_LOOKBACK_DAYS`` days (one per member and expiry day; a lot
  that burnt before that, or before the outbox existed, is not reported);
- ``birthday.soon`` ``{"days"}``: the birthday falls within ``birthday_days`` days,
  today included (one per member and birthday; 29 February is 1 March in other years);
- ``member.lapsed`` ``{"last_purchase_at", "days"}``: no purchase for ``lapsed_days`` days
  or more since the last one (one per member and last purchase: a new purchase and a new
  lapse give a new one).

Idempotent: each event has its key in ``outbox_once`` (member, kind, day: the expiry
day, the birthday, the last purchase's day), written with it; a re-run the same day, a
second node running at the same time or a missed day caught up later emits nothing twice.
No lease is needed for that: the keys and the feed lock decide.

The days are the active programme's ``[events]`` table (``expiring_days``,
``birthday_days``, ``lapsed_days``; 14, 7 and 90 when it has none: ``agent.rules``), read
on every pass, so a new version's days apply from the next day's pass. They are not the
till slip's ``expiry_warning_days`` nor the bonus's ``[birthday] days_before``. A caller
may pass other ``Settings`` (``Backoffice.run_triggers``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from agent import engine
from agent.rules import (
    EVENT_BIRTHDAY_DAYS,
    EVENT_EXPIRING_DAYS,
    EVENT_LAPSED_DAYS,
    Programme,
)
from sync.backoffice import outbox
from sync.backoffice.batch import member_state
from sync.backoffice.context import Context
from sync.backoffice.worker import RoundWorker

CHUNK = 1000
"""Members per transaction."""
EXPIRED_LOOKBACK_DAYS = 30
"""How far back a burnt lot is still reported as ``points.expired`` (days)."""
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Settings:
    """How many days ahead (expiring, birthday) or behind (lapsed) the events look."""

    expiring_days: int = EVENT_EXPIRING_DAYS
    birthday_days: int = EVENT_BIRTHDAY_DAYS
    lapsed_days: int = EVENT_LAPSED_DAYS

    @classmethod
    def of(cls, rules: Programme) -> Settings:
        """The days the programme ``rules`` sets (its ``[events]`` table)."""
        return cls(rules.events_expiring_days, rules.events_birthday_days, rules.events_lapsed_days)


def _birthday_on(born: date, year: int) -> date:
    try:
        return born.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 3, 1)


def _chunks(ctx: Context) -> Iterator[list[tuple[str, str, str | None, str | None]]]:
    """The live members in ``member_id`` order, ``CHUNK`` at a time: ``(member_id,
    state, birthday, last purchase's occurred_at)``."""
    after = ""
    while True:
        with ctx.db.reading() as tx:
            rows = tx.all(
                "SELECT member_id, state, birthday FROM members WHERE member_id > ? "
                "AND merged_into IS NULL AND erased_at IS NULL ORDER BY member_id LIMIT ?",
                (after, CHUNK),
            )
            if not rows:
                return
            ids = [str(r[0]) for r in rows]
            doc = json.dumps(ids)
            cond = (
                "member_id IN (SELECT json_array_elements_text(?::json))"
                if tx.dialect == "postgresql"
                else "member_id IN (SELECT value FROM json_each(?))"
            )
            last = dict(
                tx.all(
                    f"SELECT member_id, max(occurred_at) FROM purchases WHERE {cond} "
                    "GROUP BY member_id",
                    (doc,),
                )
            )
        yield [(str(r[0]), str(r[1]), r[2], last.get(r[0])) for r in rows]
        after = ids[-1]


def due(
    member_id: str,
    state_text: str,
    birthday: str | None,
    last_purchase: str | None,
    rules: Programme,
    now: datetime,
    settings: Settings,
) -> list[tuple[tuple[str, str, str], outbox.Pending]]:
    """The scheduled events due for one member today, each with its ``outbox_once`` key."""
    today = engine.local_date(rules, now)
    state = member_state(state_text)
    out: list[tuple[tuple[str, str, str], outbox.Pending]] = []
    expiring: defaultdict[date, int] = defaultdict(int)
    expired: defaultdict[date, int] = defaultdict(int)
    horizon = today + timedelta(days=settings.expiring_days)
    oldest = now - timedelta(days=EXPIRED_LOOKBACK_DAYS)
    for lot in state.lots:
        if lot.points <= 0:
            continue
        day = engine.local_date(rules, lot.expires_at - _TICK)  # burns at that day's end
        if lot.expires_at > now and day <= horizon:
            expiring[day] += lot.points
        elif oldest < lot.expires_at <= now:
            expired[day] += lot.points
    for day, points in sorted(expiring.items()):
        data = {"points": points, "expires_on": day.isoformat(), "days": (day - today).days}
        key = (member_id, outbox.POINTS_EXPIRING, day.isoformat())
        out.append((key, outbox.Pending(member_id, outbox.POINTS_EXPIRING, data, now)))
    for day, points in sorted(expired.items()):
        data = {"points": points, "cause": "expiry", "expired_on": day.isoformat()}
        key = (member_id, outbox.POINTS_EXPIRED, day.isoformat())
        out.append((key, outbox.Pending(member_id, outbox.POINTS_EXPIRED, data, now)))
    if birthday:
        try:
            born = date.fromisoformat(birthday[:10])
        except ValueError:
            born = None
        if born is not None:
            next_one = _birthday_on(born, today.year)
            if next_one < today:
                next_one = _birthday_on(born, today.year + 1)
            days = (next_one - today).days
            if days <= settings.birthday_days:
                key = (member_id, outbox.BIRTHDAY_SOON, next_one.isoformat())
                pending = outbox.Pending(member_id, outbox.BIRTHDAY_SOON, {"days": days}, now)
                out.append((key, pending))
    if last_purchase:
        bought = engine.local_date(rules, datetime.fromisoformat(last_purchase))
        days = (today - bought).days
        if days >= settings.lapsed_days:
            data = {"last_purchase_at": last_purchase, "days": days}
            key = (member_id, outbox.MEMBER_LAPSED, bought.isoformat())
            out.append((key, outbox.Pending(member_id, outbox.MEMBER_LAPSED, data, now)))
    return out


def run(ctx: Context, settings: Settings | None = None) -> int:
    """One day's pass over every live member (see the module docstring); returns how many
    events it emitted (0 on a re-run the same day). ``settings``: the days, the active
    programme's when None."""
    rules = ctx.programmes.get(None)
    if rules is None:
        return 0
    settings = settings or Settings.of(rules)
    now = ctx.clock.now()
    emitted = 0
    for chunk in _chunks(ctx):
        candidates = [
            c
            for member_id, state, birthday, last in chunk
            for c in due(member_id, state, birthday, last, rules, now, settings)
        ]
        if not candidates:
            continue
        with ctx.db.transaction(feed=True) as tx:
            fresh = outbox.once(tx, [k for k, _ in candidates], now)
            rows = [p for k, p in candidates if k in fresh]
            outbox.emit_many(tx, rows, now=now)
        emitted += len(rows)
    return emitted


class Triggers(RoundWorker):
    """``run`` once per local day while the back office serves (started beside the
    projector); a round on a day already done does nothing. A failed pass is retried
    after ``idle_s`` (the keys keep what it emitted from being emitted again).
    ``settings``: the days, the active programme's on each pass when None."""

    name = "kassa-triggers"
    idle_s = 60.0

    def __init__(self, ctx: Context, settings: Settings | None = None) -> None:
        super().__init__(ctx)
        self.settings = settings
        self.last_day: date | None = None

    def round(self, busy: bool) -> int:
        rules = self.ctx.programmes.get(None)
        if rules is None:
            return 0
        today = engine.local_date(rules, self.ctx.clock.now())
        if today == self.last_day:
            return 0
        n = run(self.ctx, self.settings)
        self.last_day = today
        return n

    def busy_pause(self, elapsed: float) -> float:
        return self.idle_s

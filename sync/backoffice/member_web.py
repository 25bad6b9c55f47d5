"""The member's own card (the members' pages): what one member sees about
themselves, read from the ledger's member row and the programme in force.

Points are integers; ``spend_kop`` and thresholds are kopecks; times are aware datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent import engine
from agent.errors import AgentError
from sync.backoffice.batch import member_state
from sync.backoffice.context import Context


class CardNotFound(AgentError):
    code = "card_not_found"
    title_en = "No card"
    title_ru = "Карты нет"


@dataclass(frozen=True, slots=True)
class Pending:
    points: int
    available_from: datetime


@dataclass(frozen=True, slots=True)
class Card:
    member_id: str
    code: str
    first_name: str | None
    balance: int
    available: int
    pending: tuple[Pending, ...]
    expiring_points: int
    expiring_on: str | None
    tier_ru: str
    tier_en: str
    spend_kop: int
    next_tier_ru: str | None
    next_tier_en: str | None
    to_next_kop: int
    """Kopecks still to spend for the next tier (0 at the top)."""
    history: tuple[tuple[str, int, int, int], ...]
    """The last cheques: (occurred_at, paid_kop, earned, spent), newest first."""
    collections: tuple[tuple[str, int, int], ...] = ()
    """The programme's collections: (name in Russian, units collected, units per reward)."""


def card(ctx: Context, member_id: str, now: datetime) -> Card:
    """``member_id``'s card; ``CardNotFound`` for a member merged away, erased or unknown."""
    with ctx.db.reading() as tx:
        r = tx.one(
            "SELECT code, first_name, state FROM members "
            "WHERE member_id = ? AND merged_into IS NULL AND erased_at IS NULL",
            (member_id,),
        )
        if r is None:
            raise CardNotFound(
                "the member was merged into another, erased on request, or never existed",
                "участник объединён с другим, удалён по запросу или не существует",
            )
        rules = ctx.programmes.get(None, tx)
        assert rules is not None
        rows = tx.all(
            "SELECT occurred_at, paid_kop, earned, spent FROM purchases WHERE member_id = ? "
            "ORDER BY occurred_at DESC LIMIT 10",
            (member_id,),
        )
    state = member_state(r[2])
    s = engine.member_summary(state, rules, now)
    spend = engine.rolling_spend(state, rules, now)
    tier = rules.tier_for_spend(spend)
    nxt = rules.next_tier(tier)
    pending = tuple(
        Pending(lot.points, lot.available_from)
        for lot in sorted(state.lots, key=lambda lot: lot.available_from)
        if lot.is_pending(now)
    )
    return Card(
        member_id,
        r[0],
        r[1],
        s.balance,
        s.available,
        pending,
        s.expiring_points,
        s.expiring_on.isoformat() if s.expiring_on else None,
        tier.name_ru,
        tier.name_en,
        spend,
        nxt.name_ru if nxt else None,
        nxt.name_en if nxt else None,
        max(0, nxt.threshold_kop - spend) if nxt else 0,
        tuple((h[0], int(h[1]), int(h[2]), int(h[3])) for h in rows),
        tuple((m.name_ru, state.collection_progress(m.id), m.target) for m in rules.collections),
    )

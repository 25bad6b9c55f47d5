"""The chain invariant of a single till's journal (issue 22): each cheque's or refund's
``balance_before`` equals the member's balance after their previous journal event.

A till that sells against an older server record of the member than the one it already
had (a change-feed page behind a push answer) breaks it: the cheque starts from a balance
the member had before their last sales. Points move between two events of a member only
through events (no expiry happens within the runs that use this: their lots live for
months), so for one till the chain is exact.
"""

from __future__ import annotations

import json
from typing import Any

from agent.store import Store


def _balances(kind: str, payload: dict[str, Any]) -> tuple[int, int] | None:
    """(balance before, balance after) of a purchase or a refund event's payload (points)."""
    if kind == "purchase":
        q = payload["quote"]
        earned = q["earn_points"] + sum(b["points"] for b in q.get("bonuses", ()))
        before = int(q["balance_before"])
        return before, before - int(q["redeem_points"]) + earned
    if kind == "refund":
        r = payload["result"]
        return int(r["balance_before"]), int(r["balance_after"])
    return None


def chain_breaks(store: Store) -> list[str]:
    """Every event of the open till ``store`` whose ``balance_before`` is not the
    balance after the same member's previous purchase or refund, described."""
    with store.read() as conn:
        rows = conn.execute("SELECT seq, type, payload FROM outbox ORDER BY seq").fetchall()
    last: dict[str, tuple[int, int]] = {}  # member -> (seq, balance after)
    breaks: list[str] = []
    for seq, kind, text in rows:
        payload = json.loads(text)
        moved = _balances(kind, payload)
        if moved is None:
            continue
        member = str(payload["member_id"])
        before, after = moved
        prev = last.get(member)
        if prev is not None and prev[1] != before:
            breaks.append(
                f"seq {seq} ({kind}, {member}): balance_before {before}, "
                f"after seq {prev[0]} it was {prev[1]}"
            )
        last[member] = (seq, after)
    return breaks


def events_checked(store: Store) -> int:
    """How many purchases and refunds the chain runs through (a check of nothing is none)."""
    row = store.one("SELECT count(*) FROM outbox WHERE type IN ('purchase', 'refund')")
    return int(row[0]) if row else 0

"""A member's personal data destroyed, or their card blocked, in the till's cache, as the
back office ordered.

When a member withdraws consent (152-FZ) the back office destroys their personal data and
puts an ``erase`` change in its feed; the till's sync client hands it to ``erase_cached``
inside the transaction that stores the feed page (``journal.apply_changes``). The cached
row keeps its pseudonymous part (member id, card code, points) and loses the phone hash,
the masked phone, the first name, the consents and the birthday inside the stored state;
the registration's journal row loses the same fields once the back office has it (acked:
a row still to be sent keeps the payload its hash covers). Unlike a ``member`` change it
applies even while the till has the member's events in flight, since nothing local may
keep what was destroyed. An erased member's card is blocked too.

A ``block`` change (the programme blocked or unblocked a card from its console) sets
``members.blocked`` (``set_blocked``); identifying a blocked member at the till is
refused (``refuse_blocked``, ``MemberBlockedError``), so no points are earned or spent on
the card. The flag reaches a till through the change feed, and a till loaded from a
snapshot through its header's ``blocked_members`` (``note_blocked``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import replace

from agent import codec
from agent.errors import ConflictError
from agent.model import MemberState
from agent.store import Store

PERSONAL = ("phone_hash", "phone_masked", "phone_sealed", "first_name", "birthday")
"""The personal fields of a registration's journal payload."""


class MemberBlockedError(ConflictError):
    """The member's card is blocked by the programme (or their data was erased)."""

    code = "member_blocked"
    title_ru = "Карта заблокирована"
    title_en = "Card blocked"


def scrubbed_state(text: str) -> str:
    """A stored member state without its birthday (the one personal field it holds)."""
    state = codec.loads(MemberState, text)
    return codec.dumps(replace(state, birthday=None, birthday_bonus_year=None))


def erase_cached(conn: sqlite3.Connection, member_id: str) -> bool:
    """Destroy ``member_id``'s personal data in the members cache; whether it was cached."""
    row = conn.execute("SELECT state FROM members WHERE member_id = ?", (member_id,)).fetchone()
    if row is None:
        return False
    conn.execute(
        "UPDATE members SET phone_hash = NULL, phone_masked = NULL, first_name = NULL, "
        "consent_programme = 0, consent_marketing = 0, blocked = 1, state = ? "
        "WHERE member_id = ?",
        (scrubbed_state(row[0]), member_id),
    )
    for seq, payload in conn.execute(
        "SELECT seq, payload FROM outbox WHERE member_id = ? AND type = 'member_registered' "
        "AND status = 'acked'",
        (member_id,),
    ).fetchall():
        p = json.loads(payload)
        for key in PERSONAL:
            p.pop(key, None)
        p["erased"] = True
        conn.execute(
            "UPDATE outbox SET payload = ? WHERE seq = ?",
            (json.dumps(p, ensure_ascii=False), seq),
        )
    return True


def set_blocked(conn: sqlite3.Connection, member_id: str, blocked: bool) -> None:
    """Mark ``member_id``'s cached card blocked or not (a member not cached: nothing)."""
    conn.execute("UPDATE members SET blocked = ? WHERE member_id = ?", (int(blocked), member_id))


def refuse_blocked(store: Store, member_id: str) -> None:
    """``MemberBlockedError`` when ``member_id``'s card is blocked at this till."""
    row = store.one("SELECT blocked FROM members WHERE member_id = ?", (member_id,))
    if row is not None and row[0]:
        raise MemberBlockedError(
            "the programme blocked this card: no points can be earned or spent on it",
            "программа заблокировала эту карту: начислять и списывать бонусы нельзя",
            member_id=member_id,
        )


def note_blocked(store: Store, member_ids: Iterable[str]) -> None:
    """The snapshot's blocked members marked so in the cache, in one write."""
    with store.write() as conn:
        for member_id in member_ids:
            set_blocked(conn, member_id, True)

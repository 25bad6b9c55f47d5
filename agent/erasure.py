"""A member's personal data destroyed in the till's cache, as the back office ordered.

When a member withdraws consent (152-FZ) the back office destroys their personal data and
puts an ``erase`` change in its feed; the till's sync client hands it to ``erase_cached``
inside the transaction that stores the feed page (``journal.apply_changes``). The cached
row keeps its pseudonymous part (member id, card code, points) and loses the phone hash,
the masked phone, the first name, the consents and the birthday inside the stored state;
unlike a ``member`` change it applies even while the till has the member's events in
flight, since nothing local may keep what was destroyed.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace

from agent import codec
from agent.model import MemberState


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
        "consent_programme = 0, consent_marketing = 0, state = ? WHERE member_id = ?",
        (scrubbed_state(row[0]), member_id),
    )
    return True

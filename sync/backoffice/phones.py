"""Members' phone fingerprints at the back office: the programme's cost and key, and the
upgrade of fingerprints made before v2.

Why this module exists (docs/threat-model.md, "A stolen till: phone numbers"): tills and
the back office fingerprint a phone with ``agent.phonehash.hard_phone_hash`` (v2, scrypt
at the programme's ``[phone_hash]`` cost) and keep a mask with no digit. Members stored
before that hold the v1 HMAC and a mask with the last four digits; migration
``0024_phone_fingerprint_v2`` hid the digits and marked those rows ``phone_legacy``.

- Lookups by phone try v2, then v1 (``agent.phonehash.lookup_fingerprints``), so such a
  member is found everywhere until upgraded.
- :func:`upgrade_more` turns ``phone_legacy`` rows into v2 without their phones
  (``agent.phonehash.upgrade_fingerprint``: v2 is scrypt of v1) and puts each upgraded
  member's record in the change feed, so tills replace the v1 they cached. At the
  production cost one member takes ~20-50 ms of CPU, a million members hours: so it runs
  in chunks in the background (:class:`PhoneUpgrade`, beside the projector), not in the
  migration; a member signing in on the members' pages is upgraded at once
  (``member_signup.open_session``).
"""

from __future__ import annotations

import json

from agent.phonehash import TILL_COST, ScryptCost, strip_mask, upgrade_fingerprint
from sync.backoffice.context import Context
from sync.backoffice.db import Tx
from sync.backoffice.feed import member_records
from sync.backoffice.worker import RoundWorker

CHUNK = 20
"""Members upgraded per round and transaction: ~0.5-1 s of scrypt at the production cost,
computed before the transaction opens (the write lock is held for the updates only), so a
stopping back office waits at most that for the round in progress."""


def cost(ctx: Context, tx: Tx | None = None) -> ScryptCost:
    """The active programme's fingerprint cost (the production default before any)."""
    rules = ctx.programmes.get(None, tx)
    return TILL_COST if rules is None else rules.phone_hash


def key(tx: Tx) -> bytes:
    """The programme's phone hash key (``settings``)."""
    return bytes.fromhex(str(tx.one("SELECT value FROM settings WHERE key = 'phone_hash_key'")[0]))


def legacy_left(ctx: Context) -> int:
    """How many members still hold a v1 fingerprint."""
    with ctx.db.reading() as tx:
        return int(tx.one("SELECT count(*) FROM members WHERE phone_legacy = 1")[0])


def upgrade_more(ctx: Context, limit: int = CHUNK) -> int:
    """Upgrade up to ``limit`` members' v1 fingerprints to v2 (masks without digits), each
    with its record in the change feed; returns how many rows it settled (0: none left).
    A row that changed meanwhile (erased, merged, upgraded by a sign-in) is left as it
    now is; safe to run on several nodes at once (the update checks the v1 it read)."""
    with ctx.db.reading() as tx:
        secret = key(tx)
        rows = tx.all(
            "SELECT member_id, phone_hash, phone_masked FROM members WHERE phone_legacy = 1 "
            "ORDER BY member_id LIMIT ?",
            (limit,),
        )
    if not rows:
        return 0
    spent = cost(ctx)
    plan: list[tuple[str, str | None, str | None, str | None]] = []
    for member_id, v1, masked in rows:
        try:
            v2 = upgrade_fingerprint(str(v1), secret, spent) if v1 is not None else None
        except ValueError:  # not a v1 fingerprint: nothing to upgrade it from
            v2 = None
        plan.append((str(member_id), v1, v2, strip_mask(masked)))
    now = ctx.clock.now().isoformat()
    with ctx.db.transaction(feed=True) as tx:
        changed: list[str] = []
        for member_id, v1, v2, masked in plan:
            if v2 is None:  # erased (no phone left) or not a fingerprint: nothing to do
                tx.execute("UPDATE members SET phone_legacy = 0 WHERE member_id = ?", (member_id,))
                continue
            n = tx.execute(
                "UPDATE members SET phone_hash = ?, phone_masked = ?, phone_legacy = 0 "
                "WHERE member_id = ? AND phone_legacy = 1 AND phone_hash = ?",
                (v2, masked, member_id, v1),
            ).rowcount
            if n:
                changed.append(member_id)
        records = member_records(tx, set(changed)) if changed else {}
        for m in changed:
            tx.execute(
                "INSERT INTO changes(kind, member_id, body, created_at) VALUES ('member', ?, ?, ?)",
                (m, json.dumps(records[m], ensure_ascii=False), now),
            )
    return len(plan)


class PhoneUpgrade(RoundWorker):
    """:func:`upgrade_more` in the background while the back office serves, a chunk per
    round, pausing while tills push (a round's scrypt is CPU the pushes need)."""

    name = "kassa-phones"
    idle_s = 60.0

    def round(self, busy: bool) -> int:
        return upgrade_more(self.ctx)

    def busy_pause(self, elapsed: float) -> float:
        return max(1.0, 4 * elapsed)

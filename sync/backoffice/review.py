"""Purchases held for review: listed with the till's claim and the server's figures,
released (applied as claimed) or refused by a person, audited.

The projector re-scores every purchase before applying it (``effects.rescore``); a till
claiming more points than the programme gives beyond its tolerance is not applied: the
event is answered ``rejected`` / ``held_for_review`` (the till quarantines it and gets the
member's record back with the verdict), and a ``held_for_review`` flag keeps the claim and
the server's figures. Here a person decides:

- release: the purchase is applied now, as the till printed it, exactly once: in one
  transaction under the feed lock, through the projector's own ``batch.Batch`` (the same
  effects, change feed, roll-ups and member events; only the re-score is skipped), its
  verdict becomes ``applied`` with code ``released``, and the audit row names the reason.
  Tills learn the member's balance through the change feed. A purchase that cannot be
  applied any more (its receipt was taken meanwhile, the member erased) is refused with
  the reason and stays held;
- refuse: it stays refused, code ``refused_on_review``, with the audit row.

Either decision is taken once: a second one finds nothing held.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sync.backoffice.batch import Batch
from sync.backoffice.checks import Rejected, parse_payload
from sync.backoffice.context import Context
from sync.backoffice.db import Tx
from sync.backoffice.member_admin import MemberAdminError
from sync.backoffice.member_ops import reason_of
from sync.backoffice.people import audit
from sync.backoffice.terminal import Terminal
from sync.protocol import WireEvent

HELD = "held_for_review"
REFUSED = "refused_on_review"
RELEASED = "released"


@dataclass(frozen=True, slots=True)
class Held:
    """A purchase waiting for review. Points: ``claim_*`` what the till printed (earned,
    bonuses, spent), ``server_*`` the back office's re-score (earned, bonuses, the most
    the cheque allows to spend), ``tolerance`` what the programme lets a cheque differ."""

    event_id: str
    terminal_id: str
    store_id: str
    member_id: str | None
    receipt_id: str
    occurred_at: str
    held_at: str
    message: str
    claim_earned: int
    claim_bonus: int
    claim_spent: int
    server_earned: int
    server_bonus: int
    server_spend_limit: int
    tolerance: int


def held(ctx: Context, *, store_scope: str | None = None, limit: int = 200) -> list[Held]:
    """The purchases waiting for review, oldest first (of one store for a store manager)."""
    scope = "" if store_scope is None else " AND t.store_id = ?"
    params: tuple[Any, ...] = (HELD, HELD) + (() if store_scope is None else (store_scope,))
    with ctx.db.reading() as tx:
        rows = tx.all(
            "SELECT e.event_id, e.terminal_id, t.store_id, e.member_id, e.payload, "
            "e.message, f.detail, f.created_at FROM events e "
            "JOIN terminals t ON t.terminal_id = e.terminal_id "
            "JOIN flags f ON f.event_id = e.event_id AND f.kind = ? "
            f"WHERE e.status = 'rejected' AND e.code = ?{scope} ORDER BY e.pos LIMIT ?",
            (*params, limit),
        )
    out: list[Held] = []
    for event_id, terminal_id, store_id, member_id, payload, message, detail, at in rows:
        p = json.loads(payload)
        d = json.loads(detail)
        claim, server = d.get("claim", {}), d.get("server", {})
        out.append(
            Held(
                event_id,
                terminal_id,
                store_id,
                member_id,
                str(p.get("receipt_id", "")),
                str(p.get("occurred_at", "")),
                at,
                message or "",
                int(claim.get("earned", 0)),
                int(claim.get("bonus", 0)),
                int(claim.get("spent", 0)),
                int(server.get("earned", 0)),
                int(server.get("bonus", 0)),
                int(server.get("spend_limit", 0)),
                int(d.get("tolerance", 0)),
            )
        )
    return out


def _held_row(tx: Tx, event_id: str, store_scope: str | None) -> tuple[Any, ...]:
    row = tx.one(
        "SELECT e.event_id, e.terminal_id, e.epoch, e.seq, e.type, e.schema_version, "
        "e.created_at, e.payload, e.payload_hash, t.store_id, t.name FROM events e "
        "JOIN terminals t ON t.terminal_id = e.terminal_id "
        "WHERE e.event_id = ? AND e.status = 'rejected' AND e.code = ?",
        (event_id, HELD),
    )
    if row is None or (store_scope is not None and row[9] != store_scope):
        raise MemberAdminError(
            f"no purchase {event_id} is waiting for review",
            f"чек {event_id} не ждёт проверки",
            code="not_held",
            event_id=event_id,
        )
    return tuple(row)


def release(
    ctx: Context, event_id: str, reason_text: str, *, actor: str, store_scope: str | None = None
) -> str:
    """Apply a held purchase as the till claimed it (see the module docstring); returns
    the member it was applied to."""
    reason = reason_of(reason_text)
    now = ctx.clock.now()
    with ctx.db.transaction(feed=True) as tx:
        row = _held_row(tx, event_id, store_scope)
        ev = WireEvent(row[0], row[1], row[2], int(row[3]), row[4], int(row[5]), *row[6:9])
        try:
            payload: dict[str, Any] | Rejected = parse_payload(ev)
        except Rejected as e:
            payload = e
        batch = Batch(ctx.programmes, now, tx, careful=True, released=frozenset({event_id}))
        batch.prefetch([ev], [payload])
        batch.one(ev, payload, Terminal(row[1], row[9], row[10]))
        batch.finish()
        status, code, message, member_id = tx.one(
            "SELECT status, code, message, member_id FROM events WHERE event_id = ?",
            (event_id,),
        )
        if status != "applied":
            raise MemberAdminError(
                f"the purchase cannot be applied: {code}: {message}",
                f"чек не проводится: {code}: {message}",
                code="not_applicable",
                event_id=event_id,
            )
        tx.execute("UPDATE events SET code = ? WHERE event_id = ?", (RELEASED, event_id))
        audit.record(
            tx,
            now,
            actor,
            "purchase_released",
            event_id,
            {"reason": reason, "member_id": member_id, "terminal_id": row[1]},
        )
    return str(member_id)


def refuse(
    ctx: Context, event_id: str, reason_text: str, *, actor: str, store_scope: str | None = None
) -> None:
    """Keep a held purchase refused (see the module docstring)."""
    reason = reason_of(reason_text)
    now = ctx.clock.now()
    with ctx.db.transaction() as tx:
        row = _held_row(tx, event_id, store_scope)
        tx.execute(
            "UPDATE events SET code = ? WHERE event_id = ? AND code = ?",
            (REFUSED, event_id, HELD),
        )
        audit.record(
            tx, now, actor, "purchase_refused", event_id, {"reason": reason, "terminal_id": row[1]}
        )

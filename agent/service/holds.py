"""Holds: points reserved for a cheque in progress at the host POS.

A POS asks the agent to *hold* the points a member wants to spend while the cashier takes
payment; the cheque then ends with a commit (the hold is consumed) or a cancel (released),
or the hold runs out by itself after its time to live. While a hold is active, the points
it reserves are not spendable by any other cheque of that member on this till, so two
cheques in progress cannot both spend the same balance (the Loymax "заморозка бонусов").

Why in the store and not in memory: a hold must survive a restart of the agent (the POS
still has the cheque open) and must expire even if the agent was down when it was due.
Expiry is computed from the injected clock: a hold whose ``expires_at`` has passed no
longer reserves anything, whether or not :func:`expire_due` has marked it yet.

One active hold per POS receipt id: placing a hold again for the same receipt with the
same request returns the same hold (a retried call); with another request (the cheque
changed) the old hold is released and a new one is placed, in one transaction.

Times are stored as UTC text ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` so they compare as strings.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from agent import codec
from agent.errors import ConflictError, InputError, NotFoundError
from agent.model import Quote
from agent.results import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S, CheckoutRequest, Hold

if TYPE_CHECKING:  # pragma: no cover - types only
    from agent.store import Store

__all__ = [
    "ACTIVE",
    "CANCELLED",
    "COMMITTED",
    "DEFAULT_TTL_S",
    "EXPIRED",
    "HELD_SQL",
    "MAX_TTL_S",
    "MIN_TTL_S",
    "Hold",
    "HoldChequeChangedError",
    "HoldError",
    "HoldRow",
    "active_count",
    "cancel",
    "check_cheque",
    "check_ttl",
    "cheque_hash",
    "consume",
    "expire_due",
    "get",
    "held_points",
    "reopen",
    "request_hash",
    "reserve",
    "stamp",
]


ACTIVE, COMMITTED, CANCELLED, EXPIRED = "active", "committed", "cancelled", "expired"
_STATUS_RU = {COMMITTED: "уже использован", CANCELLED: "отменён", EXPIRED: "срок истёк"}
"""A hold's state as said after the title «Резерв бонусов недействителен: »."""


class HoldError(ConflictError):
    """The hold cannot be used: expired, cancelled, committed, or for another cheque."""

    code = "hold_unusable"
    title_ru = "Резерв бонусов недействителен"
    title_en = "Points hold not usable"


class HoldChequeChangedError(HoldError):
    """A commit names a hold but its cheque (lines, points, coupon) is not the held one."""

    code = "hold_cheque_changed"
    title_ru = "Чек отличается от зарезервированного"
    title_en = "Cheque differs from the held one"


def stamp(moment: datetime) -> str:
    """The sortable UTC text form used in the ``holds`` table:
    ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (ISO 8601 cut before its ``+00:00``; 2.5x faster than
    ``strftime``, and every commit makes one)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:26] + "Z"


class HoldRow(NamedTuple):
    """A row of ``holds`` as ``_COLS`` selects it (``quote``: the quote as JSON text)."""

    hold_id: str
    receipt_id: str
    member_id: str
    points: int
    status: str
    created_at: str
    expires_at: str
    closed_at: str | None
    quote: str


_COLS = ", ".join(HoldRow._fields)


def _hold(row: tuple[Any, ...], now: datetime, *, duplicate: bool = False) -> Hold:
    """The ``Hold`` of a row of ``_COLS``, with its status as of ``now``."""
    r = HoldRow._make(row)
    status = r.status
    if status == ACTIVE and r.expires_at <= stamp(now):
        status = EXPIRED  # due, not yet swept: report what it is
    return Hold(
        hold_id=r.hold_id,
        receipt_id=r.receipt_id,
        member_id=r.member_id,
        points=int(r.points),
        status=status,
        created_at=r.created_at,
        expires_at=r.expires_at,
        closed_at=r.closed_at,
        quote=codec.loads(Quote, r.quote),
        duplicate=duplicate,
    )


# Parameters: member id, ``stamp(now)``, the receipt not to count. A scalar subquery, so a
# commit reads it with the member's row in one statement.
HELD_SQL = (
    "SELECT COALESCE(SUM(points), 0) FROM holds WHERE member_id = ? AND status = 'active' "
    "AND expires_at > ? AND receipt_id != ?"
)


def held_points(store: Store, member_id: str, now: datetime, except_receipt: str = "") -> int:
    """Points of ``member_id`` reserved by active, unexpired holds of other receipts."""
    row = store.one(HELD_SQL, (member_id, stamp(now), except_receipt))
    return int(row[0]) if row else 0


def cheque_hash(req: CheckoutRequest) -> str:
    """The digest of what a hold is for: the cart (receipt id, lines) and the coupon.
    Cashier, shift and time to live are not part of the cheque."""
    return codec.digest(codec.dumps({"cart": req.cart, "coupon": req.coupon}))


def check_cheque(store: Store, hold_id: str, req: CheckoutRequest) -> None:
    """Refuse (``HoldChequeChangedError``, 409) a commit naming ``hold_id`` whose cheque is
    not the one the hold was placed for: other lines or quantities, another coupon, or
    other points to spend than the hold asked for or reserved. The POS may already have
    printed the hold's per-line discounts, so spending the held points on another cart
    would make the slip and the sale disagree. Unknown holds and holds of another receipt
    are left to :func:`consume` (404 / 409 inside the commit's transaction); holds placed
    before the store recorded their cheque are not checked."""
    row = store.one(
        "SELECT receipt_id, member_id, points, cheque_hash, redeem_asked FROM holds "
        "WHERE hold_id = ?",
        (hold_id,),
    )
    if row is None:
        return
    receipt_id, member_id, points, held_cheque, redeem_asked = row
    if held_cheque is None or receipt_id != req.cart.receipt_id or member_id != req.member_id:
        return
    redeem = str(req.redeem_points)
    if held_cheque != cheque_hash(req) or redeem not in (redeem_asked, str(points)):
        raise HoldChequeChangedError(
            f"the cheque differs from the one hold {hold_id} was placed for (receipt "
            f"{receipt_id}): lines, points or coupon changed; place the hold again for this "
            "cheque, or commit without hold_id",
            f"чек {receipt_id}, резерв {hold_id}: изменились товары, бонусы или купон; "
            "зарезервируйте бонусы заново",
            hold_id=hold_id,
            receipt_id=receipt_id,
        )


def check_ttl(ttl_s: object) -> int:
    """``ttl_s`` as a hold's time to live in seconds, or ``InputError`` naming it."""
    if (
        isinstance(ttl_s, bool)
        or not isinstance(ttl_s, int)
        or not (MIN_TTL_S <= ttl_s <= MAX_TTL_S)
    ):
        raise InputError(
            f"ttl_s: must be a whole number of seconds from {MIN_TTL_S} to {MAX_TTL_S}",
            f"срок резерва: целое число секунд от {MIN_TTL_S} до {MAX_TTL_S}",
            field="ttl_s",
        )
    return ttl_s


def request_hash(req: CheckoutRequest, ttl_s: int) -> str:
    """The digest of a hold request: a retried call has the same one."""
    return codec.digest(codec.dumps({"req": req, "ttl_s": ttl_s}))


def reopen(
    conn: sqlite3.Connection, req: CheckoutRequest, digest: str, now: datetime
) -> Hold | None:
    """Inside the write transaction placing a hold: the receipt's live hold if it was
    placed by this very request (``digest``, a retried call), else None after releasing
    whatever the receipt held (the cheque changed, or its hold ran out). A receipt
    already committed is a ``ConflictError``."""
    receipt_id = req.cart.receipt_id
    if conn.execute("SELECT 1 FROM purchases WHERE receipt_id = ?", (receipt_id,)).fetchone():
        raise ConflictError(
            f"receipt {receipt_id} is already committed",
            f"чек {receipt_id} уже проведён",
            receipt_id=receipt_id,
        )
    current = conn.execute(
        f"SELECT request_hash, {_COLS} FROM holds WHERE receipt_id = ? AND status = 'active' "
        "AND expires_at > ?",
        (receipt_id, stamp(now)),
    ).fetchone()
    if current is not None:
        placed_by, *hold = current
        if placed_by == digest:
            return _hold(tuple(hold), now, duplicate=True)
    conn.execute(
        "UPDATE holds SET status = 'cancelled', closed_at = ? "
        "WHERE receipt_id = ? AND status = 'active'",
        (stamp(now), receipt_id),
    )
    return None


def reserve(
    conn: sqlite3.Connection,
    req: CheckoutRequest,
    quote: Quote,
    ttl_s: int,
    digest: str,
    now: datetime,
) -> Hold:
    """Inside the same transaction as ``reopen``: reserve the points ``quote`` spends for
    ``ttl_s`` seconds (the quote scored in that transaction, so two holds placed at once
    for one member cannot both take the same points)."""
    row = (
        uuid.uuid4().hex,
        req.cart.receipt_id,
        req.member_id,
        quote.redeem_points,
        ACTIVE,
        stamp(now),
        stamp(now + timedelta(seconds=ttl_s)),
        None,
        codec.dumps(quote),
    )
    conn.execute(
        f"INSERT INTO holds({_COLS}, request_hash, cheque_hash, redeem_asked) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (*row, digest, cheque_hash(req), str(req.redeem_points)),
    )
    return _hold(row, now)


def get(store: Store, hold_id: str, now: datetime) -> Hold:
    """The hold with its current status (an active one past its time reads ``expired``)."""
    row = store.one(f"SELECT {_COLS} FROM holds WHERE hold_id = ?", (hold_id,))
    if row is None:
        raise NotFoundError(f"no hold {hold_id}", "такого резерва нет", hold_id=hold_id)
    return _hold(row, now)


def cancel(store: Store, hold_id: str, now: datetime) -> Hold:
    """Release a hold (the cheque was voided). Idempotent: cancelling a cancelled or
    expired hold returns it; a committed one cannot be cancelled (refund the cheque)."""
    with store.write() as conn:
        row = conn.execute(f"SELECT {_COLS} FROM holds WHERE hold_id = ?", (hold_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no hold {hold_id}", "такого резерва нет", hold_id=hold_id)
        status = HoldRow._make(row).status
        if status == COMMITTED:
            raise HoldError(
                f"hold {hold_id} was committed with its cheque; refund the cheque instead",
                "резерв уже использован в проведённом чеке: оформите возврат",
                hold_id=hold_id,
                status=COMMITTED,
            )
        if status == ACTIVE:
            conn.execute(
                "UPDATE holds SET status = 'cancelled', closed_at = ? WHERE hold_id = ?",
                (stamp(now), hold_id),
            )
            row = conn.execute(
                f"SELECT {_COLS} FROM holds WHERE hold_id = ?", (hold_id,)
            ).fetchone()
        return _hold(row, now)


def consume(
    conn: sqlite3.Connection, receipt_id: str, member_id: str, hold_id: str | None, now: datetime
) -> None:
    """Inside the commit transaction: check the named hold and mark the receipt's active
    hold committed. A named hold that is unknown, of another cheque or member, or no
    longer active fails the commit (nothing is written)."""
    if hold_id is not None:
        row = conn.execute(
            "SELECT receipt_id, member_id, status, expires_at FROM holds WHERE hold_id = ?",
            (hold_id,),
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no hold {hold_id}", "такого резерва нет", hold_id=hold_id)
        held_for, held_by, status, expires_at = row
        if status == ACTIVE and expires_at <= stamp(now):
            status = EXPIRED
        if held_for != receipt_id or held_by != member_id:
            raise HoldError(
                f"hold {hold_id} belongs to another cheque or member",
                "резерв относится к другому чеку",
                hold_id=hold_id,
            )
        if status != ACTIVE:
            raise HoldError(
                f"hold {hold_id} is {status}; place a new hold or commit without it",
                f"{_STATUS_RU.get(status, status)}: зарезервируйте бонусы заново",
                hold_id=hold_id,
                status=status,
            )
    # The receipt's live hold is used up; one that ran out is recorded as expired.
    conn.execute(
        "UPDATE holds SET status = CASE WHEN expires_at > ?1 THEN 'committed' ELSE 'expired' "
        "END, closed_at = ?1 WHERE receipt_id = ?2 AND status = 'active'",
        (stamp(now), receipt_id),
    )


def expire_due(store: Store, now: datetime) -> int:
    """Mark holds past their time as expired (housekeeping; returns how many). Reading
    code never depends on this having run."""
    with store.write() as conn:
        cur = conn.execute(
            "UPDATE holds SET status = 'expired', closed_at = expires_at "
            "WHERE status = 'active' AND expires_at <= ?",
            (stamp(now),),
        )
        return cur.rowcount


def active_count(store: Store, now: datetime) -> int:
    row = store.one(
        "SELECT count(*) FROM holds WHERE status = 'active' AND expires_at > ?", (stamp(now),)
    )
    return int(row[0]) if row else 0

"""Sales: a cheque scored (quote), its points held while the customer pays, committed
(with or without its hold), and what the cashier screens ask about a cheque in progress
(the catalogue, a coupon read before the member, why the points were limited, the next
receipt number).

A commit is one store transaction together with its journal row and its print job: the
sale is either fully there or not at all. Commits are idempotent by the POS's own
``receipt_id``: a retry with the same request returns the stored result, a retry with a
different request is a ``ConflictError``.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from agent import codec, engine, limits, quotememo, receipts
from agent.errors import AgentError, ConflictError, CouponError, InputError, NotFoundError
from agent.ids import time_ordered_id
from agent.ledger import apply_purchase
from agent.model import CartLine, MemberState, Quote
from agent.money import Points
from agent.results import CheckoutRequest, CommitResult, Hold, OfflineStatus
from agent.rules import Programme
from agent.service import holds, slips
from agent.service.context import Context, MemberColumns, MemberRow
from agent.service.status import Counters, counter_sql, offline_from
from agent.slip import Slip
from agent.tokens import Coupon, verify_coupon


class ChequeRow(NamedTuple):
    """A cheque's reads in one row (``CHEQUE_READ_SQL``): the member's cache row (all
    NULL, so ``member_id`` None, when the member is unknown), the points other cheques
    hold for them, whether this receipt has an active hold, the offline counters
    (``status.Counters``) and the request hash if the receipt is already committed."""

    member_id: str
    code: str
    phone_masked: str | None
    first_name: str | None
    state: str
    provisional: int
    consent_marketing: int
    unsynced: int
    synced_at: str | None
    offline_spent: Points
    merged_into: str | None
    held: Points
    has_hold: int
    last_contact: str | None
    acked_events: str | None
    offline_consecutive: str | None
    terminal_offline_spent: str | None
    last_seq: str | None
    stored_hash: str | None


_CHEQUE_EXPRESSIONS = {
    "held": f"({holds.HELD_SQL})",
    "has_hold": "EXISTS(SELECT 1 FROM holds WHERE receipt_id = ? AND status = 'active')",
    **{name: counter_sql(name) for name in Counters._fields},
    "stored_hash": "(SELECT request_hash FROM purchases WHERE receipt_id = ?)",
}
assert ChequeRow._fields == MemberRow._fields + tuple(_CHEQUE_EXPRESSIONS)

# One statement that always gives one row, so the quote's read and the commit's (in its
# transaction) are one consistent snapshot. Parameters, in the order of the columns: the
# member id, ``holds.stamp(now)`` and the receipt id (held), the receipt id (has_hold, then
# stored_hash), the member id (the join).
CHEQUE_READ_SQL = (
    "SELECT "
    + ", ".join(_CHEQUE_EXPRESSIONS.get(name, name) for name in ChequeRow._fields)
    + " FROM (SELECT 1) LEFT JOIN members ON member_id = ?"
)


def cheque_read(conn: sqlite3.Connection, req: CheckoutRequest, now: datetime) -> ChequeRow:
    """The row of ``CHEQUE_READ_SQL`` for ``req``."""
    receipt_id = req.cart.receipt_id
    return ChequeRow._make(
        conn.execute(
            CHEQUE_READ_SQL,
            (req.member_id, holds.stamp(now), receipt_id, receipt_id, receipt_id, req.member_id),
        ).fetchone()
    )


def offline_limit(
    status: OfflineStatus,
    row: MemberColumns,
    state: MemberState,
    rules: Programme,
    now: datetime,
) -> tuple[str, Points] | None:
    """The bound on spending for this cheque when offline (DESIGN.md §3), or None.

    A member who joined here and whom the back office has not confirmed (``provisional``)
    spends only what ``engine.unconfirmed_spendable`` allows (the welcome bonus, if the
    programme says so), within the caps; the cache-age check does not apply to them:
    their row is this till's own registration."""
    if status.online:
        return None
    policy = rules.offline
    synced_at = row.synced_at
    bounds: dict[str, Points] = {}
    if row.provisional:
        unconfirmed = engine.unconfirmed_spendable(state, rules, now)
        if unconfirmed <= 0:
            return ("offline_provisional", 0)
        bounds["offline_welcome_only"] = unconfirmed
    elif synced_at is None or now - datetime.fromisoformat(synced_at) > timedelta(
        hours=policy.max_cache_age_hours
    ):
        return ("offline_stale_cache", 0)
    if status.consecutive_offline >= policy.consecutive_limit:
        return ("offline_consecutive", 0)
    bounds |= {
        "offline_per_transaction": policy.per_transaction_points,
        "offline_per_member": policy.per_member_points - int(row.offline_spent),
        "offline_terminal_budget": policy.terminal_budget_points - status.terminal_offline_spent,
    }
    key = min(bounds, key=lambda k: bounds[k])
    return (key, bounds[key])


def read_coupon_at(ctx: Context, text: str, now: datetime) -> Coupon:
    """The coupon ``text`` with its signature and dates checked at ``now`` (offline,
    with the programme's key); ``CouponError`` (or a token error) saying why not."""
    verifier = ctx.token_verifier()
    if verifier is None:
        raise CouponError(
            "till has no back office key to check coupons",
            "касса не может проверить купон: нет ключа программы",
        )
    coupon = verify_coupon(verifier, text.strip(), now)
    revoked = ctx.store.one(
        "SELECT revoked_at FROM coupons_revoked WHERE coupon_id = ?", (coupon.coupon_id,)
    )
    if revoked is not None:
        raise CouponError(
            "the programme revoked this coupon",
            "купон отозван программой",
            coupon_id=coupon.coupon_id,
            revoked_at=revoked[0],
        )
    return coupon


def coupon_for(ctx: Context, text: str | None, member_code: str, now: datetime) -> Coupon | None:
    if not text:
        return None
    coupon = read_coupon_at(ctx, text, now)
    if coupon.member_code is not None and coupon.member_code != member_code:
        raise CouponError(
            "personal coupon of another member",
            "это персональный купон другого участника",
            coupon_id=coupon.coupon_id,
        )
    used = ctx.store.one(
        "SELECT receipt_id FROM coupons_used WHERE coupon_id = ?", (coupon.coupon_id,)
    )
    if used is not None:
        raise CouponError(
            f"coupon already used on cheque {used[0]}",
            f"купон уже использован (чек {used[0]})",
            coupon_id=coupon.coupon_id,
            receipt_id=used[0],
        )
    return coupon


def quote(ctx: Context, req: CheckoutRequest) -> Quote:
    """Score a cheque without writing anything (what the cashier sees before confirming)."""
    now = ctx.clock.now()
    with ctx.store.read() as conn:
        # The commit's read, one consistent snapshot in one statement: the member's
        # row, the points other cheques hold and the offline counters.
        read = cheque_read(conn, req, now)
        status = offline_from(ctx, read, now)[0]
    row: MemberColumns | None = read
    held: int | None = int(read.held or 0)
    if read.member_id is None or read.merged_into:  # unknown, or merged: the survivor
        row = ctx.member_row("member_id = ?", req.member_id)
        held = None
    if row is None:
        raise NotFoundError(
            f"no member {req.member_id} on this till",
            "такого участника нет",
            member_id=req.member_id,
        )
    state = ctx.state(row.state)
    return score(ctx, req, row, state, now, status, held)


def score(
    ctx: Context,
    req: CheckoutRequest,
    row: MemberColumns,
    state: MemberState,
    now: datetime,
    status: OfflineStatus,
    held: int | None = None,
) -> Quote:
    """Score ``req`` for the member ``row`` (state ``state``) under the offline status
    ``status``; ``held``: the member's points reserved by other cheques, if already read."""
    rules = ctx.programme()
    coupon = coupon_for(ctx, req.coupon, row.code, now)
    limit = offline_limit(status, row, state, rules, now)
    # Points reserved by other cheques in progress (agent.service.holds) are not spendable here.
    if held is None:
        held = holds.held_points(ctx.store, req.member_id, now, req.cart.receipt_id)
    if held and (limit is None or state.spendable(now) - held < limit[1]):
        limit = ("on_hold", state.spendable(now) - held)
    redeem = _redeem(req)
    # Every input of engine.quote but ``now`` (agent.quotememo says what ``now`` moves).
    key = (req.cart, redeem, row.state, limit)
    if coupon is None:
        memoised = quotememo.recall(ctx.quote_memo, key, rules, now)
        if memoised is not None:
            return memoised
    q = engine.quote(
        req.cart,
        state,
        rules,
        now,
        redeem_points=redeem,
        coupon=coupon,
        redeem_limit=limit,
    )
    if coupon is None:
        ctx.quote_memo = quotememo.remember(key, state, rules, now, q)
    return q


def commit(ctx: Context, req: CheckoutRequest, hold_id: str | None = None) -> CommitResult:
    """Commit a cheque: member state, purchase, journal event and print job, atomically.

    Idempotent by ``req.cart.receipt_id``. ``hold_id`` names the points hold placed for
    this cheque (``agent.service.holds``): it must still be active and be for this very cheque
    (``HoldChequeChangedError``, 409, when its lines, coupon or points differ), and
    ``req.redeem_points`` None spends the points it reserved. Any active hold of this
    receipt is consumed in the same transaction.
    """
    req = with_hold(ctx, req, hold_id)
    # The request, the cart and the quote are made JSON-ready once each and shared by
    # the documents that hold them (request hash, journal payload, stored result).
    req_plain = codec.to_plain_with(req, cart=None)
    cart_text = codec.dumps(req.cart)
    request_hash = codec.digest(codec.dumps_with(req_plain, cart=cart_text))
    if ctx.store.read_only:  # no write lock to take: answer a repeat, else refuse below
        stored = stored_commit(ctx, req.cart.receipt_id, request_hash)
        if stored is not None:
            return stored
    rules = ctx.programme()
    with ctx.store.write() as conn:
        # The business time is read under the write lock, like the journal's seq: two
        # requests at once then have their occurred_at in seq order (the back office
        # flags a till whose times run backwards as its seq rises: clock_backwards).
        now = ctx.clock.now()
        now_iso = now.isoformat()
        # Read inside the transaction, in one statement: the offline counters written
        # below must build on what no other commit has changed since, and a repeat of
        # this receipt (a POS retry, another thread) is seen under the same lock, so
        # the check and the write cannot race. A repeat writes nothing.
        # Also the member's row, the points other cheques hold (agent.service.holds) and
        # whether this receipt has an active hold; consuming this receipt's own hold
        # below does not change the points the others hold.
        receipt_id = req.cart.receipt_id
        row = cheque_read(conn, req, now)
        if row.stored_hash is not None:
            stored = stored_commit(ctx, receipt_id, request_hash)
            if stored is not None:
                return stored
        receipts.claim(conn, receipt_id)  # this till's own number: taken now, gapless
        status, last_seq = offline_from(ctx, row, now)
        if row.member_id is None:
            raise NotFoundError(
                f"no member {req.member_id} on this till",
                "такого участника нет",
                member_id=req.member_id,
            )
        if hold_id is not None or row.has_hold:  # else there is no hold to check or close
            holds.consume(conn, req.cart.receipt_id, req.member_id, hold_id, now)
        state = ctx.state(row.state)
        q = score(ctx, req, row, state, now, status, int(row.held))
        event_id = time_ordered_id()
        new_state, effects = apply_purchase(state, req.cart, q, rules, now, event_id)
        offline = not status.online
        ctx.save_member(
            conn,
            req.member_id,
            new_state,
            rules,
            now,
            offline_spent=q.redeem_points if offline else 0,
        )
        q_text = codec.dumps(q)
        payload = {
            "receipt_id": q.receipt_id,
            "member_id": req.member_id,
            "member_code": row.code,
            "cart": None,  # below, as text
            "redeem_points": q.redeem_points,
            "coupon": req_plain["coupon"],
            "coupon_id": q.coupon_id,
            "earn_points": q.earn_points,
            "rules_version": q.rules_version,
            "quote": None,  # below, as text
            "cashier_id": req_plain["cashier_id"],
            "shift_id": req_plain["shift_id"],
            "identified_by": req_plain["identified_by"],
            "offline": offline,
            "occurred_at": now_iso,
        }
        seq = ctx.append_event(
            conn,
            event_id,
            "purchase",
            payload,
            now_iso,
            last_seq=last_seq,
            body=codec.dumps_with(payload, cart=cart_text, quote=q_text),
        )
        slip = slips.sale_slip(ctx, q, row, now, provisional=offline)
        job_id = ctx.queue_print(conn, q.receipt_id, "sale", slip, now_iso)
        result = CommitResult(q.receipt_id, event_id, seq, q, offline, job_id)
        conn.execute(
            "INSERT INTO purchases(receipt_id, op_id, member_id, created_at, request_hash, "
            "result, effects, cashier_id, shift_id, offline) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                q.receipt_id,
                event_id,
                req.member_id,
                now_iso,
                request_hash,
                codec.dumps_with(codec.to_plain_with(result, quote=None), quote=q_text),
                codec.dumps(effects),
                req.cashier_id,
                req.shift_id,
                int(offline),
            ),
        )
        if q.coupon_id:
            conn.execute(
                "INSERT INTO coupons_used(coupon_id, receipt_id, used_at) VALUES (?,?,?)",
                (q.coupon_id, q.receipt_id, now_iso),
            )
        if offline:
            conn.executemany(
                "INSERT INTO sync_state(name, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (
                    ("offline_consecutive", str(status.consecutive_offline + 1), now_iso),
                    (
                        "offline_spent",
                        str(status.terminal_offline_spent + q.redeem_points),
                        now_iso,
                    ),
                ),
            )
    return result


def commit_with_slip(
    ctx: Context, req: CheckoutRequest, hold_id: str | None = None
) -> tuple[CommitResult, Slip]:
    """``commit``, and the slip queued with it (as stored in its print job): what a front
    door shows as the printed cheque."""
    result = commit(ctx, req, hold_id)
    return result, slips.print_job(ctx, result.print_job_id)


def stored_commit(ctx: Context, receipt_id: str, request_hash: str) -> CommitResult | None:
    row = ctx.store.one(
        "SELECT request_hash, result FROM purchases WHERE receipt_id = ?", (receipt_id,)
    )
    if row is None:
        return None
    if row[0] != request_hash:
        raise ConflictError(
            f"receipt {receipt_id} was already committed with other contents",
            f"чек {receipt_id} уже проведён с другим содержимым",
            receipt_id=receipt_id,
        )
    return replace(codec.loads(CommitResult, row[1]), duplicate=True)


def with_hold(ctx: Context, req: CheckoutRequest, hold_id: str | None) -> CheckoutRequest:
    """``req`` as committed with ``hold_id``: points None become the hold's (or 0
    without one); a cheque that is not the held one is refused before anything is
    read for the commit (``holds.check_cheque``)."""
    if hold_id is None:
        return req if req.redeem_points is not None else replace(req, redeem_points=0)
    if not 0 < len(hold_id) <= 64:
        raise InputError(
            "hold_id: must be the hold id text from POST /v1/holds",
            "hold_id: номер резерва из POST /v1/holds",
            field="hold_id",
        )
    if req.redeem_points is None:  # spend what the hold reserved
        req = replace(req, redeem_points=holds.get(ctx.store, hold_id, ctx.clock.now()).points)
    holds.check_cheque(ctx.store, hold_id, req)  # 409: not the held cheque
    return req


def place_hold(ctx: Context, req: CheckoutRequest, ttl_s: int = holds.DEFAULT_TTL_S) -> Hold:
    """Reserve the points ``req`` spends (``"max"`` = the most allowed) for ``ttl_s`` seconds.

    The quote and the reservation happen in one write transaction, so two holds placed
    at once for one member cannot both take the same points. The same request again
    returns the same hold (a retried call); another request for the receipt (the cheque
    changed) releases its hold and places a new one. Raises what ``quote`` raises
    (``RedemptionError`` when the points are not there) and ``ConflictError`` when the
    receipt was already committed.
    """
    ttl = holds.check_ttl(ttl_s)
    if req.redeem_points is None:
        req = replace(req, redeem_points=0)
    digest = holds.request_hash(req, ttl)
    with ctx.store.write() as conn:
        now = ctx.clock.now()
        same = holds.reopen(conn, req, digest, now)
        if same is not None:
            return same
        return holds.reserve(conn, req, quote(ctx, req), ttl, digest, now)


def catalog_lookup(ctx: Context, sku: str) -> tuple[str, str, str | None, int] | None:
    """The till catalogue: sku -> (name, category, collection, price_kop)."""
    row = ctx.store.one(
        "SELECT name, category, collection, price_kop FROM catalog WHERE sku = ?", (sku,)
    )
    return None if row is None else (row[0], row[1], row[2], int(row[3]))


def _within_limits(amount_kop: int, cheque_kop: int, line_no: int) -> None:
    """Refuse a new line of ``amount_kop`` as line ``line_no`` of a cheque already worth
    ``cheque_kop`` (kopecks) if either goes over ``agent.limits``: the cashier hears it
    when typing the line, before any member is there to quote for."""
    limits.check_line(amount_kop, line_no)
    limits.check_cheque(cheque_kop + amount_kop)


def _category(ctx: Context, category: str | None) -> str:
    """A category the programme knows; None: its first category that earns points
    (``general`` when the programme lists none)."""
    rules = ctx.programme()
    if category is None:
        earning = [c for c in rules.categories if c not in rules.excluded_categories]
        return earning[0] if earning else "general"
    if rules.categories and category not in rules.categories:
        known = ", ".join(rules.categories)
        raise InputError(
            f"unknown category {category!r}; known: {known}",
            f"неизвестная категория «{category}»; есть: {known}",
            field="category",
        )
    return category


def catalog_line(
    ctx: Context, sku: str, qty: int, sale: bool, cheque_kop: int = 0, line_no: int = 1
) -> CartLine:
    """Line ``line_no`` of ``qty`` units of the catalogue's ``sku`` at its price, for a
    cheque already worth ``cheque_kop`` (kopecks); an unknown SKU or a line over the
    limits is an ``InputError``."""
    found = catalog_lookup(ctx, sku)
    if found is None:
        raise InputError(f"SKU {sku} not in the catalogue", f"артикул {sku} не найден", sku=sku)
    name, category, collection, price = found
    _within_limits(price * qty, cheque_kop, line_no)
    return CartLine(line_no, sku, name, category, price, qty, price * qty, sale, collection)


def total_line(
    ctx: Context, amount_kop: int, category: str | None, cheque_kop: int = 0, line_no: int = 1
) -> CartLine:
    """A cheque entered as one total of ``amount_kop`` (a till without POS integration),
    in ``category`` (None: the programme's first earning one)."""
    _within_limits(amount_kop, cheque_kop, line_no)
    cat = _category(ctx, category)
    return CartLine(line_no, "TOTAL", "Сумма чека", cat, amount_kop, 1, amount_kop)


def free_line(
    ctx: Context,
    sku: str,
    category: str | None,
    price_kop: int,
    qty: int,
    sale: bool,
    cheque_kop: int = 0,
    line_no: int = 1,
) -> CartLine:
    """A line typed in full (an item missing from the till's catalogue): its name is its
    SKU, its category one the programme knows."""
    _within_limits(price_kop * qty, cheque_kop, line_no)
    cat = _category(ctx, category)
    return CartLine(line_no, sku, sku, cat, price_kop, qty, price_kop * qty, sale)


def read_coupon(ctx: Context, text: str) -> Coupon:
    """A coupon scanned before the member: its signature and dates checked now; the
    member, the cheque and single use are checked by the quote."""
    return read_coupon_at(ctx, text, ctx.clock.now())


def coupon_terms(ctx: Context, text: str | None) -> tuple[str, int]:
    """The kind and value of a coupon (a short label instead of its id); ("", 0) when
    there is none or it cannot be read (any reason)."""
    if not text or ctx.token_verifier() is None:
        return "", 0
    try:
        coupon = read_coupon(ctx, text)
    except AgentError:
        return "", 0
    return coupon.kind, coupon.value


def redeem_limit_text(ctx: Context, reason: str) -> tuple[str, str]:
    """What limited the points of a quote (``Quote.redeem_limited_by``), in English and
    Russian, with the programme's figures."""
    return engine.redeem_limit_text(reason, ctx.programme())


def upcoming_receipt(ctx: Context) -> str:
    """The number this till's next own cheque gets (``agent.receipts``)."""
    return receipts.upcoming(ctx.store)


def _redeem(req: CheckoutRequest) -> Points | Literal["max"]:
    """The points ``req`` asks to spend: None (no hold named) is none."""
    return 0 if req.redeem_points is None else req.redeem_points

"""Member state transitions: registration, purchase, refund. Pure and exactly invertible.

The till applies these to its cached member state when it commits, and the back office
applies the same functions when it receives the events, so both hold the same lots.

Invariants (checked by property tests):
- points are conserved: balance after = balance before - spent + earned (+ bonuses);
- a refund of every unit of a purchase, with nothing else in between, returns the member
  to exactly the state before the purchase (lots, debt, spend, collections, birthday);
- partial refunds add up: refunding units one by one equals refunding them at once,
  because every amount is taken as ``total * refunded_so_far // qty`` minus what earlier
  refunds took (cumulative rounding).

A refund after the earned points were spent takes what is left of that lot and records
the rest as ``debt`` (a negative balance), never hiding it; later accruals repay debt first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from agent.engine import accrues, counts_for_tier, fifo_plan, local_date
from agent.errors import RefundError
from agent.model import Cart, LotSource, MemberState, PointLot, Quote, replacer
from agent.money import Kopecks, Points
from agent.results import RefundLine, RefundResult
from agent.rules import Programme

__all__ = [
    "Grant",
    "PurchaseEffects",
    "RecordLine",
    "apply_purchase",
    "apply_refund",
    "registration_lots",
]


@dataclass(frozen=True, slots=True)
class Grant:
    """Points a purchase granted: ``granted`` in all, ``debt_repaid`` of them went to debt."""

    kind: LotSource
    ref: str
    granted: Points
    debt_repaid: Points
    lot: PointLot | None


@dataclass(frozen=True, slots=True)
class RecordLine:
    """What a refund needs to know about one purchased line."""

    line_no: int
    qty: int
    payable_kop: Kopecks
    earn_points: Points
    redeemed_points: Points
    counts_for_tier: bool
    collection: str | None
    collection_units: int


@dataclass(frozen=True, slots=True)
class PurchaseEffects:
    """How a purchase changed the member: enough to undo it line by line."""

    op_id: str
    receipt_id: str
    member_id: str
    lines: tuple[RecordLine, ...]
    consumed: tuple[PointLot, ...]
    grants: tuple[Grant, ...]
    spend_day: str
    spend_kop: Kopecks
    collections_before: tuple[tuple[str, int], ...]
    collection_mechanics: tuple[tuple[str, str, int, Points], ...]
    birthday_year_before: int | None
    overdraft: Points = 0


def _with_points(lot: PointLot, points: Points) -> PointLot:
    """``replace(lot, points=points)`` without ``dataclasses.replace``'s per-call field
    introspection (several lots per event on the back office's ingest path)."""
    return PointLot(
        lot.lot_id, points, lot.earned_at, lot.available_from, lot.expires_at, lot.source
    )


def _sorted_lots(lots: list[PointLot]) -> tuple[PointLot, ...]:
    return tuple(
        sorted(
            (lot for lot in lots if lot.points > 0),
            key=lambda lot: (lot.expires_at, lot.earned_at, lot.lot_id),
        )
    )


def _add_spend(
    spend: tuple[tuple[str, int], ...], day: str, kop: int
) -> tuple[tuple[str, int], ...]:
    days = dict(spend)
    days[day] = days.get(day, 0) + kop
    return tuple(sorted((d, k) for d, k in days.items() if k != 0))


def _grant(
    lots: list[PointLot],
    debt: Points,
    lot: PointLot,
    kind: LotSource,
    ref: str,
) -> tuple[Points, Grant]:
    """Add a lot, repaying debt first. Returns the new debt and the grant record."""
    repaid = min(debt, lot.points)
    kept = _with_points(lot, lot.points - repaid) if repaid else lot
    if kept.points > 0:
        lots.append(kept)
    return debt - repaid, Grant(kind, ref, lot.points, repaid, kept if kept.points else None)


def registration_lots(rules: Programme, now: datetime, op_id: str) -> tuple[PointLot, ...]:
    """The welcome bonus, spendable at once, for a member who just joined."""
    if rules.welcome_points <= 0:
        return ()
    return (
        PointLot(
            f"{op_id}:welcome",
            rules.welcome_points,
            now,
            now,
            now + timedelta(days=rules.welcome_expiry_days),
            "welcome",
        ),
    )


# ``replace(state, lots=, debt=, spend=, birthday_bonus_year=, collections=)``, compiled.
_purchased = replacer(MemberState, "lots", "debt", "spend", "birthday_bonus_year", "collections")


def apply_purchase(
    state: MemberState,
    cart: Cart,
    q: Quote,
    rules: Programme,
    now: datetime,
    op_id: str,
    *,
    allow_overdraft: bool = False,
) -> tuple[MemberState, PurchaseEffects]:
    """Commit a quote to the member: spend (FIFO), accrue (pending), bonuses, spend, tier.

    ``allow_overdraft`` is the back office's case: a till spent points offline that the
    member no longer has at the centre (another till spent them too). The goods have left
    the store, so the spend stands: what the lots cannot pay becomes ``debt`` (recorded in
    the effects as ``overdraft``), repaid from later accruals.
    """
    by_no = {line.line_no: line for line in cart.lines}
    payable = q.redeem_points
    overdraft = 0
    if allow_overdraft:
        payable = min(q.redeem_points, state.available_points(now))
        overdraft = q.redeem_points - payable
    consumed = [_with_points(lot, take) for lot, take in fifo_plan(state.lots, payable, now)]
    taken = {lot.lot_id: lot.points for lot in consumed}
    lots = [
        _with_points(lot, lot.points - taken[lot.lot_id]) if lot.lot_id in taken else lot
        for lot in state.lots
    ]
    debt = state.debt + overdraft
    grants: list[Grant] = []
    pending_from = now + timedelta(days=rules.pending_days)
    expires = now + timedelta(days=rules.expiry_days)
    if q.earn_points:
        lot = PointLot(f"{op_id}:earn", q.earn_points, now, pending_from, expires, "purchase")
        debt, g = _grant(lots, debt, lot, "purchase", q.receipt_id)
        grants.append(g)
    birthday_year = state.birthday_bonus_year
    for bonus in q.bonuses:
        if bonus.kind == "birthday":
            birthday_year = int(bonus.ref)
            lot = PointLot(
                f"{op_id}:birthday",
                bonus.points,
                now,
                now,
                now + timedelta(days=rules.birthday_expiry_days),
                "birthday",
            )
        else:
            lot = PointLot(
                f"{op_id}:{bonus.kind}:{bonus.ref}",
                bonus.points,
                now,
                pending_from,
                expires,
                bonus.kind,
            )
        debt, g = _grant(lots, debt, lot, bonus.kind, bonus.ref)
        grants.append(g)
    collections = dict(state.collections)
    before = tuple(sorted(collections.items()))
    for progress in q.collections:
        collections[progress.mechanic_id] = progress.collected
    record_lines = tuple(
        RecordLine(
            ql.line_no,
            ql.qty,
            ql.payable_kop,
            ql.earn_points,
            ql.redeemed_points,
            counts_for_tier(line, rules),
            line.collection,
            line.qty if line.collection and accrues(line, rules) else 0,
        )
        for ql, line in [(ql, by_no[ql.line_no]) for ql in q.lines]
    )
    spend_kop = sum(rl.payable_kop for rl in record_lines if rl.counts_for_tier)
    day = local_date(rules, now).isoformat()
    new_state = _purchased(
        state,
        _sorted_lots(lots),
        debt,
        _add_spend(state.spend, day, spend_kop),
        birthday_year,
        tuple(sorted((k, v) for k, v in collections.items() if v)),
    )
    collected = {p.mechanic_id for p in q.collections}  # hashed above (dict keys)
    mechanics = tuple(
        (m.id, m.collection, m.target, m.reward_points)
        for m in rules.collections
        if m.id in collected
    )
    effects = PurchaseEffects(
        op_id=op_id,
        receipt_id=q.receipt_id,
        member_id=state.member_id,
        lines=record_lines,
        consumed=tuple(consumed),
        grants=tuple(grants),
        spend_day=day,
        spend_kop=spend_kop,
        collections_before=before,
        collection_mechanics=mechanics,
        birthday_year_before=state.birthday_bonus_year,
        overdraft=overdraft,
    )
    return new_state, effects


def _portion(total: int, done_before: int, done_after: int, qty: int) -> int:
    """Cumulative rounding: the share of ``total`` for units done_before..done_after."""
    return total * done_after // qty - total * done_before // qty


def _reverse_grant(lots: list[PointLot], debt: Points, grant: Grant, points: Points) -> Points:
    """Take ``points`` of a grant back: from its own lot while it lasts, the rest as debt."""
    if points <= 0:
        return debt
    from_lot = 0
    if grant.lot is not None:
        for i, lot in enumerate(lots):
            if lot.lot_id == grant.lot.lot_id:
                from_lot = min(lot.points, points)
                lots[i] = _with_points(lot, lot.points - from_lot)
                break
    return debt + points - from_lot


def _restore_consumed(
    lots: list[PointLot], consumed: tuple[PointLot, ...], before: int, after: int
) -> None:
    """Give back spent points into the lots they came from, latest-expiring lot first."""

    def share(total: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for lot in reversed(consumed):
            take = min(lot.points, total)
            out[lot.lot_id] = take
            total -= take
        return out

    old, new = share(before), share(after)
    for snapshot in consumed:
        add = new.get(snapshot.lot_id, 0) - old.get(snapshot.lot_id, 0)
        if add <= 0:
            continue
        for i, lot in enumerate(lots):
            if lot.lot_id == snapshot.lot_id:
                lots[i] = _with_points(lot, lot.points + add)
                break
        else:
            lots.append(_with_points(snapshot, add))


def apply_refund(
    state: MemberState,
    effects: PurchaseEffects,
    refunded_before: Mapping[int, int],
    request: Mapping[int, int],
    now: datetime,
) -> tuple[MemberState, RefundResult]:
    """Refund ``request`` (line_no -> units) of a purchase; ``refunded_before`` likewise.

    Raises ``RefundError`` naming the line when a line is unknown or more units are asked
    back than are left. Reverses the accrual of the returned units, gives back the points
    they were paid with, takes their amount off the tier spend, undoes collection rewards
    that no longer hold, and (when the whole cheque is back) the bonuses it granted.
    """
    lines = {rl.line_no: rl for rl in effects.lines}
    if not request or all(q == 0 for q in request.values()):
        raise RefundError(
            "nothing to refund",
            "не выбрано ни одной позиции для возврата",
            receipt_id=effects.receipt_id,
        )
    for line_no, qty in request.items():
        if line_no not in lines:
            raise RefundError(
                f"line {line_no} is not in cheque {effects.receipt_id}",
                f"в чеке {effects.receipt_id} нет строки {line_no}",
                line_no=line_no,
                receipt_id=effects.receipt_id,
            )
        left = lines[line_no].qty - refunded_before.get(line_no, 0)
        if qty < 0 or qty > left:
            raise RefundError(
                f"line {line_no}: asked to refund {qty}, {left} left to refund",
                f"строка {line_no}: к возврату {qty} шт., доступно {left} шт.",
                line_no=line_no,
                requested=qty,
                refundable=left,
                receipt_id=effects.receipt_id,
            )
    balance_before = state.balance(now)
    lots = list(state.lots)
    debt = state.debt
    earn_grant = next((g for g in effects.grants if g.kind == "purchase"), None)
    out_lines: list[RefundLine] = []
    returned_before = returned_after = 0
    spend_back = earn_back = 0
    for rl in effects.lines:
        k0 = refunded_before.get(rl.line_no, 0)
        k1 = k0 + request.get(rl.line_no, 0)
        returned_before += rl.redeemed_points * k0 // rl.qty
        returned_after += rl.redeemed_points * k1 // rl.qty
        if k1 == k0:
            continue
        earn = _portion(rl.earn_points, k0, k1, rl.qty)
        amount = _portion(rl.payable_kop, k0, k1, rl.qty)
        if rl.counts_for_tier:
            spend_back += amount
        earn_back += earn
        out_lines.append(
            RefundLine(
                rl.line_no, k1 - k0, amount, earn, _portion(rl.redeemed_points, k0, k1, rl.qty)
            )
        )
    if earn_grant is not None:
        debt = _reverse_grant(lots, debt, earn_grant, earn_back)
    # Collection rewards that the remaining units no longer earn.
    bonus_back = 0
    collections = dict(state.collections)
    before_map = dict(effects.collections_before)
    for mech_id, coll, target, reward in effects.collection_mechanics:
        p0 = before_map.get(mech_id, 0)
        mine = [rl for rl in effects.lines if rl.collection == coll]
        units = sum(rl.collection_units for rl in mine)
        units_before = sum(
            rl.collection_units * refunded_before.get(rl.line_no, 0) // rl.qty for rl in mine
        )
        units_after = sum(
            rl.collection_units
            * (refunded_before.get(rl.line_no, 0) + request.get(rl.line_no, 0))
            // rl.qty
            for rl in mine
        )
        rewards_then = (p0 + units - units_before) // target - p0 // target
        rewards_now = (p0 + units - units_after) // target - p0 // target
        undo = rewards_then - rewards_now
        grant = next(
            (g for g in effects.grants if g.kind == "collection" and g.ref == mech_id), None
        )
        if grant is not None and undo:
            debt = _reverse_grant(lots, debt, grant, undo * reward)
            bonus_back += undo * reward
        progress = collections.get(mech_id, 0) - (units_after - units_before) + undo * target
        collections[mech_id] = max(0, progress)
    complete = all(
        refunded_before.get(rl.line_no, 0) + request.get(rl.line_no, 0) == rl.qty
        for rl in effects.lines
    )
    birthday_year = state.birthday_bonus_year
    if complete:
        for g in effects.grants:
            if g.kind in ("birthday", "coupon"):
                debt = _reverse_grant(lots, debt, g, g.granted)
                bonus_back += g.granted
            if g.kind == "birthday":
                birthday_year = effects.birthday_year_before
    # Points an overdraft paid come back first, as less debt (or, once the debt was repaid
    # by later accruals, as a lot); the rest go back to the lots they were taken from.
    over_before = min(returned_before, effects.overdraft)
    over_after = min(returned_after, effects.overdraft)
    over_back = over_after - over_before
    if over_back:
        cut = min(debt, over_back)
        debt -= cut
        if over_back > cut:
            lots.append(
                PointLot(
                    f"{effects.op_id}:return:{returned_after}",
                    over_back - cut,
                    now,
                    now,
                    max(
                        (lot.expires_at for lot in effects.consumed),
                        default=now + timedelta(days=365),
                    ),
                    "returned",
                )
            )
    _restore_consumed(
        lots, effects.consumed, returned_before - over_before, returned_after - over_after
    )
    spend = state.spend
    if spend_back and any(day == effects.spend_day for day, _ in spend):
        spend = _add_spend(spend, effects.spend_day, -spend_back)
    new_state = replace(
        state,
        lots=_sorted_lots(lots),
        debt=debt,
        spend=spend,
        birthday_bonus_year=birthday_year,
        collections=tuple(sorted((k, v) for k, v in collections.items() if v)),
    )
    result = RefundResult(
        receipt_id=effects.receipt_id,
        member_id=effects.member_id,
        lines=tuple(out_lines),
        earn_reversed=earn_back,
        bonus_reversed=bonus_back,
        points_returned=returned_after - returned_before,
        amount_kop=sum(rl.amount_kop for rl in out_lines),
        balance_before=balance_before,
        balance_after=new_state.balance(now),
        debt_after=debt,
        complete=complete,
    )
    return new_state, result

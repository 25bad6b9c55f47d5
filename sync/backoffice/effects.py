"""What each event type does to the ledger: purchase, refund, registration.

Called by the projector for each accepted event of a batch in turn, in ``pos`` order
(``batch.Batch``, seen here only through the ``Run`` interface): reads go through the
batch's caches (members, receipts, purchases prefetched for it; ``Run.terminal`` is the
terminal of the event being applied), changes to members go through
``Run.set_state`` (undone if the event is refused later), and rows are staged as the
event's writes (``Run.stage``), run only once the event is applied. A ``Rejected`` (or
``AgentError``) raised here refuses the event, naming why.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, Protocol

import msgspec
import orjson

from agent import codec, engine
from agent.errors import AgentError, CouponError, RedemptionError
from agent.identify import check_member_code
from agent.ledger import PurchaseEffects, apply_purchase, apply_refund
from agent.model import Cart, MemberState, PointLot, Quote
from agent.phonehash import strip_mask, upgrade_fingerprint
from agent.rules import Programme
from agent.tokens import Coupon
from sync.backoffice.checks import Rejected, moment, nonneg, opt, text
from sync.backoffice.terminal import Terminal
from sync.protocol import WireEvent


@dataclass(eq=False, slots=True)
class BatchMember:
    """A member loaded into a batch: its state is changed in memory, written once.

    ``text`` is the stored state text while the state is unchanged (the verifier's
    "state before" costs no encoding then)."""

    member_id: str
    state: MemberState
    code: str
    phone_hash: str | None
    phone_masked: str | None
    first_name: str | None
    consent_programme: bool
    consent_marketing: bool
    merged_into: str | None
    text: str | None = None
    new: bool = False
    dirty: bool = False
    extra: dict[str, Any] | None = None


@dataclass(slots=True)
class BatchPurchase:
    """A purchase a refund in this batch refers to (from the ledger or from this batch)."""

    member_id: str
    effects: PurchaseEffects
    refunded: dict[int, int]
    in_batch: bool


class Run(Protocol):
    """What an event's effects need from the batch applying it (``batch.Batch``)."""

    @property
    def terminal(self) -> Terminal: ...
    @property
    def now_iso(self) -> str: ...
    @property
    def rules(self) -> Programme:
        """The active programme."""
        ...

    def rules_for(self, version: Any, ev: WireEvent) -> Programme:
        """The programme ``version`` (the active one, flagged, if it is not known)."""
        ...

    def member(self, member_id: Any) -> BatchMember:
        """The member (following merges) or ``Rejected``."""
        ...

    def member_exists(self, member_id: str, code: str) -> bool: ...
    def phone_owner(self, phone_hash: str) -> str | None: ...
    def phone_key(self) -> bytes:
        """The programme's phone hash key."""
        ...

    def legacy_fingerprint(self, sealed: str | None) -> str | None:
        """The v1 fingerprint of a sealed phone (None if it does not open)."""
        ...

    def has_receipt(self, receipt_id: str) -> bool: ...
    def purchase(self, event_id: str) -> BatchPurchase | None: ...
    def set_state(self, m: BatchMember, state: MemberState) -> None: ...
    def add_member(self, m: BatchMember) -> None: ...
    def stage(self, sql: str, row: tuple[Any, ...]) -> None: ...
    def when_applied(self, done: Callable[[], None]) -> None: ...
    def record_purchase(self, event_id: str, receipt_id: str, bought: BatchPurchase) -> None: ...
    def flag(
        self, kind: str, ev: WireEvent | None, member_id: str | None, detail: dict[str, Any]
    ) -> None: ...
    def hold(self, ev: WireEvent, member_id: str, detail: dict[str, Any]) -> None:
        """Record why ``ev`` is held for review (kept though the event is refused)."""
        ...

    @property
    def released(self) -> frozenset[str]:
        """Events a person released after review: applied as claimed, not re-scored."""
        ...

    def coupon(self, token: Any, at: datetime) -> Coupon | None:
        """The coupon ``token`` if the back office signed it and it is valid ``at``."""
        ...


# ---------------------------------------------------------------------- stored texts
def canonical(value: MemberState | PurchaseEffects) -> str:
    """``codec.dumps(value)`` of a member state or a purchase's effects, the same text
    (~5 us against ~30 us for a member with a few lots).

    ``orjson`` writes the dataclasses as objects with their fields in sorted order
    (``_sorted_fields``), tuples as lists, text with the same escapes and non-ASCII kept,
    dates and datetimes as ``isoformat`` does, except an offset of whole seconds
    (``+03:00:30``), which it rounds to minutes: a value holding one (``_minute_offsets``;
    a till's time may carry one) goes to ``codec``, as does anything ``orjson`` refuses (an
    integer over 64 bits, a lone surrogate, a type it does not know). Ledger numbers are
    integers (a payload with a float is refused as it is parsed), so no float, NaN or
    infinity reaches it; ``codec.dumps`` stays the definition."""
    lots = value.lots if type(value) is MemberState else _effect_lots(value)
    if _minute_offsets(lots):
        try:
            return orjson.dumps(value, default=_sorted_fields, option=_ORJSON).decode()
        except TypeError:  # orjson.JSONEncodeError is one
            pass
    return codec.dumps(value)


def _effect_lots(value: Any) -> Iterable[PointLot]:
    if type(value) is not PurchaseEffects:
        raise TypeError(f"canonical: a member state or purchase effects, not {type(value)}")
    return (*value.consumed, *(g.lot for g in value.grants if g.lot is not None))


# The datetimes of a member state and of a purchase's effects are those of their lots
# (tests/test_projector_batches.py checks that the types' hints hold no others).
_OFFSET_OK: dict[tzinfo | None, bool] = {None: True, UTC: True}
_MINUTE = timedelta(minutes=1)


def _minute_offsets(lots: Iterable[PointLot]) -> bool:
    """Whether every time of ``lots`` is naive or has a fixed offset of whole minutes."""
    zones = {t.tzinfo for lot in lots for t in (lot.earned_at, lot.available_from, lot.expires_at)}
    for tz in zones:
        ok = _OFFSET_OK.get(tz)
        if ok is None:
            offset = tz.utcoffset(None) if type(tz) is timezone else None
            ok = offset is not None and offset % _MINUTE == timedelta(0)
            if len(_OFFSET_OK) < 1000:
                _OFFSET_OK[tz] = ok
        if not ok:
            return False
    return True


_ORJSON = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_SORT_KEYS
_FIELD_DICTS: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _sorted_fields(value: Any) -> dict[str, Any]:
    """``orjson``'s hook for a dataclass: its fields as a dict, keys in sorted order (any
    other type is refused, so ``canonical`` leaves the value to ``codec``)."""
    kind = type(value)
    make = _FIELD_DICTS.get(kind)
    if make is None:
        if not dataclasses.is_dataclass(kind):
            raise TypeError(f"not a dataclass: {kind}")
        names = sorted(f.name for f in dataclasses.fields(kind))
        items = ", ".join(f"{n!r}: v.{n}" for n in names)
        scope: dict[str, Any] = {}
        exec(f"def fields(v):\n    return {{{items}}}", scope)  # noqa: S102 - field names only
        make = _FIELD_DICTS[kind] = scope["fields"]
    return make(value)


def apply(batch: Run, ev: WireEvent, payload: dict[str, Any]) -> str:
    if ev.type == "purchase":
        return purchase(batch, ev, payload)
    if ev.type == "refund":
        return refund(batch, ev, payload)
    return registration(batch, ev, payload)


# More than six digits of a second's fraction: ``msgspec`` rounds them, ``fromisoformat``
# drops them (the quote's one time, ``earn_available_from``, then goes the exact way).
_LONG_FRACTION = re.compile(r"\.[0-9]{7}")


def cart_and_quote(p: dict[str, Any]) -> tuple[Cart, Quote]:
    """The purchase's cart and quote, or ``Rejected``.

    Fast path: ``msgspec.convert`` builds both in C (a quote took ~50 us the generic
    way, ~8 us so). It accepts only values of exactly the hinted types (an ``int`` field
    takes no text, no bool, no float), and for such values gives the objects ``codec``
    gives; anything else (a missing field, a number as text, a literal out of range)
    goes to ``codec.from_plain``, which decides and words it as it always has."""
    try:
        quote = p["quote"]
        when = quote["earn_available_from"]
        if type(when) is str and _LONG_FRACTION.search(when) is None:
            return msgspec.convert(p["cart"], Cart), msgspec.convert(quote, Quote)
    except (KeyError, TypeError, msgspec.ValidationError):
        pass
    return exact_cart_and_quote(p)


def exact_cart_and_quote(p: dict[str, Any]) -> tuple[Cart, Quote]:
    """``cart_and_quote`` by ``codec.from_plain`` alone."""
    try:
        return codec.from_plain(Cart, p["cart"]), codec.from_plain(Quote, p["quote"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise Rejected("bad_payload", f"cart or quote is malformed: {e!r}") from None


def purchase(batch: Run, ev: WireEvent, p: dict[str, Any]) -> str:
    m = batch.member(p.get("member_id"))
    occurred = moment(p.get("occurred_at"), "payload.occurred_at", bounded=True)
    cart, q = cart_and_quote(p)
    receipt_id = text(p, "receipt_id")
    if q.receipt_id != receipt_id or cart.receipt_id != receipt_id:
        raise Rejected("bad_payload", "receipt_id differs between cart, quote and payload")
    nonneg(q.redeem_points, "quote.redeem_points")
    nonneg(q.earn_points, "quote.earn_points")
    for given in q.bonuses:
        nonneg(given.points, "quote.bonuses.points")
    if {ql.line_no for ql in q.lines} != {line.line_no for line in cart.lines}:
        raise Rejected("bad_payload", "quote lines do not match cart lines")
    if sum(ql.redeemed_points for ql in q.lines) != q.redeem_points:
        raise Rejected("bad_payload", "line redemptions do not add up to redeem_points")
    rules = batch.rules_for(q.rules_version, ev)
    released = ev.event_id in batch.released
    if released:  # else the re-score's engine.quote validates the cart (once)
        engine.validate_cart(cart, rules)
    if batch.has_receipt(receipt_id):
        raise Rejected("duplicate_receipt", f"receipt {receipt_id} already in the ledger")
    before = m.text if m.text is not None else canonical(m.state)
    if q.member_id != m.member_id:  # the till knew the member under a merged id
        q = replace(q, member_id=m.member_id)
    state = m.state
    if state.member_id != m.member_id:
        state = replace(state, member_id=m.member_id)
    if not released:
        rescore(batch, ev, p, cart, q, state, rules, occurred)
    new_state, effects = apply_purchase(
        state, cart, q, rules, occurred, ev.event_id, allow_overdraft=True
    )
    if effects.overdraft:
        available = state.available_points(occurred) - state.debt  # before the purchase
        batch.flag(
            "overdraft",
            ev,
            m.member_id,
            {
                "spent": q.redeem_points,
                "available": available,
                "overdraft": effects.overdraft,
                "debt_after": new_state.debt,
            },
        )
    bonus = sum(given.points for given in q.bonuses)
    row = (
        ev.event_id,
        receipt_id,
        batch.terminal.terminal_id,
        batch.terminal.store_id,
        m.member_id,
        occurred.isoformat(),
        effects.spend_day,  # engine.local_date(rules, occurred), as apply_purchase took it
        opt(p, "cashier_id"),
        opt(p, "identified_by"),
        int(bool(p.get("offline"))),
        cart.total_kop,
        sum(ql.payable_kop for ql in q.lines),
        q.earn_points,
        bonus,
        q.redeem_points,
        canonical(effects),
    )
    batch.set_state(m, new_state)
    batch.stage(
        "INSERT INTO purchases(event_id, receipt_id, terminal_id, store_id, member_id, "
        "occurred_at, day, cashier_id, identified_by, offline, amount_kop, paid_kop, "
        "earned, bonus, spent, effects) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        row,
    )
    batch.stage(
        "INSERT INTO verify_queue(event_id, member_id, state, queued_at) VALUES (?,?,?,?)",
        (ev.event_id, m.member_id, before, batch.now_iso),
    )
    if q.coupon_id:  # which cheque used which coupon, for the console's coupon register
        batch.stage(
            "INSERT INTO coupon_redemptions(event_id, coupon_id, receipt_id, terminal_id, "
            "store_id, member_id, occurred_at, discount_kop, points) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                ev.event_id,
                q.coupon_id,
                receipt_id,
                batch.terminal.terminal_id,
                batch.terminal.store_id,
                m.member_id,
                occurred.isoformat(),
                sum(ql.coupon_discount_kop for ql in q.lines),
                sum(b.points for b in q.bonuses if b.kind == "coupon"),
            ),
        )
    batch.record_purchase(ev.event_id, receipt_id, BatchPurchase(m.member_id, effects, {}, True))
    return m.member_id


def rescore(
    batch: Run,
    ev: WireEvent,
    p: dict[str, Any],
    cart: Cart,
    q: Quote,
    state: MemberState,
    rules: Programme,
    occurred: datetime,
) -> None:
    """Score the cheque again before it is applied; ``Rejected("held_for_review")`` when
    the till claims more than the programme gives beyond its tolerance
    (``Programme.rescore_tolerance``).

    The back office owns the money: a till token could otherwise mint points with a
    forged earn or bonus, or spend a member into debt beyond what a cheque allows. The
    re-score is the shared engine's, with the rules version the till named, the member's
    state just before this cheque (in this batch's order, as the till would have had it
    online) and the coupon the cheque names if the back office signed it. Points earned
    and bonuses are compared as one total (the till's minus the server's); spending is
    compared with the cheque's own limit (the cap and each line's minimum; the member's
    balance does not bound it: a spend the balance cannot cover is an overdraft, honoured
    as debt). Within the tolerance the cheque is applied as printed (the verifier flags a
    difference afterwards); beyond it nothing is applied, the till quarantines the
    verdict, and the claim and the server's figures wait in the console's review
    (``batch.hold``). One engine call per cheque (two when the coupon does not apply or
    the spend is over the cheque's limit); it validates the cart, the caller does not."""
    coupon = batch.coupon(p.get("coupon"), occurred) if q.coupon_id else None
    if coupon is not None and coupon.coupon_id != q.coupon_id:
        coupon = None
    try:
        mine = engine.quote(
            cart,
            state,
            rules,
            occurred,
            redeem_points=q.redeem_points,
            coupon=coupon,
            balance_bound=False,
        )
        limit = mine.max_redeem_points
    except CouponError:  # not this member's, below its minimum: scored without it
        coupon = None
        mine = engine.quote(cart, state, rules, occurred, balance_bound=False)
        limit = mine.max_redeem_points
        if q.redeem_points <= limit:
            mine = engine.quote(
                cart, state, rules, occurred, redeem_points=q.redeem_points, balance_bound=False
            )
    except RedemptionError as e:  # spends more than the cheque allows
        limit = int(e.details.get("max_redeem_points", 0))
        mine = engine.quote(
            cart, state, rules, occurred, redeem_points=limit, coupon=coupon, balance_bound=False
        )
    claimed_bonus = sum(b.points for b in q.bonuses)
    server_bonus = sum(b.points for b in mine.bonuses)
    over_earn = q.earn_points + claimed_bonus - mine.earn_points - server_bonus
    over_spend = q.redeem_points - limit
    tolerance = rules.rescore_tolerance(sum(ql.payable_kop for ql in mine.lines))
    if over_earn <= tolerance and over_spend <= tolerance:
        return
    batch.hold(
        ev,
        state.member_id,
        {
            "claim": {"earned": q.earn_points, "bonus": claimed_bonus, "spent": q.redeem_points},
            "server": {"earned": mine.earn_points, "bonus": server_bonus, "spend_limit": limit},
            "tolerance": tolerance,
            "rules_version": rules.version,
        },
    )
    if over_earn > tolerance:
        raise Rejected(
            "held_for_review",
            f"claims {q.earn_points + claimed_bonus} points earned, the programme gives "
            f"{mine.earn_points + server_bonus} (tolerance {tolerance})",
            state.member_id,
        )
    raise Rejected(
        "held_for_review",
        f"spends {q.redeem_points} points, the cheque allows {limit} (tolerance {tolerance})",
        state.member_id,
    )


def refund(batch: Run, ev: WireEvent, p: dict[str, Any]) -> str:
    occurred = moment(p.get("occurred_at"), "payload.occurred_at", bounded=True)
    purchase_event = text(p, "purchase_event_id")
    bought = batch.purchase(purchase_event)
    if bought is None:
        raise Rejected("unknown_purchase", f"purchase {purchase_event} is not in the ledger")
    lines = p.get("lines")
    if not isinstance(lines, dict) or not lines:
        raise Rejected("bad_payload", "payload.lines must map line numbers to units")
    try:
        request = {int(k): nonneg(v, f"lines.{k}") for k, v in lines.items()}
    except ValueError:
        raise Rejected("bad_payload", "payload.lines keys must be line numbers") from None
    m = batch.member(bought.member_id)
    before = dict(bought.refunded)
    new_state, result = apply_refund(m.state, bought.effects, before, request, occurred)
    refund_id = text(p, "refund_id")
    cashier = opt(p, "cashier_id")
    till = p.get("result") or {}
    if isinstance(till, dict) and (
        till.get("earn_reversed"),
        till.get("points_returned"),
    ) != (result.earn_reversed, result.points_returned):
        batch.flag(
            "rescore_mismatch",
            ev,
            m.member_id,
            {"till": till.get("earn_reversed"), "server": result.earn_reversed},
        )
    after = dict(before)
    for k, v in request.items():
        after[k] = after.get(k, 0) + v
    batch.set_state(m, new_state)
    batch.stage(
        "UPDATE purchases SET refunded = ? WHERE event_id = ?",
        (json.dumps({str(k): v for k, v in sorted(after.items())}), purchase_event),
    )
    batch.stage(
        "INSERT INTO refunds(event_id, refund_id, purchase_event_id, terminal_id, "
        "store_id, member_id, occurred_at, day, cashier_id, amount_kop, earn_reversed, "
        "bonus_reversed, returned) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            ev.event_id,
            refund_id,
            purchase_event,
            batch.terminal.terminal_id,
            batch.terminal.store_id,
            m.member_id,
            occurred.isoformat(),
            engine.local_date(batch.rules, occurred).isoformat(),
            cashier,
            result.amount_kop,
            result.earn_reversed,
            result.bonus_reversed,
            result.points_returned,
        ),
    )

    def done() -> None:
        bought.refunded = after

    batch.when_applied(done)
    return m.member_id


def registration(batch: Run, ev: WireEvent, p: dict[str, Any]) -> str:
    member_id = text(p, "member_id")
    try:
        code = check_member_code(text(p, "member_code"))
    except AgentError:
        raise Rejected("bad_payload", "payload.member_code is not a valid member code") from None
    phone = text(p, "phone_hash")
    if len(phone) != 32 or any(c not in "0123456789abcdef" for c in phone):
        raise Rejected("bad_payload", "payload.phone_hash must be 32 hex digits")
    masked = opt(p, "phone_masked")
    if p.get("fingerprint_v") == 2:
        # A member not yet upgraded holds the v1 fingerprint: found by the sealed phone's.
        legacy = batch.legacy_fingerprint(opt(p, "phone_sealed", 2000))
    else:
        # A till of the version before the switch: a v1 fingerprint and a mask with
        # digits, accepted and stored as v2 (agent.phonehash.upgrade_fingerprint); the
        # till's cache gets the v2 record back in the push answer and the feed.
        legacy = phone
        phone = upgrade_fingerprint(phone, batch.phone_key(), batch.rules.phone_hash)
        masked = strip_mask(masked)
    occurred = moment(p.get("occurred_at"), "payload.occurred_at", bounded=True)
    if p.get("consent_programme") is not True:
        raise Rejected("no_consent", "a member must consent to the programme rules")
    welcome = nonneg(p.get("welcome_points", 0), "payload.welcome_points")
    if batch.member_exists(member_id, code):
        raise Rejected("member_exists", f"member {member_id} or code {code} already exists")
    rules = batch.rules
    if welcome != rules.welcome_points:
        # The back office owns the money: a welcome bonus is what the programme says (the
        # active one, or the version the till names if it registered under older rules).
        # Anything else is not applied: the till quarantines the verdict.
        named = p.get("rules_version")
        known = batch.rules_for(named, ev) if isinstance(named, int) else rules
        if welcome != known.welcome_points:
            raise Rejected(
                "held_for_review",
                f"welcome_points {welcome} is not the programme's {known.welcome_points}",
            )
    birthday = p.get("birthday")
    try:
        born = datetime.fromisoformat(birthday).date() if isinstance(birthday, str) else None
    except ValueError:
        raise Rejected("bad_payload", "payload.birthday must be an ISO date") from None
    lots: tuple[PointLot, ...] = ()
    if welcome:
        lots = (
            PointLot(
                f"{ev.event_id}:welcome",
                welcome,
                occurred,
                occurred,
                occurred + timedelta(days=rules.welcome_expiry_days),
                "welcome",
            ),
        )
    state = MemberState(member_id, lots=lots, birthday=born)
    # The first registration of a phone wins, in this batch or before it.
    first = batch.phone_owner(phone) or (batch.phone_owner(legacy) if legacy else None)
    m = BatchMember(
        member_id,
        state,
        code,
        phone,
        masked,
        opt(p, "first_name"),
        True,
        bool(p.get("consent_marketing")),
        None,
        new=True,
        dirty=True,
    )
    m.extra = {
        "phone_sealed": opt(p, "phone_sealed", 2000),
        "birthday": birthday if isinstance(birthday, str) else None,
        "consent_text_version": opt(p, "consent_text_version"),
        "registered_at": occurred.isoformat(),
        "cashier_id": opt(p, "cashier_id"),
    }
    batch.add_member(m)
    if first is not None:
        # Registered twice (two tills offline, or a till that did not know the member):
        # the first registration wins; the welcome bonus is not given twice. Points the
        # duplicate already spent are owed by the survivor (its later events follow the
        # merge), so nothing the tills did is lost.
        survivor = batch.member(first)
        m.merged_into = survivor.member_id
        m.phone_hash = None
        m.state = replace(state, lots=())
        batch.flag("merge", ev, survivor.member_id, {"merged": member_id})
        batch.stage(
            "INSERT INTO changes(kind, member_id, body, created_at) VALUES ('merge', ?, ?, ?)",
            (
                member_id,
                json.dumps({"from": member_id, "into": survivor.member_id}),
                batch.now_iso,
            ),
        )
        batch.set_state(survivor, survivor.state)
    return member_id

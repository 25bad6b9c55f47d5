"""The console's members section, changing: adjust points, block, merge, erase.

Every change is one transaction under the feed lock (``Database.transaction(feed=True)``,
the lock the projector takes, so a change and a projector pass never interleave on one
member), with its audit row (``people.audit.record``) and its change-feed entries in that
same transaction; bad input is refused before anything is written (``MemberAdminError``,
naming the field).

- ``adjust``: a manual adjustment of points is a ledger entry, not an edit of a balance:
  a credit is a new lot (source ``adjustment``, spendable at once, expiring after the
  programme's ``expiry_days``; it repays debt first, like any accrual), a debit takes
  points from the available lots soonest-expiring first (``engine.fifo_plan``, as a
  spend does) and may not exceed what is spendable; the row in ``member_adjustments``
  keeps who, why and the balance after; the member's new record goes to the tills as a
  ``member`` change like any server change.
- ``set_blocked``: ``members.blocked`` and a ``block`` change (``{"member_id",
  "blocked"}``) the tills store (``agent.journal.apply_changes``); a flag records it.
- ``merge``: the path a till's duplicate registration takes (``effects.registration``):
  the duplicate points at the survivor (``merged_into``), loses its phone hash and its
  lots, and the feed carries ``merge`` ``{"from", "into"}`` and the survivor's record; a
  ``merge`` flag is written. Here the duplicate had a life of its own, so its lots, debt,
  spend by day and collection progress move to the survivor (and its phone, when the
  survivor has none); later events of the duplicate follow the merge as they do today.
- ``erase`` (152-FZ, consent withdrawn): the personal data of the member and of the
  members merged into them is destroyed in every place the back office keeps it: the
  members row (phone hash, masked and sealed phone, first name, birthday, consents), the
  birthday inside the stored state, the registration events' payloads (the payload hash
  stays, so a till resending the registration is still answered ``duplicate``), the
  change feed's past member records, and the verifier's queued states. What stays is
  pseudonymous: the member id and card code and the ledger's amounts (cheques, refunds,
  points). The member is blocked; an ``erase`` change tells each till to destroy its
  cached copy; the destruction act (numbered, with the event-log extract) is kept in
  ``member_erasures``. Erasing twice is refused.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from agent import codec, engine
from agent.errors import MemberCodeError
from agent.identify import check_member_code
from agent.model import MemberState, PointLot
from agent.rules import Programme
from sync.backoffice import outbox, rollups
from sync.backoffice.batch import FLAG_INSERT, flag_row, member_state
from sync.backoffice.context import Context
from sync.backoffice.db import Tx, marks
from sync.backoffice.feed import member_records
from sync.backoffice.member_admin import MemberAdminError, merged_ids, not_found
from sync.backoffice.people import audit

REASON_MAX = 500
POINTS_MAX = 1_000_000
"""The most points one adjustment moves either way (a typo guard)."""

DESTROYED = ("phone_hash", "phone_masked", "phone_sealed", "first_name", "birthday", "consents")
"""What an erasure destroys (the act lists it)."""
KEPT = ("member_id", "code", "purchases", "refunds", "points")
"""What an erasure keeps, pseudonymous (the act lists it)."""
_PERSONAL = ("phone_hash", "phone_masked", "phone_sealed", "first_name", "birthday")


@dataclass(frozen=True, slots=True)
class Adjusted:
    """An adjustment made: its row number, the points (+ credit, - debit), the balance
    after it (points)."""

    adjustment_id: int
    points: int
    balance_after: int


def reason_of(text: str) -> str:
    """A change's reason: required, at most ``REASON_MAX`` characters."""
    reason = " ".join(text.split())
    if not reason:
        raise MemberAdminError(
            "reason: say why (it is kept in the audit log)",
            "причина: укажите, почему (она сохраняется в журнале)",
            code="no_reason",
            field="reason",
        )
    if len(reason) > REASON_MAX:
        raise MemberAdminError(
            f"reason: at most {REASON_MAX} characters",
            f"причина: не больше {REASON_MAX} символов",
            code="long_reason",
            field="reason",
        )
    return reason


def points_of(text: str) -> int:
    """Points typed for an adjustment: a whole non-zero number, signed for a debit."""
    raw = text.strip().replace(" ", "")
    body = raw[1:] if raw[:1] in "+-" else raw
    if not body or not body.isascii() or not body.isdigit():
        raise MemberAdminError(
            f"points: a whole number such as 150 or -150, not {text.strip()!r}",
            f"бонусы: целое число, например 150 или -150, а не «{text.strip()}»",
            code="bad_points",
            field="points",
        )
    points = int(raw)
    if points == 0:
        raise MemberAdminError(
            "points: zero changes nothing",
            "бонусы: ноль ничего не меняет",
            code="zero_points",
            field="points",
        )
    if abs(points) > POINTS_MAX:
        raise MemberAdminError(
            f"points: at most {POINTS_MAX} either way",
            f"бонусы: не больше {POINTS_MAX} в любую сторону",
            code="bad_points",
            field="points",
        )
    return points


_COLS = "member_id, code, state, store_id, blocked, erased_at, merged_into, phone_hash"


@dataclass(slots=True)
class _Row:
    member_id: str
    code: str
    state: MemberState
    store_id: str | None
    blocked: bool
    erased_at: str | None
    merged_into: str | None
    phone_hash: str | None


def _member(tx: Tx, member_id: str, scope: str | None, *, live: bool = True) -> _Row:
    """The member row (``not_found`` outside ``scope``); ``live``: refuse a member merged
    away or erased (nothing more may change on it)."""
    r = tx.one(f"SELECT {_COLS} FROM members WHERE member_id = ?", (member_id,))
    if r is None or (scope is not None and r[3] != scope):
        raise not_found()
    row = _Row(r[0], r[1], member_state(r[2]), r[3], bool(r[4]), r[5], r[6], r[7])
    if live and row.merged_into is not None:
        raise MemberAdminError(
            f"member {row.code} was merged into another member: change that one",
            f"участник {row.code} объединён с другим: изменяйте того участника",
            code="merged",
        )
    if live and row.erased_at is not None:
        raise MemberAdminError(
            f"member {row.code}'s data was erased on {row.erased_at[:10]}",
            f"данные участника {row.code} уничтожены {row.erased_at[:10]}",
            code="erased",
        )
    return row


def _write_state(
    tx: Tx, ctx: Context, member_id: str, state: MemberState, now: datetime
) -> engine.MemberSummary:
    """Store ``state`` with its summary columns; returns the summary (points)."""
    rules = ctx.programmes.get(None, tx)
    assert rules is not None
    s = engine.member_summary(state, rules, now)
    rollups.state_written(tx, member_id, state)  # the dashboard's points held
    tx.execute(
        "UPDATE members SET state = ?, balance = ?, available = ?, pending = ?, "
        "expiring_points = ?, expiring_on = ?, tier = ?, debt = ?, updated_at = ? "
        "WHERE member_id = ?",
        (
            codec.dumps(state),
            s.balance,
            s.available,
            s.pending,
            s.expiring_points,
            s.expiring_on.isoformat() if s.expiring_on else None,
            s.tier,
            state.debt,
            now.isoformat(),
            member_id,
        ),
    )
    return s


def _balance_events(
    member_id: str,
    before: MemberState,
    after: engine.MemberSummary,
    rules: Programme,
    now: datetime,
    cause: str,
) -> list[outbox.Pending]:
    """``balance.changed`` of a console change (``cause``: ``adjustment:<n>`` or
    ``merge:<member_id>``), when the balance moved (against the state before the change,
    summarised at ``now``)."""
    was = engine.member_summary(before, rules, now).balance
    if was == after.balance:
        return []
    return [outbox.balance_changed(member_id, after, was, now, cause)]


def _change(tx: Tx, kind: str, member_id: str, body: dict[str, Any], now: datetime) -> None:
    tx.execute(
        "INSERT INTO changes(kind, member_id, body, created_at) VALUES (?,?,?,?)",
        (kind, member_id, json.dumps(body, ensure_ascii=False), now.isoformat()),
    )


def _member_change(tx: Tx, member_id: str, now: datetime) -> None:
    """The member's current record in the feed (what a ``member`` change carries)."""
    _change(tx, "member", member_id, member_records(tx, {member_id})[member_id], now)


def _flag(tx: Tx, kind: str, member_id: str, detail: dict[str, Any], now: datetime) -> None:
    tx.execute(FLAG_INSERT, flag_row(kind, None, member_id, None, detail, now.isoformat()))


# ---------------------------------------------------------------------- adjust
def adjust(
    ctx: Context,
    member_id: str,
    points_text: str,
    reason_text: str,
    *,
    actor: str,
    store_scope: str | None = None,
) -> Adjusted:
    """Credit or debit ``points_text`` points with ``reason_text`` (see module docstring)."""
    points = points_of(points_text)
    reason = reason_of(reason_text)
    now = ctx.clock.now()
    with ctx.db.transaction(feed=True) as tx:
        m = _member(tx, member_id, store_scope)
        rules = ctx.programmes.get(None, tx)
        assert rules is not None
        state = m.state
        lot_id = f"adjustment:{uuid.uuid4().hex[:16]}"
        if points > 0:
            repaid = min(state.debt, points)
            lots = list(state.lots)
            if points > repaid:
                expires = now + timedelta(days=rules.expiry_days)
                lots.append(PointLot(lot_id, points - repaid, now, now, expires, "adjustment"))
            state = replace(state, lots=tuple(lots), debt=state.debt - repaid)
        else:
            spendable = state.spendable(now)
            if -points > spendable:
                raise MemberAdminError(
                    f"points: the member has {spendable} to take, not {-points}",
                    f"бонусы: списать можно не больше {spendable}, а не {-points}",
                    code="too_many_points",
                    field="points",
                    spendable=spendable,
                )
            taken = {lot.lot_id: n for lot, n in engine.fifo_plan(state.lots, -points, now)}
            lots = [
                replace(lot, points=lot.points - taken.get(lot.lot_id, 0)) for lot in state.lots
            ]
            state = replace(state, lots=tuple(lot for lot in lots if lot.points > 0))
        after = _write_state(tx, ctx, member_id, state, now)
        balance = after.balance
        row = tx.one(
            "INSERT INTO member_adjustments(member_id, points, reason, actor, at, lot_id, "
            "balance_after) VALUES (?,?,?,?,?,?,?) RETURNING id",
            (member_id, points, reason, actor, now.isoformat(), lot_id, balance),
        )
        adjusted = {"points": points, "cause": f"adjustment:{row[0]}"}
        outbox.emit_many(
            tx,
            [
                outbox.Pending(member_id, outbox.POINTS_ADJUSTED, adjusted, now),
                *_balance_events(member_id, m.state, after, rules, now, f"adjustment:{row[0]}"),
            ],
            now=now,
        )
        _member_change(tx, member_id, now)
        audit.record(
            tx,
            now,
            actor,
            "member_adjusted",
            member_id,
            {"points": points, "reason": reason, "balance_after": balance},
        )
    return Adjusted(int(row[0]), points, balance)


# ---------------------------------------------------------------------- block
def set_blocked(
    ctx: Context,
    member_id: str,
    blocked: bool,
    reason_text: str,
    *,
    actor: str,
    store_scope: str | None = None,
) -> None:
    """Block (or unblock) the member's card, with a reason (see module docstring)."""
    reason = reason_of(reason_text)
    now = ctx.clock.now()
    with ctx.db.transaction(feed=True) as tx:
        m = _member(tx, member_id, store_scope)
        if m.blocked == blocked:
            raise MemberAdminError(
                f"member {m.code} is already {'blocked' if blocked else 'not blocked'}",
                f"участник {m.code} уже {'заблокирован' if blocked else 'не заблокирован'}",
                code="already",
            )
        tx.execute(
            "UPDATE members SET blocked = ?, updated_at = ? WHERE member_id = ?",
            (int(blocked), now.isoformat(), member_id),
        )
        kind = "blocked" if blocked else "unblocked"
        _flag(tx, kind, member_id, {"by": actor, "reason": reason}, now)
        _change(tx, "block", member_id, {"member_id": member_id, "blocked": blocked}, now)
        audit.record(tx, now, actor, f"member_{kind}", member_id, {"reason": reason})


# ---------------------------------------------------------------------- merge
def merged_state(survivor: MemberState, other: MemberState) -> MemberState:
    """``other``'s points and progress added to ``survivor``'s: every lot, the debt, the
    spend by day (the tier window), the collection progress; the survivor's birthday
    unless it has none."""
    spend: dict[str, int] = dict(survivor.spend)
    for day, kop in other.spend:
        spend[day] = spend.get(day, 0) + kop
    collected: dict[str, int] = dict(survivor.collections)
    for mech, units in other.collections:
        collected[mech] = collected.get(mech, 0) + units
    years = [y for y in (survivor.birthday_bonus_year, other.birthday_bonus_year) if y]
    lots = sorted(survivor.lots + other.lots, key=lambda x: (x.expires_at, x.earned_at, x.lot_id))
    return replace(
        survivor,
        lots=tuple(lots),
        debt=survivor.debt + other.debt,
        spend=tuple(sorted(spend.items())),
        collections=tuple(sorted(collected.items())),
        birthday=survivor.birthday or other.birthday,
        birthday_bonus_year=max(years) if years else None,
    )


def merge(
    ctx: Context,
    survivor_id: str,
    other_code: str,
    reason_text: str,
    *,
    actor: str,
    store_scope: str | None = None,
) -> str:
    """Merge the member with card ``other_code`` into ``survivor_id`` (see module
    docstring); returns the merged member's id."""
    reason = reason_of(reason_text)
    try:
        code = check_member_code(other_code)
    except MemberCodeError as e:
        raise MemberAdminError(
            f"card code: {e.message_en}",
            f"номер карты: {e.message_ru}",
            code="bad_code",
            field="code",
        ) from None
    now = ctx.clock.now()
    with ctx.db.transaction(feed=True) as tx:
        s = _member(tx, survivor_id, store_scope)
        found = tx.one("SELECT member_id FROM members WHERE code = ?", (code,))
        if found is None:
            raise MemberAdminError(
                f"card code: no member has card {code}",
                f"номер карты: участника с картой {code} нет",
                code="member_not_found",
                field="code",
            )
        if found[0] == s.member_id:
            raise MemberAdminError(
                "card code: a member cannot be merged with themselves",
                "номер карты: нельзя объединить участника с самим собой",
                code="merge_self",
                field="code",
            )
        d = _member(tx, str(found[0]), None)
        rules = ctx.programmes.get(None, tx)
        assert rules is not None
        joined = _write_state(tx, ctx, s.member_id, merged_state(s.state, d.state), now)
        moved = _balance_events(s.member_id, s.state, joined, rules, now, f"merge:{d.member_id}")
        if s.phone_hash is None and d.phone_hash is not None:
            tx.execute(
                "UPDATE members SET (phone_hash, phone_masked, phone_sealed, phone_legacy) = "
                "(SELECT phone_hash, phone_masked, phone_sealed, phone_legacy FROM members "
                "WHERE member_id = ?) "
                "WHERE member_id = ?",
                (d.member_id, s.member_id),
            )
        emptied = _write_state(tx, ctx, d.member_id, MemberState(d.member_id, birthday=None), now)
        moved += _balance_events(d.member_id, d.state, emptied, rules, now, f"merge:{s.member_id}")
        outbox.emit_many(tx, moved, now=now)
        rollups.merged_away(tx, d.member_id)  # the dashboard's live members and cohorts
        tx.execute(
            "UPDATE members SET merged_into = ?, phone_hash = NULL WHERE member_id = ?",
            (s.member_id, d.member_id),
        )
        _flag(tx, "merge", s.member_id, {"merged": d.member_id, "by": actor, "reason": reason}, now)
        _change(tx, "merge", d.member_id, {"from": d.member_id, "into": s.member_id}, now)
        _member_change(tx, s.member_id, now)
        audit.record(
            tx,
            now,
            actor,
            "member_merged",
            s.member_id,
            {"merged": d.member_id, "merged_code": d.code, "reason": reason},
        )
    return d.member_id


# ---------------------------------------------------------------------- erase
@dataclass(frozen=True, slots=True)
class Act:
    """A destruction act: its number, the member (pseudonymous id and card code), the
    members merged into them, when and by whom, why, what was destroyed and kept, and the
    event-log extract (``extract``: the member's events, adjustments and console
    actions, as they stand after the erasure)."""

    act_no: int
    member_id: str
    code: str
    members: tuple[str, ...]
    erased_at: str
    actor: str
    reason: str
    destroyed: tuple[str, ...]
    kept: tuple[str, ...]
    registered_at: str | None
    store_id: str | None
    extract: tuple[dict[str, Any], ...]


def _scrub_state(text: str) -> str:
    state = member_state(text)
    return codec.dumps(replace(state, birthday=None, birthday_bonus_year=None))


def erase(
    ctx: Context,
    member_id: str,
    reason_text: str,
    *,
    actor: str,
    store_scope: str | None = None,
) -> Act:
    """Destroy the member's personal data (see module docstring); returns the act."""
    reason = reason_of(reason_text)
    now = ctx.clock.now()
    with ctx.db.transaction(feed=True) as tx:
        done = tx.one(
            "SELECT act_no, erased_at FROM member_erasures WHERE member_id = ?", (member_id,)
        )
        if done is not None:
            raise MemberAdminError(
                f"this member's data was already erased on {done[1][:10]} (act {done[0]})",
                f"данные участника уже уничтожены {done[1][:10]} (акт № {done[0]})",
                code="already_erased",
            )
        m = _member(tx, member_id, store_scope)
        ids = [member_id, *merged_ids(tx, member_id)]
        where = f"member_id IN ({marks(len(ids))})"
        consented = tx.all(
            f"SELECT member_id FROM members WHERE {where} AND consent_marketing = 1", ids
        )
        outbox.emit_many(
            tx,
            [
                *(
                    outbox.Pending(
                        str(mid), outbox.CONSENT_CHANGED, {"consent_marketing": False}, now
                    )
                    for (mid,) in consented
                ),
                *(outbox.Pending(mid, outbox.MEMBER_ERASED, {}, now) for mid in ids),
            ],
            now=now,
        )
        info = tx.one(
            "SELECT registered_at, store_id FROM members WHERE member_id = ?", (member_id,)
        )
        for mid, text in tx.all(f"SELECT member_id, state FROM members WHERE {where}", ids):
            tx.execute(
                "UPDATE members SET phone_hash = NULL, phone_masked = NULL, "
                "phone_sealed = NULL, first_name = NULL, birthday = NULL, "
                "consent_programme = 0, consent_marketing = 0, blocked = 1, erased_at = ?, "
                "state = ?, updated_at = ? WHERE member_id = ?",
                (now.isoformat(), _scrub_state(text), now.isoformat(), mid),
            )
        for event_id, payload in tx.all(
            f"SELECT event_id, payload FROM events WHERE type = 'member_registered' AND {where}",
            ids,
        ):
            p = json.loads(payload)
            for key in _PERSONAL:
                p.pop(key, None)
            p["consent_marketing"] = False
            p["erased"] = True
            tx.execute(
                "UPDATE events SET payload = ? WHERE event_id = ?",
                (json.dumps(p, ensure_ascii=False), event_id),
            )
        for seq, body in tx.all(
            f"SELECT seq, body FROM changes WHERE kind = 'member' AND {where}", ids
        ):
            b = json.loads(body)
            for key in ("phone_hash", "phone_masked", "first_name"):
                b[key] = None
            if isinstance(b.get("state"), str):
                b["state"] = _scrub_state(b["state"])
            tx.execute(
                "UPDATE changes SET body = ? WHERE seq = ?",
                (json.dumps(b, ensure_ascii=False), seq),
            )
        for qid, text in tx.all(f"SELECT id, state FROM verify_queue WHERE {where}", ids):
            tx.execute("UPDATE verify_queue SET state = ? WHERE id = ?", (_scrub_state(text), qid))
        for mid in ids:
            _change(tx, "erase", mid, {"member_id": mid}, now)
        extract = _extract(tx, ids, member_id)
        last = tx.one("SELECT max(act_no) FROM member_erasures")
        act = Act(
            act_no=int(last[0] or 0) + 1,
            member_id=member_id,
            code=m.code,
            members=tuple(ids),
            erased_at=now.isoformat(),
            actor=actor,
            reason=reason,
            destroyed=DESTROYED,
            kept=KEPT,
            registered_at=info[0],
            store_id=info[1],
            extract=extract,
        )
        tx.execute(
            "INSERT INTO member_erasures(member_id, act_no, erased_at, actor, reason, act) "
            "VALUES (?,?,?,?,?,?)",
            (member_id, act.act_no, act.erased_at, actor, reason, json.dumps(asdict(act))),
        )
        audit.record(
            tx,
            now,
            actor,
            "member_erased",
            member_id,
            {"act_no": act.act_no, "reason": reason, "members": list(ids)},
        )
    return act


def _extract(tx: Tx, ids: list[str], member_id: str) -> tuple[dict[str, Any], ...]:
    """The member's entries in the event log, oldest first: registrations, cheques,
    refunds (with the till, the times and the amounts kept), adjustments, and the console
    actions on them."""
    where = f"member_id IN ({marks(len(ids))})"
    rows: list[dict[str, Any]] = []
    for event_id, terminal, created, received, status in tx.all(
        "SELECT event_id, terminal_id, created_at, received_at, status FROM events "
        f"WHERE type = 'member_registered' AND {where}",
        ids,
    ):
        rows.append(
            {
                "kind": "registration",
                "ref": event_id,
                "terminal": terminal,
                "at": created,
                "received_at": received,
                "status": status,
                "amount_kop": 0,
                "points": 0,
            }
        )
    for event_id, receipt, terminal, at, amount, earned, bonus, spent in tx.all(
        "SELECT event_id, receipt_id, terminal_id, occurred_at, amount_kop, earned, bonus, spent "
        f"FROM purchases WHERE {where}",
        ids,
    ):
        rows.append(
            {
                "kind": "purchase",
                "ref": f"{event_id} ({receipt})",
                "terminal": terminal,
                "at": at,
                "amount_kop": int(amount),
                "points": int(earned) + int(bonus) - int(spent),
            }
        )
    for event_id, refund, terminal, at, amount, rev, brev, ret in tx.all(
        "SELECT event_id, refund_id, terminal_id, occurred_at, amount_kop, earn_reversed, "
        f"bonus_reversed, returned FROM refunds WHERE {where}",
        ids,
    ):
        rows.append(
            {
                "kind": "refund",
                "ref": f"{event_id} ({refund})",
                "terminal": terminal,
                "at": at,
                "amount_kop": -int(amount),
                "points": int(ret) - int(rev) - int(brev),
            }
        )
    for n, at, points, actor in tx.all(
        f"SELECT id, at, points, actor FROM member_adjustments WHERE {where}", ids
    ):
        rows.append(
            {
                "kind": "adjustment",
                "ref": f"#{n} · {actor}",
                "terminal": None,
                "at": at,
                "amount_kop": 0,
                "points": int(points),
            }
        )
    for n, at, actor, action in tx.all(
        "SELECT n, at, actor, action FROM console_audit WHERE subject = ? ORDER BY n",
        (member_id,),
    ):
        rows.append(
            {
                "kind": "console",
                "ref": f"{action} #{n} · {actor}",
                "terminal": None,
                "at": at,
                "amount_kop": 0,
                "points": 0,
            }
        )
    rows.sort(key=lambda r: str(r["at"]))
    return tuple(rows)


def erasure_act(ctx: Context, member_id: str, *, store_scope: str | None = None) -> Act:
    """The member's destruction act (``not_found`` when there is none in scope)."""
    with ctx.db.reading() as tx:
        row = tx.one(
            "SELECT e.act, m.store_id FROM member_erasures e JOIN members m "
            "ON m.member_id = e.member_id WHERE e.member_id = ?",
            (member_id,),
        )
    if row is None or (store_scope is not None and row[1] != store_scope):
        raise not_found()
    d = json.loads(row[0])
    for key in ("members", "destroyed", "kept", "extract"):
        d[key] = tuple(d[key])
    return Act(**d)

"""Refunds: units of a committed cheque given back, idempotent by the POS's ``refund_id``
(a retry with the same request returns the stored result, with another request a
``ConflictError``), one store transaction with its journal row and its slip; and the
reads the refund screen makes first (the cheques a typed number names, a cheque's lines
and what is left to refund, a dry run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

from agent import codec, engine, history, receipts
from agent.errors import ConflictError, InputError, NotFoundError
from agent.ids import time_ordered_id
from agent.ledger import PurchaseEffects, apply_refund
from agent.model import MemberState
from agent.results import Cheque, HistoryEntry, RefundOutcome, RefundResult
from agent.service import slips, status
from agent.service.context import CARD_COLS, Context, MemberRow
from agent.slip import Slip


def refund(
    ctx: Context,
    refund_id: str,
    receipt_id: str,
    lines: Mapping[int, int],
    *,
    cashier_id: str | None = None,
    shift_id: str | None = None,
) -> RefundOutcome:
    """Refund units of a committed cheque, idempotent by ``refund_id``. ``receipt_id``
    is found as a cashier types it (``agent.receipts.resolve``: the full number, this
    till's short number, or the last characters of a recent cheque)."""
    if not refund_id or len(refund_id) > 64:
        raise InputError(
            "refund id must be 1-64 characters",
            "номер возврата должен быть от 1 до 64 символов",
            field="refund_id",
        )
    with ctx.store.read() as conn:
        receipt_id = receipts.resolve(conn, receipt_id)
    request = {int(k): int(v) for k, v in lines.items()}
    request_hash = codec.digest(codec.dumps({"receipt_id": receipt_id, "lines": request}))
    stored = stored_refund(ctx, refund_id, request_hash)
    if stored is not None:
        return stored
    rules = ctx.programme()
    online = status.offline_status(ctx).online
    with ctx.store.write() as conn:
        # The business time under the write lock, as the journal's seq (``sales.commit``).
        now = ctx.clock.now()
        now_iso = now.isoformat()
        stored = stored_refund(ctx, refund_id, request_hash)
        if stored is not None:
            return stored
        purchase = conn.execute(
            "SELECT member_id, effects, refunded FROM purchases WHERE receipt_id = ?",
            (receipt_id,),
        ).fetchone()
        if purchase is None:
            raise NotFoundError(
                f"no receipt {receipt_id} on this till",
                f"чека {receipt_id} нет на этой кассе",
                receipt_id=receipt_id,
            )
        member_id, effects_doc, refunded_doc = purchase
        member = MemberRow._make(
            conn.execute(
                f"SELECT {CARD_COLS} FROM members WHERE member_id = ?", (member_id,)
            ).fetchone()
        )
        effects = codec.loads(PurchaseEffects, effects_doc)
        before = {int(k): int(v) for k, v in json.loads(refunded_doc).items()}
        state = codec.loads(MemberState, member.state)
        new_state, result = apply_refund(state, effects, before, request, now)
        ctx.save_member(conn, member_id, new_state, rules, now)
        after = dict(before)
        for line_no, qty in request.items():
            after[line_no] = after.get(line_no, 0) + qty
        conn.execute(
            "UPDATE purchases SET refunded = ? WHERE receipt_id = ?",
            (codec.dumps(after), receipt_id),
        )
        event_id = time_ordered_id()
        payload = {
            "refund_id": refund_id,
            "receipt_id": receipt_id,
            "purchase_event_id": effects.op_id,
            "member_id": member_id,
            "lines": request,
            "result": result,
            "cashier_id": cashier_id,
            "shift_id": shift_id,
            "occurred_at": now_iso,
        }
        seq = ctx.append_event(conn, event_id, "refund", payload, now_iso)
        slip = Slip(
            kind="refund",
            store_name=ctx.store_name,
            terminal_id=ctx.terminal_id,
            receipt_id=receipt_id,
            printed_at=now.astimezone(rules.tz),
            member=member.phone_masked or member.code,
            tier=rules.tier_for_spend(engine.rolling_spend(new_state, rules, now)).name_ru,
            lines=slips.refund_lines(result),
            provisional=not online,
        )
        job_id = ctx.queue_print(conn, receipt_id, "refund", slip, now_iso)
        outcome = RefundOutcome(refund_id, event_id, seq, result, job_id)
        conn.execute(
            "INSERT INTO refunds(refund_id, receipt_id, op_id, created_at, "
            "request_hash, result) VALUES (?,?,?,?,?,?)",
            (refund_id, receipt_id, event_id, now_iso, request_hash, codec.dumps(outcome)),
        )
    return outcome


def refund_with_slip(
    ctx: Context,
    refund_id: str,
    receipt_id: str,
    lines: Mapping[int, int],
    *,
    cashier_id: str | None = None,
    shift_id: str | None = None,
) -> tuple[RefundOutcome, Slip]:
    """``refund``, and the slip queued with it (as stored in its print job)."""
    outcome = refund(ctx, refund_id, receipt_id, lines, cashier_id=cashier_id, shift_id=shift_id)
    return outcome, slips.print_job(ctx, outcome.print_job_id)


def stored_refund(ctx: Context, refund_id: str, request_hash: str) -> RefundOutcome | None:
    row = ctx.store.one(
        "SELECT request_hash, result FROM refunds WHERE refund_id = ?", (refund_id,)
    )
    if row is None:
        return None
    if row[0] != request_hash:
        raise ConflictError(
            f"refund {refund_id} was already made with other contents",
            f"возврат {refund_id} уже проведён с другим содержимым",
            refund_id=refund_id,
        )
    return replace(codec.loads(RefundOutcome, row[1]), duplicate=True)


def find_cheques(ctx: Context, text: str) -> list[str]:
    """The cheques ``text`` names as a cashier types it, newest first."""
    return history.find_cheques(ctx.store, text)


def cheque(ctx: Context, receipt_id: str) -> Cheque:
    """A cheque of this till with what is left to refund on each line."""
    return history.cheque(ctx.store, receipt_id)


def cheque_entries(ctx: Context, receipt_ids: list[str]) -> list[HistoryEntry]:
    """The purchases ``receipt_ids`` as history entries, in the order given."""
    return history.cheque_entries(ctx.store, receipt_ids)


def refund_preview(ctx: Context, receipt_id: str, lines: Mapping[int, int]) -> RefundResult:
    """What ``refund`` would do for ``lines`` (line -> units) now, writing nothing."""
    return history.refund_preview(ctx.store, receipt_id, lines, ctx.clock.now())

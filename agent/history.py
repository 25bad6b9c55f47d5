"""Read-only views of the till's own records for store staff: a member's recent cheques,
a cheque's lines for a refund (with a dry run of what the refund will do), a search by
name fragment.

All of it reads the local store only: a till knows the cheques made on it (purchases and
refunds in its own tables), not the member's history at other tills; the screens say so.
Nothing here writes; the refund itself is ``Agent.refund``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime

from agent import codec, receipts
from agent.errors import InputError, NotFoundError
from agent.ledger import PurchaseEffects, apply_refund
from agent.model import MemberState
from agent.results import (
    Cheque,
    ChequeLine,
    CommitResult,
    HistoryEntry,
    MemberMatch,
    RefundOutcome,
    RefundResult,
)
from agent.store import Store

__all__ = [
    "NAME_MATCH_LIMIT",
    "cheque",
    "cheque_entries",
    "find_by_name",
    "find_cheques",
    "member_history",
    "refund_preview",
]


NAME_MATCH_LIMIT = 20
"""The most members a name search lists (a fragment is ambiguous; refine to see others)."""


def member_history(store: Store, member_id: str, limit: int = 20) -> list[HistoryEntry]:
    """The member's latest purchases and refunds made on this till, newest first."""
    with store.read() as conn:
        purchases = conn.execute(
            "SELECT receipt_id, created_at, result, offline FROM purchases "
            "WHERE member_id = ? ORDER BY created_at DESC LIMIT ?",
            (member_id, limit),
        ).fetchall()
        refunds = conn.execute(
            "SELECT r.refund_id, r.receipt_id, r.created_at, r.result FROM refunds r "
            "JOIN purchases p ON p.receipt_id = r.receipt_id WHERE p.member_id = ? "
            "ORDER BY r.created_at DESC LIMIT ?",
            (member_id, limit),
        ).fetchall()
    out: list[HistoryEntry] = []
    for receipt_id, created, result, offline in purchases:
        q = codec.loads(CommitResult, result).quote
        out.append(
            HistoryEntry(
                "purchase",
                receipt_id,
                None,
                datetime.fromisoformat(created),
                q.payable_kop,
                q.total_earned - q.redeem_points,
                bool(offline),
            )
        )
    for refund_id, receipt_id, created, result in refunds:
        r = codec.loads(RefundOutcome, result).result
        out.append(
            HistoryEntry(
                "refund",
                receipt_id,
                refund_id,
                datetime.fromisoformat(created),
                r.amount_kop,
                r.net_points,
            )
        )
    out.sort(key=lambda e: (e.at, e.kind == "refund"), reverse=True)  # refund after its sale
    return out[:limit]


def find_by_name(store: Store, fragment: str, limit: int = NAME_MATCH_LIMIT) -> list[MemberMatch]:
    """Members whose first name contains ``fragment`` (case-insensitive, also Cyrillic).

    SQLite's own case folding is ASCII only, so the fragment is tried as typed, lower,
    upper and capitalised ("вер" finds "Вера"). A scan of the members cache (the cache has
    no name index: names are searched by staff, rarely, never on the sale path; an index
    on the name would add ~3 s to loading a million members). At a million members the
    scan takes ~1 s, so it reads on a connection of its own (``Store.side_reader``) and
    sales go on meanwhile.
    """
    frag = " ".join(fragment.split())
    if len(frag) < 2 or not any(ch.isalpha() for ch in frag):
        raise InputError(
            "a name fragment needs at least 2 letters",
            "для поиска по имени введите хотя бы 2 буквы",
            field="query",
        )
    variants = sorted({frag, frag.lower(), frag.upper(), frag.capitalize()})
    where = " OR ".join("instr(first_name, ?) > 0" for _ in variants)
    with store.side_reader() as conn:
        rows = conn.execute(
            "SELECT member_id, code, first_name, phone_masked, balance, provisional "
            f"FROM members WHERE merged_into IS NULL AND ({where}) "
            "ORDER BY first_name, code LIMIT ?",
            (*variants, limit),
        ).fetchall()
    return [MemberMatch(r[0], r[1], r[2], r[3], int(r[4]), bool(r[5])) for r in rows]


def find_cheques(store: Store, text: str) -> list[str]:
    """The cheques of this till ``text`` names as a cashier types it: the full number, the
    short number (``7``, ``000007``) or the last characters of a recent cheque
    (``agent.receipts.matches``), newest first; several when the last characters are
    shared."""
    with store.read() as conn:
        return receipts.matches(conn, text)


def cheque_entries(store: Store, receipt_ids: list[str]) -> list[HistoryEntry]:
    """The purchases ``receipt_ids`` as history entries, in the order given (to pick one)."""
    out: list[HistoryEntry] = []
    with store.read() as conn:
        for rid in receipt_ids:
            row = conn.execute(
                "SELECT created_at, result, offline FROM purchases WHERE receipt_id = ?", (rid,)
            ).fetchone()
            if row is None:
                continue
            q = codec.loads(CommitResult, row[1]).quote
            out.append(
                HistoryEntry(
                    "purchase",
                    rid,
                    None,
                    datetime.fromisoformat(row[0]),
                    q.payable_kop,
                    q.total_earned - q.redeem_points,
                    bool(row[2]),
                )
            )
    return out


def _cart_names(store: Store, op_id: str) -> dict[int, str]:
    """Line names from the purchase's journal event, while the till still keeps it (rows
    are deleted long after the back office acknowledged them); {} when it is gone."""
    row = store.one("SELECT payload FROM outbox WHERE event_id = ?", (op_id,))
    if row is None:
        return {}
    cart = json.loads(row[0]).get("cart") or {}
    return {int(ln["line_no"]): str(ln["name"]) for ln in cart.get("lines", [])}


def cheque(store: Store, receipt_id: str) -> Cheque:
    """A cheque of this till with what is left to refund on each line. ``receipt_id`` is
    found as a cashier types it (``agent.receipts.resolve``): the full number, the short
    number or the last characters; several cheques ending the same way are an
    ``AmbiguousReceiptError`` naming them."""
    if not receipt_id.strip():
        raise InputError("enter a cheque number", "введите номер чека", field="receipt_id")
    with store.read() as conn:
        rid = receipts.resolve(conn, receipt_id)
        row = conn.execute(
            "SELECT p.member_id, p.created_at, p.effects, p.refunded, p.op_id, m.code, "
            "m.phone_masked FROM purchases p JOIN members m ON m.member_id = p.member_id "
            "WHERE p.receipt_id = ?",
            (rid,),
        ).fetchone()
    if row is None:
        raise NotFoundError(
            f"no cheque {rid} on this till",
            f"чека {rid} нет на этой кассе",
            receipt_id=rid,
        )
    effects = codec.loads(PurchaseEffects, row[2])
    refunded = {int(k): int(v) for k, v in json.loads(row[3]).items()}
    names = _cart_names(store, row[4])
    lines = tuple(
        ChequeLine(
            rl.line_no,
            names.get(rl.line_no, f"#{rl.line_no}"),
            rl.qty,
            refunded.get(rl.line_no, 0),
            rl.payable_kop,
        )
        for rl in effects.lines
    )
    return Cheque(rid, row[0], row[5], row[6] or row[5], datetime.fromisoformat(row[1]), lines)


def refund_preview(
    store: Store, receipt_id: str, request: Mapping[int, int], now: datetime
) -> RefundResult:
    """What ``Agent.refund`` would do for ``request`` (line -> units) now, without writing:
    the same ledger function on the same rows. Raises ``RefundError`` (more units than are
    left, unknown line, nothing chosen) exactly as the refund itself would."""
    with store.read() as conn:
        row = conn.execute(
            "SELECT p.effects, p.refunded, m.state FROM purchases p "
            "JOIN members m ON m.member_id = p.member_id WHERE p.receipt_id = ?",
            (receipt_id,),
        ).fetchone()
    if row is None:
        raise NotFoundError(
            f"no cheque {receipt_id} on this till",
            f"чека {receipt_id} нет на этой кассе",
            receipt_id=receipt_id,
        )
    effects = codec.loads(PurchaseEffects, row[0])
    before = {int(k): int(v) for k, v in json.loads(row[1]).items()}
    state = codec.loads(MemberState, row[2])
    return apply_refund(state, effects, before, dict(request), now)[1]

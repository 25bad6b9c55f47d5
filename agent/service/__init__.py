"""The till service: every use case the cashier app, the POS API and the CLI call.

``Agent`` is a facade over one open ``Store``: each method hands its call to the module
that owns the use case, with the shared ``Context`` (store, clock, caches, terminal
identity, the journal append and the print queue):

- ``members``: identify, card, register, a name search, a member's history, the cashier's
  lookup and the refund screen's cheque search;
- ``sales``: quote, commit (with or without a hold), place a hold, coupons, catalogue and
  the cheque's lines from it;
- ``holds``: the holds' table (reserve, consume at the commit, cancel, expire);
- ``refunds``: refund, and the refund screen's reads (cheques, lines, a dry run);
- ``slips``: the slips queued with a sale or a refund, as text, reprinted as a copy;
- ``shifts``: cashiers, PIN sign-in, shifts and their X/Z reports;
- ``status``: online or not, the offline counters, the journal and sync views.

Each business operation is one store transaction together with its journal row (and its
print job): a sale, a refund or a registration is either fully there or not at all. The
service reads time from its own clock; no method takes ``now``. The value types live in
``agent.results``, the clock in ``agent.clock``: callers import them from there.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from agent import history
from agent.clock import Clock, SystemClock
from agent.model import CartLine, Quote
from agent.results import (
    Cashier,
    CheckoutRequest,
    Cheque,
    ChequeSearch,
    CommitResult,
    HistoryEntry,
    Hold,
    JournalPage,
    MemberCard,
    MemberLookup,
    MemberMatch,
    OfflineStatus,
    RefundOutcome,
    RefundResult,
    Registration,
    Reprint,
    Shift,
    SlipView,
    SyncView,
    TillRegistration,
    TillStatus,
    XReport,
)
from agent.rules import Programme
from agent.service import holds, members, refunds, sales, shifts, slips, status
from agent.service.context import SCHEMA_VERSION, Context, initialise
from agent.slip import Slip
from agent.store import Store
from agent.tokens import Coupon, TokenVerifier

__all__ = ["SCHEMA_VERSION", "Agent"]


class Agent:
    """The till's loyalty service over one open ``Store`` (see the module)."""

    initialise = staticmethod(initialise)

    def __init__(self, store: Store, clock: Clock | None = None, *, store_name: str = "") -> None:
        self._ctx = Context(store, clock or SystemClock(), store_name=store_name)

    @property
    def store(self) -> Store:
        return self._ctx.store

    @property
    def clock(self) -> Clock:
        """Where every use case reads time (settable: a test moves the till's clock)."""
        return self._ctx.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:
        self._ctx.clock = clock

    @property
    def terminal_id(self) -> str:
        return self._ctx.terminal_id

    @property
    def terminal_epoch(self) -> str:
        return self._ctx.terminal_epoch

    @property
    def store_name(self) -> str:
        """The name printed on slips."""
        return self._ctx.store_name

    # ----------------------------------------------------------------- programme
    def install_rules(self, programme: Programme, *, activate: bool = True) -> None:
        self._ctx.install_rules(programme, activate=activate)

    def programme(self) -> Programme:
        return self._ctx.programme()

    def token_verifier(self) -> TokenVerifier | None:
        return self._ctx.token_verifier()

    def rules_changed(self) -> None:
        self._ctx.rules_changed()

    # ----------------------------------------------------------------- members
    def identify(self, text: str) -> MemberCard:
        return members.identify(self._ctx, text)

    def card(self, member_id: str) -> MemberCard:
        return members.card(self._ctx, member_id)

    def register(
        self,
        *,
        phone: str,
        first_name: str,
        consent_programme: bool,
        consent_marketing: bool,
        birthday: date | None = None,
        cashier_id: str | None = None,
        consent_text_version: str | None = None,
    ) -> Registration:
        return members.register(
            self._ctx,
            phone=phone,
            first_name=first_name,
            consent_programme=consent_programme,
            consent_marketing=consent_marketing,
            birthday=birthday,
            cashier_id=cashier_id,
            consent_text_version=consent_text_version,
        )

    def register_at_till(
        self,
        *,
        phone: str,
        first_name: str,
        consent_programme: bool,
        consent_marketing: bool,
        birthday: date | None = None,
        cashier_id: str | None = None,
    ) -> TillRegistration:
        return members.register_at_till(
            self._ctx,
            phone=phone,
            first_name=first_name,
            consent_programme=consent_programme,
            consent_marketing=consent_marketing,
            birthday=birthday,
            cashier_id=cashier_id,
        )

    def find_members(self, query: str, limit: int = history.NAME_MATCH_LIMIT) -> list[MemberMatch]:
        return members.find_members(self._ctx, query, limit)

    def member_history(self, member_id: str) -> list[HistoryEntry]:
        return members.member_history(self._ctx, member_id)

    def look_up(self, text: str) -> MemberLookup:
        return members.look_up(self._ctx, text)

    def member_page(self, member_id: str) -> MemberLookup:
        return members.member_page(self._ctx, member_id)

    # ----------------------------------------------------------------- sales
    def catalog_lookup(self, sku: str) -> tuple[str, str, str | None, int] | None:
        return sales.catalog_lookup(self._ctx, sku)

    def catalog_line(
        self, sku: str, qty: int, sale: bool, cheque_kop: int = 0, line_no: int = 1
    ) -> CartLine:
        return sales.catalog_line(self._ctx, sku, qty, sale, cheque_kop, line_no)

    def total_line(
        self, amount_kop: int, category: str | None, cheque_kop: int = 0, line_no: int = 1
    ) -> CartLine:
        return sales.total_line(self._ctx, amount_kop, category, cheque_kop, line_no)

    def free_line(
        self,
        sku: str,
        category: str | None,
        price_kop: int,
        qty: int,
        sale: bool,
        cheque_kop: int = 0,
        line_no: int = 1,
    ) -> CartLine:
        return sales.free_line(self._ctx, sku, category, price_kop, qty, sale, cheque_kop, line_no)

    def quote(self, req: CheckoutRequest) -> Quote:
        return sales.quote(self._ctx, req)

    def commit(self, req: CheckoutRequest, hold_id: str | None = None) -> CommitResult:
        return sales.commit(self._ctx, req, hold_id)

    def commit_with_slip(
        self, req: CheckoutRequest, hold_id: str | None = None
    ) -> tuple[CommitResult, Slip]:
        return sales.commit_with_slip(self._ctx, req, hold_id)

    def read_coupon(self, text: str) -> Coupon:
        return sales.read_coupon(self._ctx, text)

    def coupon_terms(self, text: str | None) -> tuple[str, int]:
        return sales.coupon_terms(self._ctx, text)

    def redeem_limit_text(self, reason: str) -> tuple[str, str]:
        return sales.redeem_limit_text(self._ctx, reason)

    def upcoming_receipt(self) -> str:
        return sales.upcoming_receipt(self._ctx)

    # ----------------------------------------------------------------- holds
    def place_hold(self, req: CheckoutRequest, ttl_s: int = holds.DEFAULT_TTL_S) -> Hold:
        return sales.place_hold(self._ctx, req, ttl_s)

    def get_hold(self, hold_id: str) -> Hold:
        return holds.get(self.store, hold_id, self.clock.now())

    def cancel_hold(self, hold_id: str) -> Hold:
        return holds.cancel(self.store, hold_id, self.clock.now())

    def holds_active(self) -> int:
        return holds.active_count(self.store, self.clock.now())

    def expire_holds(self) -> int:
        """Mark the holds past their time expired now (housekeeping); how many."""
        return holds.expire_due(self.store, self.clock.now())

    # ----------------------------------------------------------------- refunds
    def refund(
        self,
        refund_id: str,
        receipt_id: str,
        lines: Mapping[int, int],
        *,
        cashier_id: str | None = None,
        shift_id: str | None = None,
    ) -> RefundOutcome:
        return refunds.refund(
            self._ctx, refund_id, receipt_id, lines, cashier_id=cashier_id, shift_id=shift_id
        )

    def refund_with_slip(
        self,
        refund_id: str,
        receipt_id: str,
        lines: Mapping[int, int],
        *,
        cashier_id: str | None = None,
        shift_id: str | None = None,
    ) -> tuple[RefundOutcome, Slip]:
        return refunds.refund_with_slip(
            self._ctx, refund_id, receipt_id, lines, cashier_id=cashier_id, shift_id=shift_id
        )

    def find_cheques(self, text: str) -> list[str]:
        return refunds.find_cheques(self._ctx, text)

    def find_cheque(self, text: str) -> ChequeSearch:
        return members.find_cheque(self._ctx, text)

    def cheque(self, receipt_id: str) -> Cheque:
        return refunds.cheque(self._ctx, receipt_id)

    def cheque_entries(self, receipt_ids: list[str]) -> list[HistoryEntry]:
        return refunds.cheque_entries(self._ctx, receipt_ids)

    def refund_preview(self, receipt_id: str, lines: Mapping[int, int]) -> RefundResult:
        return refunds.refund_preview(self._ctx, receipt_id, lines)

    # ----------------------------------------------------------------- slips
    def print_job(self, job_id: int) -> Slip:
        return slips.print_job(self._ctx, job_id)

    def slip(self, job_id: int, width: int = 42) -> SlipView:
        return slips.slip(self._ctx, job_id, width)

    def reprint(self, job_id: int) -> Reprint:
        return slips.reprint(self._ctx, job_id)

    def print_queue_depth(self) -> int:
        return slips.print_queue_depth(self._ctx)

    # ----------------------------------------------------------------- shifts
    def add_cashier(self, cashier_id: str, name: str, pin: str, role: str = "cashier") -> None:
        shifts.add_cashier(self._ctx, cashier_id, name, pin, role)

    def set_pin(self, cashier_id: str, pin: str) -> None:
        shifts.set_pin(self._ctx, cashier_id, pin)

    def cashiers(self) -> list[Cashier]:
        return shifts.cashiers(self._ctx)

    def verify_pin(self, cashier_id: str, pin: str) -> Cashier:
        return shifts.verify_pin(self._ctx, cashier_id, pin)

    def open_shift(self, cashier_id: str) -> Shift:
        return shifts.open_shift(self._ctx, cashier_id)

    def sign_in(self, cashier_id: str, pin: str) -> tuple[Cashier, Shift]:
        return shifts.sign_in(self._ctx, cashier_id, pin)

    def close_shift(self, shift_id: str) -> XReport:
        return shifts.close_shift(self._ctx, shift_id)

    def close_shift_and_report(
        self, shift_id: str, *, training: bool = False
    ) -> tuple[XReport, int | None]:
        return shifts.close_shift_and_report(self._ctx, shift_id, training=training)

    def x_report(self, shift_id: str, *, local: bool = False) -> XReport:
        return shifts.x_report(self._ctx, shift_id, local=local)

    def print_x_report(self, shift_id: str, *, training: bool = False) -> tuple[XReport, int]:
        return shifts.print_x_report(self._ctx, shift_id, training=training)

    def queue_report(self, report: XReport, *, training: bool = False) -> int:
        return shifts.queue_report(self._ctx, report, training=training)

    # ----------------------------------------------------------------- status
    def offline_status(self) -> OfflineStatus:
        return status.offline_status(self._ctx)

    def record_contact(self) -> None:
        status.record_contact(self._ctx)

    def status(self) -> TillStatus:
        return status.till_status(self._ctx)

    def journal(self, limit: int) -> JournalPage:
        return status.journal_page(self._ctx, limit)

    def pending_events(self, limit: int = 500) -> list[dict[str, Any]]:
        """Journal rows not yet acknowledged by the back office, in ``seq`` order."""
        return status.pending_page(self._ctx, limit)[0]

    def pending_page(self, limit: int) -> tuple[list[dict[str, Any]], int]:
        return status.pending_page(self._ctx, limit)

    @property
    def training(self) -> bool:
        """Whether this store is a training copy (its journal is never sent)."""
        return status.is_training(self._ctx)

    def sync_status(self) -> SyncView:
        return status.sync_status(self._ctx)

    def record_sync_error(self, text: str) -> None:
        status.record_sync_error(self._ctx, text)

"""The till service's value types: what its use cases take and give back.

Front doors (the POS API, the CLI, the cashier app) and the lower modules (holds, history,
shifts, journal) import these from here, so none of them needs the service itself; this
module imports only the domain model (``agent.model``) and money types. Amounts are
integer kopecks (``*_kop``), points integer points; datetimes are aware.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from agent.model import Cart, CollectionProgress, Quote, TierInfo
from agent.money import Kopecks, Points

# ---------------------------------------------------------------- members


@dataclass(frozen=True, slots=True)
class MemberCard:
    """What the cashier sees after identifying a member."""

    member_id: str
    code: str
    phone_masked: str | None
    first_name: str | None
    tier: TierInfo
    balance: Points
    available: Points
    pending: Points
    spendable: Points
    debt: Points
    expiring_points: Points
    expiring_on: date | None
    next_tier: TierInfo | None
    to_next_tier_kop: int | None
    collections: tuple[CollectionProgress, ...]
    birthday_window: bool
    consent_marketing: bool
    provisional: bool
    unsynced_events: int
    identified_by: str = ""
    spendable_after_sync: Points = 0
    """Points the member holds but may spend only once the back office has confirmed the
    registration: a member who joined at this till (``provisional``) while it is offline,
    under the programme's ``welcome.spend_before_sync`` (``spendable`` is then what may be
    spent now, before the per-cheque offline caps)."""


@dataclass(frozen=True, slots=True)
class Registration:
    card: MemberCard
    event_id: str
    welcome_points: Points
    qr_payload: str


@dataclass(frozen=True, slots=True)
class TillRegistration:
    """A registration as the cashier's screen reports it: ``offline``: the till had no
    link to the back office (the member is provisional until synced);
    ``consent_text_version``: the consent text the member agreed to."""

    registration: Registration
    offline: bool
    consent_text_version: str


@dataclass(frozen=True, slots=True)
class MemberMatch:
    member_id: str
    code: str
    first_name: str | None
    phone_masked: str | None
    balance: int
    provisional: bool


# ---------------------------------------------------------------- status


@dataclass(frozen=True, slots=True)
class OfflineStatus:
    online: bool
    last_contact: datetime | None
    consecutive_offline: int
    terminal_offline_spent: Points
    events_waiting: int


# ---------------------------------------------------------------- sales


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    """A cheque to score, hold or commit. ``redeem_points``: the points to spend, "max" (the
    most allowed), or None: at a commit naming a hold, the points that hold reserved
    (nothing without a hold)."""

    member_id: str
    cart: Cart
    redeem_points: Points | Literal["max"] | None = 0
    coupon: str | None = None
    cashier_id: str | None = None
    shift_id: str | None = None
    identified_by: str = "unknown"


@dataclass(frozen=True, slots=True)
class CommitResult:
    receipt_id: str
    event_id: str
    seq: int
    quote: Quote
    offline: bool
    print_job_id: int
    duplicate: bool = False


# ---------------------------------------------------------------- refunds


@dataclass(frozen=True, slots=True)
class RefundOutcome:
    refund_id: str
    event_id: str
    seq: int
    result: RefundResult
    print_job_id: int
    duplicate: bool = False


@dataclass(frozen=True, slots=True)
class RefundLine:
    line_no: int
    qty: int
    amount_kop: Kopecks
    earn_reversed: Points
    points_returned: Points


@dataclass(frozen=True, slots=True)
class RefundResult:
    """The loyalty side of a refund, for the cashier, the slip and the journal."""

    receipt_id: str
    member_id: str
    lines: tuple[RefundLine, ...]
    earn_reversed: Points
    bonus_reversed: Points
    points_returned: Points
    amount_kop: Kopecks
    balance_before: Points
    balance_after: Points
    debt_after: Points
    complete: bool

    @property
    def net_points(self) -> Points:
        """Change of the member's balance: returned spent points minus reversed accrual."""
        return self.points_returned - self.earn_reversed - self.bonus_reversed


@dataclass(frozen=True, slots=True)
class ChequeLine:
    """A purchased line as the refund screen shows it (integer kopecks)."""

    line_no: int
    name: str
    qty: int
    refunded: int
    payable_kop: int

    @property
    def left(self) -> int:
        return self.qty - self.refunded


@dataclass(frozen=True, slots=True)
class Cheque:
    receipt_id: str
    member_id: str
    member_code: str
    member_label: str  # masked phone or member code
    at: datetime
    lines: tuple[ChequeLine, ...]

    @property
    def refundable(self) -> bool:
        return any(ln.left > 0 for ln in self.lines)


# ---------------------------------------------------------------- history


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One cheque of the member on this till: a purchase or a refund."""

    kind: str  # "purchase" | "refund"
    receipt_id: str
    refund_id: str | None
    at: datetime
    amount_kop: int
    """Purchase: what the member paid (after discounts); refund: the amount refunded."""
    points_delta: int
    """Purchase: earned minus spent; refund: the balance change (returned minus reversed)."""
    offline: bool = False


@dataclass(frozen=True, slots=True)
class MemberLookup:
    """What a lookup at the till found: one member (``card``, with ``history``, times in
    the store's time zone), or, for a name, ``matches`` (``more``: there are others beyond
    these, so their count is a floor, not a total)."""

    card: MemberCard | None
    history: list[HistoryEntry]
    matches: list[MemberMatch]
    more: bool = False


@dataclass(frozen=True, slots=True)
class ChequeSearch:
    """What a cheque search at the till found: one ``cheque``; or a member's purchases on
    this till (``member_label``: their masked phone or code); or several cheques whose
    numbers end alike. ``entries``: the purchases to pick from, times in the store's time
    zone."""

    cheque: Cheque | None
    entries: list[HistoryEntry]
    member_label: str | None = None


# ---------------------------------------------------------------- slips
@dataclass(frozen=True, slots=True)
class SlipView:
    """A queued slip as text for a POS that prints it itself (``width`` characters a line)."""

    job_id: int
    receipt_id: str
    kind: str
    status: str
    width: int
    text: str


@dataclass(frozen=True, slots=True)
class Reprint:
    """A copy of print job ``copy_of`` queued as job ``job_id`` (printed «КОПИЯ»)."""

    job_id: int
    copy_of: int
    queued: bool = True


# ---------------------------------------------------------------- holds
MIN_TTL_S = 10
"""The shortest time to live a hold may ask for (seconds)."""
MAX_TTL_S = 24 * 3600
"""The longest time to live a hold may ask for (seconds)."""
DEFAULT_TTL_S = 900
"""A hold lives 15 minutes unless the POS asks otherwise (seconds)."""


@dataclass(frozen=True, slots=True)
class Hold:
    """A reservation of ``points`` (integer points) for the POS cheque ``receipt_id``."""

    hold_id: str
    receipt_id: str
    member_id: str
    points: int
    status: str
    created_at: str
    expires_at: str
    closed_at: str | None
    quote: Quote
    duplicate: bool = False


# ---------------------------------------------------------------- shifts


@dataclass(frozen=True, slots=True)
class Cashier:
    cashier_id: str
    name: str
    role: str
    active: bool
    locked: bool = False
    """Too many wrong PINs: signing in is refused until ``set_pin`` (shown in the list)."""


@dataclass(frozen=True, slots=True)
class Shift:
    shift_id: str
    cashier_id: str
    cashier_name: str
    terminal_id: str
    opened_at: datetime
    closed_at: datetime | None
    number: int = 0
    """The shift's number on this till (1 = its first shift), printed on the reports."""


@dataclass(frozen=True, slots=True)
class XReport:
    """The loyalty operations of one shift. Points are integer points, amounts kopecks."""

    shift: Shift
    generated_at: datetime
    cheques: int
    by_scan: int
    by_phone: int
    offline_cheques: int
    sales_kop: int
    discount_kop: int
    points_earned: int
    points_spent: int
    registrations: int
    refunds: int
    refund_kop: int
    points_reversed: int
    points_returned: int
    coupons: int = 0
    """Cheques with a coupon applied."""
    coupon_kop: int = 0
    """The coupons' discount on those cheques, kopecks."""


# ---------------------------------------------------------------- journal and sync


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What the UI and ``kassa sync status`` show."""

    last_contact: str | None
    events_waiting: int
    oldest_waiting: str | None
    quarantined: int
    last_quarantine: str | None
    cursor: str | None
    last_error: str | None
    clock_skew_seconds: float | None
    awaiting_verdict: int = 0  # accepted by the back office, not yet in its ledger


@dataclass(frozen=True, slots=True)
class SyncView(SyncStatus):
    """``SyncStatus`` and what ``kassa sync status`` prints beside it: whether the back
    office answers now, whether the till is enrolled, where it syncs to, its terminal id
    and the latest quarantined events (at most ten, oldest first)."""

    online: bool = False
    enrolled: bool = False
    backoffice_url: str | None = None
    terminal_id: str = ""
    quarantine: tuple[dict[str, Any], ...] = ()
    disk_full: bool = False
    """The store's disk is (nearly) full (``agent.store.disk_full``): no sale and no sync
    answer can be saved until space is freed; ``last_error`` then says so."""


@dataclass(frozen=True, slots=True)
class JournalPage:
    """The oldest journal events waiting (``pending``, at most ``limit``), how many wait in
    all (``total``, counted with the page) and the offline status."""

    pending: list[dict[str, Any]]
    shown: int
    total: int
    truncated: bool
    limit: int
    status: OfflineStatus


@dataclass(frozen=True, slots=True)
class TillStatus:
    """The till at a glance: what the POS API's ``/v1/status`` and the status bar show."""

    terminal_id: str
    rules_version: int
    online: bool
    enrolled: bool
    last_contact: datetime | None
    events_waiting: int
    holds_active: int
    print_queue: int

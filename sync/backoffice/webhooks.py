"""Delivery of the member events (``outbox``) to webhook subscriptions, signed per the
Standard Webhooks specification, retried through any receiver outage of up to 72 hours.

Tables (migration ``0019_webhooks``):

- ``webhook_subscriptions``: the receiver's ``url``, the event ``types`` it wants (a
  space-separated list of ``outbox.TYPES``; empty: every type), its signing ``secret``
  (``whsec_<base64 of 32 random bytes>``) and, for ``ROTATION_GRACE`` after a rotation,
  the ``previous_secret`` too; ``state`` ``active`` or ``disabled`` with the
  ``disabled_reason`` (``manual``, or ``gone``: the receiver answered 410); ``taken_to``: the
  last outbox id it has taken into its queue (its cursor).
- ``webhook_deliveries``: one row per subscription and event (the queue and its history):
  ``state`` ``pending`` (to send), ``done`` (a 2xx came back) or ``dead`` (still failing
  ``RETRY_FOR`` after its first attempt: the dead letters, kept until replayed); ``head``
  is 1 on the one pending delivery of each member per subscription that may be sent now
  (the member's earliest), so a member's later event waits for the earlier while other
  members' events go on; ``next_at`` when it is due (also the end of a claim), the
  ``attempts`` started, ``first_at`` the first attempt's time, the last status or error.
- ``webhook_attempts``: the delivery log, one row per attempt (time, status code,
  duration in ms, error, ``webhook-id``), pruned after ``KEEP``.

One round of the ``Deliverer`` (a ``worker.RoundWorker`` thread of every serving node):

1. *Take*: each active subscription's cursor advances over the outbox (``TAKE_CHUNK``
   ids a round), a delivery row for each event of its types. The outbox's ids commit in
   increasing order (its emitters hold the feed lock), so a cursor never passes an id
   that commits later.
2. *Claim*: the due heads (``next_at <= now``), oldest first, are claimed: ``next_at`` is
   pushed ``CLAIM_S`` ahead and a random ``claim`` token written, in one transaction
   (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so the nodes share the work; SQLite has one
   node and one writer). A node that dies mid-send leaves its claims to expire, and the
   event is sent again with the same ``webhook-id``: at least once, the receiver
   deduplicates by that id. With each head its member's next due pending deliveries (up
   to ``RUN_MAX`` in all, ``followers``) are claimed too: a projector pass writes several
   events of a member at once (purchase, points, balance), and sending them one round
   each would cost a round trip of the database per event.
3. *Send*: a member's run in order, each after the previous one's 2xx (the run stops at
   the first failure: the later ones wait, as the head rule says), up to ``PARALLEL``
   members' runs at once (the Deliverer's ``concurrency``: that many sender threads
   sharing one ``httpx`` client with as many pooled connections, ``CONNECT_TIMEOUT_S`` and
   ``READ_TIMEOUT_S``; the threads only send, every database read and write stays on the
   Deliverer's own thread and connection; the longest runs start first, so the round,
   which ends with its slowest run, is not left waiting on a long run begun last), the
   body the CloudEvents 1.0 JSON of the event (the encoder is given:
   ``event_feed.cloud_event``), the headers ``webhook-id`` (``msg_<subscription>_<outbox
   id>``: the same on every retry), ``webhook-timestamp`` (unix seconds of this attempt)
   and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, one per
   valid secret, space-separated).
4. *Record*, in one transaction, only for rows still holding this round's claim token:
   2xx done (the member's next event becomes its head); 410 disables the subscription
   (its events stay pending for when it is enabled again); 429 waits ``Retry-After``
   (seconds or an HTTP date, at most ``MAX_RETRY_AFTER_S``); anything else, a timeout or
   a refused connection waits a random time in ``[0, step]`` (full jitter), where the step
   starts at ``FIRST_STEP_S`` and doubles to ``MAX_STEP_S`` (5 s, 10 s, 20 s ... 5.7 h, then
   6 h); an event still failing ``RETRY_FOR`` (72 h) after its first attempt is dead (about
   35 attempts on average), and the member's later events go on: the receiver sees a gap
   in ``member_seq``, and a replay fills it. Every attempt writes its log row.

A disabled subscription takes no new events until enabled again; then its cursor goes on
from where it stopped (nothing in between is skipped). ``replay`` makes one delivery, or
every event of a range of outbox ids, pending again (new attempts, the same ids).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from agent.clock import Clock
from agent.errors import AgentError
from agent.version import version
from sync.backoffice import outbox
from sync.backoffice.context import Context, moment_text
from sync.backoffice.db import Database, Tx, marks
from sync.backoffice.lease import Lease
from sync.backoffice.worker import RoundWorker

log = logging.getLogger("kassa.backoffice.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32  # HMAC-SHA256 keys of 256 bits
ROTATION_GRACE = timedelta(hours=24)  # the previous secret still signs this long
TOLERANCE_S = 300  # ``verify`` refuses timestamps further than this from now, seconds
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 15.0
CLAIM_S = 60  # a claimed delivery is anyone's again after this many seconds
FIRST_STEP_S = 5
MAX_STEP_S = 6 * 3600
RETRY_FOR = timedelta(hours=72)
MAX_RETRY_AFTER_S = 24 * 3600  # a 429's Retry-After is honoured up to a day
TAKE_CHUNK = 1000  # outbox ids a subscription's cursor advances per round
SEND_CHUNK = 64  # deliveries claimed per round
RUN_MAX = 16  # a member's due deliveries sent one after another under one claim
PARALLEL = 8  # members' runs (requests) in flight at once, the Deliverer's default
KEEP = timedelta(days=35)  # the delivery log and done deliveries are kept this long
PRUNE_EVERY = timedelta(hours=1)
URL_MAX = 2000
REPLAY_MAX = 100_000  # outbox ids one replay may span
IDLE_S = 0.2  # the worker's pause when nothing is due (the first attempt's latency)
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
ERROR_MAX = 300  # characters of an error kept in the log

_TYPE_SET = frozenset(outbox.TYPES)

Encoder = Callable[[outbox.Row], Mapping[str, Any]]
"""An outbox row as the CloudEvents 1.0 JSON object the receiver gets."""


class WebhookError(AgentError):
    """A subscription cannot be made or changed as asked (the message says why)."""

    code = "webhook_refused"
    title_ru = "Подписка не сохранена"
    title_en = "Subscription not saved"

    def __init__(
        self, message_en: str, message_ru: str, *, code: str = code, **details: Any
    ) -> None:
        """``code``: what was wrong (``bad_url``, ``bad_types``, ``unknown_subscription``...)."""
        super().__init__(message_en, message_ru, **details)
        self.code = code


class SignatureError(AgentError):
    """A received webhook's headers or signature do not verify (``verify``)."""

    code = "bad_webhook_signature"
    title_ru = "Подпись вебхука неверна"
    title_en = "Webhook signature refused"


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription as the console lists it: the ``types`` (empty: all), its state, the
    ``cursor`` (last outbox id taken) and its deliveries ``pending`` and ``dead``.
    ``rotating``: the previous secret still signs (until ``previous_until``)."""

    id: int
    url: str
    types: tuple[str, ...]
    state: str
    disabled_reason: str | None
    created_at: str
    cursor: int
    rotating: bool
    previous_until: str | None
    pending: int
    dead: int


@dataclass(frozen=True, slots=True)
class Created:
    """A new subscription or a rotation: the subscription and its new secret (shown once)."""

    subscription: Subscription
    secret: str


@dataclass(frozen=True, slots=True)
class Attempt:
    """A row of the delivery log: when (ISO UTC), the status code (None: no answer), how
    long it took (ms), the error (a timeout, a refused connection...), the event."""

    id: int
    subscription_id: int
    outbox_id: int
    webhook_id: str
    attempted_at: str
    status: int | None
    duration_ms: int
    error: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery of one event to one subscription (the dead letters list these)."""

    subscription_id: int
    outbox_id: int
    member_id: str
    webhook_id: str
    state: str
    attempts: int
    first_at: str | None
    last_status: int | None
    last_error: str | None


# ---------------------------------------------------------------------- signing
def new_secret() -> str:
    """A signing secret: ``whsec_`` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ and base64") from None


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``webhook_id.timestamp.body`` with ``secret``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    mac = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(
    secrets_: Sequence[str], webhook_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt, signed with each of ``secrets_``."""
    return {
        "content-type": CONTENT_TYPE,
        "user-agent": f"kassa-webhooks/{version()}",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, webhook_id, timestamp, body) for s in secrets_),
    }


def verify(
    secret: str, got: Mapping[str, str], body: bytes, now: datetime, tolerance_s: int = TOLERANCE_S
) -> str:
    """The receiver's check: ``got`` (headers, lower-case names) carry a ``v1`` signature
    of ``body`` by ``secret`` and a timestamp within ``tolerance_s`` of ``now``. Returns
    the ``webhook-id``; raises ``SignatureError`` saying what failed."""
    webhook_id = got.get("webhook-id", "")
    stamp = got.get("webhook-timestamp", "")
    signatures = got.get("webhook-signature", "")
    if not webhook_id or not stamp.isdigit() or not signatures:
        raise SignatureError(
            "webhook-id, webhook-timestamp (unix seconds) and webhook-signature are required",
            "нужны заголовки webhook-id, webhook-timestamp (секунды unix) и webhook-signature",
        )
    if abs(now.timestamp() - int(stamp)) > tolerance_s:
        raise SignatureError(
            f"webhook-timestamp {stamp} is more than {tolerance_s} s from now",
            f"webhook-timestamp {stamp} отличается от текущего времени больше чем на "
            f"{tolerance_s} с",
        )
    want = sign(secret, webhook_id, int(stamp), body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), want.encode()):
            return webhook_id
    raise SignatureError(
        "no v1 signature in webhook-signature matches the body with this secret",
        "ни одна подпись v1 в webhook-signature не сходится с телом при этом секрете",
    )


def webhook_id(subscription_id: int, outbox_id: int) -> str:
    """The ``webhook-id`` of an event for a subscription: the same on every attempt."""
    return f"msg_{subscription_id}_{outbox_id}"


def encode_body(event: Mapping[str, Any]) -> bytes:
    """The request body: compact JSON (``orjson``; ``json`` for what it refuses)."""
    try:
        return orjson.dumps(event)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


# ---------------------------------------------------------------------- retry schedule
def step_s(failures: int) -> int:
    """The longest wait after the ``failures``-th failed attempt, seconds: 5 s doubling to
    6 h (``FIRST_STEP_S``, ``MAX_STEP_S``)."""
    return min(MAX_STEP_S, FIRST_STEP_S << min(max(failures - 1, 0), 32))


def backoff_s(failures: int, rng: random.Random) -> float:
    """A wait drawn uniformly from ``[0, step_s(failures)]`` (full jitter), seconds."""
    return rng.uniform(0, step_s(failures))


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header as seconds from ``now`` (delta seconds or an HTTP date),
    at most ``MAX_RETRY_AFTER_S``; None when missing or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER_S))
    try:
        at = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return max(0.0, min((at - now).total_seconds(), float(MAX_RETRY_AFTER_S)))


# ---------------------------------------------------------------------- subscriptions
def check_url(url: str) -> str:
    """The receiver's URL, stripped: ``https://host[:port]/...`` (``http://`` only to a
    loopback host: the members' data and the signatures cross no network in clear), at
    most ``URL_MAX``."""
    url = url.strip()
    parts = urlsplit(url)
    if len(url) > URL_MAX or parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookError(
            f"the receiver's URL must be http:// or https:// with a host, at most {URL_MAX} "
            f"characters: {url[:80]!r}",
            f"адрес получателя должен начинаться с http:// или https:// и содержать хост, "
            f"не длиннее {URL_MAX} знаков: {url[:80]!r}",
            code="bad_url",
            field="url",
        )
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise WebhookError(
            f"the receiver's URL must be https:// (http:// only to 127.0.0.1, ::1 or "
            f"localhost): {url[:80]!r}",
            f"адрес получателя должен начинаться с https:// (http:// только для 127.0.0.1, "
            f"::1 или localhost): {url[:80]!r}",
            code="bad_url",
            field="url",
        )
    return url


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_types(types: str | Sequence[str]) -> tuple[str, ...]:
    """The event types asked for (a list, or text separated by spaces or commas), each one
    of ``outbox.TYPES``, in that order without repeats; empty: every type."""
    given = re.split(r"[\s,]+", types) if isinstance(types, str) else list(types)
    wanted = {t.strip() for t in given if t.strip()}
    unknown = sorted(wanted - _TYPE_SET)
    if unknown:
        raise WebhookError(
            f"unknown event type {unknown[0]!r}; the types are: {', '.join(outbox.TYPES)}",
            f"неизвестный тип события {unknown[0]!r}; типы: {', '.join(outbox.TYPES)}",
            code="bad_types",
            field="types",
        )
    return tuple(t for t in outbox.TYPES if t in wanted)


_SUB_COLS = (
    "id, url, types, state, disabled_reason, created_at, taken_to, previous_secret, previous_until"
)


def _subscription(tx: Tx, row: Sequence[Any], now: datetime) -> Subscription:
    sid = int(row[0])
    counts = dict(
        tx.all(
            "SELECT state, count(*) FROM webhook_deliveries WHERE subscription_id = ? "
            "AND state IN ('pending', 'dead') GROUP BY state",
            (sid,),
        )
    )
    until = row[8]
    return Subscription(
        id=sid,
        url=str(row[1]),
        types=tuple(str(row[2]).split()),
        state=str(row[3]),
        disabled_reason=row[4],
        created_at=str(row[5]),
        cursor=int(row[6]),
        rotating=row[7] is not None and until is not None and until > moment_text(now),
        previous_until=until,
        pending=int(counts.get("pending", 0)),
        dead=int(counts.get("dead", 0)),
    )


def _one(tx: Tx, subscription_id: int, now: datetime) -> Subscription:
    row = tx.one(f"SELECT {_SUB_COLS} FROM webhook_subscriptions WHERE id = ?", (subscription_id,))
    if row is None:
        raise WebhookError(
            f"there is no subscription {subscription_id}",
            f"подписки {subscription_id} нет",
            code="unknown_subscription",
        )
    return _subscription(tx, row, now)


def add(tx: Tx, url: str, types: str | Sequence[str], now: datetime) -> Created:
    """A new active subscription with a new secret; it gets the events written from now
    on (its cursor starts at the outbox's last id; ``replay`` sends older ones)."""
    url, wanted = check_url(url), check_types(types)
    secret = new_secret()
    head = tx.one("SELECT COALESCE(max(id), 0) FROM outbox")[0]
    row = tx.one(
        "INSERT INTO webhook_subscriptions(url, types, secret, state, created_at, taken_to) "
        "VALUES (?, ?, ?, 'active', ?, ?) RETURNING id",
        (url, " ".join(wanted), secret, moment_text(now), int(head)),
    )
    return Created(_one(tx, int(row[0]), now), secret)


def set_types(
    tx: Tx, subscription_id: int, types: str | Sequence[str], now: datetime
) -> Subscription:
    """The event types a subscription gets from its cursor on (empty: all)."""
    wanted = check_types(types)
    _one(tx, subscription_id, now)
    tx.execute(
        "UPDATE webhook_subscriptions SET types = ? WHERE id = ?",
        (" ".join(wanted), subscription_id),
    )
    return _one(tx, subscription_id, now)


def rotate(tx: Tx, subscription_id: int, now: datetime) -> Created:
    """A new secret; the old one signs too for ``ROTATION_GRACE`` (both signatures sent)."""
    _one(tx, subscription_id, now)
    secret = new_secret()
    tx.execute(
        "UPDATE webhook_subscriptions SET previous_secret = secret, secret = ?, "
        "previous_until = ? WHERE id = ?",
        (secret, moment_text(now + ROTATION_GRACE), subscription_id),
    )
    return Created(_one(tx, subscription_id, now), secret)


def set_active(
    tx: Tx, subscription_id: int, active: bool, now: datetime, reason: str = "manual"
) -> Subscription:
    """Enable (its queue goes on from its taken_to) or disable (``reason``: ``manual`` or
    ``gone``) a subscription."""
    _one(tx, subscription_id, now)
    tx.execute(
        "UPDATE webhook_subscriptions SET state = ?, disabled_reason = ? WHERE id = ?",
        ("active" if active else "disabled", None if active else reason, subscription_id),
    )
    _rehead(tx, subscription_id, None)
    return _one(tx, subscription_id, now)


def subscriptions(db: Database, now: datetime) -> list[Subscription]:
    """Every subscription, newest first."""
    with db.reading() as tx:
        rows = tx.all(f"SELECT {_SUB_COLS} FROM webhook_subscriptions ORDER BY id DESC")
        return [_subscription(tx, r, now) for r in rows]


def subscription(db: Database, subscription_id: int, now: datetime) -> Subscription:
    with db.reading() as tx:
        return _one(tx, subscription_id, now)


def subscription_in(tx: Tx, subscription_id: int, now: datetime) -> Subscription:
    """``subscription`` read inside ``tx`` (``WebhookError`` if there is none)."""
    return _one(tx, subscription_id, now)


def whole(name: str, value: int | str) -> int:
    """An outbox id or a subscription id typed in a form: a whole number from 1."""
    text = str(value).strip()
    if not (text.isascii() and text.isdecimal() and len(text) <= 18) or int(text) < 1:
        raise WebhookError(
            f"{name}: a whole number from 1, not {text[:40]!r}",
            f"{name}: целое число от 1, а не «{text[:40]}»",
            code="bad_number",
            field=name,
        )
    return int(text)


def attempts(
    db: Database, subscription_id: int | None = None, *, limit: int = 100, before: int | None = None
) -> list[Attempt]:
    """The delivery log, newest first (of one subscription when given; ids below
    ``before`` for the next page)."""
    rows = _listing(
        db,
        "SELECT id, subscription_id, outbox_id, webhook_id, attempted_at, status, "
        "duration_ms, error FROM webhook_attempts WHERE id < ?",
        before if before is not None else 2**62,
        subscription_id,
        "id DESC",
        limit,
    )
    return [
        Attempt(int(r[0]), int(r[1]), int(r[2]), str(r[3]), str(r[4]), _int(r[5]), int(r[6]), r[7])
        for r in rows
    ]


def deliveries(
    db: Database, subscription_id: int | None = None, state: str = "dead", limit: int = 100
) -> list[Delivery]:
    """Deliveries in ``state`` (the dead letters by default), oldest event first."""
    rows = _listing(
        db,
        "SELECT subscription_id, outbox_id, member_id, state, attempts, first_at, "
        "last_status, last_error FROM webhook_deliveries WHERE state = ?",
        state,
        subscription_id,
        "outbox_id",
        limit,
    )
    return [
        Delivery(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            webhook_id(int(r[0]), int(r[1])),
            str(r[3]),
            int(r[4]),
            r[5],
            _int(r[6]),
            r[7],
        )
        for r in rows
    ]


def _listing(
    db: Database, sql: str, first: Any, subscription_id: int | None, order: str, limit: int
) -> list[Any]:
    """The rows of ``sql`` (one ``?`` bound to ``first``), of one subscription when
    given, in ``order``, at most ``limit``."""
    params: list[Any] = [first]
    if subscription_id is not None:
        sql += " AND subscription_id = ?"
        params.append(subscription_id)
    with db.reading() as tx:
        return tx.all(f"{sql} ORDER BY {order} LIMIT ?", [*params, limit])


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def replay(tx: Tx, subscription_id: int, first_id: int, last_id: int | None, now: datetime) -> int:
    """Send again the subscription's events with outbox ids ``first_id``..``last_id``
    (one when ``last_id`` is None) that its types take, due now, each member's in order,
    with their ``webhook-id``; returns how many. Only ids its cursor has passed (newer
    ones come anyway)."""
    sub = _one(tx, subscription_id, now)
    last = first_id if last_id is None else last_id
    if first_id < 1 or last < first_id or last - first_id >= REPLAY_MAX:
        raise WebhookError(
            f"a replay takes outbox ids from 1 up, first <= last, at most {REPLAY_MAX} of "
            f"them: {first_id}..{last}",
            f"повтор берёт номера событий от 1, первый не больше последнего, не больше "
            f"{REPLAY_MAX}: {first_id}..{last}",
            code="bad_replay",
            field="last",
        )
    last = min(last, sub.cursor)
    sql = "SELECT id, member_id FROM outbox WHERE id >= ? AND id <= ?" + (
        f" AND type IN ({marks(len(sub.types))})" if sub.types else ""
    )
    rows = tx.all(sql, (first_id, last, *sub.types))
    if not rows:
        raise WebhookError(
            f"no event of this subscription's types in outbox ids {first_id}..{last}",
            f"нет событий этих типов с номерами {first_id}..{last}",
            code="nothing_to_replay",
        )
    at = moment_text(now)
    tx.executemany(
        "INSERT INTO webhook_deliveries(subscription_id, outbox_id, member_id, state, head, "
        "next_at, attempts, created_at) VALUES (?, ?, ?, 'pending', 0, ?, 0, ?) "
        "ON CONFLICT (subscription_id, outbox_id) DO UPDATE SET state = 'pending', "
        "next_at = excluded.next_at, attempts = 0, first_at = NULL, claim = NULL, "
        "done_at = NULL",
        [(subscription_id, int(r[0]), str(r[1]), at, at) for r in rows],
    )
    _rehead(tx, subscription_id, sorted({str(r[1]) for r in rows}))
    return len(rows)


def _rehead(tx: Tx, subscription_id: int, members: Sequence[str] | None) -> None:
    """Mark as ``head`` each member's earliest pending delivery (``members``: only
    theirs; None: all), none while the subscription is disabled."""
    base = (
        "UPDATE webhook_deliveries SET head = CASE WHEN EXISTS (SELECT 1 FROM "
        "webhook_subscriptions s WHERE s.id = webhook_deliveries.subscription_id AND "
        "s.state = 'active') AND outbox_id = (SELECT min(m.outbox_id) FROM "
        "webhook_deliveries m WHERE m.subscription_id = webhook_deliveries.subscription_id "
        "AND m.member_id = webhook_deliveries.member_id AND m.state = 'pending') THEN 1 "
        "ELSE 0 END WHERE subscription_id = ? AND state = 'pending'"
    )
    if members is None:
        tx.execute(base, (subscription_id,))
        return
    for i in range(0, len(members), 500):
        part = members[i : i + 500]
        tx.execute(f"{base} AND member_id IN ({marks(len(part))})", (subscription_id, *part))


# ---------------------------------------------------------------------- the console's views
@dataclass(frozen=True, slots=True)
class Health:
    """How a subscription's deliveries go: the last attempt (time ISO UTC, status code or
    None for no answer, error) and its pending deliveries that have failed at least once
    (``failing``: being retried)."""

    last_at: str | None
    last_status: int | None
    last_error: str | None
    failing: int


@dataclass(frozen=True, slots=True)
class LogRow:
    """A row of the console's delivery log: the attempt, its event (outbox id, type,
    member), its number among the attempts of that event, and, on the event's latest
    attempt while it is still pending, when the next one is due (ISO UTC)."""

    id: int
    outbox_id: int
    webhook_id: str
    type: str | None
    member_id: str | None
    number: int
    attempted_at: str
    status: int | None
    duration_ms: int
    error: str | None
    state: str | None
    next_at: str | None


def health(db: Database, subscription_ids: Sequence[int]) -> dict[int, Health]:
    """``Health`` of each of ``subscription_ids`` (one indexed read of its log each)."""
    out: dict[int, Health] = {}
    with db.reading() as tx:
        for sid in subscription_ids:
            last = tx.one(
                "SELECT attempted_at, status, error FROM webhook_attempts "
                "WHERE subscription_id = ? ORDER BY id DESC LIMIT 1",
                (sid,),
            )
            failing = tx.one(
                "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = ? "
                "AND state = 'pending' AND attempts > 0",
                (sid,),
            )[0]
            out[sid] = Health(
                None if last is None else str(last[0]),
                None if last is None else _int(last[1]),
                None if last is None else last[2],
                int(failing),
            )
    return out


def delivery_log(
    db: Database, subscription_id: int, *, limit: int = 50, before: int | None = None
) -> list[LogRow]:
    """The subscription's delivery log, newest first (ids below ``before`` for the next
    page), each attempt with its event and its number (the index of migration
    ``0022_webhook_attempts_event`` counts them)."""
    with db.reading() as tx:
        rows = tx.all(
            "SELECT a.id, a.outbox_id, a.webhook_id, o.type, o.member_id, "
            "(SELECT count(*) FROM webhook_attempts p WHERE p.subscription_id = "
            "a.subscription_id AND p.outbox_id = a.outbox_id AND p.id <= a.id), "
            "a.attempted_at, a.status, a.duration_ms, a.error, d.state, "
            "CASE WHEN d.state = 'pending' AND a.id = (SELECT max(q.id) FROM "
            "webhook_attempts q WHERE q.subscription_id = a.subscription_id AND "
            "q.outbox_id = a.outbox_id) THEN d.next_at END "
            "FROM webhook_attempts a LEFT JOIN outbox o ON o.id = a.outbox_id "
            "LEFT JOIN webhook_deliveries d ON d.subscription_id = a.subscription_id "
            "AND d.outbox_id = a.outbox_id "
            "WHERE a.subscription_id = ? AND a.id < ? ORDER BY a.id DESC LIMIT ?",
            (subscription_id, before if before is not None else 2**62, limit),
        )
    return [
        LogRow(
            int(r[0]),
            int(r[1]),
            str(r[2]),
            r[3],
            r[4],
            int(r[5]),
            str(r[6]),
            _int(r[7]),
            int(r[8]),
            r[9],
            r[10],
            r[11],
        )
        for r in rows
    ]


def delete(tx: Tx, subscription_id: int, now: datetime) -> Subscription:
    """Drop a subscription with its queue, dead letters and log; returns it as it was."""
    sub = _one(tx, subscription_id, now)
    for table in ("webhook_attempts", "webhook_deliveries"):
        tx.execute(f"DELETE FROM {table} WHERE subscription_id = ?", (subscription_id,))
    tx.execute("DELETE FROM webhook_subscriptions WHERE id = ?", (subscription_id,))
    return sub


def moment(name: str, value: str | datetime) -> datetime:
    """A time typed in a form (ISO 8601, ``2026-06-15T09:00`` or with a zone; without
    one it is UTC, as the console shows times)."""
    if isinstance(value, datetime):
        at = value
    else:
        try:
            at = datetime.fromisoformat(value.strip())
        except ValueError:
            raise WebhookError(
                f"{name}: a date and time like 2026-06-15T09:00 (UTC), not {value[:40]!r}",
                f"{name}: дата и время вида 2026-06-15T09:00 (UTC), а не «{value[:40]}»",
                code="bad_time",
                field=name,
            ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def span(tx: Tx, since: datetime, until: datetime) -> tuple[int, int] | None:
    """The outbox ids of the events written in ``[since, until)`` (first, last), or None.
    The ids commit in the order of their ``created_at`` (the emitters hold the feed lock),
    so two binary searches over the primary key find the ends without a scan."""
    low, high = moment_text(since), moment_text(until)
    top = int(tx.one("SELECT COALESCE(max(id), 0) FROM outbox")[0])

    def first_at_or_after(stamp: str) -> int:
        """The least id whose event was written at ``stamp`` or later (top + 1: none)."""
        lo, hi = 1, top + 1
        while lo < hi:
            mid = (lo + hi) // 2
            row = tx.one(
                "SELECT id, created_at FROM outbox WHERE id >= ? ORDER BY id LIMIT 1", (mid,)
            )
            if row is None or str(row[1]) >= stamp:
                hi = mid
            else:
                lo = int(row[0]) + 1
        return lo

    first, end = first_at_or_after(low), first_at_or_after(high)
    last = tx.one("SELECT max(id) FROM outbox WHERE id >= ? AND id < ?", (first, end))[0]
    return None if last is None else (first, int(last))


# ---------------------------------------------------------------------- the rounds
def take(tx: Tx, now: datetime, limit: int = TAKE_CHUNK) -> int:
    """Advance every active subscription's cursor over up to ``limit`` outbox ids, a
    pending delivery for each event of its types, due ``now`` (the head when its member
    has none pending); returns the deliveries made. On PostgreSQL a subscription another node is
    advancing is skipped (``SKIP LOCKED``)."""
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
    subs = tx.all(
        f"SELECT id, types, taken_to FROM webhook_subscriptions WHERE state = 'active' "
        f"ORDER BY id{lock}"
    )
    made = 0
    for sid, types, taken in subs:
        rows = tx.all_by_index(
            "SELECT id, member_id, type FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (int(taken), limit),
        )
        if not rows:
            continue
        wanted = set(str(types).split())
        mine = [r for r in rows if not wanted or r[2] in wanted]
        members = sorted({str(r[1]) for r in mine})
        busy: set[str] = set()
        for i in range(0, len(members), 500):
            part = members[i : i + 500]
            busy.update(
                str(m)
                for (m,) in tx.all(
                    "SELECT DISTINCT member_id FROM webhook_deliveries WHERE "
                    "subscription_id = ? AND state = 'pending' "
                    f"AND member_id IN ({marks(len(part))})",
                    (sid, *part),
                )
            )
        out = []
        at = moment_text(now)
        for oid, member, _type in mine:
            head = 0 if member in busy else 1
            busy.add(str(member))
            out.append((int(sid), int(oid), str(member), head, at, at))
        tx.executemany(
            "INSERT INTO webhook_deliveries(subscription_id, outbox_id, member_id, state, "
            "head, next_at, attempts, created_at) VALUES (?, ?, ?, 'pending', ?, ?, 0, ?) "
            "ON CONFLICT (subscription_id, outbox_id) DO NOTHING",
            out,
        )
        tx.execute(
            "UPDATE webhook_subscriptions SET taken_to = ? WHERE id = ?", (int(rows[-1][0]), sid)
        )
        made += len(out)
    return made


@dataclass(frozen=True, slots=True)
class _Job:
    subscription_id: int
    outbox_id: int
    member_id: str
    attempts: int
    first_at: str
    url: str
    secrets: tuple[str, ...]
    body: bytes
    follower: bool = False  # claimed behind its member's head (``followers``)


@dataclass(frozen=True, slots=True)
class _Outcome:
    job: _Job
    at: datetime
    status: int | None
    retry_after: str | None
    duration_ms: int
    error: str | None


def claim(tx: Tx, now: datetime, token: str, limit: int = SEND_CHUNK) -> list[tuple[Any, ...]]:
    """Claim up to ``limit`` due heads of active subscriptions for ``CLAIM_S`` with
    ``token``; returns their rows (subscription, outbox id, member, attempts before this
    one, first attempt's time)."""
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
    rows = tx.all_by_index(
        "SELECT subscription_id, outbox_id, member_id, attempts, first_at "
        "FROM webhook_deliveries WHERE state = 'pending' AND head = 1 AND next_at <= ? "
        f"ORDER BY next_at LIMIT ?{lock}",
        (moment_text(now), limit),
    )
    if rows:
        tx.executemany(
            "UPDATE webhook_deliveries SET next_at = ?, claim = ?, attempts = attempts + 1, "
            "first_at = COALESCE(first_at, ?) WHERE subscription_id = ? AND outbox_id = ?",
            [
                (moment_text(now + timedelta(seconds=CLAIM_S)), token, moment_text(now), r[0], r[1])
                for r in rows
            ],
        )
    return [tuple(r) for r in rows]


def followers(
    tx: Tx, heads: Sequence[tuple[Any, ...]], now: datetime, token: str, run: int = RUN_MAX
) -> list[tuple[Any, ...]]:
    """Claim with ``token``, behind each claimed head of ``heads`` (``claim``'s rows), its
    member's next pending deliveries that are due, in order, up to ``run`` with the head
    (stopping at the first not due); returns their rows as ``claim`` does. Their
    ``attempts`` and ``first_at`` change only if they are sent (``Deliverer._record``);
    nobody else claims them meanwhile: only heads are claimed, and only the claim's
    holder makes a member's next delivery the head."""
    out: list[tuple[Any, ...]] = []
    head_of: dict[tuple[int, str], int] = {(int(h[0]), str(h[2])): int(h[1]) for h in heads}
    by_sub: dict[int, list[str]] = {}
    for sid, member in sorted(head_of):
        by_sub.setdefault(sid, []).append(member)
    at = moment_text(now)
    for sid, members in by_sub.items():
        for i in range(0, len(members), 500):
            part = members[i : i + 500]
            # each member's pending deliveries numbered in order: the head is the first
            rows = tx.all(
                "SELECT subscription_id, outbox_id, member_id, attempts, first_at, next_at "
                "FROM (SELECT subscription_id, outbox_id, member_id, attempts, first_at, "
                "next_at, row_number() OVER (PARTITION BY member_id ORDER BY outbox_id) AS n "
                "FROM webhook_deliveries WHERE subscription_id = ? AND state = 'pending' "
                f"AND member_id IN ({marks(len(part))})) AS q WHERE n <= ? "
                "ORDER BY member_id, outbox_id",
                (sid, *part, run),
            )
            stopped: set[str] = set()
            for r in rows:
                member = str(r[2])
                if int(r[1]) <= head_of[(sid, member)] or member in stopped:
                    continue
                if str(r[5]) > at:
                    stopped.add(member)  # not due: it and the member's later ones wait
                    continue
                out.append(tuple(r[:5]))
    if out:
        tx.executemany(
            "UPDATE webhook_deliveries SET claim = ? WHERE subscription_id = ? AND outbox_id = ?",
            [(token, r[0], r[1]) for r in out],
        )
    return out


def prune(tx: Tx, now: datetime) -> int:
    """Drop log rows and done deliveries older than ``KEEP``; returns the rows dropped."""
    cut = moment_text(now - KEEP)
    a = tx.execute("DELETE FROM webhook_attempts WHERE attempted_at < ?", (cut,)).rowcount
    d = tx.execute(
        "DELETE FROM webhook_deliveries WHERE state = 'done' AND done_at < ?", (cut,)
    ).rowcount
    return int(a) + int(d)


class Deliverer(RoundWorker):
    """The delivery thread of a serving node (the app's lifespan starts it); ``round``
    also runs on its own (tests, the bench). ``encode`` turns an outbox row into the
    CloudEvents object; ``clock`` (the context's unless given) times the attempts and the
    retries; ``transport`` is httpx's (a real network unless given); ``rng`` draws the
    jitter; ``concurrency``: members' runs sent at once (sender threads and pooled
    connections, ``PARALLEL`` unless given), a receiver answering in 200 ms then taking
    about ``concurrency`` x 5 requests a second instead of 5."""

    name = "kassa-webhooks"
    idle_s = IDLE_S

    def __init__(
        self,
        ctx: Context,
        encode: Encoder,
        *,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
        lease: Lease | None = None,
        concurrency: int = PARALLEL,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        super().__init__(ctx, lease)
        self.encode = encode
        self.clock: Clock = clock or ctx.clock
        self.rng = rng or random.Random()
        self.http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            # httpx.Client is thread-safe: the sender threads share its connections
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self.concurrency = concurrency
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="kassa-webhook-send")
        self._pruned: datetime | None = None

    def round(self, busy: bool = False) -> int:
        """Take new events, send what is due, record the outcomes; returns attempts made.
        Each step reads first whether it has anything to do, so an idle back office (no
        subscription, nothing due) gets no write transaction from it."""
        now = self.clock.now()
        db = self.ctx.db
        with db.reading() as tx:
            behind, due = tx.one(
                "SELECT (SELECT count(*) FROM webhook_subscriptions WHERE state = 'active' "
                "AND taken_to < (SELECT COALESCE(max(id), 0) FROM outbox)), "
                "(SELECT count(*) FROM (SELECT 1 FROM webhook_deliveries WHERE "
                "state = 'pending' AND head = 1 AND next_at <= ? LIMIT 1) AS d)",
                (moment_text(now),),
            )
        if behind:
            with db.transaction() as tx:
                take(tx, now)
        if self._pruned is None or now - self._pruned >= PRUNE_EVERY:
            with db.transaction() as tx:
                prune(tx, now)
            self._pruned = now
        if not behind and not due:
            return 0
        token = secrets.token_hex(8)
        with db.transaction() as tx:
            rows = claim(tx, now, token)
            queued = followers(tx, rows, now, token)
            jobs = self._jobs(tx, rows, now) + self._jobs(tx, queued, now, follower=True)
        if not jobs:
            return 0
        runs: dict[tuple[int, str], list[_Job]] = {}
        for job in sorted(jobs, key=lambda j: j.outbox_id):
            runs.setdefault((job.subscription_id, job.member_id), []).append(job)
        # the longest runs first (the round waits for its slowest); each run in one thread
        longest = sorted(runs.values(), key=len, reverse=True)
        outcomes = [o for sent in self.pool.map(self._send_run, longest) for o in sent]
        tried = {(o.job.subscription_id, o.job.outbox_id) for o in outcomes}
        self._record(
            outcomes, token, [j for j in jobs if (j.subscription_id, j.outbox_id) not in tried]
        )
        return len(outcomes)

    def busy_pause(self, elapsed: float) -> float:
        return elapsed  # at most half the time while tills push

    def stop(self, timeout: float = 10.0) -> None:
        super().stop(timeout)
        self.pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.http.close()

    def _jobs(
        self, tx: Tx, rows: list[tuple[Any, ...]], now: datetime, *, follower: bool = False
    ) -> list[_Job]:
        if not rows:
            return []
        subs: dict[int, tuple[str, tuple[str, ...]]] = {}
        for sid, url, secret, previous, until in tx.all(
            "SELECT id, url, secret, previous_secret, previous_until FROM webhook_subscriptions "
            f"WHERE id IN ({marks(len({r[0] for r in rows}))})",
            sorted({int(r[0]) for r in rows}),
        ):
            keys: tuple[str, ...] = (str(secret),)
            if previous is not None and until is not None and until > moment_text(now):
                keys += (str(previous),)
            subs[int(sid)] = (str(url), keys)
        ids = sorted({int(r[1]) for r in rows})
        events: dict[int, outbox.Row] = {}
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            for r in tx.all(
                "SELECT id, member_id, member_seq, type, occurred_at, data, created_at "
                f"FROM outbox WHERE id IN ({marks(len(part))})",
                part,
            ):
                events[int(r[0])] = outbox.row_of(r)
        return [
            _Job(
                int(sid),
                int(oid),
                str(member),
                int(tries),
                str(first or moment_text(now)),
                *subs[int(sid)],
                encode_body(self.encode(events[int(oid)])),
                follower,
            )
            for sid, oid, member, tries, first in rows
        ]

    def _send_run(self, jobs: list[_Job]) -> list[_Outcome]:
        """A member's run in order, each after the previous one's 2xx (module doc)."""
        out: list[_Outcome] = []
        for job in jobs:
            out.append(o := self._send(job))
            if o.status is None or not 200 <= o.status < 300:
                break
        return out

    def _send(self, job: _Job) -> _Outcome:
        at = self.clock.now()
        stamp = int(at.timestamp())
        wid = webhook_id(job.subscription_id, job.outbox_id)
        began = time.monotonic()
        status: int | None = None
        retry: str | None = None
        error: str | None = None
        try:
            r = self.http.post(
                job.url, content=job.body, headers=headers(job.secrets, wid, stamp, job.body)
            )
            status, retry = r.status_code, r.headers.get("retry-after")
        except httpx.HTTPError as e:
            error = f"{type(e).__name__}: {e}"[:ERROR_MAX]
        except Exception as e:  # a bad URL the parser let through, say: logged, retried
            error = f"{type(e).__name__}: {e}"[:ERROR_MAX]
        ms = int((time.monotonic() - began) * 1000)
        return _Outcome(job, at, status, retry, ms, error)

    def _record(self, outcomes: list[_Outcome], token: str, unsent: Sequence[_Job] = ()) -> None:
        """Write the outcomes (module doc, step 4) where this round's claim still holds;
        ``unsent``: followers behind a failure, whose claim is let go untouched."""
        now = self.clock.now()
        gone: set[int] = set()
        released: dict[int, set[str]] = {}
        with self.ctx.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO webhook_attempts(subscription_id, outbox_id, webhook_id, "
                "attempted_at, status, duration_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        o.job.subscription_id,
                        o.job.outbox_id,
                        webhook_id(o.job.subscription_id, o.job.outbox_id),
                        moment_text(o.at),
                        o.status,
                        o.duration_ms,
                        o.error,
                    )
                    for o in outcomes
                ],
            )
            updates = []
            for o in outcomes:
                state, next_at = self._verdict(o, now)
                if o.status == 410:
                    gone.add(o.job.subscription_id)
                updates.append(
                    (
                        state,
                        moment_text(next_at),
                        state,
                        o.status,
                        o.error,
                        moment_text(now) if state == "done" else None,
                        1 if o.job.follower else 0,  # a head's attempt was counted at its claim
                        moment_text(o.at),
                        o.job.subscription_id,
                        o.job.outbox_id,
                        token,
                    )
                )
                if state != "pending" or o.job.follower:
                    # done or dead: the member's next becomes its head; a follower that
                    # failed is its member's earliest pending now, so the head too. (An
                    # update a lost claim skips makes this rehead needless, not wrong:
                    # the head is always recomputed as the earliest pending.)
                    released.setdefault(o.job.subscription_id, set()).add(o.job.member_id)
            # one statement for the round (a pipeline on PostgreSQL), not one per outcome
            tx.executemany(
                "UPDATE webhook_deliveries SET state = ?, next_at = ?, "
                "head = CASE WHEN ? = 'pending' THEN head ELSE 0 END, "
                "claim = NULL, last_status = ?, last_error = ?, done_at = ?, "
                "attempts = attempts + ?, first_at = COALESCE(first_at, ?) "
                "WHERE subscription_id = ? AND outbox_id = ? AND claim = ? "
                "AND state = 'pending'",
                updates,
            )
            if unsent:
                tx.executemany(
                    "UPDATE webhook_deliveries SET claim = NULL WHERE subscription_id = ? "
                    "AND outbox_id = ? AND claim = ?",
                    [(j.subscription_id, j.outbox_id, token) for j in unsent],
                )
            for sid, members in released.items():
                _rehead(tx, sid, sorted(members))
            for sid in gone:
                set_active(tx, sid, False, now, reason="gone")

    def _verdict(self, o: _Outcome, now: datetime) -> tuple[str, datetime]:
        """The delivery's state after this outcome, and when it is due again."""
        if o.status is not None and 200 <= o.status < 300:
            return "done", now
        if o.status == 410:
            return "pending", now  # sent when the subscription is enabled again
        first = datetime.fromisoformat(o.job.first_at)
        if now - first >= RETRY_FOR:
            return "dead", now
        wait = retry_after_s(o.retry_after, now) if o.status == 429 else None
        if wait is None:
            wait = backoff_s(o.job.attempts + 1, self.rng)
        return "pending", now + timedelta(seconds=wait)

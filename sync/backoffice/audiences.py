"""Audiences: saved segments of members over the ledger, RFM and ABC scores, a control
group per segment, membership with entered/left events, and exports (CSV, NDJSON).

Rules (``Rules``, a msgspec Struct decoded with unknown fields refused): every rule given
must hold (AND); a rule left out does not filter. Days are the programme's local days
(``today``), money integer kopecks, points integer points:

- ``recency_days {min, max}``: days since the member's last cheque (``purchases.day``);
  a member who never bought has no recency and matches no recency rule;
- ``frequency {window_days, min, max}``: cheques in the last ``window_days`` days (today
  included); ``min`` 0 includes the members with none;
- ``monetary_kop {window_days, min, max}``: what the member paid for those cheques minus
  what their refunds of the window gave back (``refunds.amount_kop``), kopecks;
- ``tiers``: the member's tier as the ledger last wrote it (``members.tier``);
- ``registered_at``: the stores the member joined at (``members.store_id``);
- ``purchased_at {stores, window_days}``: a cheque at one of the stores (in the window
  when given);
- ``birthday_months``: 1-12, of ``members.birthday`` (given at registration; a member
  loaded without one matches no month);
- ``balance {min, max}``: points (``members.balance``: available + pending - debt);
- ``expiring {within_days, min_points}``: at least ``min_points`` points expiring within
  ``within_days`` days from today (``members.expiring_points`` / ``expiring_on``);
- ``collection {mechanic, min, max}``: units collected toward the next reward of a
  collection mechanic of the programme (the member state's ``collections``; 0 when none);
- ``rfm {r, f, m}`` and ``abc``: the nightly scores (``score``), lists of allowed values;
- ``marketing_consent`` (default true): only members who agreed to marketing messages.

Merged, erased and blocked members are never in a segment. A rule set compiles to ONE
SQL statement over ``members`` (correlated subqueries on the purchases' and refunds'
member indexes), the same text on SQLite and PostgreSQL except the collection's JSON
reading; every value is a parameter.

Scores (``score``, nightly): over the last ``RFM_WINDOW_DAYS`` days, for each member with a
cheque there: R from the last cheque's day, F the cheques, M the net spend; each 1-5 as
its quintile by rank (``1 + 5 * (rank - 1) / n``, ties share the lower score; 5 is the
most recent / most frequent / biggest); ABC by share of the net spend, biggest first: A
while the spend before the member is under 80 % of the total, B under 95 %, else C (and C
for no positive spend). Stored per member in ``member_scores`` (replaced whole).

Control group: a member is in a segment's control group when the first 8 bytes of
SHA-256(salt, member id) modulo 10,000 fall under ``control_pct`` * 100: stable for a
member and a salt (the segment's, random at creation, or a campaign's own), independent
across salts. Control members are in the segment (and its counts) and marked in exports
(``control`` = 1): the marketing system leaves them out, so the "net response" is the
difference between the two groups.

Membership (``evaluate``): the rules' members now against ``segment_members``; who came in
gets ``segment.entered``, who went out ``segment.left`` (outbox), in the transaction that
rewrites the membership. ``evaluate`` holds both sets in memory (member ids).

Exports stream the rules' members in keyset pages of ``EXPORT_PAGE`` (member id order,
one read transaction a page, bounded memory). No phone in clear (``phone_masked`` only).
CSV is for people opening it in Excel: UTF-8 with a byte order mark (without one, Excel
reads UTF-8 as the ANSI code page and garbles Cyrillic), ``;`` by default (Russian
Excel's list separator; ``,`` as an option), CRLF lines, and a text cell starting with
``= + - @`` (a phone mask starts with ``+``) prefixed with ``'`` so Excel shows it rather
than evaluating it; NDJSON is for machines: values verbatim, one JSON object a line.
Scheduled exports (``segment_exports``) write a file every ``every_hours`` to the
directory the back office is given (``run_due_exports``), written whole then renamed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson

from agent.errors import InputError
from agent.private import create_private, fsync_dir
from agent.rules import Programme
from sync.backoffice import outbox
from sync.backoffice.context import Context, moment_text
from sync.backoffice.db import Tx, marks
from sync.backoffice.worker import RoundWorker

RFM_WINDOW_DAYS = 365
"""The days the nightly RFM and ABC scores look back over."""
EXPORT_PAGE = 5_000
"""Members read per keyset page of an export."""
MAX_WINDOW_DAYS = 3_660
MAX_LIST = 200
"""The most values one list rule takes (stores, tiers...)."""
MAX_NAME = 100
MAX_AMOUNT = 10**15
"""The largest number a rule takes (kopecks, points, days, cheques)."""
NIGHTLY_HOUR = 3
"""The local hour from which the nightly job runs (once a local day)."""
NIGHTLY_KEY = "audiences_nightly_day"
FORMATS = ("csv", "ndjson")
DELIMITERS = (";", ",")
EXPORT_COLUMNS = (
    "member_id",
    "code",
    "first_name",
    "phone_masked",
    "tier",
    "balance",
    "expiring_points",
    "expiring_on",
    "store_id",
    "r",
    "f",
    "m",
    "abc",
    "control",
)
_BOM = "\ufeff"
_RISKY = ("=", "+", "-", "@", "\t", "\r")


class SegmentError(InputError):
    """A segment, rule set or export refused: the message names the field and why;
    nothing was written."""

    code = "segment_refused"
    title_ru = "Сегмент не сохранён"
    title_en = "Segment not saved"

    def __init__(
        self, message_en: str, message_ru: str, *, field: str = "rules", **details: Any
    ) -> None:
        """``field``: the dotted path of what was refused (``frequency.min``, ``name``)."""
        super().__init__(f"{field}: {message_en}", f"{field}: {message_ru}", field=field, **details)


# ---------------------------------------------------------------------- rules
class Range(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """A closed range; either end may be left out."""

    min: int | None = None
    max: int | None = None


class Window(Range, frozen=True):
    """A range over the last ``window_days`` days (today included)."""

    window_days: int = 365


class PurchasedAt(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    stores: list[str]
    window_days: int | None = None


class Expiring(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    within_days: int
    min_points: int = 1


class Collection(Range, frozen=True):
    mechanic: str = ""


class Rfm(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    r: list[int] | None = None
    f: list[int] | None = None
    m: list[int] | None = None


class Rules(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """A segment's rule set (see the module docstring for each rule)."""

    recency_days: Range | None = None
    frequency: Window | None = None
    monetary_kop: Window | None = None
    tiers: list[str] | None = None
    registered_at: list[str] | None = None
    purchased_at: PurchasedAt | None = None
    birthday_months: list[int] | None = None
    balance: Range | None = None
    expiring: Expiring | None = None
    collection: Collection | None = None
    rfm: Rfm | None = None
    abc: list[str] | None = None
    marketing_consent: bool = True


_EXPECTED = re.compile(r"Expected `(.+?)`, got `(.+?)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(.+?)`")
_MISSING = re.compile(r"Object missing required field `(.+?)`")
_AT = re.compile(r" - at `\$\.?(.*)`$")
_KINDS_RU = {"int": "целое число", "str": "строка", "array": "список", "object": "объект"}


def _decode_failure(message: str) -> SegmentError:
    """A msgspec validation message as a ``SegmentError`` naming the field (its dotted
    path in the rule set) in English and Russian."""
    at = _AT.search(message)
    path = re.sub(r"\[(\d+)\]", r".\1", at.group(1)) if at else ""
    if m := _UNKNOWN.search(message):
        field = f"{path}.{m[1]}" if path else m[1]
        return SegmentError(
            "no such rule or setting", "такого правила или параметра нет", field=field
        )
    if m := _MISSING.search(message):
        field = f"{path}.{m[1]}" if path else m[1]
        return SegmentError("is required", "обязательное поле не заполнено", field=field)
    field = path or "rules"
    if m := _EXPECTED.search(message):
        want, got = (
            " | ".join(_KINDS_RU.get(k.strip(), k.strip()) for k in m[1].split("|")),
            _KINDS_RU.get(m[2], m[2]),
        )
        return SegmentError(
            f"must be {m[1]}, not {m[2]}",
            f"нужно значение вида «{want}», а не «{got}»",
            field=field,
        )
    return SegmentError(message, "неверное значение", field=field)


def _check_range(field: str, r: Range | None, top: int = MAX_AMOUNT, low: int = 0) -> None:
    if r is None:
        return
    if r.min is None and r.max is None:
        raise SegmentError("give min, max or both", "укажите «от», «до» или оба", field=field)
    for end, value in (("min", r.min), ("max", r.max)):
        if value is not None and not low <= value <= top:
            raise SegmentError(
                f"must be from {low} to {top}",
                f"должно быть от {low} до {top}",
                field=f"{field}.{end}",
            )
    if r.min is not None and r.max is not None and r.min > r.max:
        raise SegmentError(
            "is greater than max",
            "«от» больше, чем «до»",
            field=f"{field}.min",
            min=r.min,
            max=r.max,
        )


def _check_days(field: str, days: int | None, low: int = 1) -> None:
    if days is not None and not low <= days <= MAX_WINDOW_DAYS:
        raise SegmentError(
            f"must be from {low} to {MAX_WINDOW_DAYS} days",
            f"должно быть от {low} до {MAX_WINDOW_DAYS} дней",
            field=field,
        )


def _check_list(field: str, values: Sequence[Any] | None, allowed: Sequence[Any] = ()) -> None:
    if values is None:
        return
    if not values:
        raise SegmentError("the list is empty", "список пуст", field=field)
    if len(values) > MAX_LIST:
        raise SegmentError(
            f"at most {MAX_LIST} values", f"не больше {MAX_LIST} значений", field=field
        )
    for i, v in enumerate(values):
        if allowed and v not in allowed:
            shown = ", ".join(str(a) for a in allowed)
            raise SegmentError(
                f"{v} is not one of {shown}", f"{v} — не из списка: {shown}", field=f"{field}.{i}"
            )
        if isinstance(v, str) and not v.strip():
            raise SegmentError("is empty", "пустое значение", field=f"{field}.{i}")


def parse_rules(doc: Any, programme: Programme | None = None) -> Rules:
    """A rule set from a JSON object (a dict, or its JSON text/bytes), checked: types,
    ranges, days, lists, the programme's tiers and collection mechanics when
    ``programme`` is given; raises ``SegmentError`` naming the field."""
    try:
        if isinstance(doc, str | bytes):
            rules = msgspec.json.decode(doc, type=Rules)
        else:
            rules = msgspec.convert(doc, Rules)
    except msgspec.ValidationError as e:
        raise _decode_failure(str(e)) from None
    except msgspec.DecodeError:
        raise SegmentError("is not a JSON object", "это не объект JSON", field="rules") from None
    _check_range("recency_days", rules.recency_days, MAX_WINDOW_DAYS * 10)
    for name, w in (("frequency", rules.frequency), ("monetary_kop", rules.monetary_kop)):
        _check_range(name, w)
        if w is not None:
            _check_days(f"{name}.window_days", w.window_days)
    tiers = [t.code for t in programme.tiers] if programme is not None else []
    _check_list("tiers", rules.tiers, tiers)
    _check_list("registered_at", rules.registered_at)
    if rules.purchased_at is not None:
        _check_list("purchased_at.stores", rules.purchased_at.stores)
        _check_days("purchased_at.window_days", rules.purchased_at.window_days)
    _check_list("birthday_months", rules.birthday_months, range(1, 13))
    _check_range("balance", rules.balance, low=-MAX_AMOUNT)
    if rules.expiring is not None:
        _check_days("expiring.within_days", rules.expiring.within_days, low=0)
        if not 1 <= rules.expiring.min_points <= MAX_AMOUNT:
            raise SegmentError(
                "must be at least 1", "должно быть не меньше 1", field="expiring.min_points"
            )
    if rules.collection is not None:
        mechanics = [c.id for c in programme.collections] if programme is not None else []
        if not rules.collection.mechanic:
            raise SegmentError(
                "is required", "обязательное поле не заполнено", field="collection.mechanic"
            )
        if programme is not None and rules.collection.mechanic not in mechanics:
            raise SegmentError(
                f"the programme has no collection {rules.collection.mechanic!r}"
                + (f" (it has {', '.join(mechanics)})" if mechanics else ""),
                f"в программе нет коллекции «{rules.collection.mechanic}»"
                + (f" (есть: {', '.join(mechanics)})" if mechanics else ""),
                field="collection.mechanic",
            )
        _check_range("collection", rules.collection)
    if rules.rfm is not None:
        if rules.rfm.r is None and rules.rfm.f is None and rules.rfm.m is None:
            raise SegmentError("give r, f or m", "укажите r, f или m", field="rfm")
        for part in ("r", "f", "m"):
            _check_list(f"rfm.{part}", getattr(rules.rfm, part), range(1, 6))
    _check_list("abc", rules.abc, ("A", "B", "C"))
    return rules


def rules_json(rules: Rules) -> str:
    """The rule set as stored: compact JSON, the rules given only."""
    return msgspec.json.encode(rules).decode()


# ---------------------------------------------------------------------- compiling
def today(ctx: Context, tx: Tx | None = None) -> date:
    """The programme's local day now (UTC before any programme)."""
    rules = ctx.programmes.get(tx=tx)
    now = ctx.clock.now()
    return now.astimezone(rules.tz).date() if rules is not None else now.astimezone(UTC).date()


def _since(day: date, window_days: int) -> str:
    return (day - timedelta(days=window_days - 1)).isoformat()


def _within(
    conds: list[str], params: list[Any], expr: str, expr_params: Sequence[Any], r: Range
) -> None:
    if r.min is not None:
        conds.append(f"{expr} >= ?")
        params.extend([*expr_params, r.min])
    if r.max is not None:
        conds.append(f"{expr} <= ?")
        params.extend([*expr_params, r.max])


def _one_of(conds: list[str], params: list[Any], expr: str, values: Sequence[Any]) -> None:
    conds.append(f"{expr} IN ({marks(len(values))})")
    params.extend(values)


def compile_where(rules: Rules, dialect: str, day: date) -> tuple[str, list[Any]]:
    """The WHERE clause over ``members m`` selecting the rule set's members on ``day`` (the
    programme's local day), and its parameters."""
    conds = ["m.merged_into IS NULL", "m.erased_at IS NULL", "m.blocked = 0"]
    params: list[Any] = []
    if rules.marketing_consent:
        conds.append("m.consent_marketing = 1")
    if (rec := rules.recency_days) is not None:
        last = "(SELECT max(p.day) FROM purchases p WHERE p.member_id = m.member_id)"
        if rec.min is not None:  # at least min days ago: on or before today - min
            conds.append(f"{last} <= ?")
            params.append((day - timedelta(days=rec.min)).isoformat())
        if rec.max is not None:
            conds.append(f"{last} >= ?")
            params.append((day - timedelta(days=rec.max)).isoformat())
    if (w := rules.frequency) is not None:
        expr = "(SELECT count(*) FROM purchases p WHERE p.member_id = m.member_id AND p.day >= ?)"
        _within(conds, params, expr, [_since(day, w.window_days)], w)
    if (w := rules.monetary_kop) is not None:
        expr = (
            "(COALESCE((SELECT sum(p.paid_kop) FROM purchases p WHERE p.member_id = m.member_id "
            "AND p.day >= ?), 0) - COALESCE((SELECT sum(r.amount_kop) FROM refunds r "
            "WHERE r.member_id = m.member_id AND r.day >= ?), 0))"
        )
        since = _since(day, w.window_days)
        _within(conds, params, expr, [since, since], w)
    if rules.tiers is not None:
        _one_of(conds, params, "m.tier", rules.tiers)
    if rules.registered_at is not None:
        _one_of(conds, params, "m.store_id", rules.registered_at)
    if (at := rules.purchased_at) is not None:
        inner = f"p.store_id IN ({marks(len(at.stores))})"
        params.extend(at.stores)
        if at.window_days is not None:
            inner += " AND p.day >= ?"
            params.append(_since(day, at.window_days))
        conds.append(
            f"EXISTS (SELECT 1 FROM purchases p WHERE p.member_id = m.member_id AND {inner})"
        )
    if rules.birthday_months is not None:
        _one_of(
            conds, params, "substr(m.birthday, 6, 2)", [f"{n:02d}" for n in rules.birthday_months]
        )
    if rules.balance is not None:
        _within(conds, params, "m.balance", [], rules.balance)
    if (ex := rules.expiring) is not None:
        conds.append("m.expiring_points >= ? AND m.expiring_on >= ? AND m.expiring_on <= ?")
        params.extend(
            [ex.min_points, day.isoformat(), (day + timedelta(days=ex.within_days)).isoformat()]
        )
    if (c := rules.collection) is not None:
        if dialect == "postgresql":
            units = (
                "COALESCE((SELECT CAST(c.v ->> 1 AS BIGINT) FROM jsonb_array_elements("
                "CAST(m.state AS jsonb) -> 'collections') AS c(v) WHERE c.v ->> 0 = ? LIMIT 1), 0)"
            )
        else:
            units = (
                "COALESCE((SELECT json_extract(c.value, '$[1]') FROM json_each(m.state, "
                "'$.collections') c WHERE json_extract(c.value, '$[0]') = ? LIMIT 1), 0)"
            )
        _within(conds, params, units, [c.mechanic], c)
    scored: list[str] = []
    if (rfm := rules.rfm) is not None:
        for part in ("r", "f", "m"):
            if (values := getattr(rfm, part)) is not None:
                _one_of(scored, params, f"s.{part}", values)
    if rules.abc is not None:
        _one_of(scored, params, "s.abc", rules.abc)
    if scored:
        conds.append(
            "EXISTS (SELECT 1 FROM member_scores s WHERE s.member_id = m.member_id AND "
            + " AND ".join(scored)
            + ")"
        )
    return " AND ".join(conds), params


def count(ctx: Context, rules: Rules) -> int:
    """How many members the rule set selects now (the console's live preview)."""
    with ctx.db.reading() as tx:
        where, params = compile_where(rules, tx.dialect, today(ctx, tx))
        return int(tx.one(f"SELECT count(*) FROM members m WHERE {where}", params)[0])


def in_control(salt: str, member_id: str, pct: int) -> bool:
    """Whether ``member_id`` is in the control group of ``pct`` percent under ``salt``."""
    digest = hashlib.sha256(f"{salt}\x00{member_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < pct * 100


# ---------------------------------------------------------------------- segments
@dataclass(frozen=True, slots=True)
class Segment:
    """A saved segment: its rules, control-group share (percent) and salt, who made and
    last changed it (ISO UTC times), and its last evaluation (members, of them control)."""

    segment_id: str
    name: str
    rules: Rules
    control_pct: int
    salt: str
    created_at: str
    created_by: str
    updated_at: str
    updated_by: str
    evaluated_at: str | None
    members: int
    control_members: int


_SEGMENT_COLS = (
    "segment_id, name, rules, control_pct, salt, created_at, created_by, updated_at, "
    "updated_by, evaluated_at, members, control_members"
)


def _segment(r: Sequence[Any]) -> Segment:
    return Segment(
        r[0],
        r[1],
        msgspec.json.decode(r[2], type=Rules),
        int(r[3]),
        r[4],
        r[5],
        r[6],
        r[7],
        r[8],
        r[9],
        int(r[10]),
        int(r[11]),
    )


def segments(ctx: Context) -> list[Segment]:
    """Every saved segment, by name (no cap: a programme keeps as many as it needs)."""
    with ctx.db.reading() as tx:
        rows = tx.all(f"SELECT {_SEGMENT_COLS} FROM segments ORDER BY name, segment_id")
    return [_segment(r) for r in rows]


def read(tx: Tx, segment_id: str) -> Segment | None:
    """The segment ``segment_id`` read through ``tx``, or None."""
    row = tx.one(f"SELECT {_SEGMENT_COLS} FROM segments WHERE segment_id = ?", (segment_id,))
    return None if row is None else _segment(row)


def get(ctx: Context, segment_id: str) -> Segment | None:
    with ctx.db.reading() as tx:
        return read(tx, segment_id)


def not_found(segment_id: str) -> SegmentError:
    return SegmentError(
        "no such segment", "такого сегмента нет", field="segment_id", value=segment_id
    )


def parse_name(name: str) -> str:
    text = name.strip()
    if not text:
        raise SegmentError("is required", "обязательное поле не заполнено", field="name")
    if len(text) > MAX_NAME:
        raise SegmentError(
            f"at most {MAX_NAME} characters", f"не больше {MAX_NAME} символов", field="name"
        )
    return text


def parse_pct(value: str | int) -> int:
    """A control-group share: a whole percent from 0 to 50."""
    text = str(value).strip() or "0"
    if not text.isdigit() or not 0 <= int(text) <= 50:
        raise SegmentError(
            f"must be a whole percent from 0 to 50, not {value!r}",
            f"нужен целый процент от 0 до 50, а не «{value}»",
            field="control_pct",
        )
    return int(text)


def save(
    tx: Tx,
    now: datetime,
    actor: str,
    name: str,
    rules: Rules,
    control_pct: int,
    *,
    segment_id: str | None = None,
    salt: str | None = None,
) -> Segment:
    """Create a segment (``segment_id`` None) or change one, in ``tx``. A new segment's
    salt is ``salt`` (a campaign's) or random; a change keeps it unless ``salt`` is given,
    so its members stay in or out of the control group."""
    stamp = now.isoformat()
    doc = rules_json(rules)
    if segment_id is None:
        segment_id = "seg-" + secrets.token_hex(5)
        tx.execute(
            f"INSERT INTO segments({_SEGMENT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,NULL,0,0)",
            (
                segment_id,
                name,
                doc,
                control_pct,
                salt or secrets.token_hex(8),
                stamp,
                actor,
                stamp,
                actor,
            ),
        )
    else:
        done = tx.execute(
            "UPDATE segments SET name = ?, rules = ?, control_pct = ?, "
            "salt = COALESCE(?, salt), updated_at = ?, updated_by = ? WHERE segment_id = ?",
            (name, doc, control_pct, salt, stamp, actor, segment_id),
        )
        if done.rowcount == 0:
            raise not_found(segment_id)
    found = read(tx, segment_id)
    assert found is not None
    return found


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One evaluation of a segment: members now (of them control), who entered, who left."""

    segment_id: str
    members: int
    control_members: int
    entered: int
    left: int


def evaluate(ctx: Context, segment_id: str) -> Evaluation:
    """Materialise the segment's membership now: diff against the last one, rewrite it and
    emit ``segment.entered`` / ``segment.left`` for each member who changed, all in one
    transaction (the feed lock the outbox needs). ``SegmentError`` if no such segment."""
    now = ctx.clock.now()
    with ctx.db.transaction(feed=True) as tx:
        seg = read(tx, segment_id)
        if seg is None:
            raise not_found(segment_id)
        where, params = compile_where(seg.rules, tx.dialect, today(ctx, tx))
        current = {r[0] for r in tx.all(f"SELECT m.member_id FROM members m WHERE {where}", params)}
        before = {
            r[0]
            for r in tx.all(
                "SELECT member_id FROM segment_members WHERE segment_id = ?", (segment_id,)
            )
        }
        entered, left = sorted(current - before), sorted(before - current)
        tx.executemany(
            "DELETE FROM segment_members WHERE segment_id = ? AND member_id = ?",
            [(segment_id, mid) for mid in left],
        )
        control = {mid for mid in entered if in_control(seg.salt, mid, seg.control_pct)}
        tx.executemany(
            "INSERT INTO segment_members(segment_id, member_id, control, since) "
            "VALUES (?, ?, ?, ?)",
            [(segment_id, mid, int(mid in control), now.isoformat()) for mid in entered],
        )
        events = [
            outbox.Pending(
                mid,
                outbox.SEGMENT_ENTERED,
                {"segment_id": segment_id, "name": seg.name, "control": mid in control},
                now,
            )
            for mid in entered
        ] + [
            outbox.Pending(
                mid, outbox.SEGMENT_LEFT, {"segment_id": segment_id, "name": seg.name}, now
            )
            for mid in left
        ]
        outbox.emit_many(tx, events, now=now)
        n_control = sum(in_control(seg.salt, mid, seg.control_pct) for mid in current)
        tx.execute(
            "UPDATE segments SET evaluated_at = ?, members = ?, control_members = ? "
            "WHERE segment_id = ?",
            (now.isoformat(), len(current), n_control, segment_id),
        )
    return Evaluation(segment_id, len(current), n_control, len(entered), len(left))


def member_ids(ctx: Context, segment_id: str) -> list[tuple[str, bool]]:
    """The segment's materialised members (as of its last evaluation) with their control flag."""
    with ctx.db.reading() as tx:
        rows = tx.all(
            "SELECT member_id, control FROM segment_members WHERE segment_id = ? "
            "ORDER BY member_id",
            (segment_id,),
        )
    return [(r[0], bool(r[1])) for r in rows]


# ---------------------------------------------------------------------- scores
_SCORE_SQL = """
INSERT INTO member_scores(member_id, last_day, frequency, monetary_kop, r, f, m, abc,
    scored_on)
WITH agg AS (
    SELECT p.member_id, max(p.day) AS last_day, count(*) AS freq, sum(p.paid_kop) AS paid
    FROM purchases p WHERE p.day >= ? GROUP BY p.member_id),
back AS (
    SELECT member_id, sum(amount_kop) AS back FROM refunds WHERE day >= ?
    GROUP BY member_id),
base AS (
    SELECT a.member_id, a.last_day, a.freq, a.paid - COALESCE(b.back, 0) AS mon
    FROM agg a JOIN members mm ON mm.member_id = a.member_id
    LEFT JOIN back b ON b.member_id = a.member_id
    WHERE mm.merged_into IS NULL AND mm.erased_at IS NULL),
ranked AS (
    SELECT member_id, last_day, freq, mon,
        rank() OVER (ORDER BY last_day) AS rr,
        rank() OVER (ORDER BY freq) AS fr,
        rank() OVER (ORDER BY mon) AS mr,
        count(*) OVER () AS n,
        sum(CASE WHEN mon > 0 THEN mon ELSE 0 END)
            OVER (ORDER BY mon DESC, member_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
            AS cum,
        sum(CASE WHEN mon > 0 THEN mon ELSE 0 END) OVER () AS total
    FROM base)
SELECT member_id, last_day, freq, mon,
    1 + (5 * (rr - 1)) / n, 1 + (5 * (fr - 1)) / n, 1 + (5 * (mr - 1)) / n,
    CASE WHEN mon > 0 AND 100 * (cum - mon) < 80 * total THEN 'A'
         WHEN mon > 0 AND 100 * (cum - mon) < 95 * total THEN 'B' ELSE 'C' END,
    ?
FROM ranked
"""


def score(ctx: Context, window_days: int = RFM_WINDOW_DAYS) -> int:
    """Recompute every member's RFM quintiles and ABC class over the last ``window_days``
    (see the module docstring) into ``member_scores``, replaced in one transaction.
    Returns the members scored."""
    with ctx.db.transaction() as tx:
        day = today(ctx, tx)
        since = _since(day, window_days)
        tx.execute("DELETE FROM member_scores")
        tx.execute(_SCORE_SQL, (since, since, day.isoformat()))
        return int(tx.one("SELECT count(*) FROM member_scores")[0])


@dataclass(frozen=True, slots=True)
class Score:
    """A member's scores: last cheque's day, cheques and net spend (kopecks) in the window,
    R, F, M (1-5), ABC class, the day scored."""

    member_id: str
    last_day: str
    frequency: int
    monetary_kop: int
    r: int
    f: int
    m: int
    abc: str
    scored_on: str


def scores_of(ctx: Context, member_ids: Sequence[str]) -> dict[str, Score]:
    with ctx.db.reading() as tx:
        rows = (
            tx.all(
                "SELECT member_id, last_day, frequency, monetary_kop, r, f, m, abc, scored_on "
                f"FROM member_scores WHERE member_id IN ({marks(len(member_ids))})",
                list(member_ids),
            )
            if member_ids
            else []
        )
    return {
        r[0]: Score(r[0], r[1], int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), r[7], r[8])
        for r in rows
    }


# ---------------------------------------------------------------------- exports
def parse_export(fmt: str, delimiter: str = ";") -> tuple[str, str]:
    """An export's format (``csv``/``ndjson``) and CSV delimiter (``;``/``,``), checked."""
    if fmt not in FORMATS:
        raise SegmentError(
            f"must be csv or ndjson, not {fmt!r}",
            f"нужен csv или ndjson, а не «{fmt}»",
            field="format",
        )
    if delimiter not in DELIMITERS:
        raise SegmentError(
            f"must be ';' or ',', not {delimiter!r}",
            f"разделитель — «;» или «,», а не «{delimiter}»",
            field="delimiter",
        )
    return fmt, delimiter


def export_pages(
    ctx: Context, seg: Segment, page: int = EXPORT_PAGE
) -> Iterator[list[tuple[Any, ...]]]:
    """The segment's members now, ``EXPORT_COLUMNS`` per row, in member id order, a keyset
    page of ``page`` rows per read transaction (the day fixed at the first page)."""
    after = ""
    day: date | None = None
    while True:
        with ctx.db.reading() as tx:
            day = day or today(ctx, tx)
            where, params = compile_where(seg.rules, tx.dialect, day)
            rows = tx.all_by_index(
                "SELECT m.member_id, m.code, m.first_name, m.phone_masked, m.tier, m.balance, "
                "m.expiring_points, m.expiring_on, m.store_id, s.r, s.f, s.m, s.abc "
                "FROM members m LEFT JOIN member_scores s ON s.member_id = m.member_id "
                f"WHERE {where} AND m.member_id > ? ORDER BY m.member_id LIMIT ?",
                [*params, after, page],
            )
        if not rows:
            return
        yield [
            (*r[:5], int(r[5]), int(r[6]), *r[7:], int(in_control(seg.salt, r[0], seg.control_pct)))
            for r in rows
        ]
        if len(rows) < page:
            return
        after = rows[-1][0]


def _cell(value: Any) -> Any:
    """A CSV cell Excel shows as text rather than evaluates (OWASP: a leading ``'``)."""
    if isinstance(value, str) and value.startswith(_RISKY):
        return "'" + value
    return "" if value is None else value


def export_chunks(
    ctx: Context,
    seg: Segment,
    fmt: str = "csv",
    delimiter: str = ";",
    *,
    bom: bool = True,
    page: int = EXPORT_PAGE,
) -> Iterator[bytes]:
    """The export's bytes, one chunk per page (see the module docstring for the formats)."""
    fmt, delimiter = parse_export(fmt, delimiter)
    if fmt == "ndjson":
        for rows in export_pages(ctx, seg, page):
            yield b"".join(
                orjson.dumps(dict(zip(EXPORT_COLUMNS, r, strict=True))) + b"\n" for r in rows
            )
        return
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    buf.write(_BOM if bom else "")
    writer.writerow(EXPORT_COLUMNS)
    for rows in export_pages(ctx, seg, page):
        writer.writerows([_cell(v) for v in r] for r in rows)
        yield buf.getvalue().encode()
        buf.seek(0)
        buf.truncate()
    if buf.tell():
        yield buf.getvalue().encode()


def write_file(chunks: Iterator[bytes], path: Path) -> int:
    """``chunks`` into ``path`` (0600 from creation: members' data) as ``agent.private``
    writes files, but streamed: a temporary file beside it, fsync, rename, fsync the
    folder; a failure leaves no file. Returns the bytes written."""
    tmp = path.with_name(f".{path.name}.part")
    tmp.unlink(missing_ok=True)
    create_private(tmp, exclusive=True)
    size = 0
    try:
        with open(tmp, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
                size += len(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return size


# ---------------------------------------------------------------------- scheduled exports
@dataclass(frozen=True, slots=True)
class ScheduledExport:
    """A segment's export written every ``every_hours`` hours (ISO UTC times)."""

    export_id: str
    segment_id: str
    format: str
    delimiter: str
    every_hours: int
    next_at: str
    last_at: str | None
    last_file: str | None
    created_by: str


_EXPORT_COLS = (
    "export_id, segment_id, format, delimiter, every_hours, next_at, last_at, last_file, created_by"
)


def schedule(
    tx: Tx, now: datetime, actor: str, segment_id: str, fmt: str, delimiter: str, every: str | int
) -> ScheduledExport:
    """A new scheduled export of ``segment_id`` (first due now), in ``tx``."""
    fmt, delimiter = parse_export(fmt, delimiter)
    text = str(every).strip()
    if not text.isdigit() or not 1 <= int(text) <= 24 * 31:
        raise SegmentError(
            f"must be whole hours from 1 to {24 * 31}, not {every!r}",
            f"нужно целое число часов от 1 до {24 * 31}, а не «{every}»",
            field="every_hours",
        )
    if tx.one("SELECT 1 FROM segments WHERE segment_id = ?", (segment_id,)) is None:
        raise not_found(segment_id)
    row = (
        "exp-" + secrets.token_hex(5),
        segment_id,
        fmt,
        delimiter,
        int(text),
        moment_text(now),
        None,
        None,
        actor,
    )
    tx.execute(f"INSERT INTO segment_exports({_EXPORT_COLS}) VALUES ({marks(9)})", row)
    return ScheduledExport(*row)


def scheduled(ctx: Context, segment_id: str | None = None) -> list[ScheduledExport]:
    with ctx.db.reading() as tx:
        rows = tx.all(
            f"SELECT {_EXPORT_COLS} FROM segment_exports"
            + ("" if segment_id is None else " WHERE segment_id = ?")
            + " ORDER BY export_id",
            () if segment_id is None else (segment_id,),
        )
    return [ScheduledExport(r[0], r[1], r[2], r[3], int(r[4]), *r[5:]) for r in rows]


def run_due_exports(ctx: Context, directory: Path) -> list[Path]:
    """Write every scheduled export due now into ``directory`` (made if missing) as
    ``<segment>-<UTC time>.<csv|ndjson>``, then move its next time on by its period.
    Returns the files written."""
    now = ctx.clock.now()
    written: list[Path] = []
    directory.mkdir(parents=True, exist_ok=True)
    for ex in scheduled(ctx):
        if ex.next_at > moment_text(now):
            continue
        seg = get(ctx, ex.segment_id)
        if seg is None:
            continue
        path = directory / f"{seg.segment_id}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}.{ex.format}"
        write_file(export_chunks(ctx, seg, ex.format, ex.delimiter), path)
        with ctx.db.transaction() as tx:
            tx.execute(
                "UPDATE segment_exports SET last_at = ?, last_file = ?, next_at = ? "
                "WHERE export_id = ?",
                (
                    moment_text(now),
                    path.name,
                    moment_text(now + timedelta(hours=ex.every_hours)),
                    ex.export_id,
                ),
            )
        written.append(path)
    return written


# ---------------------------------------------------------------------- nightly
@dataclass(frozen=True, slots=True)
class Nightly:
    """What a nightly run did: members scored, each segment's evaluation, files written."""

    scored: int
    evaluations: list[Evaluation]
    files: list[Path]


def nightly(ctx: Context, export_dir: Path | None = None) -> Nightly:
    """Scores, then every segment evaluated (their events), then the exports due (when
    ``export_dir`` is given); marks the local day done (``settings``)."""
    scored = score(ctx)
    evaluations = [evaluate(ctx, s.segment_id) for s in segments(ctx)]
    files = run_due_exports(ctx, export_dir) if export_dir is not None else []
    with ctx.db.transaction() as tx:
        tx.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (NIGHTLY_KEY, today(ctx, tx).isoformat()),
        )
    return Nightly(scored, evaluations, files)


def nightly_due(ctx: Context) -> bool:
    """Whether the nightly run has not happened yet this local day and it is past
    ``NIGHTLY_HOUR`` local time."""
    rules = ctx.programmes.get()
    now = ctx.clock.now()
    local = now.astimezone(rules.tz) if rules is not None else now.astimezone(UTC)
    with ctx.db.reading() as tx:
        row = tx.one("SELECT value FROM settings WHERE key = ?", (NIGHTLY_KEY,))
    return local.hour >= NIGHTLY_HOUR and (row is None or row[0] < local.date().isoformat())


class AudienceWorker(RoundWorker):
    """The nightly job as a background thread: a round runs ``nightly`` when it is due
    (``nightly_due``), else does nothing and sleeps ``idle_s``."""

    name = "kassa-audiences"
    idle_s = 300.0

    def __init__(self, ctx: Context, export_dir: Path | None = None, **kw: Any) -> None:
        super().__init__(ctx, **kw)
        self.export_dir = export_dir

    def round(self, busy: bool) -> int:
        if busy or not nightly_due(self.ctx):
            return 0
        nightly(self.ctx, self.export_dir)
        return 1

    def busy_pause(self, elapsed: float) -> float:
        return self.idle_s

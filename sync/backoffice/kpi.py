"""Programme KPIs the owners watch (from the seeds), by store, day and cashier.

Definitions (all amounts integer points or kopecks; days are the programme's local days).
A refund counts on the day, at the store and for the cashier of the refund, not of the
sale it undoes (as a shop's takings do), so the sums below (new members, cheques, refunded
cheques, revenue, points) add up exactly over the stores and the days, cheques and refunded
cheques over the cashiers too (a cashier's row has no money columns), and a refund never
rewrites an earlier period. Distinct-member counts do not add up (one member buys in two
stores):
- revenue (``revenue_kop``): what members paid for the period's cheques after the points
  and coupon discounts, minus what the period's refunds gave back (the refunded units'
  share of what was paid): net takings of the programme's members;
- cheques: the period's cheques, minus the cheques a refund of the period returned in
  full (counted on the day of the refund that completed the return, so a day with only
  refunds can be negative); ``refunded_cheques`` counts those returns, so the cheques
  rung in the period are ``cheques + refunded_cheques``. A partly refunded cheque counts;
- new members: registrations at the tills and joins on the members' pages in the period
  (members loaded into the base, as by ``seed``, are not new; a duplicate phone merged at
  once is not new), a till's on the date of its ``registered_at`` by its cashier, a web
  join on its local day at its poster's store with no cashier (``'-'``), with the welcome
  bonus each granted in points issued (``rollups``: the projector and the join keep both
  per day, store and cashier);
  ``members_now``: members in the base now (merged ones counted once), whatever the
  period;
- members with a purchase / repeat buyers: distinct members with >= 1 / >= 2 of the
  period's cheques that were not returned in full by the end of the period (in a day's
  row: by the end of that day, so the row equals the report of that day alone);
- points issued: accrual + bonuses of the period's cheques + welcome bonuses, minus
  accrual and bonuses reversed by the period's refunds; points spent: redeemed minus
  points given back by the period's refunds;
- points expired / outstanding liability: over every member's lots now (expired lots
  still held; balance of live lots minus debt), liability also in roubles at the
  programme's point value;
- redemption rate: points spent / points issued in the period;
- fraud signals per cashier, over every cheque the cashier rang in the period (returned
  or not): share of members entered by typed phone (vs scanned), and the same member on
  many of the cashier's cheques. A cashier's row also counts their registrations (new
  members, as above, by the cashier who registered them) and ``refunds`` (refund events
  the cashier rang in the period, partial or full), which add up over the cashiers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from agent.errors import InputError
from agent.money import NBSP, format_points, format_rub
from agent.requests import iso_date
from sync.backoffice import project, rollups
from sync.backoffice.context import Context
from sync.backoffice.db import Tx

PHONE_SHARE_SIGNAL = 0.5
PHONE_SHARE_MIN_CHEQUES = 10
SAME_MEMBER_SIGNAL = 5


class PeriodError(InputError):
    """``from``/``to`` unreadable or reversed: HTTP 400, CLI exit 2."""

    code = "bad_period"
    title_ru = "Неверный период"
    title_en = "Bad period"


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date


def period(start: str | None, end: str | None) -> Period:
    """The report's days, both included; raises ``PeriodError``."""
    days = []
    for name, ru, text, default in (
        ("from", "начала", start, date(2000, 1, 1)),
        ("to", "конца", end, date(2100, 1, 1)),
    ):
        if not text:
            days.append(default)
            continue
        try:
            day = iso_date(text)
        except ValueError:
            raise PeriodError(
                f"{name} {text}: no such date in the calendar",
                f"дата {ru} периода ({name}) {text}: такой даты нет в календаре",
                field=name,
                value=text,
            ) from None
        if day is None:
            raise PeriodError(
                "from/to must be ISO dates (YYYY-MM-DD)",
                f"дата {ru} периода ({name}) должна быть в виде ГГГГ-ММ-ДД, а не {text}",
                field=name,
                value=text,
            )
        days.append(day)
    if days[1] < days[0]:
        raise PeriodError(
            "to is before from",
            "конец периода раньше его начала",
            **{"from": days[0].isoformat(), "to": days[1].isoformat()},
        )
    return Period(days[0], days[1])


def _returned_in_full(tx: Tx, d0: str, d1: str) -> dict[str, tuple[str, str]]:
    """Cheques a refund of the period returned in full: purchase event -> (the refund
    event that completed the return, its day). The completing refund is the cheque's last
    refund by date (then by when the ledger took it): refunds can arrive out of order (an
    offline till, a corrected clock), and a cheque is returned in full by a day only when
    all its refunds are dated on or before it."""
    touched = "SELECT purchase_event_id FROM refunds WHERE day >= ? AND day <= ?"
    full = set()
    for event_id, refunded, effects in tx.all(
        f"SELECT event_id, refunded, effects FROM purchases WHERE event_id IN ({touched})",
        (d0, d1),
    ):
        back = json.loads(refunded)
        if all(back.get(str(ln["line_no"]), 0) >= ln["qty"] for ln in json.loads(effects)["lines"]):
            full.add(event_id)
    if not full:
        return {}
    last: dict[str, tuple[str, str]] = {}
    for purchase, refund_event, day in tx.all(
        "SELECT r.purchase_event_id, r.event_id, r.day FROM refunds r "
        f"JOIN events e ON e.event_id = r.event_id WHERE r.purchase_event_id IN ({touched}) "
        "ORDER BY r.day, r.occurred_at, e.pos",
        (d0, d1),
    ):
        if purchase in full:
            last[purchase] = (refund_event, day)
    return {purchase: done for purchase, done in last.items() if d0 <= done[1] <= d1}


def report(ctx: Context, p: Period, now: datetime | None = None) -> dict[str, Any]:
    now = now or ctx.clock.now()
    rules = ctx.programmes.get()
    assert rules is not None
    d0, d1 = p.start.isoformat(), p.end.isoformat()
    with ctx.db.reading() as tx:
        stores = dict(tx.all("SELECT store_id, name FROM stores"))
        cheques = tx.all(
            "SELECT event_id, store_id, day, cashier_id, member_id, identified_by, paid_kop, "
            "earned, bonus, spent FROM purchases WHERE day >= ? AND day <= ?",
            (d0, d1),
        )
        refunds = tx.all(
            "SELECT event_id, store_id, day, cashier_id, amount_kop, earn_reversed, "
            "bonus_reversed, returned FROM refunds WHERE day >= ? AND day <= ?",
            (d0, d1),
        )
        returned = _returned_in_full(tx, d0, d1)
        joins = rollups.registrations(tx, d0, d1)  # kept by the projector
        flags = dict(tx.all("SELECT kind, count(*) FROM flags GROUP BY kind"))
        verify_backlog = int(tx.one("SELECT count(*) FROM verify_queue")[0])
        project_backlog = int(tx.one(f"SELECT count(*) FROM events WHERE {project.AFTER}")[0])
        states = tx.all("SELECT state FROM members WHERE merged_into IS NULL")
        expired, liability = _lots_now(states, now)
    completing = {refund_event for refund_event, _ in returned.values()}

    def blank() -> dict[str, Any]:
        return {
            "new_members": 0,
            "cheques": 0,
            "refunded_cheques": 0,
            "revenue_kop": 0,
            "points_issued": 0,
            "points_spent": 0,
            "_members": defaultdict(int),
        }

    total = blank()
    by_store: defaultdict[str, dict[str, Any]] = defaultdict(blank)
    by_day: defaultdict[str, dict[str, Any]] = defaultdict(blank)
    cashiers: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "cheques": 0,
            "refunded_cheques": 0,
            "rung": 0,
            "phone": 0,
            "members": defaultdict(int),
            "store_id": None,
            "new_members": 0,
            "refunds": 0,
        }
    )
    for event_id, store, day, cashier, member, how, paid, earned, bonus, spent in cheques:
        done = returned.get(event_id)
        for agg, upto in ((total, d1), (by_store[store], d1), (by_day[day], day)):
            agg["cheques"] += 1
            agg["revenue_kop"] += int(paid)
            agg["points_issued"] += int(earned) + int(bonus)
            agg["points_spent"] += int(spent)
            if done is None or done[1] > upto:  # not returned in full by the row's end
                agg["_members"][member] += 1
        c = cashiers[cashier or "-"]
        c["cheques"] += 1
        c["rung"] += 1
        c["phone"] += how == "phone"
        c["members"][member] += 1
        c["store_id"] = store
    for event_id, store, day, cashier, amount, earn_rev, bonus_rev, given_back in refunds:
        in_full = event_id in completing
        for agg in (total, by_store[store], by_day[day]):
            agg["revenue_kop"] -= int(amount)
            agg["points_issued"] -= int(earn_rev) + int(bonus_rev)
            agg["points_spent"] -= int(given_back)
            agg["cheques"] -= in_full
            agg["refunded_cheques"] += in_full
        c = cashiers[cashier or "-"]
        c["cheques"] -= in_full
        c["refunded_cheques"] += in_full
        c["refunds"] += 1
        c["store_id"] = c["store_id"] or store
    for store, day, cashier, joined, welcome in joins:
        for agg in (total, by_store[store], by_day[day]):
            agg["new_members"] += joined
            agg["points_issued"] += welcome
        c = cashiers[cashier or "-"]
        c["new_members"] += joined
        c["store_id"] = c["store_id"] or store

    def finish(agg: dict[str, Any]) -> dict[str, Any]:
        members = agg.pop("_members")
        out = dict(agg)
        out["members_with_purchase"] = len(members)
        out["repeat_buyers"] = sum(1 for n in members.values() if n >= 2)
        out["redemption_rate"] = (
            round(out["points_spent"] / out["points_issued"], 4) if out["points_issued"] else 0.0
        )
        return out

    totals = finish(total)
    totals["members_now"] = len(states)
    totals["points_expired"] = expired
    totals["liability_points"] = liability
    totals["liability_kop"] = liability * rules.point_value_kop
    cashier_rows = []
    for cid, c in sorted(cashiers.items()):
        top = max(c["members"].values(), default=0)
        share = c["phone"] / c["rung"] if c["rung"] else 0.0
        signals = []
        if c["rung"] >= PHONE_SHARE_MIN_CHEQUES and share > PHONE_SHARE_SIGNAL:
            signals.append("manual_phone_share")
        if top >= SAME_MEMBER_SIGNAL:
            signals.append("same_member_many_cheques")
        cashier_rows.append(
            {
                "cashier_id": cid,
                "store_id": c["store_id"],
                "cheques": c["cheques"],
                "refunded_cheques": c["refunded_cheques"],
                "phone_entries": c["phone"],
                "phone_share": round(share, 4),
                "scan_share": round(1 - share, 4) if c["rung"] else 0.0,
                "top_member_cheques": top,
                "signals": signals,
                "new_members": c["new_members"],
                "refunds": c["refunds"],
            }
        )
    return {
        "period": {"from": d0, "to": d1},
        "generated_at": now.astimezone(UTC).isoformat(),
        "totals": totals,
        "by_store": [
            {"store_id": s, "name": stores.get(s, s), **finish(a)}
            for s, a in sorted(by_store.items())
        ],
        "by_day": [{"day": d, **finish(a)} for d, a in sorted(by_day.items())],
        "by_cashier": cashier_rows,
        "flags": flags,
        # events accepted from tills but not yet in these figures (the projector's queue)
        "project_backlog": project_backlog,
        # purchases the background verifier has not re-scored yet (their flags may follow)
        "verify_backlog": verify_backlog,
    }


def _lots_now(rows: list[Any], now: datetime) -> tuple[int, int]:
    """(points held in expired lots, live balance minus debt) over every member."""
    held = points_held(rows, now)
    return held.expired, held.live


@dataclass(frozen=True, slots=True)
class Held:
    """Points in the members' lots now: ``expired`` (held in lots past their expiry),
    ``live`` (live balance minus debt: the liability), ``expired_between`` (of the
    expired, those whose lot expired on a UTC date from ``start`` to ``end``)."""

    expired: int
    live: int
    expired_between: int


def points_held(
    rows: list[Any], now: datetime, start: str | None = None, end: str | None = None
) -> Held:
    """``Held`` over ``rows`` (each a member's ``state`` text); ``start``/``end``: ISO
    dates, both included (None: no expiry counted between)."""
    stamp = now.isoformat()
    expired = live = between = 0
    for (text,) in rows:
        state = json.loads(text)
        for lot in state["lots"]:
            # ISO 8601 with the same offset compares as text; lots carry UTC offsets.
            at = _as_utc(lot["expires_at"])
            if at <= stamp:
                expired += lot["points"]
                if start is not None and end is not None and start <= at[:10] <= end:
                    between += lot["points"]
            else:
                live += lot["points"]
        live -= state.get("debt", 0)
    return Held(expired, live, between)


def _as_utc(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


SIGNALS_RU = {
    "manual_phone_share": "часто вводит телефон",
    "same_member_many_cheques": "один участник на многих чеках",
}


def _grid(headers: list[str], rows: list[list[str]], text: tuple[int, ...] = (0,)) -> list[str]:
    """Columns as wide as their widest cell: ``text`` columns left-aligned, the rest
    (figures) right-aligned."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        "  "
        + "  ".join(
            cell.ljust(w) if i in text else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in [headers, *rows]
    ]


def _percent(ratio: float, decimals: int) -> str:
    """A share (0.1355) as Russian print writes it: "13,55 %" (decimal comma, a
    non-breaking space before the sign, as ``agent.money`` spaces its units)."""
    return f"{ratio * 100:.{decimals}f}".replace(".", ",") + f"{NBSP}%"


def _money_columns(agg: dict[str, Any]) -> list[str]:
    return [
        str(agg["new_members"]),
        str(agg["cheques"]),
        str(agg["refunded_cheques"]),
        format_rub(agg["revenue_kop"]),
        format_points(agg["points_issued"]),
        format_points(agg["points_spent"]),
    ]


def table(data: dict[str, Any]) -> str:
    """The report as plain text tables for ``kassa backoffice report`` (Russian)."""
    t = data["totals"]
    lines = [
        ("Участников в базе сейчас", str(t["members_now"])),
        ("Новые участники (на кассах и на сайте)", str(t["new_members"])),
        ("Участники с покупкой", str(t["members_with_purchase"])),
        ("Повторные покупатели", str(t["repeat_buyers"])),
        ("Чеков (без возвращённых)", str(t["cheques"])),
        ("Чеков возвращено полностью", str(t["refunded_cheques"])),
        ("Выручка за вычетом возвратов", format_rub(t["revenue_kop"])),
        ("Начислено", format_points(t["points_issued"])),
        ("Списано", format_points(t["points_spent"])),
        ("Сгорело", format_points(t["points_expired"])),
        ("Обязательства", format_points(t["liability_points"])),
        ("Обязательства в рублях", format_rub(t["liability_kop"])),
        ("Доля списания", _percent(t["redemption_rate"], 2)),
    ]
    label_w = max(len(label) for label, _ in lines)
    value_w = max(len(value) for _, value in lines)
    out = [f"Программа лояльности: {data['period']['from']} .. {data['period']['to']}", ""]
    out += [f"  {label:<{label_w}}  {value:>{value_w}}" for label, value in lines]
    money = ["новые", "чеки", "возвращено", "выручка", "начислено", "списано"]
    if data["by_store"]:
        out.append("")
        out += _grid(
            ["магазин", *money], [[s["name"][:20], *_money_columns(s)] for s in data["by_store"]]
        )
    if data["by_day"]:
        out.append("")
        out += _grid(
            ["день", *money], [[d["day"], *_money_columns(d)] for d in data["by_day"][-14:]]
        )
    if data["by_cashier"]:
        out.append("")
        out += _grid(
            ["кассир", "чеки", "возвращено", "по телефону", "макс. на участника", "сигналы"],
            [
                [
                    c["cashier_id"][:14],
                    str(c["cheques"]),
                    str(c["refunded_cheques"]),
                    _percent(c["phone_share"], 0),
                    str(c["top_member_cheques"]),
                    ", ".join(SIGNALS_RU.get(s, s) for s in c["signals"]) or "-",
                ]
                for c in data["by_cashier"]
            ],
            text=(0, 5),
        )
        out += [
            "  чеки: без возвращённых полностью; возвращено: чеки, возвращённые полностью;",
            "  по телефону: доля пробитых чеков, где участника нашли по набранному телефону,",
            "  а не по скану; макс. на участника: больше всего чеков одного участника у кассира",
        ]
    if data["flags"]:
        out += ["", "  Отметки: " + ", ".join(f"{k}={v}" for k, v in sorted(data["flags"].items()))]
    if data.get("project_backlog"):
        out.append(f"  Приняты, ещё не учтены в цифрах: {data['project_backlog']}")
    if data.get("verify_backlog"):
        out.append(f"  Ждут повторной проверки чека: {data['verify_backlog']}")
    return "\n".join(out)

"""Programme KPIs the owners watch (from the seeds), by store, day and cashier.

Definitions (all amounts integer points or kopecks; days are the programme's local days):
- new members: registrations in the period;
- members with a purchase / repeat buyers: distinct members with >= 1 / >= 2 cheques;
- points issued: accrual + bonuses of the period's cheques + welcome bonuses, minus
  accrual reversed by refunds; points spent: redeemed minus points given back by refunds;
- points expired / outstanding liability: over every member's lots now (expired lots
  still held; balance of live lots minus debt), liability also in roubles at the
  programme's point value;
- redemption rate: points spent / points issued in the period;
- fraud signals per cashier: share of members entered by typed phone (vs scanned), and
  the same member on many of the cashier's cheques.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sync.backoffice import project
from sync.backoffice.service import Backoffice
from sync.protocol import ProtocolError

PHONE_SHARE_SIGNAL = 0.5
PHONE_SHARE_MIN_CHEQUES = 10
SAME_MEMBER_SIGNAL = 5


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date


def period(start: str | None, end: str | None) -> Period:
    try:
        s = date.fromisoformat(start) if start else date(2000, 1, 1)
        e = date.fromisoformat(end) if end else date(2100, 1, 1)
    except ValueError:
        raise ProtocolError(400, "bad_period", "from/to must be ISO dates (YYYY-MM-DD)") from None
    if e < s:
        raise ProtocolError(400, "bad_period", "to is before from")
    return Period(s, e)


def report(bo: Backoffice, p: Period, now: datetime | None = None) -> dict[str, Any]:
    now = now or bo.clock.now()
    rules = bo.rules()
    assert rules is not None
    d0, d1 = p.start.isoformat(), p.end.isoformat()
    with bo.db.reading() as tx:
        stores = dict(tx.all("SELECT store_id, name FROM stores"))
        cheques = tx.all(
            "SELECT store_id, day, cashier_id, member_id, identified_by, amount_kop, earned, "
            "bonus, spent FROM purchases WHERE day >= ? AND day <= ?",
            (d0, d1),
        )
        refunds = tx.all(
            "SELECT store_id, day, earn_reversed, bonus_reversed, returned FROM refunds "
            "WHERE day >= ? AND day <= ?",
            (d0, d1),
        )
        joins = tx.all(
            "SELECT store_id, substr(registered_at, 1, 10), state FROM members "
            "WHERE merged_into IS NULL AND substr(registered_at, 1, 10) >= ? "
            "AND substr(registered_at, 1, 10) <= ? AND terminal_id IS NOT NULL",
            (d0, d1),
        )
        flags = dict(tx.all("SELECT kind, count(*) FROM flags GROUP BY kind"))
        verify_backlog = int(tx.one("SELECT count(*) FROM verify_queue")[0])
        project_backlog = int(tx.one(f"SELECT count(*) FROM events WHERE {project.AFTER}")[0])
        expired, liability = _lots_now(
            tx.all("SELECT state FROM members WHERE merged_into IS NULL"), now
        )

    def blank() -> dict[str, Any]:
        return {
            "new_members": 0,
            "cheques": 0,
            "revenue_kop": 0,
            "points_issued": 0,
            "points_spent": 0,
            "_members": defaultdict(int),
        }

    total = blank()
    by_store: defaultdict[str, dict[str, Any]] = defaultdict(blank)
    by_day: defaultdict[str, dict[str, Any]] = defaultdict(blank)
    cashiers: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"cheques": 0, "phone": 0, "members": defaultdict(int), "store_id": None}
    )
    for store, day, cashier, member, how, amount, earned, bonus, spent in cheques:
        for agg in (total, by_store[store], by_day[day]):
            agg["cheques"] += 1
            agg["revenue_kop"] += int(amount)
            agg["points_issued"] += int(earned) + int(bonus)
            agg["points_spent"] += int(spent)
            agg["_members"][member] += 1
        c = cashiers[cashier or "-"]
        c["cheques"] += 1
        c["phone"] += how == "phone"
        c["members"][member] += 1
        c["store_id"] = store
    for store, day, earn_rev, bonus_rev, returned in refunds:
        for agg in (total, by_store[store], by_day[day]):
            agg["points_issued"] -= int(earn_rev) + int(bonus_rev)
            agg["points_spent"] -= int(returned)
    for store, day, state in joins:
        welcome = sum(
            lot["points"] for lot in json.loads(state)["lots"] if lot["source"] == "welcome"
        )
        for agg in (total, by_store[store], by_day[day]):
            agg["new_members"] += 1
            agg["points_issued"] += welcome

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
    totals["points_expired"] = expired
    totals["liability_points"] = liability
    totals["liability_kop"] = liability * rules.point_value_kop
    cashier_rows = []
    for cid, c in sorted(cashiers.items()):
        top = max(c["members"].values(), default=0)
        share = c["phone"] / c["cheques"] if c["cheques"] else 0.0
        signals = []
        if c["cheques"] >= PHONE_SHARE_MIN_CHEQUES and share > PHONE_SHARE_SIGNAL:
            signals.append("manual_phone_share")
        if top >= SAME_MEMBER_SIGNAL:
            signals.append("same_member_many_cheques")
        cashier_rows.append(
            {
                "cashier_id": cid,
                "store_id": c["store_id"],
                "cheques": c["cheques"],
                "phone_entries": c["phone"],
                "phone_share": round(share, 4),
                "scan_share": round(1 - share, 4) if c["cheques"] else 0.0,
                "top_member_cheques": top,
                "signals": signals,
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
    stamp = now.isoformat()
    expired = live = 0
    for (text,) in rows:
        state = json.loads(text)
        for lot in state["lots"]:
            # ISO 8601 with the same offset compares as text; lots carry UTC offsets.
            if _as_utc(lot["expires_at"]) <= stamp:
                expired += lot["points"]
            else:
                live += lot["points"]
        live -= state.get("debt", 0)
    return expired, live


def _as_utc(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


def table(data: dict[str, Any]) -> str:
    """The report as plain text tables for ``kassa backoffice report``."""
    t = data["totals"]
    out = [
        f"Программа лояльности: {data['period']['from']} .. {data['period']['to']}",
        "",
        f"  Новые участники        {t['new_members']:>12}",
        f"  Участники с покупкой   {t['members_with_purchase']:>12}",
        f"  Повторные покупатели   {t['repeat_buyers']:>12}",
        f"  Чеков                  {t['cheques']:>12}",
        f"  Бонусов начислено      {t['points_issued']:>12}",
        f"  Бонусов списано        {t['points_spent']:>12}",
        f"  Бонусов сгорело        {t['points_expired']:>12}",
        f"  Обязательства, бонусы  {t['liability_points']:>12}",
        f"  Доля списания          {t['redemption_rate']:>12.2%}",
        "",
        f"  {'магазин':<20}{'новые':>8}{'чеки':>8}{'начисл.':>10}{'списано':>10}",
    ]
    for s in data["by_store"]:
        out.append(
            f"  {s['name'][:20]:<20}{s['new_members']:>8}{s['cheques']:>8}"
            f"{s['points_issued']:>10}{s['points_spent']:>10}"
        )
    out += ["", f"  {'день':<12}{'новые':>8}{'чеки':>8}{'начисл.':>10}{'списано':>10}"]
    for d in data["by_day"][-14:]:
        out.append(
            f"  {d['day']:<12}{d['new_members']:>8}{d['cheques']:>8}"
            f"{d['points_issued']:>10}{d['points_spent']:>10}"
        )
    out += ["", f"  {'кассир':<14}{'чеки':>6}{'телефон':>9}{'1 участник':>11}  сигналы"]
    for c in data["by_cashier"]:
        out.append(
            f"  {c['cashier_id'][:14]:<14}{c['cheques']:>6}{c['phone_share']:>9.0%}"
            f"{c['top_member_cheques']:>11}  {', '.join(c['signals']) or '-'}"
        )
    if data["flags"]:
        out += ["", "  Отметки: " + ", ".join(f"{k}={v}" for k, v in sorted(data["flags"].items()))]
    if data.get("project_backlog"):
        out.append(f"  Приняты, ещё не учтены в цифрах: {data['project_backlog']}")
    if data.get("verify_backlog"):
        out.append(f"  Ждут повторной проверки чека: {data['verify_backlog']}")
    return "\n".join(out)

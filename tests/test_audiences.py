"""Audiences (``audiences``) on SQLite and PostgreSQL over a ledger built by a real till's
synced sales and registration: each rule kind selects the members it should, the preview
count equals the exported rows (CSV with BOM and ``;``/``,``, NDJSON; masked phones only),
re-evaluation raises ``segment.entered`` / ``segment.left`` in the outbox, RFM / ABC
scores, the control flag stable and near its percentage, scheduled exports written to a
directory, and bad rules refused naming the field with nothing written."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from cluster import Cluster
from conftest import NOW

from agent.seed import demo_phone, demo_programme
from sync.backoffice import audiences
from sync.backoffice.audiences import SegmentError, in_control, parse_rules

M1, M2, M3 = "m00000001", "m00000002", "m00000003"


def live(cluster: Cluster) -> list[tuple[Any, ...]]:
    return cluster.ledger(
        "SELECT member_id, tier, balance, expiring_points, expiring_on, state, consent_marketing "
        "FROM members WHERE merged_into IS NULL AND erased_at IS NULL AND blocked = 0"
    )


def selected(cluster: Cluster, rules: dict[str, Any]) -> set[str]:
    """The members a rule set selects, read from its export (NDJSON)."""
    seg = cluster.bo.segment_save("t", {"marketing_consent": False, **rules}, actor="mk")
    body = b"".join(cluster.bo.segment_export(seg.segment_id, "ndjson"))
    ids = {orjson.loads(line)["member_id"] for line in body.splitlines()}
    assert len(ids) == cluster.bo.segment_preview({"marketing_consent": False, **rules})
    return ids


@pytest.fixture
def built(cluster: Cluster) -> dict[str, Any]:
    """M2 buys on day 0; 40 days later M1 buys twice and a member with a May birthday joins."""
    till = cluster.till()
    till.sale("R1", M2, ("DR-1001", 1))
    till.client.drain()
    cluster.clock.advance(days=40)
    till.sale("R2", M1, ("DR-1001", 2), ("SH-2001", 1))
    till.sale("R3", M1, ("SH-2001", 1))
    reg = till.agent.register(
        phone="+79035550011",
        first_name="Зоя",
        consent_programme=True,
        consent_marketing=False,
        birthday=date(1990, 5, 1),
    )
    till.client.drain()
    paid = dict(cluster.ledger("SELECT member_id, sum(paid_kop) FROM purchases GROUP BY member_id"))
    return {"till": till, "zoya": reg.card.member_id, "paid": {k: int(v) for k, v in paid.items()}}


def test_each_rule_kind_selects_its_members(cluster: Cluster, built: dict[str, Any]) -> None:
    zoya, paid = built["zoya"], built["paid"]
    today = audiences.today(cluster.bo.context)
    everyone = {r[0] for r in live(cluster)}
    assert selected(cluster, {}) == everyone
    assert selected(cluster, {"recency_days": {"min": 30}}) == {M2}
    assert selected(cluster, {"recency_days": {"max": 10}}) == {M1}
    assert selected(cluster, {"frequency": {"window_days": 30, "min": 2}}) == {M1}
    assert selected(cluster, {"frequency": {"window_days": 365, "min": 1, "max": 1}}) == {M2}
    assert selected(cluster, {"frequency": {"window_days": 30, "max": 0}}) == everyone - {M1}
    assert selected(cluster, {"monetary_kop": {"window_days": 365, "min": paid[M1]}}) == {
        m for m, p in paid.items() if p >= paid[M1]
    }
    assert selected(cluster, {"monetary_kop": {"window_days": 30, "min": 1}}) == {M1}
    tiers = {r[0]: r[1] for r in live(cluster)}
    assert selected(cluster, {"tiers": ["base"]}) == {m for m, t in tiers.items() if t == "base"}
    assert selected(cluster, {"registered_at": ["s1"]}) == everyone
    assert selected(cluster, {"registered_at": ["s9"]}) == set()
    assert selected(cluster, {"purchased_at": {"stores": ["s1"]}}) == {M1, M2}
    assert selected(cluster, {"purchased_at": {"stores": ["s1"], "window_days": 10}}) == {M1}
    assert selected(cluster, {"birthday_months": [5]}) == {zoya}
    assert selected(cluster, {"birthday_months": [1, 2, 3]}) == set()
    rows = live(cluster)
    assert selected(cluster, {"balance": {"min": 1}}) == {r[0] for r in rows if r[2] >= 1}
    assert selected(cluster, {"balance": {"max": 0}}) == {r[0] for r in rows if r[2] <= 0}
    later = cluster.clock.current
    cluster.clock.current = NOW  # the demo base's points expire 9 days after NOW
    for days, first in ((5, date(2026, 6, 15)), (30, date(2026, 6, 15)), (30, today)):
        cluster.clock.current = NOW + (first - NOW.date())
        soon = {
            r[0]
            for r in rows
            if r[3] >= 1
            and r[4]
            and first <= date.fromisoformat(r[4]) <= first + timedelta(days=days)
        }
        assert selected(cluster, {"expiring": {"within_days": days}}) == soon
        assert bool(soon) == (days == 30 and first < today)
    cluster.clock.current = later
    units = {r[0]: dict(json.loads(r[5])["collections"]).get("north-5", 0) for r in rows}
    assert any(units.values())
    assert selected(cluster, {"collection": {"mechanic": "north-5", "min": 2}}) == {
        m for m, u in units.items() if u >= 2
    }
    assert selected(cluster, {"collection": {"mechanic": "north-5", "max": 0}}) == {
        m for m, u in units.items() if u == 0
    }
    consenting = {r[0] for r in rows if r[6]}
    assert zoya not in consenting
    seg = cluster.bo.segment_save("consent", {}, actor="mk")  # marketing consent by default
    assert cluster.bo.segment_evaluate(seg.segment_id).members == len(consenting)


def test_scores_rfm_and_abc(cluster: Cluster, built: dict[str, Any]) -> None:
    assert cluster.bo.audience_scores() == 2
    s = cluster.bo.member_scores([M1, M2, M3])
    assert set(s) == {M1, M2}
    assert s[M1].frequency == 2 and s[M2].frequency == 1
    assert s[M1].monetary_kop == built["paid"][M1]
    assert s[M1].r > s[M2].r and s[M1].f > s[M2].f
    assert all(1 <= x <= 5 for sc in s.values() for x in (sc.r, sc.f, sc.m))
    total, before, classes = sum(sc.monetary_kop for sc in s.values()), 0, {}
    for sc in sorted(s.values(), key=lambda sc: -sc.monetary_kop):  # A while under 80 % before
        classes[sc.member_id] = (
            "A" if before < 0.8 * total else "B" if before < 0.95 * total else "C"
        )
        before += sc.monetary_kop
    assert {m: sc.abc for m, sc in s.items()} == classes
    assert selected(cluster, {"abc": ["A"]}) == {m for m, c in classes.items() if c == "A"}
    assert selected(cluster, {"abc": ["C"]}) == set()
    assert selected(cluster, {"rfm": {"r": [s[M1].r]}}) == {M1}
    assert cluster.bo.audience_scores() == 2  # replaced, not added


def test_preview_equals_exported_rows_and_csv_options(
    cluster: Cluster, built: dict[str, Any]
) -> None:
    rules = {"marketing_consent": False, "balance": {"min": 0}}
    seg = cluster.bo.segment_save("Все с баллами", rules, "30", actor="mk")
    n = cluster.bo.segment_preview(rules)
    assert n > 30
    body = b"".join(audiences.export_chunks(cluster.bo.context, seg, page=7))  # 7-row pages
    assert body.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))
    assert table[0] == list(audiences.EXPORT_COLUMNS)
    assert len(table) - 1 == n
    ids = [r[0] for r in table[1:]]
    assert ids == sorted(ids) and len(set(ids)) == n
    phones = [r[3] for r in table[1:] if r[3]]
    assert phones and all(p.startswith("'+7 ***") for p in phones)  # masked, shown as text
    text = body.decode("utf-8-sig")
    for i in range(1, 40):
        assert demo_phone(i)[2:] not in text.replace(" ", "").replace("-", "")
    plain = b"".join(cluster.bo.segment_export(seg.segment_id, "csv", ",", bom=False))
    assert not plain.startswith(b"\xef\xbb\xbf")
    assert len(list(csv.reader(io.StringIO(plain.decode()), delimiter=","))) - 1 == n
    lines = b"".join(cluster.bo.segment_export(seg.segment_id, "ndjson")).splitlines()
    assert len(lines) == n
    row = orjson.loads(lines[0])
    assert set(row) == set(audiences.EXPORT_COLUMNS) and row["phone_masked"].startswith("+7 ***")
    marked = {orjson.loads(x)["member_id"] for x in lines if orjson.loads(x)["control"]}
    assert marked == {m for m in ids if in_control(seg.salt, m, 30)}
    assert {r[0] for r in table[1:] if r[-1] == "1"} == marked
    with pytest.raises(SegmentError) as e:
        cluster.bo.segment_export(seg.segment_id, "xlsx")
    assert e.value.details["field"] == "format"
    with pytest.raises(SegmentError) as e:
        cluster.bo.segment_export(seg.segment_id, "csv", "\t")
    assert e.value.details["field"] == "delimiter"


def outbox_rows(cluster: Cluster) -> list[tuple[str, str, dict[str, Any]]]:
    rows = cluster.ledger("SELECT member_id, type, data FROM outbox ORDER BY id")
    return [(r[0], r[1], json.loads(r[2])) for r in rows if r[1].startswith("segment.")]


def test_reevaluation_raises_entered_and_left_events(
    cluster: Cluster, built: dict[str, Any]
) -> None:
    till = built["till"]
    seg = cluster.bo.segment_save(
        "Купили за 10 дней", {"recency_days": {"max": 10}, "marketing_consent": False}, actor="mk"
    )
    first = cluster.bo.segment_evaluate(seg.segment_id)
    assert (first.members, first.entered, first.left) == (1, 1, 0)
    assert outbox_rows(cluster) == [
        (M1, "segment.entered", {"segment_id": seg.segment_id, "name": seg.name, "control": False})
    ]
    again = cluster.bo.segment_evaluate(seg.segment_id)
    assert (again.entered, again.left) == (0, 0) and len(outbox_rows(cluster)) == 1
    cluster.clock.advance(days=11)
    till.sale("R4", M2, ("DR-1001", 1))
    till.client.drain()
    third = cluster.bo.segment_evaluate(seg.segment_id)
    assert (third.members, third.entered, third.left) == (1, 1, 1)
    assert outbox_rows(cluster)[1:] == [
        (M2, "segment.entered", {"segment_id": seg.segment_id, "name": seg.name, "control": False}),
        (M1, "segment.left", {"segment_id": seg.segment_id, "name": seg.name}),
    ]
    assert audiences.member_ids(cluster.bo.context, seg.segment_id) == [(M2, False)]
    assert cluster.bo.segment(seg.segment_id).members == 1  # type: ignore[union-attr]
    seqs = cluster.ledger("SELECT member_seq FROM outbox WHERE member_id = ? ORDER BY id", (M2,))
    assert [s[0] for s in seqs] == list(range(1, len(seqs) + 1))


def test_control_flag_is_stable_and_near_its_percentage(cluster: Cluster) -> None:
    ids = [f"m{n:08d}" for n in range(10_000)]
    flagged = [m for m in ids if in_control("campaign-1", m, 20)]
    assert 1_850 <= len(flagged) <= 2_150
    assert flagged == [m for m in ids if in_control("campaign-1", m, 20)]
    other = {m for m in ids if in_control("campaign-2", m, 20)}
    assert 0.1 < len(other & set(flagged)) / len(flagged) < 0.3  # independent salts
    assert not any(in_control("campaign-1", m, 0) for m in ids)
    rules = {"marketing_consent": False}
    seg = cluster.bo.segment_save("A/B", rules, 40, actor="mk", salt="summer")
    cluster.bo.segment_evaluate(seg.segment_id)
    before = audiences.member_ids(cluster.bo.context, seg.segment_id)
    assert {m for m, c in before if c} == {m for m, _ in before if in_control("summer", m, 40)}
    assert 0 < sum(c for _, c in before) < len(before)
    edited = cluster.bo.segment_save(
        "A/B (правка)", rules, 40, actor="mk", segment_id=seg.segment_id
    )
    assert edited.salt == "summer"  # kept: the same members stay in or out
    cluster.bo.segment_evaluate(seg.segment_id)
    assert audiences.member_ids(cluster.bo.context, seg.segment_id) == before


def test_scheduled_exports_and_the_nightly_run(
    cluster: Cluster, built: dict[str, Any], tmp_path: Path
) -> None:
    bo = cluster.bo
    seg = bo.segment_save(
        "Купили", {"frequency": {"min": 1}, "marketing_consent": False}, actor="mk"
    )
    ex = bo.segment_schedule_export(seg.segment_id, "csv", ",", "24", actor="mk")
    assert bo.segment_exports(seg.segment_id) == [ex]
    out = tmp_path / "exports"
    [first] = bo.run_segment_exports(out)
    assert first.stat().st_mode & 0o777 == 0o600
    rows = list(csv.reader(io.StringIO(first.read_text("utf-8-sig")), delimiter=","))
    assert {r[0] for r in rows[1:]} == {M1, M2}
    assert bo.run_segment_exports(out) == []  # not due again yet
    cluster.clock.advance(hours=25)
    assert len(bo.run_segment_exports(out)) == 1
    assert [p.suffix for p in out.iterdir()] == [".csv", ".csv"]
    with pytest.raises(SegmentError) as e:
        bo.segment_schedule_export(seg.segment_id, "csv", ";", "0", actor="mk")
    assert e.value.details["field"] == "every_hours"
    cluster.clock.advance(days=2)
    when = cluster.clock.now()
    cluster.clock.current = when.replace(hour=0)  # 03:00 Moscow
    assert audiences.nightly_due(bo.context)
    night = bo.audiences_nightly(out)
    assert night.scored == 2 and [ev.segment_id for ev in night.evaluations] == [seg.segment_id]
    assert len(night.files) == 1 and not audiences.nightly_due(bo.context)
    worker = audiences.AudienceWorker(bo.context, out)
    assert worker.round(busy=False) == 0  # done for today
    cluster.clock.advance(days=1)
    assert worker.round(busy=False) == 1


BAD: list[tuple[Any, str, str]] = [
    ({"frequency": {"min": "два"}}, "frequency.min", "int"),
    ({"recency": {"min": 3}}, "recency", "такого правила"),
    ({"frequency": {"window_days": 30, "mni": 1}}, "frequency.mni", "такого"),
    ({"tiers": ["platinum"]}, "tiers.0", "platinum"),
    ({"birthday_months": [5, 13]}, "birthday_months.1", "13"),
    ({"frequency": {"min": 5, "max": 2}}, "frequency.min", "больше"),
    ({"frequency": {"window_days": 0, "min": 1}}, "frequency.window_days", "3660"),
    ({"recency_days": {}}, "recency_days", "укажите"),
    ({"collection": {"mechanic": "south", "min": 1}}, "collection.mechanic", "north-5"),
    ({"purchased_at": {"window_days": 3}}, "purchased_at.stores", "обязательное"),
    ({"abc": ["D"]}, "abc.0", "A, B, C"),
    ({"rfm": {"r": [0]}}, "rfm.r.0", "1, 2, 3, 4, 5"),
    ({"balance": {"min": 1.5}}, "balance.min", "int"),
    ('{"tiers": ["base"', "rules", "JSON"),
    ("[1, 2]", "rules", "объект"),
]


@pytest.mark.parametrize(("doc", "field", "said"), BAD)
def test_bad_rules_are_refused_naming_the_field(doc: Any, field: str, said: str) -> None:
    with pytest.raises(SegmentError) as e:
        parse_rules(doc, demo_programme())
    assert e.value.details["field"] == field
    assert field in e.value.message_ru and field in e.value.message_en
    assert said in e.value.message_ru + e.value.message_en


def test_a_refused_segment_writes_nothing(cluster: Cluster) -> None:
    bo = cluster.bo
    for name, doc, pct, field in (
        ("", {}, 0, "name"),
        ("x", {"tiers": ["platinum"]}, 0, "tiers.0"),
        ("x", {}, "70", "control_pct"),
        ("x", {}, "ten", "control_pct"),
    ):
        with pytest.raises(SegmentError) as e:
            bo.segment_save(name, doc, pct, actor="mk")
        assert e.value.details["field"] == field
    with pytest.raises(SegmentError) as e:
        bo.segment_save("x", {}, actor="mk", segment_id="seg-none")
    assert e.value.details["field"] == "segment_id"
    assert bo.segments() == []
    actions = [r[0] for r in cluster.ledger("SELECT action FROM console_audit")]
    assert not [a for a in actions if a.startswith("segment")]
    with pytest.raises(SegmentError):
        bo.segment_evaluate("seg-none")

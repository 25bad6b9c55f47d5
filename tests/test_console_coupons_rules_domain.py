"""The coupons and programme-rules use cases behind the console, on SQLite and PostgreSQL:
coupons issued (single, per member, batch) as the signed tokens tills verify, nothing
issued by a bad form, a console coupon redeemed offline at a real till and seen in the
register, revocation reaching tills through the feed and the snapshot, a draft checked
with the checks of ``kassa rules check``, its readable difference, a previewed cheque
equal to the engine's, and a version published for later not active (for tills or the
back office) before its time."""

from __future__ import annotations

import json
from datetime import date, timedelta

import pytest
from cluster import Cluster
from conftest import make_cart

from agent import engine
from agent.errors import CouponError, RulesError
from agent.model import Cart, CartLine, MemberState, PointLot
from agent.results import CheckoutRequest
from agent.rules import load_programme_text, programme_to_dict
from agent.seed import demo_programme
from agent.tokens import TokenVerifier, load_ed25519_public_key, verify_coupon
from sync.backoffice import couponsheet, project
from sync.backoffice.coupons import CouponIssueError
from sync.backoffice.programme import ProgrammeError

M1 = "m00000001"


def _count(cluster: Cluster, table: str) -> int:
    return int(cluster.ledger(f"SELECT count(*) FROM {table}")[0][0])


def _issue(cluster: Cluster, mode: str = "batch", **kw: str):
    fields = {
        "kind": "percent",
        "value": "10",
        "valid_from": "2026-06-15",
        "valid_until": "2026-06-30",
        "min_cheque": "",
    } | kw
    return cluster.bo.coupon_issue(
        mode,
        fields.pop("kind"),
        fields.pop("value"),
        fields.pop("valid_from"),
        fields.pop("valid_until"),
        fields.pop("min_cheque"),
        actor="olga",
        **fields,
    )


def _code(cluster: Cluster, member_id: str = M1) -> str:
    return str(cluster.ledger("SELECT code FROM members WHERE member_id = ?", (member_id,))[0][0])


def test_issue_single_members_and_batch_as_signed_tokens(cluster: Cluster) -> None:
    verifier = TokenVerifier({1: load_ed25519_public_key(cluster.bo.setting("token_public_key"))})
    now = cluster.clock.now()
    one = _issue(cluster, "single", kind="fixed", value="500", min_cheque="2000,00")
    per = _issue(cluster, "members", members=f"{_code(cluster)}\n{_code(cluster, 'm00000002')}")
    many = _issue(cluster, "batch", count="25", kind="points", value="300")
    assert (one.count, per.count, many.count) == (1, 2, 25)
    found = cluster.bo.coupon_batch(per.batch_id)
    assert found is not None
    _, items, redemptions = found
    assert redemptions == []
    coupon = verify_coupon(verifier, items[0].token, now + timedelta(hours=1))
    assert coupon.member_code == _code(cluster) and coupon.kind == "percent"
    assert coupon.value == 1000  # basis points
    # the window is the programme's days: Moscow midnight to the day after the last
    assert coupon.valid_from.isoformat() == "2026-06-14T21:00:00+00:00"
    assert coupon.valid_until.isoformat() == "2026-06-30T21:00:00+00:00"
    assert found[0].days() == (date(2026, 6, 15), date(2026, 6, 30))  # as typed, inclusive
    b1 = cluster.bo.coupon_batch(one.batch_id)
    assert b1 is not None
    fixed = verify_coupon(verifier, b1[1][0].token, now + timedelta(hours=1))
    assert (fixed.value, fixed.min_cheque_kop, fixed.member_code) == (50_000, 200_000, None)
    listed = {b.batch_id: b for b in cluster.bo.coupon_batches()}
    assert listed[many.batch_id].count == 25
    actions = cluster.ledger("SELECT action, subject FROM console_audit ORDER BY n")
    assert actions[-3:] == [
        ("coupons_issued", one.batch_id),
        ("coupons_issued", per.batch_id),
        ("coupons_issued", many.batch_id),
    ]


@pytest.mark.parametrize(
    ("mode", "kw", "field"),
    [
        ("batch", {"count": "0"}, "count"),
        ("batch", {"count": "2001"}, "count"),
        ("batch", {"count": "ten"}, "count"),
        ("single", {"value": "101"}, "value"),
        ("single", {"value": "10.123"}, "value"),
        ("single", {"kind": "gift"}, "kind"),
        ("single", {"valid_until": "2026-06-01"}, "valid_until"),
        ("single", {"valid_from": "15.06.2026"}, "valid_from"),
        ("single", {"min_cheque": "-5"}, "min_cheque"),
        ("members", {"members": "12345"}, "members"),
        ("members", {"members": ""}, "members"),
    ],
)
def test_bad_form_issues_nothing(cluster: Cluster, mode: str, kw: dict[str, str], field: str):
    before = (_count(cluster, "coupons"), _count(cluster, "console_audit"))
    with pytest.raises(CouponIssueError) as e:
        _issue(cluster, mode, **kw)
    assert e.value.details["field"] == field
    assert e.value.message_ru and e.value.message_en
    assert (_count(cluster, "coupons"), _count(cluster, "console_audit")) == before


def test_unknown_member_among_many_issues_nothing(cluster: Cluster) -> None:
    from agent.identify import make_member_code

    ghost = make_member_code(987654)
    with pytest.raises(CouponIssueError) as e:
        _issue(cluster, "members", members=f"{_code(cluster)} {ghost}")
    assert ghost in e.value.message_en
    assert _count(cluster, "coupons") == 0 and _count(cluster, "coupon_batches") == 0


def test_console_coupon_redeemed_offline_then_revoked_after_sync(cluster: Cluster) -> None:
    till = cluster.till()
    batch = _issue(cluster, "batch", count="3")
    found = cluster.bo.coupon_batch(batch.batch_id)
    assert found is not None
    tokens = [c.token for c in found[1]]
    cluster.clock.advance(hours=1)
    # the till is offline (nothing synced since its enrolment): it verifies the coupon itself
    cluster.transport.plan = lambda r: "drop_request"
    sold = till.agent.commit(
        CheckoutRequest(M1, make_cart("R1", ("DR-1001", 1)), 0, coupon=tokens[0], cashier_id="c1")
    )
    assert sold.quote.coupon_id == found[1][0].coupon_id
    discount = sum(ql.coupon_discount_kop for ql in sold.quote.lines)
    assert discount > 0
    cluster.transport.plan = lambda r: None
    till.client.drain()
    project.run_all(cluster.bo.context)
    found = cluster.bo.coupon_batch(batch.batch_id)
    assert found is not None
    (used,) = found[2]
    assert (used.receipt_id, used.discount_kop, used.after_revocation) == ("R1", discount, False)
    assert found[0].redeemed == 1
    # revoked in the console: refused at the till once it has pulled the change
    assert cluster.bo.coupon_revoke(batch.batch_id, found[1][1].coupon_id, "leaked", actor="olga")
    assert till.agent.read_coupon(tokens[1]).coupon_id  # not yet synced: still taken
    cluster.transport.plan = lambda r: "drop_request"
    till.agent.commit(CheckoutRequest(M1, make_cart("R1b", ("DR-1001", 1)), 0, coupon=tokens[1]))
    cluster.transport.plan = lambda r: None
    till.client.drain()
    project.run_all(cluster.bo.context)
    found = cluster.bo.coupon_batch(batch.batch_id)
    assert found is not None
    late_use = [r for r in found[2] if r.receipt_id == "R1b"]
    assert [r.after_revocation for r in late_use] == [True]  # the register says so
    till.client.pull_all()
    with pytest.raises(CouponError) as e:
        till.agent.read_coupon(tokens[1])
    assert e.value.message_en == "the programme revoked this coupon"
    with pytest.raises(CouponError):
        till.agent.commit(CheckoutRequest(M1, make_cart("R2", ("DR-1001", 1)), 0, coupon=tokens[1]))
    assert till.agent.read_coupon(tokens[2]).coupon_id  # the rest of the batch still works
    # the whole batch, and a till enrolled later learns it from the snapshot's header
    assert cluster.bo.coupon_revoke(batch.batch_id, None, "campaign over", actor="olga") == 2
    assert cluster.bo.coupon_revoke(batch.batch_id, None, "again", actor="olga") == 0
    late = cluster.till("till-2")
    late.client.pull_all()
    for token in tokens[1:]:
        with pytest.raises(CouponError):
            late.agent.read_coupon(token)
    actions = [a for (a,) in cluster.ledger("SELECT action FROM console_audit ORDER BY n")]
    assert actions[-2:] == ["coupon_revoked", "coupon_revoked"]
    with pytest.raises(CouponIssueError):
        cluster.bo.coupon_revoke(batch.batch_id, None, "  ", actor="olga")


def test_sheet_and_csv_carry_the_issued_tokens(cluster: Cluster) -> None:
    import csv
    import io

    batch = _issue(cluster, "batch", count="14")
    found = cluster.bo.coupon_batch(batch.batch_id)
    assert found is not None
    rows = list(
        csv.DictReader(io.StringIO(cluster.bo.coupon_sheet(batch.batch_id, "csv").decode()))
    )
    assert [r["token"] for r in rows] == [c.token for c in found[1]]
    assert rows[0]["value"] == "1000" and rows[0]["kind"] == "percent"
    pdf = cluster.bo.coupon_sheet(batch.batch_id, "pdf")
    assert pdf is not None and pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/Count 2" in pdf  # 12 a page
    assert cluster.bo.coupon_sheet("nope", "pdf") is None
    assert couponsheet.terms_text(found[0]) == "−10 %"


# ---------------------------------------------------------------------- rules


def _draft(version: int, **changes: object) -> str:
    doc = programme_to_dict(demo_programme()) | {"version": version} | changes
    return json.dumps(doc, ensure_ascii=False, indent=2)


def test_draft_is_checked_as_kassa_rules_check_does(cluster: Cluster) -> None:
    bad = _draft(7, redeem_cap_bp=20_000)
    with pytest.raises(RulesError) as ours:
        cluster.bo.rules_check(bad, "auto")
    with pytest.raises(RulesError) as cli:
        load_programme_text(bad, "json", "console")
    assert ours.value.message_en == cli.value.message_en
    with pytest.raises(RulesError):
        cluster.bo.rules_check("version = 7\nname = ", "toml")
    active = cluster.bo.active_rules().version
    with pytest.raises(ProgrammeError) as e:  # a used number with other content
        cluster.bo.rules_check(_draft(active, name="Другая"), "json")
    assert e.value.details["field"] == "version"


def test_difference_from_the_active_version_is_readable(cluster: Cluster) -> None:
    tiers = programme_to_dict(demo_programme())["tiers"]
    tiers[1] = tiers[1] | {"accrual_bp": tiers[1]["accrual_bp"] + 100}
    draft = cluster.bo.rules_check(_draft(2, tiers=tiers, name="Лето"), "json")
    paths = {c.path: (c.old, c.new) for c in draft.changes}
    code = tiers[1]["code"]
    assert paths[f"tiers[{code}].accrual_bp"] == (
        str(tiers[1]["accrual_bp"] - 100),
        str(tiers[1]["accrual_bp"]),
    )
    assert paths["version"] == ("1", "2")
    assert paths["name"] == (demo_programme().name, "Лето")
    assert len(draft.changes) == 3


def test_preview_is_the_engines_quote(cluster: Cluster) -> None:
    text = _draft(2)
    cat = sorted(demo_programme().categories)[0]
    draft, q, at = cluster.bo.rules_preview(
        text, "json", f"{cat} 4999,90 2\n{cat} 1000 1 sale", "", "500", "0", "100"
    )
    assert at == cluster.clock.now()
    assert [ql.amount_kop for ql in q.lines] == [999_980, 100_000]
    assert q.redeem_points == 100
    lines = (
        CartLine(1, "PREVIEW-1", cat, cat, 499_990, 2, 999_980, False),
        CartLine(2, "PREVIEW-2", cat, cat, 100_000, 1, 100_000, True),
    )
    lot = PointLot(
        "preview",
        500,
        at - timedelta(days=1),
        at - timedelta(days=1),
        at + timedelta(days=365),
        "purchase",
    )
    mine = engine.quote(
        Cart("preview", lines),
        MemberState("preview", (lot,)),
        draft.programme,
        at,
        redeem_points=100,
    )
    assert mine == q
    with pytest.raises(ProgrammeError) as e:
        cluster.bo.rules_preview(text, "json", "dresses", "", "0", "0", "0")
    assert e.value.details["field"] == "lines"


def test_version_published_for_later_is_not_active_before_its_time(cluster: Cluster) -> None:
    till = cluster.till()
    till.client.pull_all()
    assert till.agent.programme().version == 1
    later = (cluster.clock.now() + timedelta(days=2)).astimezone(demo_programme().tz)
    act = cluster.bo.rules_publish(
        _draft(2, name="С июля"), "json", later.strftime("%Y-%m-%dT%H:%M"), actor="olga"
    )
    assert act.state == "scheduled"
    assert cluster.bo.active_rules().version == 1  # GET /v1/rules
    assert cluster.bo.context.programmes.get().version == 1  # the back office's scoring
    till.client.pull_all()
    assert till.agent.programme().version == 1
    states = {a.version: a.state for a in cluster.bo.rules_overview()[1]}
    assert states == {2: "scheduled", 1: "active"}
    cluster.clock.advance(days=2, minutes=1)
    assert cluster.bo.context.programmes.get().version == 2
    r = cluster.http.get("/v1/rules", headers={"authorization": f"Bearer {till.client.token}"})
    assert r.json()["version"] == 2
    till.client.pull_all()
    assert till.agent.programme().version == 2
    assert cluster.bo.rules_overview()[1][0].state == "active"
    audit = cluster.ledger("SELECT action, subject FROM console_audit ORDER BY n DESC LIMIT 1")
    assert audit == [("rules_published", "v2")]
    with pytest.raises(ProgrammeError) as e:  # the past is refused
        cluster.bo.rules_publish(_draft(3), "json", "2020-01-01T00:00", actor="olga")
    assert e.value.details["field"] == "effective_at"
    assert 3 not in {a.version for a in cluster.bo.rules_overview()[1]}

"""The console's members section below the pages (``member_admin``, ``member_ops``), on
SQLite and PostgreSQL, with real tills: search by phone, card code and name prefix (store
scope), the profile explaining a cheque, adjustments as ledger entries that reach the
till through the change feed, blocking, merging, erasure (the till's cache erased through
the real sync client), every change audited, and bad input refused with nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from cluster import Cluster
from synchelp import portal

from agent.erasure import MemberBlockedError
from agent.seed import demo_phone
from sync.backoffice.member_admin import MemberAdminError, search
from sync.backoffice.people import audit

M1, M2, M3 = "m00000001", "m00000002", "m00000003"


@pytest.fixture
def cluster(tmp_path: Path, db_url: str) -> Iterator[Cluster]:
    with portal() as p:
        c = Cluster(tmp_path, db_url, p, members=40)
        yield c
        c.close()


def code_of(cluster: Cluster, member_id: str) -> str:
    return str(cluster.ledger("SELECT code FROM members WHERE member_id = ?", (member_id,))[0][0])


def audit_rows(cluster: Cluster) -> int:
    return len(audit.entries(cluster.db, limit=1000))


def feed_kinds(cluster: Cluster, member_id: str) -> list[str]:
    rows = cluster.ledger("SELECT kind FROM changes WHERE member_id = ? ORDER BY seq", (member_id,))
    return [r[0] for r in rows]


def test_search_by_phone_code_and_name_prefix_in_scope(cluster: Cluster) -> None:
    bo = cluster.bo
    found = bo.find_members("8 (916) " + demo_phone(1)[5:])  # typed another way
    assert found.kind == "phone" and [h.member_id for h in found.hits] == [M1]
    found = bo.find_members(code_of(cluster, M2))
    assert found.kind == "code" and [h.member_id for h in found.hits] == [M2]
    name = found.hits[0].first_name
    assert name
    mixed = name[0].lower() + name[1:3].upper()  # case-insensitive: "аНН" finds "Анна"
    by_name = bo.find_members(mixed)
    assert by_name.kind == "name" and M2 in {h.member_id for h in by_name.hits}
    assert all((h.first_name or "").lower().startswith(mixed.lower()) for h in by_name.hits)
    with cluster.db.transaction() as tx:
        tx.execute("UPDATE members SET store_id = 's2' WHERE member_id = ?", (M2,))
    assert bo.find_members(code_of(cluster, M2), store_scope="s1").hits == []
    assert M2 not in {h.member_id for h in bo.find_members(mixed, store_scope="s1").hits}
    with pytest.raises(MemberAdminError) as e:
        bo.member_profile(M2, store_scope="s1")
    assert e.value.code == "member_not_found"
    limited = search(cluster.bo.context, name[0], limit=2)
    assert len(limited.hits) == 2 and limited.more
    valid = code_of(cluster, M1)
    typo = valid[:-1] + str((int(valid[-1]) + 1) % 10)  # a wrong check digit
    for bad, code in (("  ", "empty_query"), ("12345", "bad_phone"), (typo, "bad_code")):
        with pytest.raises(MemberAdminError) as e:
            bo.find_members(bad)
        assert e.value.code == code


def test_profile_explains_a_cheque_and_lists_lots(cluster: Cluster) -> None:
    till = cluster.till()
    res = till.sale("R1", M1, ("DR-1001", 2), ("SH-2001", 1))
    till.client.drain()
    p = cluster.bo.member_profile(M1)
    cheque = next(h for h in p.history if h.kind == "purchase")
    assert cheque.ref == "R1" and cheque.earned == res.quote.total_earned
    why = cheque.why
    assert why is not None and why.earned == res.quote.total_earned
    assert sum(line.points for line in why.lines) == res.quote.earn_points
    assert [line.rate_bp for line in why.lines] == [ql.earn_rate_bp for ql in res.quote.lines]
    assert all(line.base_bp > 0 or line.no_accrual for line in why.lines)
    assert any(lot.status == "pending" for lot in p.lots)  # the cheque's points wait
    assert p.balance == cluster.server_balance(M1)
    assert {c.kind for c in p.consents} == {"programme", "marketing"}


def test_adjustment_is_a_ledger_entry_that_reaches_the_till(cluster: Cluster) -> None:
    till = cluster.till()
    before = cluster.server_balance(M1)
    done = cluster.bo.adjust_points(M1, "+150", "  компенсация  за сбой ", actor="sup")
    assert done.balance_after == before + 150 == cluster.server_balance(M1)
    row = cluster.ledger("SELECT points, reason, actor FROM member_adjustments")
    assert [tuple(r) for r in row] == [(150, "компенсация за сбой", "sup")]
    assert feed_kinds(cluster, M1)[-1] == "member"
    entry = audit.entries(cluster.db, limit=1)[0]
    assert (entry.action, entry.subject) == ("member_adjusted", M1)
    assert entry.particulars()["points"] == 150
    till.client.pull_all()
    assert till.balance(M1) == before + 150
    cluster.bo.adjust_points(M1, "-50", "ошибка", actor="sup")
    till.client.pull_all()
    assert till.balance(M1) == cluster.server_balance(M1) == before + 100
    p = cluster.bo.member_profile(M1)
    assert [h.earned - h.spent for h in p.history if h.kind == "adjustment"] == [-50, 150]
    assert audit.verify(cluster.db).ok


@pytest.mark.parametrize(
    ("points", "reason", "code"),
    [
        ("100", "   ", "no_reason"),
        ("1.5", "x", "bad_points"),
        ("сто", "x", "bad_points"),
        ("0", "x", "zero_points"),
        ("-0", "x", "zero_points"),
        ("-99999", "x", "too_many_points"),
    ],
)
def test_bad_adjustment_changes_nothing(
    cluster: Cluster, points: str, reason: str, code: str
) -> None:
    state = cluster.ledger("SELECT state, balance FROM members WHERE member_id = ?", (M1,))
    rows, feed = audit_rows(cluster), cluster.bo.feed_head()
    with pytest.raises(MemberAdminError) as e:
        cluster.bo.adjust_points(M1, points, reason, actor="sup")
    assert e.value.code == code and e.value.message_ru and e.value.message_en
    assert cluster.ledger("SELECT state, balance FROM members WHERE member_id = ?", (M1,)) == state
    assert (audit_rows(cluster), cluster.bo.feed_head()) == (rows, feed)
    assert cluster.ledger("SELECT count(*) FROM member_adjustments")[0][0] == 0


def test_block_and_unblock_go_through_the_feed(cluster: Cluster) -> None:
    till = cluster.till()
    bo = cluster.bo
    bo.block_member(M1, True, "карта утеряна", actor="sup")
    till.client.pull_all()  # the till refuses the blocked card
    with pytest.raises(MemberBlockedError) as refused:
        till.agent.identify(demo_phone(1))
    assert refused.value.code == "member_blocked"
    assert cluster.ledger("SELECT blocked FROM members WHERE member_id = ?", (M1,))[0][0] == 1
    body = cluster.ledger("SELECT body FROM changes WHERE kind = 'block' ORDER BY seq")
    assert json.loads(body[-1][0]) == {"member_id": M1, "blocked": True}
    assert bo.member_profile(M1).blocked
    with pytest.raises(MemberAdminError) as e:
        bo.block_member(M1, True, "ещё раз", actor="sup")
    assert e.value.code == "already"
    bo.block_member(M1, False, "нашлась", actor="sup")
    assert not bo.member_profile(M1).blocked
    till.client.pull_all()
    assert till.agent.identify(demo_phone(1)).member_id == M1
    kinds = [f.kind for f in bo.member_profile(M1).flags]
    assert kinds == ["unblocked", "blocked"]
    actions = [e.action for e in audit.entries(cluster.db, limit=2)]
    assert actions == ["member_unblocked", "member_blocked"]
    bo.block_member(M2, True, "мошенничество", actor="sup")
    late = cluster.till("till-2")  # loaded from a snapshot taken after the block change
    with pytest.raises(MemberBlockedError):
        late.agent.identify(demo_phone(2))
    assert late.agent.identify(demo_phone(1)).member_id == M1


def test_merge_moves_points_and_reaches_the_till(cluster: Cluster) -> None:
    till = cluster.till()
    bo = cluster.bo
    both = cluster.server_balance(M1) + cluster.server_balance(M2)
    with pytest.raises(MemberAdminError) as e:
        bo.merge_members(M1, code_of(cluster, M1), "дубль", actor="sup")
    assert e.value.code == "merge_self"
    with pytest.raises(MemberAdminError) as e:
        bo.merge_members(M1, "12345", "дубль", actor="sup")
    assert e.value.code == "bad_code"
    assert bo.merge_members(M1, code_of(cluster, M2), "одна семья", actor="sup") == M2
    assert cluster.server_balance(M1) == both and cluster.server_balance(M2) == 0
    assert cluster.ledger("SELECT merged_into FROM members WHERE member_id = ?", (M2,))[0][0] == M1
    assert feed_kinds(cluster, M2)[-1] == "merge"
    assert bo.find_members(code_of(cluster, M2)).hits == []  # merged away
    p = bo.member_profile(M1)
    assert p.merged == (M2,) and p.flags[0].kind == "merge"
    till.client.pull_all()
    assert till.balance(M1) == both
    assert till.store.one("SELECT merged_into FROM members WHERE member_id = ?", (M2,))[0] == M1
    res = till.sale("R9", M2, ("DR-1001", 1))  # a till that still sells to the old card
    till.client.drain()
    assert res.event_id in cluster.events()
    assert any(h.ref == "R9" for h in bo.member_profile(M1).history)
    with pytest.raises(MemberAdminError) as e:
        bo.merge_members(M3, code_of(cluster, M2), "дубль", actor="sup")
    assert e.value.code == "merged"


def test_erasure_destroys_personal_data_everywhere_and_at_the_till(cluster: Cluster) -> None:
    till = cluster.till()
    reg = till.agent.register(
        phone="+79035550011",
        first_name="Зоя",
        consent_programme=True,
        consent_marketing=True,
        birthday=date(1990, 5, 1),
    )
    mid = reg.card.member_id
    till.sale("R1", mid, ("DR-1001", 1))
    till.client.drain()
    till.client.pull_all()
    assert cluster.bo.find_members("Зо").hits
    act = cluster.bo.erase_member(mid, "отзыв согласия, заявление № 7", actor="sup")
    assert act.act_no == 1 and act.members == (mid,)
    assert {r["kind"] for r in act.extract} >= {"registration", "purchase"}
    row = cluster.ledger(
        "SELECT phone_hash, phone_masked, phone_sealed, first_name, birthday, "
        "consent_programme, consent_marketing, blocked, erased_at IS NOT NULL, state "
        "FROM members WHERE member_id = ?",
        (mid,),
    )[0]
    assert tuple(row[:9]) == (None, None, None, None, None, 0, 0, 1, True)
    assert '"birthday":null' in row[9].replace(" ", "")
    payload = cluster.ledger(
        "SELECT payload FROM events WHERE type = 'member_registered' AND member_id = ?", (mid,)
    )[0][0]
    for personal in ("+7903", "Зоя", "1990-05-01", "phone_hash", "phone_sealed"):
        assert personal not in payload
    bodies = cluster.ledger("SELECT body FROM changes WHERE member_id = ?", (mid,))
    assert bodies and all("Зоя" not in b[0] and "1990" not in b[0] for b in bodies)
    assert cluster.ledger("SELECT count(*) FROM purchases WHERE member_id = ?", (mid,))[0][0] == 1
    assert cluster.bo.find_members("Зо").hits == []
    assert cluster.bo.find_members("+79035550011").hits == []
    assert cluster.bo.erasure_act(mid).act_no == 1
    till.client.pull_all()  # the till's cache receives the erasure through the feed
    cached = till.store.one(
        "SELECT phone_hash, phone_masked, first_name, consent_marketing, state "
        "FROM members WHERE member_id = ?",
        (mid,),
    )
    assert cached[:4] == (None, None, None, 0) and "1990" not in cached[4]
    with pytest.raises(MemberBlockedError):
        till.agent.identify(reg.card.code)
    journal_row = till.store.one(
        "SELECT payload FROM outbox WHERE type = 'member_registered' AND member_id = ?", (mid,)
    )[0]
    assert (
        "Зоя" not in journal_row and "1990" not in journal_row and "phone_sealed" not in journal_row
    )
    rows, feed = audit_rows(cluster), cluster.bo.feed_head()
    with pytest.raises(MemberAdminError) as e:
        cluster.bo.erase_member(mid, "ещё раз", actor="sup")
    assert e.value.code == "already_erased"
    with pytest.raises(MemberAdminError) as e:
        cluster.bo.adjust_points(mid, "10", "после удаления", actor="sup")
    assert e.value.code == "erased"
    assert (audit_rows(cluster), cluster.bo.feed_head()) == (rows, feed)
    assert audit.verify(cluster.db).ok

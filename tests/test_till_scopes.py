"""What a till's token may read and do, against the real back office on SQLite and
PostgreSQL: full member records only of its own store's members (snapshot and change
feed), the rest of the chain without name or masked phone yet found offline and able to
spend; no member QR token minted with it; no member code told valid by the answer."""

from __future__ import annotations

import json
from typing import Any

from cluster import Cluster, TillNode

from agent.identify import make_member_code
from agent.seed import demo_phone

M1 = "m00000001"
PERSONAL = ("first_name", "phone_masked")


def _two_stores(cluster: Cluster) -> tuple[TillNode, TillNode]:
    """A till of the members' store (s1) and one of another store (s2)."""
    cluster.bo.ensure_store("s2", "Арбат")
    return cluster.till("till-s1"), cluster.till("till-s2", store_id="s2")


def _bearer(till: TillNode) -> dict[str, str]:
    return {"authorization": f"Bearer {till.client.token}"}


def _cached(till: TillNode, member_id: str) -> tuple[Any, ...]:
    return tuple(
        till.store.one(
            "SELECT first_name, phone_masked, phone_hash, code, balance FROM members "
            "WHERE member_id = ?",
            (member_id,),
        )
    )


def _snapshot(cluster: Cluster, till: TillNode) -> dict[str, dict[str, Any]]:
    r = cluster.http.get("/v1/snapshot", headers=_bearer(till))
    assert r.status_code == 200
    lines = [json.loads(x) for x in r.text.splitlines()]
    assert lines[0]["kind"] == "snapshot" and lines[-1] == {"kind": "end", "members": 50}
    return {m["member_id"]: m for m in lines[1:-1]}


def test_snapshot_gives_names_and_masks_only_to_the_members_own_store(cluster: Cluster) -> None:
    own, other = _two_stores(cluster)
    mine, theirs = _snapshot(cluster, own), _snapshot(cluster, other)
    assert mine.keys() == theirs.keys() and len(mine) == 50
    assert all(m["first_name"] and m["phone_masked"] for m in mine.values())
    for member_id, full in mine.items():
        minimal = theirs[member_id]
        assert [minimal[f] for f in PERSONAL] == [None, None]
        # all that identification and spending need is still there, the same
        rest = {k: v for k, v in full.items() if k not in PERSONAL}
        assert {k: v for k, v in minimal.items() if k not in PERSONAL} == rest
    # the tills' caches (filled by that snapshot at enrollment) hold the same
    name, masked, phone_hash, code, balance = _cached(own, M1)
    assert name and masked
    assert _cached(other, M1) == (None, None, phone_hash, code, balance)
    # ... and the other store's till still finds the member offline, by phone and by code
    cluster.transport.plan = lambda r: "drop_request"
    assert other.agent.identify(demo_phone(1)).member_id == M1
    assert other.agent.identify(code).member_id == M1
    assert other.agent.identify(demo_phone(1)).balance == balance


def test_change_feed_gives_names_and_masks_only_to_the_members_own_store(
    cluster: Cluster,
) -> None:
    own, other = _two_stores(cluster)
    # a sale at the member's store, and a member registered at the other store
    own.sale("R1", M1, ("DR-1001", 1))
    joined = other.agent.register(
        phone="+7 999 765-43-21", first_name="Зоя", consent_programme=True, consent_marketing=False
    ).card.member_id
    own.client.drain()
    other.client.drain()

    def members(till: TillNode) -> dict[str, dict[str, Any]]:
        r = cluster.http.get("/v1/changes", headers=_bearer(till))
        assert r.status_code == 200
        return {c["member_id"]: c["body"] for c in r.json()["changes"] if c["kind"] == "member"}

    seen_own, seen_other = members(own), members(other)
    assert {M1, joined} <= seen_own.keys() and {M1, joined} <= seen_other.keys()
    assert seen_own[M1]["first_name"] and seen_own[M1]["phone_masked"]
    assert [seen_other[M1][f] for f in PERSONAL] == [None, None]
    assert seen_other[joined]["first_name"] == "Зоя" and seen_other[joined]["phone_masked"]
    assert [seen_own[joined][f] for f in PERSONAL] == [None, None]
    for member_id in (M1, joined):
        a, b = seen_own[member_id], seen_other[member_id]
        assert {k: v for k, v in a.items() if k not in PERSONAL} == {
            k: v for k, v in b.items() if k not in PERSONAL
        }
    # the other store's till, pulling the feed, knows the new balance and can spend it
    other.client.pull_all()
    assert other.balance(M1) == cluster.server_balance(M1) == own.balance(M1)
    assert _cached(other, M1)[:2] == (None, None)


def test_a_till_token_mints_no_member_token_and_tells_no_code_valid(cluster: Cluster) -> None:
    own, _ = _two_stores(cluster)
    code = own.agent.card(M1).code
    unknown = make_member_code(999_999_999)
    minted = [
        cluster.http.post(f"/v1/members/{probe}/token", headers=_bearer(own))
        for probe in (code, unknown, "ABC")
    ]
    # the same refusal whatever the code: the admin token's endpoint
    assert {(r.status_code, r.json()["code"]) for r in minted} == {(401, "bad_token")}
    assert {r.headers["www-authenticate"] for r in minted} == {
        'Bearer realm="kassa-backoffice", error="invalid_token"'
    }
    looked_up = [
        cluster.http.get("/v1/members/lookup", params={"code": p}, headers=_bearer(own))
        for p in (unknown, "ABC", code[:-1] + str((int(code[-1]) + 1) % 10))
    ]
    # a malformed, a wrong-check-digit and a well-formed unknown code: one same answer
    assert {r.status_code for r in looked_up} == {404}
    assert len({r.content for r in looked_up}) == 1
    found = cluster.http.get("/v1/members/lookup", params={"code": code}, headers=_bearer(own))
    assert found.status_code == 200 and found.json()["member_id"] == M1

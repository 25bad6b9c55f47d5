"""The switch to the v2 phone fingerprint (``agent.phonehash``) on every side, and what
was stored before it: a till store and a back office made with v1 fingerprints and masks
with digits keep finding their members by phone, the migrations hide the digits, the
back office's upgrade pass turns v1 into v2 and the tills receive it, and a till of the
version before the switch (v1 in its registrations) is still accepted. SQLite and
PostgreSQL for the back office."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from cluster import Cluster

from agent import codec
from agent.errors import ConflictError
from agent.identify import mask_phone, phone_hash
from agent.phonehash import TILL_COST, hard_phone_hash, store_mask
from agent.rules import programme_to_dict
from agent.seed import demo_programme
from agent.store import MIGRATION_SET, Store
from sync.backoffice import member_signup, phones
from sync.backoffice.programme import ProgrammeError
from sync.backoffice.schema import migrate

PHONE = "+79031234567"
TYPED = "8 (903) 123-45-67"


def _key(cluster: Cluster) -> bytes:
    return bytes.fromhex(cluster.bo.setting("phone_hash_key"))


def _cost(cluster: Cluster) -> object:
    return phones.cost(cluster.bo.context)


def test_the_demo_programme_carries_a_low_cost_and_production_the_strong_one() -> None:
    demo = demo_programme()
    assert demo.phone_hash != TILL_COST and demo.phone_hash.n == 2
    production = replace(demo, phone_hash=TILL_COST)
    assert "phone_hash" not in programme_to_dict(production)  # an older till reads it
    assert programme_to_dict(demo)["phone_hash"] == {"n": 2, "r": 1, "p": 1}


def test_registration_at_the_till_stores_v2_and_no_digit(cluster: Cluster) -> None:
    till = cluster.till()
    reg = till.agent.register(
        phone=TYPED, first_name="Вера", consent_programme=True, consent_marketing=False
    )
    assert reg.card.phone_masked == mask_phone(PHONE)  # the cashier sees the typed digits
    cost = till.agent.programme().phone_hash
    key = _key(cluster)
    row = till.store.one(
        "SELECT phone_hash, phone_masked FROM members WHERE member_id = ?", (reg.card.member_id,)
    )
    assert row == (hard_phone_hash(PHONE, key, cost), "+7 *** ***-**-**")
    ev = till.store.one("SELECT payload FROM outbox WHERE type = 'member_registered'")
    payload = json.loads(ev[0])
    assert payload["phone_hash"] == row[0] and payload["fingerprint_v"] == 2
    assert payload["phone_masked"] == "+7 *** ***-**-**"
    found = till.agent.identify("+7 903 123 45 67")
    assert found.member_id == reg.card.member_id and found.phone_masked == mask_phone(PHONE)
    with pytest.raises(ConflictError):
        till.agent.register(
            phone=PHONE, first_name="Вера", consent_programme=True, consent_marketing=False
        )
    till.client.sync_now()
    ledger = cluster.ledger(
        "SELECT phone_hash, phone_masked, phone_legacy FROM members WHERE member_id = ?",
        (reg.card.member_id,),
    )
    assert ledger == [(row[0], "+7 *** ***-**-**", 0)]
    hit = cluster.bo.find_members(TYPED)
    assert [h.member_id for h in hit.hits] == [reg.card.member_id]


def test_a_till_of_the_previous_version_registering_with_v1_is_accepted(
    cluster: Cluster,
) -> None:
    """An old till sends the v1 HMAC and a 4-digit mask without ``fingerprint_v``: the back
    office stores v2 made from that v1 and the mask without digits, and the till's cache
    gets them back."""
    till = cluster.till()
    reg = till.agent.register(
        phone=PHONE, first_name="Олег", consent_programme=True, consent_marketing=False
    )
    key = _key(cluster)
    with till.store.write() as conn:  # what the previous version wrote
        raw = conn.execute(
            "SELECT seq, payload FROM outbox WHERE type = 'member_registered'"
        ).fetchone()
        payload = json.loads(raw[1])
        payload["phone_hash"] = phone_hash(PHONE, key)
        payload["phone_masked"] = mask_phone(PHONE)
        del payload["fingerprint_v"]
        body = codec.dumps(payload)
        conn.execute(
            "UPDATE outbox SET payload = ?, payload_hash = ? WHERE seq = ?",
            (body, codec.digest(body), raw[0]),
        )
        conn.execute(
            "UPDATE members SET phone_hash = ?, phone_masked = ? WHERE member_id = ?",
            (phone_hash(PHONE, key), mask_phone(PHONE), reg.card.member_id),
        )
    till.client.sync_now()
    v2 = hard_phone_hash(PHONE, key, till.agent.programme().phone_hash)
    assert cluster.ledger(
        "SELECT phone_hash, phone_masked FROM members WHERE member_id = ?", (reg.card.member_id,)
    ) == [(v2, "+7 *** ***-**-**")]
    till.client.pull_all()
    assert till.store.one(
        "SELECT phone_hash, phone_masked FROM members WHERE member_id = ?", (reg.card.member_id,)
    ) == (v2, "+7 *** ***-**-**")
    assert till.agent.identify(PHONE).member_id == reg.card.member_id


def _as_before_the_switch(cluster: Cluster, member_id: str) -> str:
    """The member's back-office row as the version before the switch kept it (v1, the
    last four digits), with migration 0024 not yet applied; returns the v1."""
    v1 = phone_hash(PHONE, _key(cluster))
    with cluster.db.transaction() as tx:
        tx.execute(
            "UPDATE members SET phone_hash = ?, phone_masked = ? WHERE member_id = ?",
            (v1, mask_phone(PHONE), member_id),
        )
        tx.execute("DROP INDEX members_phone_legacy")
        tx.execute("ALTER TABLE members DROP COLUMN phone_legacy")
        tx.execute("DELETE FROM schema_migrations WHERE name = '0024_phone_fingerprint_v2'")
    return v1


def test_a_back_office_of_v1_members_migrates_finds_and_upgrades_them(cluster: Cluster) -> None:
    till = cluster.till()
    reg = till.agent.register(
        phone=PHONE, first_name="Нина", consent_programme=True, consent_marketing=True
    )
    till.client.sync_now()
    member_id = reg.card.member_id
    v1 = _as_before_the_switch(cluster, member_id)
    assert migrate(cluster.db) == ["0024_phone_fingerprint_v2"]
    assert cluster.ledger(
        "SELECT phone_hash, phone_masked, phone_legacy FROM members WHERE member_id = ?",
        (member_id,),
    ) == [(v1, "+7 *** ***-**-**", 1)]
    demo_rows = cluster.ledger("SELECT count(*) FROM members WHERE phone_legacy = 1")[0][0]
    assert (
        demo_rows
        == cluster.ledger("SELECT count(*) FROM members WHERE phone_hash IS NOT NULL")[0][0]
    )
    # found by phone while still v1: the console's search
    assert [h.member_id for h in cluster.bo.find_members(TYPED).hits] == [member_id]

    seq = cluster.ledger("SELECT max(seq) FROM changes")[0][0]
    settled = 0
    while n := cluster.bo.upgrade_phone_fingerprints(limit=7):
        settled += n
    assert settled == demo_rows and phones.legacy_left(cluster.bo.context) == 0
    v2 = hard_phone_hash(PHONE, _key(cluster), demo_programme().phone_hash)
    assert cluster.ledger(
        "SELECT phone_hash, phone_legacy FROM members WHERE member_id = ?", (member_id,)
    ) == [(v2, 0)]
    upgraded = cluster.ledger(
        "SELECT member_id, body FROM changes WHERE seq > ? AND kind = 'member'", (seq,)
    )
    assert len(upgraded) == demo_rows
    assert json.loads(dict(upgraded)[member_id])["phone_hash"] == v2
    assert [h.member_id for h in cluster.bo.find_members(TYPED).hits] == [member_id]
    # the till's cache takes the v2 from the feed and finds the member by it
    till.client.pull_all()
    assert till.store.one("SELECT phone_hash FROM members WHERE member_id = ?", (member_id,)) == (
        v2,
    )
    assert till.agent.identify(TYPED).member_id == member_id


def test_a_new_registration_of_a_v1_phone_joins_the_existing_member(cluster: Cluster) -> None:
    """A phone whose member is still v1 at the back office, registered again at a till
    (offline, not knowing the member): the sealed phone's v1 finds the first member."""
    first = cluster.till("till-a")
    reg = first.agent.register(
        phone=PHONE, first_name="Ира", consent_programme=True, consent_marketing=False
    )
    first.client.sync_now()
    _as_before_the_switch(cluster, reg.card.member_id)
    migrate(cluster.db)
    other = cluster.till("till-b")
    with other.store.write() as conn:  # this till has not heard of the member
        conn.execute("DELETE FROM members WHERE member_id = ?", (reg.card.member_id,))
    again = other.agent.register(
        phone=PHONE, first_name="Ирина", consent_programme=True, consent_marketing=False
    )
    other.client.sync_now()
    assert cluster.ledger(
        "SELECT merged_into FROM members WHERE member_id = ?", (again.card.member_id,)
    ) == [(reg.card.member_id,)]


def test_a_web_sign_in_upgrades_a_v1_member(cluster: Cluster) -> None:
    till = cluster.till()
    reg = till.agent.register(
        phone=PHONE, first_name="Лев", consent_programme=True, consent_marketing=False
    )
    till.client.sync_now()
    _as_before_the_switch(cluster, reg.card.member_id)
    migrate(cluster.db)
    token = member_signup.open_session(
        cluster.bo.context, _key(cluster), TYPED, "s1", None, cluster.clock.now()
    )
    session = cluster.bo.member_session(token)
    assert session is not None and session.member_id == reg.card.member_id
    v2 = hard_phone_hash(PHONE, _key(cluster), demo_programme().phone_hash)
    assert cluster.ledger(
        "SELECT phone_hash, phone_legacy FROM members WHERE member_id = ?", (reg.card.member_id,)
    ) == [(v2, 0)]


def test_a_till_store_of_v1_members_keeps_finding_them_and_hides_digits(
    cluster: Cluster,
) -> None:
    """A till store written by the previous version (v1 fingerprints, masks with digits):
    migration 0008 hides the digits, identification by phone still finds the member (v1)
    until the back office's record brings v2."""
    till = cluster.till()
    member_id = till.store.one("SELECT member_id FROM members ORDER BY member_id")[0]
    key = _key(cluster)
    with till.store.write() as conn:
        conn.execute(
            "UPDATE members SET phone_hash = ?, phone_masked = ? WHERE member_id = ?",
            (phone_hash(PHONE, key), mask_phone(PHONE), member_id),
        )
        conn.execute(
            "DELETE FROM _sqlite_migrations WHERE migration_set = ? AND name = ?",
            (MIGRATION_SET, "0008_phone_masks_hidden"),
        )
    till.close()
    Store(till.path).close()  # opening the store applies the pending migration
    till.open()
    assert till.store.one("SELECT phone_masked FROM members WHERE member_id = ?", (member_id,)) == (
        store_mask(PHONE),
    )
    assert till.store.one("SELECT count(*) FROM members WHERE phone_masked GLOB '*[0-9]'") == (0,)
    found = till.agent.identify(TYPED)
    assert found.member_id == member_id and found.phone_masked == mask_phone(PHONE)


def test_the_phone_cost_cannot_change_in_a_new_version(cluster: Cluster) -> None:
    active = cluster.bo.rules()
    assert active is not None
    with pytest.raises(ProgrammeError, match="phone_hash"):
        cluster.bo.publish_rules(replace(active, version=active.version + 1, phone_hash=TILL_COST))
    cluster.bo.publish_rules(replace(active, version=active.version + 1, welcome_points=1))

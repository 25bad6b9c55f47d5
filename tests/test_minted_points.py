"""Issue 21 item 2: a till cannot mint points with a forged welcome bonus.

A pushed ``member_registered`` claiming more than the programme's welcome bonus is not
applied (answered ``rejected`` / ``held_for_review``, which the till quarantines), so no
balance reaches another store's till. Real app and database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from test_sync_fuzz import Rig, rig  # noqa: F401  (the fixture)

from agent.errors import AgentError


def test_minted_welcome_is_held_and_not_spendable_anywhere(rig: Rig) -> None:  # noqa: F811
    before = rig.view()
    ev = rig.forged("member_registered", lambda p: p.update(welcome_points=10**12))
    resp = rig.push(ev)
    assert resp.status_code == 200, resp.text
    (result,) = resp.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "held_for_review"), result
    assert "10000000000" in result["message"]
    assert rig.view() == before  # no member, no balance
    member_id = json.loads(ev["payload"])["member_id"]
    assert rig.cluster.ledger("SELECT 1 FROM members WHERE member_id = ?", (member_id,)) == []
    other = rig.cluster.till("till-other")  # another till: the member never reaches it
    other.client.pull_all()
    with pytest.raises(AgentError):
        other.balance(member_id)


def test_honest_welcome_applies_and_a_clean_run_holds_nothing(rig: Rig) -> None:  # noqa: F811
    report = rig.till.client.drain()
    assert report.quarantined == 0
    held = rig.cluster.ledger("SELECT count(*) FROM events WHERE code = 'held_for_review'")
    assert held == [(0,)]

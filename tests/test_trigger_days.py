"""The scheduled events' days from the programme (``[events] expiring_days``,
``birthday_days``, ``lapsed_days``): read and refused as ``kassa rules check`` reads a
document, kept through the stored version, and used by ``triggers`` instead of the
defaults (14, 7, 90), on SQLite and PostgreSQL with a fake clock."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cluster import Cluster
from test_cli import run_cli
from test_outbox import cluster
from test_outbox_feed import buyer_with_birthday_in

from agent.errors import RulesError
from agent.rules import parse_programme, programme_to_dict
from agent.seed import demo_programme
from sync.backoffice import outbox, triggers

__all__ = ["cluster"]  # the fixture, shared with test_outbox

SCHEDULED = {outbox.POINTS_EXPIRING, outbox.BIRTHDAY_SOON, outbox.MEMBER_LAPSED}


def document(**events: Any) -> dict[str, Any]:
    d = programme_to_dict(demo_programme())
    if events:
        d["events"] = events
    return d


def test_the_days_are_read_round_tripped_and_refused_naming_the_key() -> None:
    default = parse_programme(document(), "test.json")
    assert (
        default.events_expiring_days,
        default.events_birthday_days,
        default.events_lapsed_days,
    ) == (14, 7, 90)
    assert "events" not in programme_to_dict(default)  # older tills read it unchanged
    assert triggers.Settings.of(default) == triggers.Settings()
    set_ = parse_programme(document(expiring_days=30, birthday_days=0, lapsed_days=60))
    assert triggers.Settings.of(set_) == triggers.Settings(30, 0, 60)
    again = parse_programme(programme_to_dict(set_))
    assert again == set_
    assert programme_to_dict(set_)["events"] == {
        "expiring_days": 30,
        "birthday_days": 0,
        "lapsed_days": 60,
    }
    partial = parse_programme(document(lapsed_days=45))
    assert triggers.Settings.of(partial) == triggers.Settings(14, 7, 45)
    for events, key, problem in (
        ({"expiring_days": 0}, "events.expiring_days", "between 1 and 365"),
        ({"birthday_days": 61}, "events.birthday_days", "between 0 and 60"),
        ({"lapsed_days": "90"}, "events.lapsed_days", "whole number"),
        ({"lapsed_days": True}, "events.lapsed_days", "whole number"),
        ({"lapse_days": 90}, "events.lapse_days", "not a known key"),
    ):
        with pytest.raises(RulesError) as e:
            parse_programme(document(**events), "test.json")
        assert e.value.details["key"] == key, events
        assert problem in e.value.details["problem"], events
    with pytest.raises(RulesError) as e:
        parse_programme({**document(), "events": 30}, "test.json")
    assert e.value.details["key"] == "events"


def test_kassa_rules_check_reads_the_days(tmp_path: Path) -> None:
    good = tmp_path / "rules.json"
    good.write_text(json.dumps(document(lapsed_days=60)), "utf-8")
    proc = run_cli(["rules", "check", str(good)])
    assert proc.returncode == 0, proc.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(document(lapsed_days=0)), "utf-8")
    proc = run_cli(["rules", "check", str(bad)])
    out = json.loads(proc.stdout)
    assert proc.returncode == 2 and out["details"]["key"] == "events.lapsed_days"


def test_triggers_use_the_programmes_days(cluster: Cluster) -> None:
    bo, clock = cluster.bo, cluster.clock
    rules = demo_programme()
    bo.publish_rules(
        replace(
            rules,
            version=rules.version + 1,
            events_expiring_days=100,  # the welcome bonus (90 days) is in it at once
            events_birthday_days=2,
            events_lapsed_days=30,
        )
    )
    assert bo.context.programmes.get(None).events_lapsed_days == 30  # read back stored
    till = cluster.till()
    anna = buyer_with_birthday_in(till, cluster, days=4)

    def scheduled() -> list[outbox.Row]:
        rows = outbox.read_after(cluster.db, 0, 10_000)
        return [r for r in rows if r.member_id == anna and r.type in SCHEDULED]

    bo.run_triggers()  # birthday in 4 days: not within 2 (it would be within 7)
    assert [(r.type, r.data["days"]) for r in scheduled()] == [("points.expiring", 90)]
    clock.advance(days=2)
    bo.run_triggers()
    assert [(r.type, r.data) for r in scheduled()[1:]] == [("birthday.soon", {"days": 2})]
    clock.advance(days=27)  # 29 days without a purchase: not yet lapsed
    bo.run_triggers()
    assert len(scheduled()) == 2
    clock.advance(days=1)  # 30: lapsed (it would wait for 90)
    bo.run_triggers()
    rows = scheduled()[2:]
    assert [(r.type, r.data["days"]) for r in rows] == [("member.lapsed", 30)]
    assert bo.run_triggers() == 0
    # a caller's own days still win over the programme's (Backoffice.run_triggers)
    clock.advance(days=1)
    bo.run_triggers(triggers.Settings(expiring_days=365))
    assert [r.type for r in scheduled()[3:]] == ["points.expiring"]  # the purchase's lot

"""Programme rules files: the demo loads, every bad file is refused naming key and reason."""

import json

import pytest

from agent.errors import RulesError
from agent.rules import load_programme, load_programme_text, parse_programme, programme_to_dict
from agent.seed import demo_programme


def doc():
    return programme_to_dict(demo_programme())


def test_demo_programme_roundtrips_through_json():
    p = demo_programme()
    assert parse_programme(json.loads(json.dumps(programme_to_dict(p)))) == p
    assert [t.code for t in p.tiers] == ["base", "silver", "gold"]


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda d: d.pop("version"), "version", "is required"),
        (lambda d: d.update(redeem_cap_bp=12_000), "redeem_cap_bp", "between"),
        (lambda d: d.update(redeem_cap_bp=30.5), "redeem_cap_bp", "whole number"),
        (lambda d: d.update(typo_key=1), "typo_key", "not a known key"),
        (lambda d: d["tiers"][1].update(threshold_kop=0), "tiers", "rise"),
        (lambda d: d["tiers"][0].update(threshold_kop=5), "tiers", "threshold_kop = 0"),
        (lambda d: d["tiers"][2].pop("accrual_bp"), "tiers[2].accrual_bp", "is required"),
        (lambda d: d.update(timezone="Mars/Base"), "timezone", "time zone"),
        (lambda d: d.update(excluded_categories=["nope"]), "categories", "not listed"),
        (lambda d: d["campaigns"][0].update(ends="2020-01-01"), "campaigns[0].ends", "before"),
        (lambda d: d["campaigns"][0].update(starts="soon"), "campaigns[0].starts", "date"),
        (
            lambda d: d["offline"].update(consecutive_limit=-1),
            "offline.consecutive_limit",
            "between",
        ),
        (lambda d: d["welcome"].update(points="500"), "welcome.points", "whole number"),
    ],
)
def test_bad_rules_name_the_key(mutate, key, problem):
    d = doc()
    mutate(d)
    with pytest.raises(RulesError) as e:
        parse_programme(d, "test.json")
    assert e.value.details["key"] == key
    assert problem in e.value.details["problem"]
    assert "test.json" in e.value.message_ru


def test_corrupt_files(tmp_path):
    with pytest.raises(RulesError, match="not valid TOML"):
        load_programme_text("version = = 1", "toml")
    with pytest.raises(RulesError, match="not valid JSON"):
        load_programme_text("{", "json")
    missing = tmp_path / "absent.toml"
    with pytest.raises(RulesError, match="cannot read"):
        load_programme(missing)
    binary = tmp_path / "rules.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(RulesError):
        load_programme(binary)

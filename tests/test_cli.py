"""The JSON-in/JSON-out command line, as a script or the host POS would drive it."""

import json
import subprocess
import sys

import pytest


def kassa(store, *args, stdin=None):
    proc = subprocess.run(
        [sys.executable, "-m", "kassa.cli", *args, "--store", str(store)],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "till.db"
    code, out, _ = kassa(path, "init", "--demo", "--members", "300")
    assert code == 0 and out["members"] == 300
    return path


def test_identify_quote_commit_refund(store):
    code, card, _ = kassa(store, "identify", stdin=json.dumps({"input": "0001000000018"}))
    assert code == 0 and card["balance"] > 0
    cheque = {
        "member_id": card["member_id"],
        "receipt_id": "CLI-1",
        "redeem_points": "max",
        "lines": [{"sku": "DR-1001"}, {"sku": "OW-4002", "qty": 2}],
    }
    code, quote, _ = kassa(store, "quote", stdin=json.dumps(cheque))
    assert code == 0 and quote["redeem_points"] == quote["max_redeem_points"] > 0
    code, first, _ = kassa(store, "commit", stdin=json.dumps(cheque))
    assert code == 0 and first["seq"] == 1 and not first["duplicate"]
    code, again, _ = kassa(store, "commit", stdin=json.dumps(cheque))
    assert again["duplicate"] and again["event_id"] == first["event_id"]
    code, slip, _ = kassa(store, "slip", str(first["print_job_id"]), "--width", "32")
    assert "Баланс после" in slip["text"]
    code, refund, _ = kassa(
        store,
        "refund",
        stdin=json.dumps({"refund_id": "CLI-R1", "receipt_id": "CLI-1", "lines": {"2": 1}}),
    )
    assert code == 0 and refund["result"]["points_returned"] >= 0
    code, journal, _ = kassa(store, "journal")
    assert [e["type"] for e in journal["pending"]] == ["purchase", "refund"]


@pytest.mark.parametrize(
    ("command", "body", "error"),
    [
        ("identify", {"input": "+7 12"}, "bad_phone"),
        ("identify", {"input": "0001000000019"}, "bad_member_code"),
        ("quote", {"identify": "0001000000018", "receipt_id": "X", "lines": []}, "bad_cart"),
        (
            "quote",
            {"identify": "0001000000018", "receipt_id": "X", "lines": [{"sku": "NOPE"}]},
            "unknown_item",
        ),
        (
            "quote",
            {
                "identify": "0001000000018",
                "receipt_id": "X",
                "lines": [{"sku": "DR-1001", "price_kop": 10.5}],
            },
            "bad_cart",
        ),
        (
            "quote",
            {
                "identify": "0001000000018",
                "receipt_id": "X",
                "lines": [{"sku": "DR-1001", "price_kop": -100}],
            },
            "bad_cart",
        ),
        ("refund", {"refund_id": "R", "receipt_id": "NONE", "lines": {"1": 1}}, "not_found"),
        ("register", {"phone": "+79995550000", "first_name": "Ия"}, "consent_required"),
    ],
)
def test_bad_input_gives_specific_errors(store, command, body, error):
    code, out, err = kassa(store, command, stdin=json.dumps(body))
    assert code == 2 and out["error"] == error
    assert out["message_ru"] and out["message_en"] and "kassa:" in err


def test_not_json_and_missing_store(store, tmp_path):
    code, out, _ = kassa(store, "identify", stdin="{not json")
    assert code == 2 and out["error"] == "bad_input"
    code, out, _ = kassa(tmp_path / "none.db", "identify", stdin="{}")
    assert code == 3 and out["error"] == "store_error"


def test_rules_check_names_the_bad_key(tmp_path):
    bad = tmp_path / "rules.toml"
    bad.write_text(
        'version = 1\nname = "x"\nredeem_cap_bp = 20000\n[[tiers]]\ncode="b"\n'
        'name_ru="Б"\nname_en="B"\nthreshold_kop=0\naccrual_bp=500\n',
        "utf-8",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "kassa.cli", "rules", "check", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    out = json.loads(proc.stdout)
    assert proc.returncode == 2 and out["details"]["key"] == "redeem_cap_bp"

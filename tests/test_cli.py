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


def test_read_only_commands_work_while_another_process_owns_the_store(store):
    """`kassa journal`, `slip`, `sync status`, `cashier list` only read: they must run
    while the agent (here: a Store held open by this test) owns the store's lock, and a
    write through a read-only Store is refused with a StoreError."""
    from agent.errors import StoreError
    from agent.store import Store

    code, card, _ = kassa(store, "identify", stdin=json.dumps({"input": "0001000000018"}))
    cheque = {"member_id": card["member_id"], "receipt_id": "CLI-RO", "lines": [{"sku": "DR-1001"}]}
    code, sale, _ = kassa(store, "commit", stdin=json.dumps(cheque))
    assert code == 0
    with Store(store) as owner:  # the agent's ownership lock
        code, locked, _ = kassa(store, "commit", stdin=json.dumps(cheque))
        assert code == 3 and locked["error"] == "store_locked"  # writers still refused
        code, journal, err = kassa(store, "journal", "--limit", "500")
        assert code == 0, err
        assert "CLI-RO" in {json.loads(e["payload"]).get("receipt_id") for e in journal["pending"]}
        code, slip, err = kassa(store, "slip", str(sale["print_job_id"]))
        assert code == 0 and "Баланс после" in slip["text"], err
        code, status, err = kassa(store, "sync", "status")
        assert code == 0 and status["events_waiting"] >= 1, err
        code, _, err = kassa(store, "cashier", "list")
        assert code == 0, err
        # The owner still writes; the reader sees it.
        with owner.write() as conn:
            Store.set_sync(conn, "cursor", "42", "2026-01-01T00:00:00+00:00")
        reader = Store(store, read_only=True)
        try:
            assert reader.sync_value("cursor") == "42"
            with pytest.raises(StoreError, match="read-only"), reader.write():
                pass
        finally:
            reader.close()


def test_read_only_open_of_a_missing_store_names_it(tmp_path):
    from agent.errors import StoreError
    from agent.store import Store

    with pytest.raises(StoreError, match="no till store"):
        Store(tmp_path / "none.db", read_only=True)
    assert not (tmp_path / "none.db").exists()


def test_a_demo_till_never_enrolled_is_offline(tmp_path):
    """`kassa init --demo` records no contact: a till that never talked to a back office
    is offline and not enrolled, and offline spending bounds apply to its cheques."""
    path = tmp_path / "till.db"
    code, _, err = kassa(path, "init", "--demo", "--members", "20")
    assert code == 0, err
    code, st, err = kassa(path, "sync", "status")
    assert code == 0, err
    assert (st["online"], st["enrolled"], st["last_contact"]) == (False, False, None)
    big = {"identify": "0001000000018", "receipt_id": "OFF-1", "redeem_points": "max"}
    big["lines"] = [{"sku": "X", "category": "outerwear", "price_kop": 10_000_000}]
    code, quote, err = kassa(path, "quote", stdin=json.dumps(big))
    assert code == 0, err
    assert quote["redeem_limited_by"].startswith("offline_"), quote


def test_unknown_fields_are_refused_as_by_the_pos_api(store):
    """The CLI and the POS API parse requests alike: a typo is refused naming the field,
    never silently ignored (``redeem_point`` would otherwise mean "spend nothing")."""
    cheque = {"identify": "0001000000018", "receipt_id": "CLI-U", "lines": [{"sku": "DR-1001"}]}
    code, err, _ = kassa(store, "commit", stdin=json.dumps(cheque | {"redeem_point": 5}))
    assert code == 2 and err["details"]["field"] == "redeem_point"
    code, err, _ = kassa(store, "quote", stdin=json.dumps(cheque | {"lines": [{"sku": ""}]}))
    assert code == 2 and err["details"]["field"] == "sku"
    bad_line = cheque | {"lines": [{"sku": "DR-1001", "colour": "red"}]}
    code, err, _ = kassa(store, "quote", stdin=json.dumps(bad_line))
    assert code == 2 and err["details"]["field"] == "lines[0].colour"
    refund = {"refund_id": "CLI-UR", "receipt_id": "CLI-1", "lines": {"1": 1}, "note": "x"}
    code, err, _ = kassa(store, "refund", stdin=json.dumps(refund))
    assert code == 2 and err["details"]["field"] == "note"
    code, journal, _ = kassa(store, "journal", "--limit", "500")
    assert "CLI-U" not in json.dumps(journal)


def test_init_creates_the_data_directory_on_a_fresh_machine(tmp_path):
    """The default store is ~/.local/share/kassa/till.db: its directory does not exist
    before the first `kassa init --demo` (the demo keys file goes beside it)."""
    path = tmp_path / "fresh" / "share" / "kassa" / "till.db"
    code, out, err = kassa(path, "init", "--demo", "--members", "10")
    assert code == 0, err
    assert out["members"] == 10 and (path.parent / "backoffice-keys.json").exists()


def test_every_command_and_option_has_help():
    """`kassa X --help` says what X does, and every option says what it is for."""
    import argparse

    from kassa.cli import build_parser

    missing = []

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    if not sub.description:
                        missing.append(f"{name} {sub_name}: description")
                    walk(sub, f"{name} {sub_name}")
            elif not isinstance(action, argparse._HelpAction) and not action.help:
                missing.append(f"{name} {action.dest}: help")

    walk(build_parser(), "kassa")
    assert not missing, missing
    for command in (["enroll"], ["doctor"], ["tui"], ["demo"], ["journal"], ["slip"]):
        out = subprocess.run(
            [sys.executable, "-m", "kassa.cli", *command, "--help"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        usage_end = out.index("\n\n")
        assert out[usage_end:].strip().split("\n")[0] not in ("options:", "positional arguments:")


@pytest.mark.parametrize("failure", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_init_leaves_nothing_and_can_be_run_again(tmp_path, monkeypatch, failure):
    """Ctrl-C (or any failure) while the demo members load: the store, its SQLite and lock
    files and the keys this run made are removed, so running the command again works."""
    from kassa import cli, setup

    def broken(*args, **kwargs):
        raise failure("stopped while loading members")

    real = setup._load_demo_members
    monkeypatch.setattr(setup, "_load_demo_members", broken)
    db = tmp_path / "data" / "till.db"
    argv = ["init", "--demo", "--members", "50", "--store", str(db)]
    if failure is KeyboardInterrupt:
        assert cli.main(argv) == 130
    else:
        with pytest.raises(RuntimeError):
            cli.main(argv)
    assert sorted(p.name for p in db.parent.iterdir()) == []
    monkeypatch.setattr(setup, "_load_demo_members", real)
    assert cli.main(argv) == 0
    assert {"till.db", "backoffice-keys.json"} <= {p.name for p in db.parent.iterdir()}

"""The JSON-in/JSON-out command line, as a script or the host POS would drive it.

Every command runs in this process (:func:`run_cli`: ``kassa.cli.main`` with its own
stdin, stdout and stderr, as a process would have them); a few smoke tests at the end run
``python -m kassa.cli`` as a real process."""

import io
import json
import os
import re
import subprocess
import sys
import traceback
from contextlib import ExitStack
from dataclasses import dataclass
from unittest import mock

import pytest


@dataclass(frozen=True)
class Ran:
    """One ``kassa`` command's outcome: exit status, stdout and stderr (text)."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(argv, stdin=None, env=None):
    """``kassa ARGV`` in this process, as a process would run it: ``stdin`` (text, bytes,
    or nothing) as a UTF-8 stream, stdout strict UTF-8 and stderr with backslash escapes
    (Python's own streams), ``env`` over ``os.environ``, 80 columns for argparse's help.
    argparse's exits give their status; an uncaught exception is a traceback on stderr
    and status 1, as the interpreter reports it."""
    from kassa import cli

    data = stdin.encode() if isinstance(stdin, str) else stdin or b""
    out, err = io.BytesIO(), io.BytesIO()
    streams = {
        "stdin": io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"),
        "stdout": io.TextIOWrapper(out, encoding="utf-8", write_through=True),
        "stderr": io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace"),
    }
    with ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, {"COLUMNS": "80", **(env or {})}))
        for name, stream in streams.items():
            stack.enter_context(mock.patch.object(sys, name, stream))
        try:
            code = cli.main(list(argv))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        except Exception:
            sys.stderr.write(traceback.format_exc())
            code = 1
        for stream in streams.values():
            stream.flush()
    return Ran(code, out.getvalue().decode("utf-8"), err.getvalue().decode("utf-8"))


def kassa(store, *args, stdin=None):
    """``kassa ARGS --store STORE``: (exit status, the JSON printed or None, stderr)."""
    ran = run_cli([*args, "--store", str(store)], stdin)
    return ran.returncode, json.loads(ran.stdout) if ran.stdout.strip() else None, ran.stderr


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
    proc = run_cli(["rules", "check", str(bad)])
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
        helped = run_cli([*command, "--help"])
        assert helped.returncode == 0, helped.stderr
        out = helped.stdout
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


def run_main(capsys, *argv):
    """`kassa ...` in this process: (exit code, the JSON printed or None, stdout text)."""
    from kassa import cli

    code = cli.main(list(argv))
    out = capsys.readouterr().out
    try:
        return code, json.loads(out), out
    except json.JSONDecodeError:
        return code, None, out


def test_journal_says_when_it_shows_only_part_of_the_queue(tmp_path, capsys):
    """The default shows 50 events; when more wait the output says so ("shown", "total",
    "truncated"), and the default is in --help. 53 offline cheques: 50 shown of 53."""
    from agent.requests import checkout_request
    from agent.service import Agent
    from agent.store import Store

    path = tmp_path / "till.db"
    assert run_main(capsys, "init", "--demo", "--members", "20", "--store", str(path))[0] == 0
    with Store(path) as store:
        agent = Agent(store)
        for i in range(53):
            body = {
                "identify": "0001000000018",
                "receipt_id": f"J-{i}",
                "lines": [{"sku": "DR-1001"}],
            }
            agent.commit(checkout_request(agent, body))
    code, out, _ = run_main(capsys, "journal", "--store", str(path))
    assert code == 0
    assert (len(out["pending"]), out["shown"], out["total"], out["truncated"]) == (50, 50, 53, True)
    assert out["status"]["events_waiting"] == 53
    code, out, _ = run_main(capsys, "journal", "--limit", "53", "--store", str(path))
    assert (len(out["pending"]), out["total"], out["truncated"]) == (53, 53, False)
    helped = run_cli(["journal", "--help"])
    assert helped.returncode == 0, helped.stderr
    helped = helped.stdout
    assert "default: 50" in helped and "truncated" in helped


@pytest.mark.parametrize(
    ("argv", "argument"),
    [
        (["journal", "--limit", "-5"], "--limit"),
        (["journal", "--limit", "0"], "--limit"),
        (["journal", "--limit"], "--limit"),
        (["slip", "abc"], "job_id"),
        (["slip", "-1"], "job_id"),
        (["slip", "1", "--width", "7"], "--width"),
        (["slip", "1", "--width", "33"], "--width"),
        (["slip"], None),
        (["slip", "1", "--colour", "red"], None),
        (["identify", "--jsn", "{}"], None),
        (["rules", "check"], None),
        (["config", "show", "--nope"], None),
        (["agent", "serve", "--port", "http"], "--port"),
    ],
)
def test_json_commands_report_bad_arguments_as_the_error_json(store, argv, argument):
    """A JSON command's wrong arguments print the documented error JSON and exit 2 (not
    argparse's usage text); message_ru is Russian, argparse's English stays in message_en."""
    proc = run_cli(argv, env={"KASSA_STORE": str(store)})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = json.loads(proc.stdout)
    assert err["error"] == "bad_arguments" and set(err) == {
        "error",
        "title",
        "message_ru",
        "message_en",
        "details",
    }
    assert "usage:" not in proc.stderr and proc.stderr.startswith("kassa: ")
    assert not re.search(r"\b(the|argument|required|unrecognized|expected)\b", err["message_ru"])
    if argument:
        assert err["details"]["argument"] == argument and argument in err["message_ru"]


def test_human_commands_keep_argparse_usage_and_help_works(store):
    """`tui`, `demo`, `doctor` are for people: argparse's usage text stays; --help of a
    JSON command is argparse's help, exit 0."""
    for argv in (["tui", "--nope"], ["demo", "--nope"], ["doctor", "--lang", "xx"]):
        proc = run_cli(argv)
        assert proc.returncode == 2 and "usage:" in proc.stderr and not proc.stdout
    proc = run_cli(["slip", "--help"])
    assert proc.returncode == 0 and proc.stdout.startswith("usage: kassa slip")


def test_register_errors_name_what_is_wrong(store):
    base = {"phone": "+7 999 555-07-07", "first_name": "Ия", "consent_programme": True}
    code, err, _ = kassa(store, "register", stdin=json.dumps(base | {"birthday": "1990-02-31"}))
    assert code == 2 and err["details"]["field"] == "birthday"
    assert "no such date" in err["message_en"] and "такой даты нет" in err["message_ru"]
    assert "ГГГГ" not in err["message_ru"] and "YYYY" not in err["message_en"]
    code, err, _ = kassa(store, "register", stdin=json.dumps(base | {"birthday": "31.02.1990"}))
    assert code == 2 and "ГГГГ-ММ-ДД" in err["message_ru"] and "YYYY-MM-DD" in err["message_en"]
    for consent in ("yes", 1, "true", None):
        body = base | {"consent_programme": consent}
        code, err, _ = kassa(store, "register", stdin=json.dumps(body))
        assert code == 2 and err["error"] == "bad_input", err
        assert err["details"]["field"] == "consent_programme" and "true" in err["message_ru"]
    body = base | {"consent_marketing": "no"}
    code, err, _ = kassa(store, "register", stdin=json.dumps(body))
    assert code == 2 and err["details"]["field"] == "consent_marketing"
    code, err, _ = kassa(store, "register", stdin=json.dumps(base | {"consent_programme": False}))
    assert code == 2 and err["error"] == "consent_required"


def test_bad_json_is_explained_in_russian_with_pythons_detail_in_english(store):
    code, err, _ = kassa(store, "identify", stdin='{"input":\n  "1",, }')
    assert code == 2 and err["error"] == "bad_input"
    assert err["message_ru"] == "запрос не является JSON: ошибка в строке 2, столбце 7"
    assert "Expecting" in err["message_en"] and "Expecting" in err["details"]["reason"]
    assert (err["details"]["line"], err["details"]["column"]) == (2, 7)


def test_line_errors_name_the_same_line_in_both_languages(store):
    cheque = {"identify": "0001000000018", "receipt_id": "X"}
    bad_lines = [
        ([{"sku": "DR-1001"}, {"sku": "NOPE"}], "unknown_item", "lines[1].sku"),
        ([{"sku": "DR-1001"}, "DR-1002"], "bad_cart", "lines[1]"),
        ([{"sku": "DR-1001"}, {"sku": "DR-1001", "qty": 0}], "bad_cart", "lines[1].qty"),
        ([{"sku": "DR-1001"}, {"sku": "DR-1001", "colour": 1}], "bad_input", "lines[1].colour"),
    ]
    for lines, error, path in bad_lines:
        code, err, _ = kassa(store, "quote", stdin=json.dumps(cheque | {"lines": lines}))
        assert code == 2 and err["error"] == error, err
        assert err["message_en"].startswith(f"line 2 ({path}): "), err
        assert err["message_ru"].startswith(f"позиция 2 ({path}): "), err


def test_cashier_set_pin_unlocks_a_locked_cashier(tmp_path):
    """Five wrong PINs lock a cashier with no timeout; `kassa cashier set-pin` is how the
    till's administrator undoes it: the new PIN signs in, the old one does not."""
    from agent import shifts
    from agent.errors import InputError
    from agent.store import Store

    path = tmp_path / "till.db"
    assert kassa(path, "init", "--demo", "--members", "10")[0] == 0
    code, _, err = kassa(path, "cashier", "add", "--id", "anna", "--name", "Анна", "--pin", "1111")
    assert code == 0, err
    with Store(path) as store:
        for _ in range(shifts.MAX_PIN_FAILURES):
            with pytest.raises(InputError):
                shifts.verify_pin(store, "anna", "9999")
        with pytest.raises(InputError) as locked:
            shifts.verify_pin(store, "anna", "1111")
        assert locked.value.details.get("locked")
    code, out, err = kassa(path, "cashier", "set-pin", "--id", "anna", "--pin", "2468")
    assert code == 0, err
    assert out == {"ok": True, "cashier_id": "anna", "unlocked": True}
    with Store(path) as store:
        assert shifts.verify_pin(store, "anna", "2468").cashier_id == "anna"
        with pytest.raises(InputError):
            shifts.verify_pin(store, "anna", "1111")
    code, out, _ = kassa(path, "cashier", "set-pin", "--id", "nobody", "--pin", "2468")
    assert code == 2 and out["error"] == "not_found"
    code, out, _ = kassa(path, "cashier", "set-pin", "--id", "anna", "--pin", "12")
    assert code == 2 and out["error"]


@pytest.mark.parametrize(
    ("command", "body", "field", "says"),
    [
        ("identify", '{"input": "\\ud800"}', "input", "U+D800"),
        ("identify", '{"input": 123}', "input", "must be a string"),
        ("identify", "[1, 2]", "request", "must be a JSON object"),
        ("identify", '"0001000000018"', "request", "must be a JSON object"),
        ("identify", '{"input": "1' + "1" * 5000 + '"}', "input", "too long"),
        ("identify", '{"input": ' + "1" * 5000 + "}", "json", "number too long"),
        ("identify", "[" * 5000 + "]" * 5000, None, "nested too deeply"),
        ("register", '{"phone": 79161242486, "first_name": "A"}', "phone", "must be a string"),
        ("register", '{"phone": "+79161242486", "first_name": "A\\u0007"}', "first_name", "U+0007"),
        ("refund", '{"refund_id": 5, "receipt_id": "X", "lines": {}}', "refund_id", "string"),
        ("quote", '{"identify": 18, "receipt_id": "X", "lines": []}', "identify", "string"),
        (
            "commit",
            '{"identify": "0001000000018", "receipt_id": "BAD-1", "coupon": 5,'
            ' "lines": [{"sku": "DR-1001"}]}',
            "coupon",
            "must be a string",
        ),
        (
            "commit",
            '{"identify": "0001000000018", "receipt_id": "BAD-2",'
            ' "lines": [{"sku": "DR-1001\\u0000"}]}',
            "lines[0].sku",
            "U+0000",
        ),
        (
            "commit",
            '{"identify": "0001000000018", "receipt_id": "BAD-3",'
            ' "lines": [{"sku": "DR-1001", "name": "gpj\\u202eexe"}]}',
            "lines[0].name",
            "U+202E",
        ),
        (
            "commit",
            '{"identify": "0001000000018", "receipt_id": "BAD-4\\u0007",'
            ' "lines": [{"sku": "DR-1001"}]}',
            "receipt_id",
            "U+0007",
        ),
        (
            "commit",
            '{"identify": "0001000000018", "receipt_id": "BAD-5",'
            ' "lines": [{"sku": "DR-1001", "price_kop": 1' + "0" * 30 + "}]}",
            "lines[0].price_kop",
            "out of range",
        ),
        (
            "commit",
            '{"identify": "0001000000018", "receipt_id": "BAD-6",'
            ' "lines": [{"sku": "DR-1001", "price_kop": 0}]}',
            "lines",
            "0 kopecks",
        ),
    ],
)
def test_hostile_json_is_refused_naming_the_field_and_nothing_is_committed(
    store, command, body, field, says
):
    """Valid JSON of the wrong shape or with text no till may keep (control and bidi
    characters, lone surrogates), numbers too big: a JSON error naming the field and exit
    2, never a traceback; stderr shows no raw control character; nothing is journaled."""
    proc = run_cli([command, "--store", str(store)], stdin=body.encode())
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    assert says in out["message_en"], out
    if field is not None:
        assert out["details"]["field"] == field, out
    assert out["message_ru"] and out["message_ru"] != out["message_en"]
    err = proc.stderr
    assert not [c for c in err.rstrip("\n") if ord(c) < 0x20 or c in "\u202e\ud800"]
    journal = kassa(store, "journal")[1]
    assert "BAD-" not in json.dumps(journal)


def _cashier_on_a_terminal(path, answers, *argv):
    """Run `kassa cashier ...` on a real pseudo-terminal (its controlling tty, as when an
    administrator types there), answering each no-echo prompt in turn; (exit code, screen)."""
    import fcntl
    import pty
    import select
    import termios
    import time

    master, slave = pty.openpty()

    def take_tty():
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        [sys.executable, "-m", "kassa.cli", "cashier", *argv, "--store", str(path)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        preexec_fn=take_tty,  # noqa: PLW1509 - the child needs the pty as its terminal
    )
    os.close(slave)
    screen = b""
    pending = list(answers)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not select.select([master], [], [], 0.1)[0]:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
        asked = screen.count(b"PIN")  # each prompt names the PIN; answer each once
        if pending and screen.endswith(b": ") and asked > len(answers) - len(pending):
            os.write(master, pending.pop(0).encode() + b"\n")
    code = proc.wait(timeout=30)
    os.close(master)
    return code, screen.decode(errors="replace")


def test_cashier_add_asks_the_pin_twice_and_a_mismatch_makes_no_cashier(tmp_path):
    path = tmp_path / "till.db"
    assert kassa(path, "init", "--demo", "--members", "10")[0] == 0
    add = ("add", "--id", "olga", "--name", "Ольга")
    code, screen = _cashier_on_a_terminal(path, ["1357", "1375"], *add)
    assert code == 2, screen
    assert "PIN ещё раз / again:" in screen and "не совпадают" in screen
    assert "1357" not in screen  # no echo
    code, out, _ = kassa(path, "cashier", "list")
    assert "olga" not in json.dumps(out)
    code, screen = _cashier_on_a_terminal(path, ["1357", "1357"], *add)
    assert code == 0, screen
    code, out, _ = kassa(path, "cashier", "list")
    assert "olga" in json.dumps(out)
    code, screen = _cashier_on_a_terminal(path, ["2468", "8642"], "set-pin", "--id", "olga")
    assert code == 2 and "не совпадают" in screen


def test_smoke_python_m_kassa_cli_runs_as_a_process(store):
    """The real entry point, as a script or the host POS runs it: ``--version``, one JSON
    command end to end (stdin in, JSON out, exit 0) and its error contract (exit 2, the
    error JSON on stdout, the cashier's line on stderr)."""

    def process(*argv, stdin=None):
        return subprocess.run(
            [sys.executable, "-m", "kassa.cli", *argv],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )

    version = process("--version")
    assert version.returncode == 0 and version.stdout.startswith("kassa "), version.stderr
    card = process("identify", "--store", str(store), stdin='{"input": "0001000000018"}')
    assert card.returncode == 0, card.stderr
    assert json.loads(card.stdout)["balance"] > 0
    bad = process("identify", "--store", str(store), stdin='{"input": "+7 12"}')
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"] == "bad_phone"
    assert bad.stderr.startswith("kassa: ") and "Traceback" not in bad.stderr

"""Points holds and reprints at the command line, as the POS API has them: `kassa hold
place` (a quote's JSON plus ``ttl_s``), `hold show`, `hold cancel`, `kassa commit` with a
``hold_id`` and `kassa reprint JOB_ID` (a «КОПИЯ» job), with the CLI's error contract
(the error JSON, exit 2 for input, not found and conflicts, 3 for the store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import kassa, run_cli

RICH = "0001000000018"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("holds") / "till.db"
    code, _, err = kassa(path, "init", "--demo", "--members", "20")
    assert code == 0, err
    return path


def cheque(receipt_id: str, **extra: object) -> str:
    return json.dumps(
        {"identify": RICH, "receipt_id": receipt_id, "lines": [{"sku": "OW-4001"}]} | extra
    )


def pending(store: Path) -> list[str]:
    code, journal, err = kassa(store, "journal", "--limit", "500")
    assert code == 0, err
    return [json.loads(e["payload"]).get("receipt_id", "") for e in journal["pending"]]


def test_hold_show_commit_with_the_hold_spends_what_it_reserved(store: Path) -> None:
    code, hold, err = kassa(store, "hold", "place", stdin=cheque("H-1", redeem_points="max"))
    assert code == 0, err
    assert hold["status"] == "active" and hold["points"] > 0 and hold["receipt_id"] == "H-1"
    assert hold["quote"]["redeem_points"] == hold["points"]
    code, shown, err = kassa(store, "hold", "show", hold["hold_id"])
    assert code == 0, err
    assert (shown["hold_id"], shown["status"], shown["points"]) == (
        hold["hold_id"],
        "active",
        hold["points"],
    )
    code, sale, err = kassa(store, "commit", stdin=cheque("H-1", hold_id=hold["hold_id"]))
    assert code == 0, err
    assert sale["quote"]["redeem_points"] == hold["points"] and not sale["duplicate"]
    assert kassa(store, "hold", "show", hold["hold_id"])[1]["status"] == "committed"
    code, err_json, err = kassa(store, "hold", "cancel", hold["hold_id"])
    assert code == 2 and err_json["error"] == "hold_unusable", err_json
    assert err_json["details"]["status"] == "committed" and err.startswith("kassa: ")


def test_a_cancelled_hold_pays_for_nothing(store: Path) -> None:
    code, hold, err = kassa(store, "hold", "place", stdin=cheque("H-2", redeem_points="max"))
    assert code == 0, err
    code, cancelled, err = kassa(store, "hold", "cancel", hold["hold_id"])
    assert code == 0 and cancelled["status"] == "cancelled", err
    assert kassa(store, "hold", "cancel", hold["hold_id"])[1]["status"] == "cancelled"
    code, out, _ = kassa(store, "commit", stdin=cheque("H-2", hold_id=hold["hold_id"]))
    assert code == 2 and out["error"] == "hold_unusable"
    assert out["details"]["status"] == "cancelled"
    assert "H-2" not in pending(store)


def test_commit_with_a_hold_must_be_the_held_cheque(store: Path) -> None:
    code, hold, err = kassa(store, "hold", "place", stdin=cheque("H-3", redeem_points="max"))
    assert code == 0, err
    other = json.dumps(
        {
            "identify": RICH,
            "receipt_id": "H-3",
            "lines": [{"sku": "DR-1001"}],
            "hold_id": hold["hold_id"],
        }
    )
    code, out, _ = kassa(store, "commit", stdin=other)
    assert code == 2 and out["error"] == "hold_cheque_changed", out
    assert "H-3" not in pending(store)
    assert kassa(store, "hold", "show", hold["hold_id"])[1]["status"] == "active"
    assert kassa(store, "hold", "cancel", hold["hold_id"])[0] == 0  # the points free again


@pytest.mark.parametrize(
    ("argv", "body", "error", "field"),
    [
        (["hold", "place"], cheque("H-4", ttl_s=1), "bad_input", "ttl_s"),
        (["hold", "place"], cheque("H-4", ttl_s="long"), "bad_input", "ttl_s"),
        (["hold", "place"], cheque("H-4", hold_id="x"), "bad_input", "hold_id"),
        (["quote"], cheque("H-4", ttl_s=60), "bad_input", "ttl_s"),
        (["commit"], cheque("H-4", hold_id=""), "bad_input", "hold_id"),
        (["commit"], cheque("H-4", hold_id="no-such-hold"), "not_found", None),
        (["hold", "show", "no-such-hold"], None, "not_found", None),
        (["hold", "cancel", "no-such-hold"], None, "not_found", None),
        (["reprint", "999999"], None, "not_found", None),
    ],
)
def test_hold_and_reprint_errors(store, argv, body, error, field) -> None:
    code, out, err = kassa(store, *argv, stdin=body)
    assert code == 2 and out["error"] == error, out
    assert out["message_ru"] and out["message_en"] and err.startswith("kassa: ")
    if field is not None:
        assert out["details"]["field"] == field, out
    assert "H-4" not in pending(store)


@pytest.mark.parametrize(
    ("argv", "argument"),
    [
        (["hold", "show", "x" * 65], "hold_id"),
        (["hold", "cancel", "bad\x07id"], "hold_id"),
        (["hold", "show"], None),
        (["hold"], None),
        (["hold", "keep"], None),
        (["reprint", "abc"], "job_id"),
        (["reprint", "0"], "job_id"),
        (["reprint"], None),
    ],
)
def test_bad_hold_and_reprint_arguments_are_the_error_json(store, argv, argument) -> None:
    ran = run_cli([*argv, "--store", str(store)] if len(argv) > 1 else argv)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    out = json.loads(ran.stdout)
    assert out["error"] == "bad_arguments" and "usage:" not in ran.stderr
    if argument:
        assert out["details"]["argument"] == argument and argument in out["message_ru"]
    assert not [c for c in ran.stderr.rstrip("\n") if ord(c) < 0x20]


def test_reprint_queues_a_copy_marked_as_one(store: Path) -> None:
    code, sale, err = kassa(store, "commit", stdin=cheque("H-5"))
    assert code == 0, err
    journaled = pending(store)
    code, copy, err = kassa(store, "reprint", str(sale["print_job_id"]))
    assert code == 0, err
    assert copy["copy_of"] == sale["print_job_id"] and copy["queued"]
    assert copy["job_id"] != sale["print_job_id"]
    code, slip, err = kassa(store, "slip", str(copy["job_id"]))
    assert code == 0 and "КОПИЯ" in slip["text"] and slip["receipt_id"] == "H-5", err
    code, original, _ = kassa(store, "slip", str(sale["print_job_id"]))
    assert "КОПИЯ" not in original["text"]
    assert pending(store) == journaled  # a reprint journals nothing


def test_holds_need_the_store_and_refuse_while_another_process_owns_it(tmp_path: Path) -> None:
    """`hold show` only reads (it works while the agent owns the store); placing,
    cancelling and reprinting write: refused with exit 3 then."""
    from agent.store import Store

    store = tmp_path / "till.db"
    assert kassa(store, "init", "--demo", "--members", "5")[0] == 0
    code, hold, err = kassa(store, "hold", "place", stdin=cheque("H-6", redeem_points=1))
    assert code == 0, err
    code, sale, err = kassa(store, "commit", stdin=cheque("H-7"))
    assert code == 0, err
    with Store(store):
        assert kassa(store, "hold", "show", hold["hold_id"])[0] == 0
        for argv, body in (
            (["hold", "place"], cheque("H-8")),
            (["hold", "cancel", hold["hold_id"]], None),
            (["reprint", str(sale["print_job_id"])], None),
        ):
            code, out, _ = kassa(store, *argv, stdin=body)
            assert code == 3 and out["error"] == "store_locked", (argv, out)
    code, out, _ = kassa(store.with_name("none.db"), "hold", "show", "x")
    assert code == 3 and out["error"] == "store_error"

"""The cheque ceilings (agent.limits) hold at every front door: the POS API and the CLI
refuse a line over 1 000 000 ₽ and a cheque over 10 000 000 ₽ with
``cheque_limit``, naming the amount and the ceiling, and write nothing; the ceilings
themselves are accepted."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import run_cli
from test_posapi import AUTH, RICH, TOKEN, TestClient, counts

from agent.limits import CHEQUE_MAX_KOP, LINE_MAX_KOP
from kassa.posapi import create_app


def line(price_kop: int, qty: int = 1) -> dict[str, object]:
    return {"sku": "X-1", "category": "outerwear", "price_kop": price_kop, "qty": qty}


def plain(err: dict[str, object]) -> dict[str, object]:
    """Non-breaking spaces of money (agent.money) as plain ones, to compare with text."""
    return {k: v.replace("\u00a0", " ") if isinstance(v, str) else v for k, v in err.items()}


def test_pos_api_refuses_a_line_and_a_cheque_over_the_ceilings(till):
    with TestClient(create_app(till.agent, token=TOKEN), headers=AUTH) as api:
        member = api.post("/v1/identify", json={"input": RICH}).json()["member_id"]
        cheque = {"member_id": member, "receipt_id": "LIM-1"}
        before = counts(till)
        over_line = api.post("/v1/commit", json=cheque | {"lines": [line(LINE_MAX_KOP + 1)]})
        assert over_line.status_code == 400, over_line.text
        err = plain(over_line.json())
        assert err["error"] == "cheque_limit" and err["details"]["limit_kop"] == LINE_MAX_KOP
        assert "1 000 000,00 ₽" in err["message_ru"] and "позиция 1" in err["message_ru"]
        assert "1,000,000.00 ₽" in err["message_en"]
        # a line within the ceiling but times two is over it too (price x quantity)
        twice = api.post("/v1/quote", json=cheque | {"lines": [line(LINE_MAX_KOP // 2 + 1, 2)]})
        assert twice.json()["error"] == "cheque_limit"
        eleven = [line(LINE_MAX_KOP)] * 11
        over_cheque = api.post("/v1/commit", json=cheque | {"lines": eleven})
        err = plain(over_cheque.json())
        assert err["error"] == "cheque_limit" and err["details"]["limit_kop"] == CHEQUE_MAX_KOP
        assert "10 000 000,00 ₽" in err["message_ru"]
        assert counts(till) == before
        ten = api.post("/v1/quote", json=cheque | {"lines": [line(LINE_MAX_KOP)] * 10})
        assert ten.status_code == 200 and ten.json()["total_kop"] == CHEQUE_MAX_KOP


def kassa(store: Path, *args: str, stdin: str | None = None) -> tuple[int, dict[str, object]]:
    proc = run_cli([*args, "--store", str(store)], stdin)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout.strip() else {}


def test_cli_refuses_100_million_roubles(tmp_path):
    store = tmp_path / "till.db"
    assert kassa(store, "init", "--demo", "--members", "20")[0] == 0
    cheque = {"identify": "0001000000018", "receipt_id": "LIM-CLI"}
    code, err = kassa(store, "commit", stdin=json.dumps(cheque | {"lines": [line(100_000_000_00)]}))
    assert code == 2 and err["error"] == "cheque_limit", err
    code, journal = kassa(store, "journal")
    assert code == 0 and "LIM-CLI" not in json.dumps(journal)
    code, ok = kassa(store, "quote", stdin=json.dumps(cheque | {"lines": [line(LINE_MAX_KOP)]}))
    assert code == 0 and ok["total_kop"] == LINE_MAX_KOP
